"""Tariffs in time: validity overlaps, the point-in-time lookup, monthly effective tariffs.

Pure Python over the rows of :mod:`ysh.tariffs.aneel`. Values are without taxes (ICMS,
PIS/COFINS are applied by the billing model of the proposals job).
"""

from __future__ import annotations

import bisect
import calendar
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import NamedTuple

from .aneel import CONFLICTING_FLAG, OVERLAPPING_VALIDITY, FioB, FlagMonth, QuarantinedRow, Tariff, fold

APPLICATION = "aplicacao"
DEFAULT_CLASS = {"b1": ("Residencial", "Residencial"), "b2": ("Rural", None)}


class TariffLookupError(LookupError):
    """No tariff, or more than one, matches a lookup."""


def _overlaps(a_from: date, a_to: date | None, b_from: date, b_to: date | None) -> bool:
    return (a_to is None or b_from <= a_to) and (b_to is None or a_from <= b_to)


def _values(row: Tariff | FioB) -> tuple:
    if isinstance(row, Tariff):
        return (row.tusd_brl_per_kwh, row.te_brl_per_kwh, row.tusd_brl_per_kw, row.te_brl_per_kw)
    return (row.fio_b_brl_per_kwh,)


class Span(NamedTuple):
    """One row's validity within its key, for the overlap check."""

    token: str  # identifies the row (e.g. source and line)
    line: int
    valid_from: date
    valid_to: date | None
    values: tuple


def check_periods(spans: Iterable[Span]) -> tuple[dict[str, str], set[str]]:
    """Validity periods of ONE key: which rows overlap another, which are exact repeats.

    Returns
    -------
    overlapping : dict
        token → detail naming the rows it overlaps.
    duplicates : set
        tokens of exact repeats (same validity, same values) beyond the first occurrence
        (the first by token order is kept).
    """
    unique: dict[tuple, Span] = {}
    duplicates: set[str] = set()
    for span in sorted(spans, key=lambda sp: sp.token):
        signature = (span.valid_from, span.valid_to, span.values)
        if signature in unique:
            duplicates.add(span.token)
        else:
            unique[signature] = span
    ordered = sorted(unique.values(), key=lambda sp: (sp.valid_from, sp.valid_to or date.max, sp.token))
    clashes: dict[int, list[Span]] = defaultdict(list)
    for i, a in enumerate(ordered):
        for j in range(i + 1, len(ordered)):
            b = ordered[j]
            if b.valid_from > (a.valid_to or date.max):
                break
            if _overlaps(a.valid_from, a.valid_to, b.valid_from, b.valid_to):
                clashes[i].append(b)
                clashes[j].append(a)
    overlapping = {}
    for i, others in clashes.items():
        span = ordered[i]
        named = ", ".join(f"line {o.line} ({o.valid_from}..{o.valid_to or 'open'})" for o in others)
        overlapping[span.token] = f"valid {span.valid_from}..{span.valid_to or 'open'} overlaps {named}"
    return overlapping, duplicates


def row_token(row: Tariff | FioB) -> str:
    return f"{row.source_file}\x1f{row.line:010d}"


def span_of(row: Tariff | FioB) -> Span:
    return Span(row_token(row), row.line, row.valid_from, row.valid_to, _values(row))


def split_overlaps(rows: Iterable[Tariff | FioB]) -> tuple[list, list[QuarantinedRow], int]:
    """Separate rows whose validity overlaps another row of the same key.

    Two rows of one key (utility, base, subgroup, modality, class, subclass, detail, post,
    unit) valid on a common day are a data error: both are quarantined as
    ``overlapping_validity`` (naming each other), never resolved by a silent pick. An exact
    repeat (same validity, same values) is a duplicate: kept once and counted.

    Returns
    -------
    kept, quarantined, duplicates
    """
    groups: dict[tuple, list] = defaultdict(list)
    for row in rows:
        groups[row.key].append(row)
    kept: list = []
    quarantined: list[QuarantinedRow] = []
    duplicates = 0
    for group in groups.values():
        overlapping, repeated = check_periods(span_of(row) for row in group)
        duplicates += len(repeated)
        for row in group:
            token = row_token(row)
            if token in repeated:
                continue
            if token in overlapping:
                quarantined.append(QuarantinedRow(row.source_file, row.line, OVERLAPPING_VALIDITY,
                                                  overlapping[token], raw_json_of(row)))
            else:
                kept.append(row)
    kept.sort(key=lambda r: (r.source_file, r.line))
    return kept, quarantined, duplicates


def check_flags(rows: Iterable[FlagMonth]) -> tuple[list[FlagMonth], list[QuarantinedRow]]:
    """One flag per month. Repeats of the same flag and add-on are kept once (the first by
    source and line); rows that disagree about a month are all quarantined as
    ``conflicting_flag``, naming each other — never resolved by a silent pick."""
    by_month: dict[date, list[FlagMonth]] = defaultdict(list)
    for row in rows:
        by_month[row.month].append(row)
    kept: list[FlagMonth] = []
    quarantined: list[QuarantinedRow] = []
    for month, group in sorted(by_month.items()):
        group.sort(key=lambda r: (r.source_file, r.line))
        if len({(r.flag, r.addon_brl_per_kwh) for r in group}) == 1:
            kept.append(group[0])
            continue
        for row in group:
            others = ", ".join(f"{o.flag} +{o.addon_brl_per_kwh} ({o.source_file} line {o.line})"
                               for o in group if o is not row)
            quarantined.append(QuarantinedRow(row.source_file, row.line, CONFLICTING_FLAG,
                                              f"{month:%Y-%m}: {row.flag} +{row.addon_brl_per_kwh} conflicts with {others}",
                                              raw_json_of(row)))
    return kept, quarantined


def raw_json_of(row: Tariff | FioB | FlagMonth) -> str:
    import json

    return json.dumps({k: (v.isoformat() if isinstance(v, date) else v) for k, v in row._asdict().items()},
                      ensure_ascii=False)


@dataclass(frozen=True)
class TariffAt:
    """The tariff of one consumer unit type on one day [R$/kWh, without taxes]."""

    utility: str
    subgroup: str
    modality: str
    on: date
    te_brl_per_kwh: float
    tusd_brl_per_kwh: float
    fio_b_brl_per_kwh: float | None  # None: no TUSD_FioB published for that period
    valid_from: date
    valid_to: date | None
    resolution: str


@dataclass(frozen=True)
class MonthlyTariff:
    """``tarifas_efetivas_mensais``: one utility, subgroup and month."""

    utility: str
    subgroup: str
    month: date
    te_brl_per_kwh: float
    tusd_brl_per_kwh: float
    flag: str | None
    flag_addon_brl_per_kwh: float
    total_brl_per_kwh: float  # TE + TUSD + flag add-on, without taxes


class TariffBook:
    """Indexed tariffs, Fio B components and flags, for lookups by date."""

    def __init__(self, tariffs: Iterable[Tariff], fio_b: Iterable[FioB] = (), flags: Iterable[FlagMonth] = ()):
        self._tariffs: dict[tuple[str, str], list[Tariff]] = defaultdict(list)
        for row in tariffs:
            self._tariffs[(fold(row.utility), fold(row.subgroup))].append(row)
        self._fio_b: dict[tuple[str, str], list[FioB]] = defaultdict(list)
        for row in fio_b:
            self._fio_b[(fold(row.utility), fold(row.subgroup))].append(row)
        self._flags = {f.month: f for f in flags}
        self._matching_memo: dict[tuple, list[Tariff]] = {}
        self._changes_memo: dict[tuple[str, str], list[date]] = {}

    @property
    def utilities(self) -> list[str]:
        names = {rows[0].utility for rows in self._tariffs.values() if rows}
        return sorted(names)

    def candidates(self, utility: str, subgroup: str, on: date, *, modality: str = "Convencional",
                   tariff_class: str | None = None, subclass: str | None = None,
                   detail: str = "Não se aplica", post: str = "Não se aplica") -> list[Tariff]:
        default_class, default_subclass = DEFAULT_CLASS.get(fold(subgroup), (None, None))
        tariff_class = tariff_class if tariff_class is not None else default_class
        subclass = subclass if subclass is not None else default_subclass
        return [row for row in self._matching(utility, subgroup, modality, tariff_class, subclass, detail, post)
                if row.valid_from <= on and (row.valid_to is None or on <= row.valid_to)]

    def _matching(self, utility: str, subgroup: str, modality: str, tariff_class: str | None, subclass: str | None,
                  detail: str, post: str) -> list[Tariff]:
        """The Tarifa de Aplicação energy rows of one lookup, any date, in the book's order
        (memoized: a month-by-month walk asks the same lookup for every month)."""
        memo_key = (fold(utility), fold(subgroup), fold(modality), tariff_class if tariff_class is None
                    else fold(tariff_class), subclass if subclass is None else fold(subclass), fold(detail), fold(post))
        found = self._matching_memo.get(memo_key)
        if found is None:
            found = []
            for row in self._tariffs.get(memo_key[:2], []):
                if row.base != APPLICATION or row.unit != "MWh":
                    continue
                if fold(row.modality) != memo_key[2] or fold(row.detail) != memo_key[5]:
                    continue
                if fold(row.post) != memo_key[6]:
                    continue
                if tariff_class is not None and fold(row.tariff_class) != memo_key[3]:
                    continue
                if subclass is not None and fold(row.subclass) != memo_key[4]:
                    continue
                found.append(row)
            self._matching_memo[memo_key] = found
        return found

    def tariff_at(self, utility: str, subgroup: str, on: date, modality: str = "Convencional", *,
                  tariff_class: str | None = None, subclass: str | None = None,
                  detail: str = "Não se aplica", post: str = "Não se aplica") -> TariffAt:
        """TE, TUSD and Fio B [R$/kWh, without taxes] of the *Tarifa de Aplicação* energy row
        valid on ``on``.

        B1 defaults to class and subclass Residencial, B2 to class Rural; other subgroups
        match any class unless one is given.

        Raises
        ------
        TariffLookupError
            no row matches, or several rows with different values do (name the class,
            subclass, detail or post to choose).
        """
        rows = self.candidates(utility, subgroup, on, modality=modality, tariff_class=tariff_class,
                               subclass=subclass, detail=detail, post=post)
        what = f"{utility} {subgroup} {modality} on {on}"
        if not rows:
            if (fold(utility), fold(subgroup)) not in self._tariffs:
                known = sorted({r.utility for rows in self._tariffs.values() for r in rows})
                raise TariffLookupError(f"no tariffs for {utility} {subgroup} (utilities known: {', '.join(known)})")
            raise TariffLookupError(f"no Tarifa de Aplicação valid for {what}")
        distinct = {(r.te_brl_per_kwh, r.tusd_brl_per_kwh) for r in rows}
        if len(distinct) > 1:
            options = "; ".join(sorted({f"class={r.tariff_class!r} subclass={r.subclass!r}" for r in rows}))
            raise TariffLookupError(f"{len(rows)} different tariffs match {what}: {options}")
        row = rows[0]
        return TariffAt(row.utility, row.subgroup, row.modality, on, row.te_brl_per_kwh,  # type: ignore[arg-type]
                        row.tusd_brl_per_kwh, self.fio_b_at(row, on), row.valid_from,  # type: ignore[arg-type]
                        row.valid_to, row.resolution)

    def fio_b_at(self, tariff: Tariff, on: date) -> float | None:
        """The TUSD Fio B of the tariff's utility, subgroup and modality valid on ``on``;
        rows of the tariff's own class/subclass win over generic (``Não se aplica``) ones."""
        rows = [r for r in self._fio_b.get((fold(tariff.utility), fold(tariff.subgroup)), [])
                if r.base == APPLICATION and fold(r.modality) == fold(tariff.modality)
                and r.valid_from <= on and (r.valid_to is None or on <= r.valid_to)]
        if not rows:
            return None
        specific = [r for r in rows if fold(r.tariff_class) == fold(tariff.tariff_class)
                    and fold(r.subclass) == fold(tariff.subclass)]
        rows = specific or [r for r in rows if fold(r.tariff_class) in ("nao se aplica", "")] or rows
        values = {r.fio_b_brl_per_kwh for r in rows}
        if len(values) > 1:
            raise TariffLookupError(
                f"{len(values)} different TUSD_FioB values for {tariff.utility} {tariff.subgroup} "
                f"{tariff.modality} on {on}")
        return values.pop()

    def covered_until(self) -> date | None:
        """The last day on which every utility has a Tarifa de Aplicação row in force and
        the month's flag is published (``date.max`` for open-ended data without flags);
        None when the book is empty."""
        ends = []
        for rows in self._tariffs.values():
            applied = [r for r in rows if r.base == APPLICATION]
            if applied:
                ends.append(date.max if any(r.valid_to is None for r in applied) else max(r.valid_to for r in applied))
        if not ends:
            return None
        if self._flags:
            last = max(self._flags)
            ends.append(last.replace(day=calendar.monthrange(last.year, last.month)[1]))
        return min(ends)

    def flag_of(self, month: date) -> FlagMonth | None:
        return self._flags.get(month.replace(day=1))

    def monthly(self, utility: str, subgroup: str, month: date, **lookup) -> MonthlyTariff:
        """The month's effective tariff: TE and TUSD weighted by the days each validity
        period covers in the month (a readjustment mid-month is billed pro rata die, REN
        ANEEL 1.000/2021), plus the month's flag add-on.

        Raises
        ------
        TariffLookupError
            a day of the month has no tariff, or an ambiguous one.
        """
        first = month.replace(day=1)
        days = calendar.monthrange(first.year, first.month)[1]
        last = first + timedelta(days=days - 1)
        # the tariff on each day changes only at period boundaries: look up once per period
        # (a period starting in (first, last], or one ending in [first, last): the day after)
        changes = self._changes(utility, subgroup)
        boundaries = [first, *changes[bisect.bisect_right(changes, first):bisect.bisect_right(changes, last)]]
        te = tusd = 0.0
        for i, start in enumerate(boundaries):
            end = boundaries[i + 1] if i + 1 < len(boundaries) else last + timedelta(days=1)
            at = self.tariff_at(utility, subgroup, start, **lookup)
            span = (end - start).days
            te += at.te_brl_per_kwh * span
            tusd += at.tusd_brl_per_kwh * span
        te, tusd = round(te / days, 6), round(tusd / days, 6)
        flag = self.flag_of(first)
        addon = flag.addon_brl_per_kwh if flag else 0.0
        return MonthlyTariff(at.utility, at.subgroup, first, te, tusd, flag.flag if flag else None,
                             addon, round(te + tusd + addon, 6))

    def _changes(self, utility: str, subgroup: str) -> list[date]:
        """Sorted days on which one of the utility's and subgroup's rows starts or the day
        after one ends (memoized)."""
        key = (fold(utility), fold(subgroup))
        changes = self._changes_memo.get(key)
        if changes is None:
            rows = self._tariffs.get(key, [])
            changes = sorted({r.valid_from for r in rows}
                             | {r.valid_to + timedelta(days=1) for r in rows if r.valid_to is not None})
            self._changes_memo[key] = changes
        return changes

    def months(self, utility: str, subgroup: str, **lookup) -> list[MonthlyTariff]:
        """Every whole month covered by the utility's tariffs (open-ended periods up to the
        latest published flag month, or the current month)."""
        rows = [r for r in self._tariffs.get((fold(utility), fold(subgroup)), []) if r.base == APPLICATION]
        if not rows:
            return []
        start = min(r.valid_from for r in rows).replace(day=1)
        ends = [r.valid_to for r in rows if r.valid_to is not None]
        horizon = max(self._flags, default=date.today().replace(day=1))
        end = max(ends) if len(ends) == len(rows) else max([*ends, horizon])
        out = []
        month = start
        while month <= end:
            try:
                out.append(self.monthly(utility, subgroup, month, **lookup))
            except TariffLookupError:
                pass  # partly covered month (first or last) or a gap: not an effective month
            month = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
        return out
