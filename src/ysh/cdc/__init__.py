"""Change data capture from PostgreSQL into Pathway, without a Pathway license.

``read_postgres_cdc(dsn, table=…, schema=…, publication=…, slot=…, name=…)`` follows one
table's inserts, updates and deletes through logical replication with the built-in
``pgoutput`` plugin (protocol v1, decoded here) over psycopg 3's low-level libpq API. See
``docs/cdc.md`` for the setup, the resume semantics and the sink contract.
"""

import re

from .connector import (CdcError, PostgresCdcSubject, SnapshotNeedsFirstStart, prepare_slot,
                        read_postgres_cdc, read_snapshot, release_prepared_slot)

__all__ = ["CdcError", "PostgresCdcSubject", "SnapshotNeedsFirstStart", "prepare_slot", "read_postgres_cdc",
           "read_snapshot", "release_prepared_slot", "replication_names"]


def replication_names(schema: str, table: str) -> tuple[str, str]:
    """(publication, slot) of the follower of one table of a platform schema. Slot names
    are cluster-wide: lower-case letters, digits and ``_``, at most 63."""
    base = re.sub(r"[^a-z0-9_]", "_", f"{schema}_{table}".lower())[:50]
    return f"ysh_{base}", f"ysh_{base}"
