"""The migration report: counts, quarantine reasons, per-source figures and the changes,
as markdown (the flow publishes it as a Prefect artifact; pure)."""

from __future__ import annotations

from dataclasses import dataclass

from .plan import Change, SourceCounts


@dataclass
class MigrationReport:
    dry_run: bool
    files: list[str]
    rows_in: int
    items: int  # distinct (distributor, sku) after the last-row-wins rule
    inserted: int
    updated: int
    unchanged: int
    duplicate_skus: int
    quarantined_by_reason: dict[str, int]
    quarantine_written: int  # quarantine rows new or different from the warehouse
    quarantine_cleared: int  # stale quarantine rows of these sources removed (fixed rows)
    sources: list[SourceCounts]
    changes: list[Change]
    schema: str = ""

    @property
    def quarantined(self) -> int:
        return sum(self.quarantined_by_reason.values())

    @property
    def upserted(self) -> int:
        return self.inserted + self.updated

    @property
    def changed(self) -> int:
        """Rows written (or, in a dry run, that would be): 0 on a repeated run."""
        return self.inserted + self.updated + self.quarantine_written + self.quarantine_cleared

    def to_markdown(self, max_changes: int = 50) -> str:
        verb = "would be written" if self.dry_run else "written"
        title = ("# Legacy ERP migration — dry run: nothing was written" if self.dry_run
                 else "# Legacy ERP migration")
        lines = [
            title, "",
            f"Files: {', '.join(f'`{f}`' for f in self.files)}"
            + (f" · warehouse schema `{self.schema}`" if self.schema else ""), "",
            "| rows in | items | inserted | updated | upserted | unchanged | quarantined | duplicate SKUs |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {self.rows_in} | {self.items} | {self.inserted} | {self.updated} | {self.upserted} "
            f"| {self.unchanged} | {self.quarantined} | {self.duplicate_skus} |",
            "",
            f"Quarantine rows {verb}: {self.quarantine_written} new or changed, "
            f"{self.quarantine_cleared} cleared (rows fixed since the last run).",
            "", "## Quarantined by reason", "",
            "| reason | rows |", "|---|---:|",
        ]
        if self.quarantined_by_reason:
            lines += [f"| {reason} | {n} |" for reason, n in self.quarantined_by_reason.items()]
        else:
            lines.append("| (none) | 0 |")
        lines += ["", "## Per sheet", "",
                  "| source | rows | items | inserted | updated | unchanged | quarantined |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {_cell(s.source)} | {s.rows} | {s.items} | {s.inserted} | {s.updated} "
                  f"| {s.unchanged} | {s.quarantined} |" for s in self.sources]
        lines += ["", f"## Changes ({len(self.changes)} {'would be made' if self.dry_run else 'made'})", ""]
        if self.changes:
            lines += ["| action | distributor | sku | source:line | change |", "|---|---|---|---|---|"]
            lines += [f"| {c.action} | {_cell(c.distributor)} | {_cell(c.sku)} | {_cell(c.source)}:{c.line} "
                      f"| {_cell(c.describe())} |" for c in self.changes[:max_changes]]
            if len(self.changes) > max_changes:
                lines.append(f"\n… and {len(self.changes) - max_changes} more.")
        else:
            lines.append("No item changes.")
        return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
