-- Keep the last good feed (issue 15): the version of each feed file whose rows are in the
-- catalog, with its bytes, so that a broken or badly shrunk re-upload is held (quarantined,
-- an alert raised) instead of retracting the distributor's items — in batch runs and after
-- a follower's restart as well as while it follows. Written by the catalog graph (snapshot
-- upserts by source_file; rows of removed feeds are deleted with their items).
CREATE TABLE IF NOT EXISTS catalog_feed_versions (
    source_file    text PRIMARY KEY,
    distributor    text NOT NULL,
    sha256         text NOT NULL,
    items          bigint NOT NULL,
    modified_at_s  bigint NOT NULL,   -- the version's modification time (Unix seconds)
    precedence     bigint NOT NULL,   -- its rank among the distributor's feeds (newest wins a SKU)
    data           bytea NOT NULL,    -- the version's bytes, normalized again while a newer one is held
    ingested_at    timestamptz NOT NULL
);

-- a feed file whose newest version is held: why (unparseable_file, empty_file,
-- feed_shrunk, internal_error); its counts are the good version's
ALTER TABLE catalog_feed_files ADD COLUMN IF NOT EXISTS held_reason text;
