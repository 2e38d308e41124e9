-- Catalog search (issue 18, part 2): Portuguese full-text search with unaccent, trigram
-- matching of model codes, filters and facets over items_normalized, and the catalog's
-- embeddings (pgvector) for the semantic signal.
-- Extensions are per database and live in `public` (like pgvector, 0007): every object
-- from them is schema-qualified here; queries run with search_path "<schema>, public".

CREATE EXTENSION IF NOT EXISTS unaccent WITH SCHEMA public;
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;

-- Portuguese stemming after accent folding: "monofásico" and "monofasico" are one lexeme.
-- (asciiword tokens have no accents: Portuguese stemming only, as in pg_catalog.portuguese)
DO $$
BEGIN
    CREATE TEXT SEARCH CONFIGURATION catalog_pt (COPY = pg_catalog.portuguese);
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
ALTER TEXT SEARCH CONFIGURATION catalog_pt
    ALTER MAPPING FOR word, hword, hword_part WITH public.unaccent, pg_catalog.portuguese_stem;

-- The searchable document of an offer (kept by PostgreSQL, so every writer of items, the
-- Pathway graph included, keeps it current): brand and model weigh most (A), the title
-- next (B), description and kit components last (C). `search_code`: the model as a code
-- (upper-case alphanumerics: "GW 5000-DNS-30" -> GW5000DNS30) for exact and trigram matches.
ALTER TABLE items_normalized
    ADD COLUMN IF NOT EXISTS search_tsv tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('catalog_pt', coalesce(brand, '') || ' ' || coalesce(model, '')), 'A')
        || setweight(to_tsvector('catalog_pt', coalesce(name, '')), 'B')
        || setweight(to_tsvector('catalog_pt', coalesce(description, '') || ' '
                                 || coalesce(components::text, '')), 'C')
    ) STORED,
    ADD COLUMN IF NOT EXISTS search_code text GENERATED ALWAYS AS (
        upper(regexp_replace(coalesce(model, ''), '[^[:alnum:]]', '', 'g'))
    ) STORED;

CREATE INDEX IF NOT EXISTS items_normalized_search_tsv_idx ON items_normalized USING gin (search_tsv);
CREATE INDEX IF NOT EXISTS items_normalized_search_code_trgm_idx
    ON items_normalized USING gin (search_code public.gin_trgm_ops);
CREATE INDEX IF NOT EXISTS items_normalized_category_power_idx ON items_normalized (category, power_w);
CREATE INDEX IF NOT EXISTS items_normalized_price_idx ON items_normalized (price_brl);

-- Catalog embeddings, incremental by content: one vector per distinct search text
-- (sha256 of the text an offer is embedded from) and model, and which text each offer has.
-- An offer whose text did not change keeps its vector; offers of many distributors that
-- describe a product alike share one.
CREATE TABLE IF NOT EXISTS catalog_embeddings (
    model           text NOT NULL,              -- embedder (YSH_RAG_EMBEDDER spec, as Hélio)
    content_sha256  text NOT NULL,              -- sha256 of the embedded text, hex
    text            text NOT NULL,
    dim             integer NOT NULL CHECK (dim > 0),
    embedding       public.vector NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model, content_sha256),
    CHECK (public.vector_dims(embedding) = dim)
);
CREATE INDEX IF NOT EXISTS catalog_embeddings_384_hnsw
    ON catalog_embeddings USING hnsw ((embedding::public.vector(384)) public.vector_cosine_ops)
    WHERE dim = 384;

CREATE TABLE IF NOT EXISTS catalog_embedding_items (
    distributor     text NOT NULL,
    sku             text NOT NULL,
    model           text NOT NULL,
    content_sha256  text NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (distributor, sku, model)
);
CREATE INDEX IF NOT EXISTS catalog_embedding_items_sha_idx ON catalog_embedding_items (model, content_sha256);
