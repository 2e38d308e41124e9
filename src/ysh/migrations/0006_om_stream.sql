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
