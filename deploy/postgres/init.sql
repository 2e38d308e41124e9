-- First start of the compose PostgreSQL (docker-entrypoint-initdb.d), as the superuser ysh in
-- the database ysh. The platform's own schema and tables come from `ysh db migrate`.
CREATE EXTENSION IF NOT EXISTS vector;       -- Hélio's pgvector copy, catalog embeddings
CREATE SCHEMA IF NOT EXISTS dagster;         -- Dagster's runs, event log and schedules
CREATE DATABASE prefect;                     -- the Prefect server's own database
