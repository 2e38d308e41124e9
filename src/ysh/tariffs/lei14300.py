"""Lei 14.300/2022 (marco legal da micro e minigeração distribuída) as functions.

References: Lei nº 14.300, de 6 de janeiro de 2022, Art. 1º (definitions), Art. 17 and
Art. 27 (transition of the TUSD Fio B charge on compensated energy).
"""

from __future__ import annotations

from datetime import date

MICRO_LIMIT_KW = 75.0  # Art. 1º, XI: microgeração ≤ 75 kW (AC)
MINI_LIMIT_DISPATCHABLE_KW = 5_000.0  # Art. 1º, XIII: fontes despacháveis ≤ 5 MW
MINI_LIMIT_NON_DISPATCHABLE_KW = 3_000.0  # Art. 1º, XIII: fontes não despacháveis ≤ 3 MW
# Transition rule of the law: non-dispatchable units whose access was requested within 12
# months of its publication keep the former 5 MW limit.
LAW_PUBLISHED = date(2022, 1, 7)
TRANSITION_END = date(2023, 1, 7)
NEW_UNITS_FROM = TRANSITION_END  # access requested from this date on: Fio B schedule applies

NON_DISPATCHABLE = frozenset({"solar", "fotovoltaica", "eolica", "wind"})
DISPATCHABLE = frozenset({"hidrica", "hydro", "biomassa", "biomass", "biogas", "cogeracao",
                          "cogeneration", "solar_com_armazenamento", "solar_with_storage"})

#: Share of TUSD Fio B paid on compensated energy by new units, by calendar year
#: (Art. 27): 15 % 2023 → 90 % 2028; from 2029 a rule still to be set by ANEEL.
FIO_B_SHARE = {2023: 0.15, 2024: 0.30, 2025: 0.45, 2026: 0.60, 2027: 0.75, 2028: 0.90}


def classify_dg(power_kw: float, source: str = "solar", access_request_date: date | None = None) -> str:
    """``micro``, ``mini`` or ``out_of_scope`` for a distributed generation unit.

    Parameters
    ----------
    power_kw : float
        installed power in alternating current [kW] (the inverters' rated AC output).
    source : str
        energy source; solar and wind are non-dispatchable (mini ≤ 3 MW), hydro, biomass,
        biogas, cogeneration and solar with storage are dispatchable (mini ≤ 5 MW).
    access_request_date : date, optional
        non-dispatchable units that requested access before 2023-01-07 keep the 5 MW limit
        (Lei 14.300, transition rule).

    Raises
    ------
    ValueError
        a power that is not positive, or an unknown source.
    """
    if not power_kw > 0:
        raise ValueError(f"installed power must be positive, got {power_kw!r} kW")
    key = source.strip().lower().replace("-", "_").replace(" ", "_")
    if key not in NON_DISPATCHABLE and key not in DISPATCHABLE:
        raise ValueError(f"unknown source {source!r}: one of {sorted(NON_DISPATCHABLE | DISPATCHABLE)}")
    if power_kw <= MICRO_LIMIT_KW:
        return "micro"
    limit = MINI_LIMIT_DISPATCHABLE_KW
    if key in NON_DISPATCHABLE and not (access_request_date and access_request_date < TRANSITION_END):
        limit = MINI_LIMIT_NON_DISPATCHABLE_KW
    return "mini" if power_kw <= limit else "out_of_scope"


def fio_b_share(year: int, after_2028: float = 1.0) -> float:
    """Share of TUSD Fio B charged on compensated energy of a new unit in ``year``
    (Lei 14.300, Art. 27); ``after_2028`` is the assumption for 2029 on (default 100 %)."""
    if year < 2023:
        return 0.0
    return FIO_B_SHARE.get(year, after_2028)
