"""Running the tariffs graph statically over ANEEL files (JSONL out)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pathway as pw

from .. import pw_runtime
from .pipeline import TariffTables, build_tariffs_graph

#: output → (file name, sort keys)
JSONL_FILES = {
    "tariffs": ("tarifas_normalized.jsonl", ("utility", "key_text", "valid_from")),
    "fio_b": ("tarifas_fio_b.jsonl", ("utility", "key_text", "valid_from")),
    "flags": ("tarifas_bandeiras.jsonl", ("month",)),
    "monthly": ("tarifas_efetivas_mensais.jsonl", ("utility", "subgroup", "month")),
    "quarantine": ("tarifas_quarantine.jsonl", ("source_file", "line")),
}


@dataclass
class TariffsReport:
    counts: dict[str, int] = field(default_factory=dict)
    quarantine_by_reason: dict[str, int] = field(default_factory=dict)
    utilities: list[str] = field(default_factory=list)
    seconds: float = 0.0


def build(paths: list[Path]) -> TariffTables:
    pw_runtime.fresh_graph()
    tables = []
    for i, path in enumerate(paths):
        path = path.resolve()
        if not path.exists():
            raise FileNotFoundError(f"path does not exist: {path}")
        tables.append(pw.io.fs.read(str(path), format="binary", mode="static", with_metadata=True,
                                    name=f"tariff_files_{i}"))
    files = tables[0] if len(tables) == 1 else pw.Table.concat_reindex(*tables)
    return build_tariffs_graph(files)


def run_static(paths: list[Path], out_dir: Path) -> TariffsReport:
    """Normalize ANEEL files once and write the five tables as JSONL into ``out_dir``."""
    t0 = time.perf_counter()
    tables = build(paths)
    collectors = {name: pw_runtime.TableCollector(getattr(tables, name), name) for name in JSONL_FILES}
    pw_runtime.run()
    report = TariffsReport(seconds=time.perf_counter() - t0)
    if not pw_runtime.is_leader():
        return report
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, (filename, keys) in JSONL_FILES.items():
        rows = collectors[name].values()
        report.counts[name] = pw_runtime.write_jsonl(out_dir / filename, rows, keys)
    report.quarantine_by_reason = dict(Counter(q["reason"] for q in collectors["quarantine"].values()).most_common())
    report.utilities = sorted({t["utility"] for t in collectors["tariffs"].values()})
    return report
