"""A long-running CDC follower used by the restart test (run as a subprocess).

    python -m tests.cdc.follow_table DSN TABLE JOURNAL PERSIST_DIR

Follows TABLE (id int primary key, name text, qty int) with Pathway persistence on and
journals the current state as keyed upserts, one JSON line per Pathway time, written
before ``on_time_end`` returns (the sink contract of docs/cdc.md).
"""

import json
import sys
from pathlib import Path

import pathway as pw

from ysh import pw_runtime
from ysh.cdc import read_postgres_cdc


class Item(pw.Schema):
    id: int = pw.column_definition(primary_key=True)
    name: str
    qty: int


def main(dsn: str, table: str, journal_path: str, persist_dir: str) -> None:
    items = read_postgres_cdc(dsn, table=table, schema=Item, publication=f"{table}_pub",
                              slot=f"{table}_slot", name=table, autocommit_duration_ms=50)
    journal = open(journal_path, "a", buffering=1)
    pending: list = []

    def on_time_end(time):
        added = {row["id"]: row for row, add in pending if add}
        deleted = sorted({row["id"] for row, add in pending if not add} - added.keys())
        pending.clear()
        journal.write(json.dumps({"set": added, "del": deleted}) + "\n")

    pw.io.subscribe(items, on_change=lambda key, row, time, is_addition: pending.append((row, is_addition)),
                    on_time_end=on_time_end)
    pw_runtime.run(persistence_dir=Path(persist_dir))


if __name__ == "__main__":
    main(*sys.argv[1:5])
