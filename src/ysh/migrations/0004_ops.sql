-- Operations (issue 7): which alerts were already sent, so every alert goes out once.
CREATE TABLE IF NOT EXISTS ops_alerts_sent (
    alert_key   text PRIMARY KEY,   -- e.g. dagster-run:<run id>, dagster-check:<run id>:<asset>:<check>
    kind        text NOT NULL,
    summary     text NOT NULL,
    delivered   boolean NOT NULL,   -- false: no webhook configured, only logged
    sent_at     timestamptz NOT NULL DEFAULT now()
);
