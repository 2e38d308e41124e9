-- Operations (issue 7): every alert the platform raises, and whether it went out, so each
-- alert is sent once and an alert Slack did not take is sent again by the next run.
CREATE TABLE IF NOT EXISTS ops_alerts_sent (
    alert_key   text PRIMARY KEY,   -- e.g. dagster-run:<run id>, dagster-check:<run id>:<asset>:<check>
    kind        text NOT NULL,
    summary     text NOT NULL,      -- the message
    status      text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'sent', 'logged', 'covered')),  -- logged: no webhook configured
    attempts    bigint NOT NULL DEFAULT 0,
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);
CREATE INDEX IF NOT EXISTS ops_alerts_pending_idx ON ops_alerts_sent (created_at) WHERE status = 'pending';
