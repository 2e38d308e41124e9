"""Change data capture from PostgreSQL into Pathway, without a Pathway license.

``read_postgres_cdc(dsn, table=…, schema=…, publication=…, slot=…, name=…)`` follows one
table's inserts, updates and deletes through logical replication with the built-in
``pgoutput`` plugin (protocol v1, decoded here) over psycopg 3's low-level libpq API. See
``docs/cdc.md`` for the setup, the resume semantics and the sink contract.
"""

from .connector import CdcError, PostgresCdcSubject, read_postgres_cdc

__all__ = ["CdcError", "PostgresCdcSubject", "read_postgres_cdc"]
