-- The Inmetro registry of PV equipment and what it says of each catalog item (issue 18,
-- part 1). Both tables are written by the catalog's Pathway graph (snapshot upserts);
-- column order and types follow its tables (Pathway float -> double precision,
-- int -> bigint, DateTimeUtc -> timestamptz). docs/catalog.md, "Inmetro registry".

-- The landed Inmetro tables (CSV, spreadsheet or PDF), one row per registered model and
-- file line. `situation`: active (A) | cancelled (C) | NULL when the table states none.
CREATE TABLE IF NOT EXISTS inmetro_registry (
    category          text NOT NULL CHECK (category IN ('module', 'inverter')),
    supplier          text,
    brand             text NOT NULL,
    model             text NOT NULL,
    power_w           double precision,
    efficiency_pct    double precision,
    efficiency_class  text,
    registration      text,
    situation         text CHECK (situation IS NULL OR situation IN ('active', 'cancelled')),
    valid_until       text,  -- ISO date, when the table states a validity
    source_file       text NOT NULL,
    line              bigint NOT NULL,
    ingested_at       timestamptz NOT NULL,
    PRIMARY KEY (source_file, line)
);
CREATE INDEX IF NOT EXISTS inmetro_registry_registration_idx ON inmetro_registry (registration);

-- One row per item of items_normalized: its status in the registry and the row it matched.
-- (items_normalized.inmetro_status is the older check of the number a distributor typed:
-- ok | missing | invalid.)
CREATE TABLE IF NOT EXISTS items_inmetro (
    distributor          text NOT NULL,
    sku                  text NOT NULL,
    category             text NOT NULL,
    inmetro_status       text NOT NULL
        CHECK (inmetro_status IN ('registered', 'not_registered', 'power_mismatch', 'expired', 'unknown')),
    match_rule           text,  -- exact | annotation | prefix | annotation+prefix [|registry:…]
    registration         text,
    registry_brand       text,
    registry_model       text,
    registry_power_w     double precision,
    registry_situation   text,
    registry_valid_until text,
    efficiency_class     text,
    registry_file        text,
    registry_line        bigint,
    power_w              double precision,
    source_file          text NOT NULL,
    ingested_at          timestamptz NOT NULL,
    PRIMARY KEY (distributor, sku)
);
CREATE INDEX IF NOT EXISTS items_inmetro_status_idx ON items_inmetro (inmetro_status);
