-- O&M streaming (issue 6): when each window and alert row first landed (for the
-- window-close → alert latency), and the heartbeat of the running `ysh om run`.

ALTER TABLE om_inverter_5min ADD COLUMN IF NOT EXISTS created_at timestamptz NOT NULL DEFAULT clock_timestamp();
ALTER TABLE om_alerts ADD COLUMN IF NOT EXISTS created_at timestamptz NOT NULL DEFAULT clock_timestamp();

CREATE TABLE IF NOT EXISTS om_stream_status (
    pipeline         text PRIMARY KEY,          -- 'om'
    source           text NOT NULL,             -- jsonl | mqtt | kafka
    pid              integer NOT NULL,
    started_at       timestamptz NOT NULL,
    heartbeat_at     timestamptz NOT NULL,      -- every few seconds while the process lives
    last_batch_at    timestamptz,               -- wall clock of the last batch of windows written
    last_window_end  timestamptz                -- event time: the newest window end written
);

-- The daily O&M summary (Dagster asset om_alerts_daily): one row per local day
-- (America/Sao_Paulo) and plant, plus plant '*' for the fleet.
CREATE TABLE IF NOT EXISTS om_alerts_daily (
    day              date NOT NULL,
    plant_id         text NOT NULL,
    alerts           bigint NOT NULL,             -- opened that day, info (clipping) included
    alerts_by_rule   jsonb NOT NULL,
    resolved         bigint NOT NULL,             -- of those, resolved by now
    mttr_minutes     double precision,            -- mean time to resolve of the resolved, non-info ones
    availability     double precision,            -- share of daylight inverter-windows available
    computed_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (day, plant_id)
);
