"""Keep the last good feed (pure Python).

A distributor re-uploads a feed that is broken (empty, truncated, a spreadsheet saved as
``.csv``) or that lost most of its rows. Taking it as it is would retract the
distributor's items and the offers they give to products. Instead the new version is
*held*: the items of the last good version of that file stay, the new version becomes one
quarantined row (line 0) with its reason, and the operators are told.

:func:`judge` is the rule; the catalog graph (:mod:`ysh.catalog.pipeline`) applies it to
every version of every feed file, in batch and streaming alike, against the last good
versions kept in the warehouse (``catalog_feed_versions``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

from ..kit.quarantine import QuarantinedRow
from .items import FEED_SHRUNK

__all__ = ["FEED_SHRUNK", "GoodVersion", "NewVersion", "Verdict", "judge", "hold_row"]
#: the outbox kind of the notice sent when a version is held (ysh.flows.alerts delivers it)
NOTICE_KIND = "catalog_feed_held"
#: default share of a feed's items a new version may lose before it is held
MAX_SHRINK = 0.5


@dataclass(frozen=True)
class GoodVersion:
    """The last version of a feed file that was taken (its bytes are kept beside)."""

    sha256: str
    items: int
    modified_at_s: int
    precedence: int = 0  # its rank among the distributor's feeds when it was taken


@dataclass(frozen=True)
class NewVersion:
    """What normalizing a new version of a feed file gave."""

    sha256: str
    items: int
    file_error: str | None  # unparseable_file / empty_file / internal_error at line 0
    file_detail: str | None = None


@dataclass(frozen=True)
class Verdict:
    """``hold`` is None when the new version is taken; else its reason code."""

    hold: str | None = None
    detail: str | None = None

    @property
    def held(self) -> bool:
        return self.hold is not None


def judge(new: NewVersion, good: GoodVersion | None, *, accept_shrink: bool = False,
          max_shrink: float = MAX_SHRINK) -> Verdict:
    """Take a new version, or hold it and keep ``good``.

    * no good version kept (a first upload, or the file was removed in between): take it,
      broken or not (a broken first upload is quarantined; there is nothing to keep);
    * the same bytes as the good version: take it;
    * unparseable or empty: hold;
    * parses but has fewer than ``(1 - max_shrink)`` × the good version's items (default:
      lost more than half): hold, unless ``accept_shrink``.
    """
    if good is None or new.sha256 == good.sha256:
        return Verdict()
    since = _when(good.modified_at_s)
    kept = f"kept the previous version ({good.items} items, modified {since}, sha256 {good.sha256[:12]})"
    if new.file_error is not None:  # unparseable, empty (or a bug of ours: internal_error)
        return Verdict(new.file_error, f"{new.file_detail or new.file_error}; {kept}")
    if not accept_shrink and good.items > 0 and new.items < good.items * (1.0 - max_shrink):
        lost = 1.0 - new.items / good.items
        return Verdict(FEED_SHRUNK, f"{new.items} items instead of {good.items} ({lost:.0%} fewer, more than "
                                    f"{max_shrink:.0%}); {kept}; take it with --accept-shrink")
    return Verdict()


def hold_row(source_file: str, distributor: str, verdict: Verdict, new: NewVersion, size_bytes: int) -> QuarantinedRow:
    """The quarantined row (line 0) that stands for a held version."""
    raw = {"_bytes": size_bytes, "_sha256": new.sha256, "_items": new.items, "_held": True}
    return QuarantinedRow(source_file, 0, verdict.hold or "", verdict.detail or "", json.dumps(raw), distributor)


def notice_key(source_file: str, sha256: str) -> str:
    """One notice per held version of a file (the same version seen again is not news)."""
    return f"catalog-feed-held:{source_file}:{sha256[:16]}"


def notice_text(source_file: str, distributor: str, reason: str, detail: str) -> str:
    return (f":warning: catalog feed of *{distributor}* held ({reason}): `{source_file}`: {detail}. "
            "Its items and products stay as they were until a good version lands.")


def _when(modified_at_s: int) -> str:
    if modified_at_s <= 0:
        return "at an unknown time"
    return datetime.fromtimestamp(modified_at_s, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
