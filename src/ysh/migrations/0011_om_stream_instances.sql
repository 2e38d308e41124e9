-- O&M scale-out on Kafka and late events (issue 14): one om_stream_status row per running
-- `ysh om follow` instance (pipeline 'om' for the whole topic, 'om-p0-1' for an instance
-- owning partitions 0 and 1), the partitions it owns, and how many late events it has
-- quarantined (reason 'late'; a running total across restarts, at least once: events
-- re-read after a crash may be counted again; om_quarantine holds each late line once).

ALTER TABLE om_stream_status ADD COLUMN IF NOT EXISTS kafka_partitions integer[];
ALTER TABLE om_stream_status ADD COLUMN IF NOT EXISTS late_events bigint NOT NULL DEFAULT 0;
