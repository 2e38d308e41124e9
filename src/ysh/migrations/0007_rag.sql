-- RAG job (issue 5): the durable copy of the Hélio index's chunk vectors (pgvector).
-- The extension is per database and lives in `public` (the platform schema and every test
-- schema share it); the type and operator class are therefore schema-qualified here, and
-- queries run with search_path "<platform schema>, public" (ysh.db.connect).
-- `embedding` has no fixed dimension so any configured model fits (dim records it); the
-- HNSW cosine index covers the default 384-dimension model (all-MiniLM-L6-v2) through an
-- expression index. Other dimensions still work, with exact (sequential) search.

CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public;

CREATE TABLE IF NOT EXISTS rag_chunks (
    chunk_id        text PRIMARY KEY,           -- sha256(path | chunk_index), hex
    path            text NOT NULL,
    chunk_index     bigint NOT NULL,
    title           text,
    section         text,
    page            bigint,
    text            text NOT NULL,
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    content_sha256  text NOT NULL,              -- sha256 of the chunk text (the embed cache key)
    model           text NOT NULL,              -- embedder that produced the vector
    dim             integer NOT NULL CHECK (dim > 0),
    embedding       public.vector NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (public.vector_dims(embedding) = dim)
);
CREATE INDEX IF NOT EXISTS rag_chunks_path_idx ON rag_chunks (path);
CREATE INDEX IF NOT EXISTS rag_chunks_model_sha_idx ON rag_chunks (model, content_sha256);
CREATE INDEX IF NOT EXISTS rag_chunks_embedding_384_hnsw
    ON rag_chunks USING hnsw ((embedding::public.vector(384)) public.vector_cosine_ops)
    WHERE dim = 384;
