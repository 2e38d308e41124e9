"""The one quarantine row type: bad input is never dropped, it lands here with a reason."""

from __future__ import annotations

from typing import NamedTuple


class QuarantinedRow(NamedTuple):
    """A source record that could not become a row of a job's output, with a stable
    reason code (catalog feeds, ANEEL files).

    The order of the fields is the layout of the pipelines' tuple columns; ``distributor``
    comes last because only catalog feeds have one (``""`` elsewhere)."""

    source_file: str
    line: int
    reason: str
    detail: str
    raw: str  # the original record as JSON
    distributor: str = ""

    def to_dict(self) -> dict:
        return self._asdict()
