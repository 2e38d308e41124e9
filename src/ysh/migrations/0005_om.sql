-- O&M monitoring (issue 6): the plant registry, 5-minute inverter windows, alerts, and
-- the events that failed validation. Written by the O&M Pathway pipeline (snapshot
-- upserts by key); om_alerts is what the alerts flow digests.

CREATE TABLE IF NOT EXISTS om_plants (
    plant_id      text PRIMARY KEY,
    name          text,
    capacity_kwp  double precision NOT NULL CHECK (capacity_kwp > 0),
    latitude      double precision NOT NULL,
    longitude     double precision NOT NULL,
    tilt_deg      double precision NOT NULL,
    azimuth_deg   double precision NOT NULL,
    poa_sensor    boolean NOT NULL DEFAULT false
);

CREATE TABLE IF NOT EXISTS om_inverters (
    plant_id       text NOT NULL REFERENCES om_plants (plant_id) ON DELETE CASCADE,
    inverter_id    text NOT NULL,
    rated_power_w  double precision NOT NULL CHECK (rated_power_w > 0),
    PRIMARY KEY (plant_id, inverter_id)
);

CREATE TABLE IF NOT EXISTS om_inverter_5min (
    plant_id              text NOT NULL,
    inverter_id           text NOT NULL,
    window_start          timestamptz NOT NULL,
    window_end            timestamptz NOT NULL,
    samples               bigint NOT NULL,
    avg_power_w           double precision NOT NULL,
    min_power_w           double precision NOT NULL,
    max_power_w           double precision NOT NULL,
    energy_delta_kwh      double precision NOT NULL,
    expected_power_w      double precision NOT NULL,
    rated_power_w         double precision NOT NULL,
    performance_index     double precision,
    identical_run         bigint NOT NULL,
    last_ts               timestamptz NOT NULL,
    last_power_w          double precision,
    energy_first_kwh      double precision,
    energy_last_kwh       double precision,
    expected_from_sensor  boolean NOT NULL,
    updated_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (plant_id, inverter_id, window_start)
);

CREATE TABLE IF NOT EXISTS om_alerts (
    alert_key    text PRIMARY KEY,   -- plant|inverter|rule|opened_at
    plant_id     text NOT NULL,
    inverter_id  text NOT NULL,      -- '*' for plant-wide alerts
    rule         text NOT NULL,
    opened_at    timestamptz NOT NULL,
    resolved_at  timestamptz,
    details      jsonb NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS om_alerts_opened_idx ON om_alerts (opened_at);

CREATE TABLE IF NOT EXISTS om_quarantine (
    quarantine_key  text PRIMARY KEY,   -- sha256 of the raw line
    event_id        text NOT NULL,
    plant_id        text NOT NULL,
    inverter_id     text NOT NULL,
    reason          text NOT NULL,
    detail          text NOT NULL,
    raw             text NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['om_inverter_5min', 'om_alerts', 'om_quarantine'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_touch', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE ON %I '
                       'FOR EACH ROW EXECUTE FUNCTION touch_updated_at()', t || '_touch', t);
    END LOOP;
END $$;
