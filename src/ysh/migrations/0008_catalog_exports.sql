-- Catalog on real distributor exports (issue 13): the category taxonomy of a real solar
-- catalog, what storefront exports add to an item (title, voltage, battery energy,
-- availability, kit structure/centre/components, links, where the SKU and the category
-- came from) and, per feed file, the column roles inferred from content and the rows
-- skipped as non-products.

ALTER TABLE items_normalized DROP CONSTRAINT IF EXISTS items_normalized_category_check;
ALTER TABLE items_normalized ADD CONSTRAINT items_normalized_category_check CHECK (category IN (
    'module', 'inverter', 'microinverter', 'hybrid_inverter', 'offgrid_inverter', 'battery', 'kit',
    'structure', 'string_box', 'cable', 'charge_controller', 'ev_charger', 'pump_kit', 'accessory',
    'other'));

ALTER TABLE items_normalized
    ADD COLUMN IF NOT EXISTS name                text,
    ADD COLUMN IF NOT EXISTS voltage_v           double precision,
    ADD COLUMN IF NOT EXISTS battery_kwh         double precision,
    ADD COLUMN IF NOT EXISTS availability        text
        CHECK (availability IS NULL OR availability IN ('in_stock', 'out_of_stock', 'on_order')),
    ADD COLUMN IF NOT EXISTS structure_type      text,
    ADD COLUMN IF NOT EXISTS distribution_center text,
    ADD COLUMN IF NOT EXISTS components          jsonb,  -- kits: [{kind, brand, power_w, quantity, description}]
    ADD COLUMN IF NOT EXISTS url                 text,
    ADD COLUMN IF NOT EXISTS image_url           text,
    ADD COLUMN IF NOT EXISTS sku_source          text NOT NULL DEFAULT 'sku',
    ADD COLUMN IF NOT EXISTS category_rule       text NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS items_normalized_category_idx ON items_normalized (category);

ALTER TABLE catalog_feed_files
    ADD COLUMN IF NOT EXISTS non_product_rows bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS column_roles     jsonb NOT NULL DEFAULT '{}'::jsonb;
