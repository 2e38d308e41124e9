-- propostas_analytics.yearly as json kept uncompressed (issue 17, part 3; docs/proposals.md,
-- "Second round of 2026-12-04"). A batch replaces the whole table with COPY, and 20,000 yearly
-- documents (~4.2 kB each) were most of that COPY's time: jsonb parses every number into a
-- numeric and rebuilds the document, then pglz compresses it. json keeps the text as it is
-- (checked to be JSON, nothing rebuilt), and STORAGE EXTERNAL stores it out of line without
-- compression (~3× the disk of the compressed jsonb; this server has no lz4).
--
-- Readers get the same values: psycopg loads json and jsonb into the same Python objects,
-- and ->, ->>, json_array_elements work on json (the Dagster check uses the latter). json
-- keeps the keys in the order the pipeline wrote them (jsonb sorted them) and has no
-- equality operator (compare yearly::jsonb). Existing rows are rewritten with their values.

ALTER TABLE propostas_analytics
    ALTER COLUMN yearly TYPE json USING yearly::json,
    ALTER COLUMN yearly SET STORAGE EXTERNAL;
