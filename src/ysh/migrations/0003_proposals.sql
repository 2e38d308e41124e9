-- Proposals job (issue 4): a Medusa-like B2B source schema (company, quote, quote_item,
-- "order") and the analytics the pipeline writes (propostas_enriched,
-- propostas_analytics, kpis_b1_b3). The source tables are followed by CDC.

CREATE TABLE IF NOT EXISTS company (
    id            text PRIMARY KEY,
    name          text NOT NULL,
    cnpj          text,
    municipality  text NOT NULL,
    state         text NOT NULL CHECK (state ~ '^[A-Z]{2}$'),   -- UF
    latitude      double precision NOT NULL CHECK (latitude BETWEEN -34 AND 6),
    longitude     double precision NOT NULL CHECK (longitude BETWEEN -74 AND -28),
    utility       text NOT NULL,   -- distribuidora, as ANEEL writes it (SigAgente)
    icms_pct      double precision NOT NULL DEFAULT 18 CHECK (icms_pct >= 0 AND icms_pct < 100),
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- One quote = one consumer unit's project (Medusa draft order / quote of an integrator).
CREATE TABLE IF NOT EXISTS quote (
    id                      text PRIMARY KEY,
    company_id              text NOT NULL REFERENCES company (id),
    status                  text NOT NULL DEFAULT 'sent'
        CHECK (status IN ('draft', 'sent', 'accepted', 'rejected', 'expired')),
    customer_class          text NOT NULL CHECK (customer_class IN ('B1', 'B3')),
    connection              text NOT NULL CHECK (connection IN ('mono', 'bi', 'tri')),
    consumption_kwh_month   jsonb NOT NULL,   -- 12 numbers, January..December
    tilt_deg                double precision NOT NULL DEFAULT 20,
    azimuth_deg             double precision NOT NULL DEFAULT 0,   -- clockwise from north
    access_request_date     date,   -- NULL: the quote's date
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS quote_company_idx ON quote (company_id);

CREATE TABLE IF NOT EXISTS quote_item (
    id              text PRIMARY KEY,
    quote_id        text NOT NULL REFERENCES quote (id) ON DELETE CASCADE,
    distributor     text NOT NULL,   -- items_normalized (distributor, sku)
    sku             text NOT NULL,
    quantity        bigint NOT NULL CHECK (quantity > 0),
    unit_price_brl  double precision NOT NULL CHECK (unit_price_brl >= 0)
);
CREATE INDEX IF NOT EXISTS quote_item_quote_idx ON quote_item (quote_id);

CREATE TABLE IF NOT EXISTS "order" (
    id          text PRIMARY KEY,
    quote_id    text NOT NULL UNIQUE REFERENCES quote (id),
    status      text NOT NULL DEFAULT 'placed' CHECK (status IN ('placed', 'paid', 'shipped', 'canceled')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- what the pipeline writes (upserted by quote id)
CREATE TABLE IF NOT EXISTS propostas_enriched (
    quote_id                text PRIMARY KEY,
    company_id              text NOT NULL,
    state                   text NOT NULL,
    municipality            text NOT NULL,
    utility                 text NOT NULL,
    customer_class          text NOT NULL,
    connection              text NOT NULL,
    quote_month             date NOT NULL,
    status                  text NOT NULL,
    ordered                 boolean NOT NULL,
    system_kwp              double precision NOT NULL,
    inverter_kw             double precision NOT NULL,
    modules                 bigint NOT NULL,
    capex_brl               double precision NOT NULL,
    unknown_skus            text,   -- items not found in items_normalized (NULL: none)
    te_brl_per_kwh          double precision,
    tusd_brl_per_kwh        double precision,
    fio_b_brl_per_kwh       double precision,
    tariff_error            text,   -- why no tariff was found (NULL: found)
    irradiance_source       text NOT NULL CHECK (irradiance_source IN ('nasa_power', 'pvgis', 'modelled')),
    generation_kwh_year     double precision NOT NULL,
    consumption_kwh_year    double precision NOT NULL,
    updated_at              timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS propostas_analytics (
    quote_id                            text PRIMARY KEY,
    customer_class                      text NOT NULL,
    state                               text NOT NULL,
    quote_month                         date NOT NULL,
    ordered                             boolean NOT NULL,
    system_kwp                          double precision NOT NULL,
    error                               text,   -- why it could not be evaluated (NULL: evaluated)
    npv_brl                             double precision,
    irr_pct                             double precision,
    payback_years                       double precision,
    discounted_payback_years            double precision,
    roi                                 double precision,
    year1_bill_without_solar_brl        double precision,
    year1_bill_with_solar_brl           double precision,
    year1_savings_brl                   double precision,
    yearly                              jsonb,   -- year, generation, savings, cash flow, cumulative
    updated_at                          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS kpis_b1_b3 (
    customer_class          text NOT NULL,
    state                   text NOT NULL,
    month                   date NOT NULL,
    quotes                  bigint NOT NULL,
    orders                  bigint NOT NULL,
    conversion              double precision NOT NULL,
    kwp                     double precision NOT NULL,
    median_payback_years    double precision,
    median_irr_pct          double precision,
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_class, state, month)
);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['propostas_enriched', 'propostas_analytics', 'kpis_b1_b3'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_touch', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE ON %I '
                       'FOR EACH ROW EXECUTE FUNCTION touch_updated_at()', t || '_touch', t);
    END LOOP;
END $$;
