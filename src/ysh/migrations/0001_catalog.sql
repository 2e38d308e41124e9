-- Catalog job: distributor feeds normalized (issue 2).
-- Column order and types follow the Pathway tables written in snapshot mode
-- (Pathway float -> double precision, int -> bigint, DateTimeUtc -> timestamptz).

CREATE TABLE IF NOT EXISTS items_normalized (
    distributor          text NOT NULL,
    sku                  text NOT NULL,
    category             text NOT NULL
        CHECK (category IN ('module', 'inverter', 'microinverter', 'battery', 'other')),
    brand                text,
    model                text,
    description          text,
    power_w              double precision CHECK (power_w IS NULL OR power_w < 'Infinity'),
    price_brl            double precision
        CHECK (price_brl IS NULL OR (price_brl > 0 AND price_brl < 'Infinity')),
    stock_units          bigint CHECK (stock_units IS NULL OR stock_units >= 0),
    inmetro_registration text,
    inmetro_status       text NOT NULL CHECK (inmetro_status IN ('ok', 'missing', 'invalid')),
    efficiency_pct       double precision,
    technology           text,
    voc_v                double precision,
    isc_a                double precision,
    vmp_v                double precision,
    imp_a                double precision,
    mppt_count           bigint,
    phases               bigint,
    max_dc_voltage_v     double precision,
    product_key          text,  -- brand|MODELKEY, joins products
    source_file          text NOT NULL,
    source_line          bigint NOT NULL,
    ingested_at          timestamptz NOT NULL,
    PRIMARY KEY (distributor, sku)
);
CREATE INDEX IF NOT EXISTS items_normalized_product_key_idx ON items_normalized (product_key);
CREATE INDEX IF NOT EXISTS items_normalized_source_file_idx ON items_normalized (source_file);

CREATE TABLE IF NOT EXISTS items_quarantine (
    distributor  text NOT NULL,
    source_file  text NOT NULL,
    line         bigint NOT NULL,  -- physical line (JSON array: element index; 0: whole file)
    reason       text NOT NULL,
    detail       text NOT NULL,
    raw          jsonb NOT NULL,   -- the original record
    ingested_at  timestamptz NOT NULL,
    PRIMARY KEY (source_file, line)
);
CREATE INDEX IF NOT EXISTS items_quarantine_reason_idx ON items_quarantine (reason);

CREATE TABLE IF NOT EXISTS products (
    product_key      text PRIMARY KEY,  -- brand | model key (upper-case alphanumerics)
    brand            text NOT NULL,
    model            text NOT NULL,
    category         text NOT NULL,
    power_w          double precision,
    offers           bigint NOT NULL,
    distributors     bigint NOT NULL,
    min_price_brl    double precision,
    median_price_brl double precision,
    max_price_brl    double precision,
    updated_at       timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS catalog_feed_files (
    source_file     text PRIMARY KEY,
    distributor     text NOT NULL,
    format          text NOT NULL,
    encoding        text NOT NULL,
    rows            bigint NOT NULL,
    items           bigint NOT NULL,
    quarantined     bigint NOT NULL,
    duplicate_skus  bigint NOT NULL,
    modified_at     timestamptz NOT NULL,
    ingested_at     timestamptz NOT NULL
);
