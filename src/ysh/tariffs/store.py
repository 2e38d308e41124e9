"""Reading the normalized tariffs back from the warehouse (for lookups and reports)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import NamedTuple

from psycopg import sql

from .. import db
from ..db import Warehouse
from .aneel import FioB, FlagMonth, Tariff
from .book import TariffAt, TariffBook, TariffLookupError


def _rows(conn, table: str, layout: type) -> list:
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in layout._fields)
    return [layout(*row) for row in conn.execute(
        sql.SQL("SELECT {} FROM {}").format(columns, sql.Identifier(table))).fetchall()]


def book_from_warehouse(warehouse: Warehouse) -> TariffBook:
    """A :class:`TariffBook` over ``tarifas_normalized``, ``tarifas_fio_b`` and
    ``tarifas_bandeiras`` as they stand (the rows the pipeline kept)."""
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        return TariffBook(_rows(conn, "tarifas_normalized", Tariff), _rows(conn, "tarifas_fio_b", FioB),
                          _rows(conn, "tarifas_bandeiras", FlagMonth))


class CurrentTariff(NamedTuple):
    utility: str
    subgroup: str
    te_brl_per_kwh: float | None
    tusd_brl_per_kwh: float | None
    fio_b_brl_per_kwh: float | None
    flag: str | None
    flag_addon_brl_per_kwh: float | None
    error: str | None  # why there is no tariff (lookup error), else None


def tariffs_on(book: TariffBook, on: date, subgroups: tuple[str, ...] = ("B1", "B3"),
               ) -> Iterator[tuple[str, str, TariffAt | TariffLookupError]]:
    """(utility, subgroup, tariff valid on ``on``) for each utility of the book and each
    subgroup; the lookup error in place of the tariff when there is none (or several)."""
    for utility in book.utilities:
        for subgroup in subgroups:
            try:
                at: TariffAt | TariffLookupError = book.tariff_at(utility, subgroup, on)
            except TariffLookupError as exc:
                at = exc
            yield utility, subgroup, at


def current_tariffs(book: TariffBook, on: date, subgroups: tuple[str, ...] = ("B1", "B3")) -> list[CurrentTariff]:
    """Each utility's tariff of each subgroup valid on ``on`` with the month's flag: the
    demo's table. A utility without a valid row gets the lookup error instead."""
    flag = book.flag_of(on)
    out = []
    for utility, subgroup, at in tariffs_on(book, on, subgroups):
        if isinstance(at, TariffLookupError):
            out.append(CurrentTariff(utility, subgroup, None, None, None, None, None, str(at)))
            continue
        out.append(CurrentTariff(utility, subgroup, at.te_brl_per_kwh, at.tusd_brl_per_kwh, at.fio_b_brl_per_kwh,
                                 flag.flag if flag else None, flag.addon_brl_per_kwh if flag else None, None))
    return out
