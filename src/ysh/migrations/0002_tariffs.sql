-- Tariffs job: ANEEL tariffs, Fio B, bandeiras (issue 3).
-- tarifas_raw is written by `ysh tariffs land` (files, CKAN downloads); the normalized
-- tables are written by the Pathway pipeline (snapshot upserts by business key), either
-- a full recompute or the CDC follower of tarifas_raw. Pathway float -> double precision,
-- int -> bigint, DateTimeNaive -> date, Json -> jsonb.

CREATE OR REPLACE FUNCTION touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END $$;

CREATE TABLE IF NOT EXISTS tarifas_batches (
    batch_id     text PRIMARY KEY,
    source       text NOT NULL,   -- file name (or CKAN resource download)
    dataset      text NOT NULL,
    encoding     text NOT NULL,
    rows         bigint NOT NULL,
    inserted     bigint NOT NULL,
    updated      bigint NOT NULL,
    deleted      bigint NOT NULL,
    unchanged    bigint NOT NULL,
    landed_at    timestamptz NOT NULL DEFAULT now()
);

-- One row per data line of a landed file, as published (column -> text).
CREATE TABLE IF NOT EXISTS tarifas_raw (
    source        text NOT NULL,
    line          bigint NOT NULL,
    dataset       text NOT NULL CHECK (dataset IN ('tariffs', 'fio_b', 'flags')),
    record        jsonb NOT NULL,
    extra_fields  bigint NOT NULL DEFAULT 0,
    batch_id      text NOT NULL,  -- the batch that last changed this row
    ingested_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, line)
);

CREATE TABLE IF NOT EXISTS tarifas_normalized (
    key_text          text NOT NULL,  -- utility|base|subgroup|modality|class|subclass|detail|post|unit|agent (folded)
    utility           text NOT NULL,
    cnpj              text,
    valid_from        date NOT NULL,
    valid_to          date,           -- inclusive; NULL: open-ended
    base              text NOT NULL CHECK (base IN ('aplicacao', 'economica')),
    subgroup          text NOT NULL,
    modality          text NOT NULL,
    tariff_class      text NOT NULL,
    subclass          text NOT NULL,
    detail            text NOT NULL,
    post              text NOT NULL,
    unit              text NOT NULL CHECK (unit IN ('MWh', 'kW')),
    accessing_agent   text NOT NULL,
    tusd_brl_per_kwh  double precision,  -- energy rows (R$/MWh / 1000)
    te_brl_per_kwh    double precision,
    tusd_brl_per_kw   double precision,  -- demand rows
    te_brl_per_kw     double precision,
    resolution        text NOT NULL,
    source_file       text NOT NULL,
    line              bigint NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key_text, valid_from)
);
CREATE INDEX IF NOT EXISTS tarifas_normalized_lookup_idx
    ON tarifas_normalized (utility, subgroup, modality, valid_from);

CREATE TABLE IF NOT EXISTS tarifas_fio_b (
    key_text           text NOT NULL,
    utility            text NOT NULL,
    base               text NOT NULL,
    subgroup           text NOT NULL,
    modality           text NOT NULL,
    tariff_class       text NOT NULL,
    subclass           text NOT NULL,
    detail             text NOT NULL,
    post               text NOT NULL,
    valid_from         date NOT NULL,
    valid_to           date,
    fio_b_brl_per_kwh  double precision NOT NULL,
    resolution         text NOT NULL,
    source_file        text NOT NULL,
    line               bigint NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key_text, valid_from)
);

CREATE TABLE IF NOT EXISTS tarifas_bandeiras (
    month              date PRIMARY KEY,  -- first day of the month
    flag               text NOT NULL,
    addon_brl_per_kwh  double precision NOT NULL,
    source_file        text NOT NULL,
    line               bigint NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- "bandeiras por distribuidora": B1/B3 Tarifa de Aplicação per month, without taxes
CREATE TABLE IF NOT EXISTS tarifas_efetivas_mensais (
    utility                 text NOT NULL,
    subgroup                text NOT NULL,
    month                   date NOT NULL,
    te_brl_per_kwh          double precision NOT NULL,
    tusd_brl_per_kwh        double precision NOT NULL,
    flag                    text,
    flag_addon_brl_per_kwh  double precision NOT NULL,
    total_brl_per_kwh       double precision NOT NULL,
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (utility, subgroup, month)
);

CREATE TABLE IF NOT EXISTS tarifas_quarantine (
    source_file  text NOT NULL,
    line         bigint NOT NULL,
    reason       text NOT NULL,
    detail       text NOT NULL,
    raw          jsonb NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_file, line)
);
CREATE INDEX IF NOT EXISTS tarifas_quarantine_reason_idx ON tarifas_quarantine (reason);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['tarifas_normalized', 'tarifas_fio_b', 'tarifas_bandeiras',
                             'tarifas_efetivas_mensais', 'tarifas_quarantine'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_touch', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE ON %I '
                       'FOR EACH ROW EXECUTE FUNCTION touch_updated_at()', t || '_touch', t);
    END LOOP;
END $$;
