-- A notice Slack refuses for good is kept as 'failed' (with its last_error) after
-- YSH_SLACK_MAX_ATTEMPTS tries, instead of being retried forever. 'logged' stays valid for
-- rows written before notices without a webhook started to wait as 'pending'.
ALTER TABLE ops_alerts_sent DROP CONSTRAINT IF EXISTS ops_alerts_sent_status_check;
ALTER TABLE ops_alerts_sent ADD CONSTRAINT ops_alerts_sent_status_check
    CHECK (status IN ('pending', 'sent', 'logged', 'covered', 'failed'));
