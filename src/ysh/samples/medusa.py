"""A realistic, deterministic Medusa-like B2B dataset for the proposals job.

:func:`seed_medusa` writes integrators (``company``), their quotes (``quote``), the quoted
kit (``quote_item``, priced from ``items_normalized``) and the orders that followed
(``"order"``). Everything is a function of ``seed``, the catalog in ``items_normalized``
and ``today``; ``today`` only moves the timestamps, it never changes which rows exist or
what they contain otherwise.

Ids are Medusa-style (``comp_01…``, ``quote_01…``, ``qitem_01…``, ``order_01…``) derived
from ``seed`` and the row's index, so re-running with the same arguments upserts the same
rows. The upserts skip rows whose values did not change (``IS DISTINCT FROM``), so a
re-run with the same seed produces no change events for CDC. Lines or orders of seeded
quotes that a re-run no longer produces (e.g. the catalog changed) are deleted.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import NamedTuple

import psycopg
from psycopg.types.json import Jsonb

#: kWh per kWp per year used to size the systems (a typical figure for the Southeast/South).
SPECIFIC_YIELD_KWH_PER_KWP = 1400.0
#: Lei 14.300/2022: microgeração up to 75 kW, minigeração above that (here up to 300 kW).
MICRO_LIMIT_KW = 75.0
MINI_LIMIT_KW = 300.0
#: DC/AC ratio (kWp per kW of inverter) integrators aim for.
DC_AC_TARGET = (1.10, 1.30)

#: ICMS on electricity per UF, as a typical residential rate (%), used as ``icms_pct``.
#: Basis: LC 194/2022 classed electricity as essential, so since July 2022 it cannot be
#: taxed above each state's general ("modal") rate; the states then set electricity at
#: their modal rate. Numbers as of 2024:
#: * MG 18 % — modal rate 18 % (a raise to 19.5 % was discussed in 2023, not enacted).
#: * SP 18 % — modal rate 18 %, unchanged (the 2024 raise was ruled out).
#: * PR 19.5 % — modal rate 18 % → 19 % (2023) → 19.5 % (law approved Dec 2023, in force
#:   2024), electricity raised along with it.
#: * RJ 20 % — 18 % plus the 2 % FECP surcharge (poverty fund) charged on electricity. The
#:   2024 raise of RJ's modal rate may have lifted this further; 20 % is the conservative
#:   figure.
#: Consumption-band exemptions of the smallest residential consumers are ignored.
ICMS_PCT_BY_STATE: dict[str, float] = {"MG": 18.0, "SP": 18.0, "PR": 19.5, "RJ": 20.0}


@dataclass(frozen=True)
class Municipality:
    name: str
    state: str
    latitude: float
    longitude: float
    utility: str   # distribuidora as ANEEL's SigAgente writes it
    weight: float  # how many integrators it tends to have (roughly population)


#: Municipalities in the concession areas of the five utilities with tariffs in
#: ``data/sample/tariffs``; coordinates of the city centre.
MUNICIPALITIES: tuple[Municipality, ...] = (
    Municipality("Belo Horizonte", "MG", -19.9167, -43.9345, "CEMIG-D", 5),
    Municipality("Contagem", "MG", -19.9321, -44.0539, "CEMIG-D", 2),
    Municipality("Uberlândia", "MG", -18.9186, -48.2772, "CEMIG-D", 2),
    Municipality("Juiz de Fora", "MG", -21.7642, -43.3496, "CEMIG-D", 2),
    Municipality("Montes Claros", "MG", -16.7282, -43.8578, "CEMIG-D", 1.5),
    Municipality("São Paulo", "SP", -23.5505, -46.6333, "ENEL SP", 8),
    Municipality("Osasco", "SP", -23.5325, -46.7917, "ENEL SP", 2),
    Municipality("Barueri", "SP", -23.5057, -46.8790, "ENEL SP", 1.5),
    Municipality("Taboão da Serra", "SP", -23.6019, -46.7526, "ENEL SP", 1),
    Municipality("Curitiba", "PR", -25.4284, -49.2733, "COPEL-DIS", 4),
    Municipality("Londrina", "PR", -23.3045, -51.1696, "COPEL-DIS", 2),
    Municipality("Maringá", "PR", -23.4205, -51.9333, "COPEL-DIS", 2),
    Municipality("Ponta Grossa", "PR", -25.0945, -50.1633, "COPEL-DIS", 1.5),
    Municipality("Cascavel", "PR", -24.9555, -53.4552, "COPEL-DIS", 1.5),
    Municipality("Campinas", "SP", -22.9056, -47.0608, "CPFL-PAULISTA", 3),
    Municipality("Ribeirão Preto", "SP", -21.1775, -47.8103, "CPFL-PAULISTA", 2),
    Municipality("Bauru", "SP", -22.3246, -49.0871, "CPFL-PAULISTA", 1.5),
    Municipality("Piracicaba", "SP", -22.7253, -47.6492, "CPFL-PAULISTA", 1.5),
    Municipality("Rio de Janeiro", "RJ", -22.9068, -43.1729, "LIGHT SESA", 6),
    Municipality("Nova Iguaçu", "RJ", -22.7592, -43.4510, "LIGHT SESA", 1.5),
    Municipality("Duque de Caxias", "RJ", -22.7856, -43.3117, "LIGHT SESA", 1.5),
    Municipality("Belford Roxo", "RJ", -22.7642, -43.3995, "LIGHT SESA", 1),
    Municipality("Volta Redonda", "RJ", -22.5231, -44.1042, "LIGHT SESA", 1),
)

UTILITIES = ("CEMIG-D", "ENEL SP", "COPEL-DIS", "CPFL-PAULISTA", "LIGHT SESA")

_REGIONAL = {"MG": ("Mineira", "das Gerais", "Serra do Curral", "Triângulo"),
             "SP": ("Paulista", "Bandeirante", "Tietê", "Piratininga"),
             "PR": ("Paranaense", "Araucária", "Iguaçu", "Pinhais"),
             "RJ": ("Carioca", "Fluminense", "Guanabara", "Baixada")}
_BRANDS = ("Sol", "Solar", "Luz", "Raio", "Fóton", "Helios", "Ecovolt", "Brilho", "Horizonte",
           "Sunway", "Energia Verde", "Girassol", "Solaris", "Voltare", "Aurora", "Sollar")
_TRADES = ("Energia Solar", "Engenharia", "Soluções em Energia", "Instalações Elétricas",
           "Integradora Solar", "Energia Renovável", "Sistemas Fotovoltaicos")
_LEGAL = ("Ltda", "Ltda", "Ltda", "Ltda - ME", "ME", "S.A.")

#: quote status weights ("mostly sent") and the chance an eligible quote became an order.
#: Accepted quotes convert far more often than merely sent ones; together ≈ 35 % of the
#: sent/accepted quotes have an order.
_STATUSES = (("sent", 58), ("accepted", 16), ("draft", 8), ("rejected", 10), ("expired", 8))
_ORDER_CHANCE = {"accepted": 0.60, "sent": 0.30}
_CONNECTIONS = {"B1": (("mono", 15), ("bi", 60), ("tri", 25)),
                "B3": (("mono", 5), ("bi", 20), ("tri", 75))}
_CONSUMPTION = {"B1": (150.0, 1200.0, 350.0), "B3": (500.0, 6000.0, 1500.0)}  # low, high, mode

UNKNOWN_SKU_SHARE = 0.03
MINI_SHARE = 0.02
GRANDFATHERED_SHARE = 0.05


class SeedReport(NamedTuple):
    companies: int
    quotes: int
    quote_items: int
    orders: int
    unknown_sku_quotes: int


@dataclass(frozen=True)
class CatalogItem:
    distributor: str
    sku: str
    category: str
    power_w: float
    price_brl: float


# -- helpers -----------------------------------------------------------------------------

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def medusa_id(prefix: str, seed: int, kind: str, *index: int) -> str:
    """A ULID-looking id (``prefix_01`` + 24 Crockford base-32 characters) derived only
    from the seed and the row's index, so it is stable across re-runs."""
    key = ":".join(["ysh-seed", str(seed), kind, *map(str, index)]).encode()
    n = int.from_bytes(hashlib.sha256(key).digest()[:15], "big")  # 120 bits = 24 chars
    chars = []
    for _ in range(24):
        n, r = divmod(n, 32)
        chars.append(_CROCKFORD[r])
    return f"{prefix}_01{''.join(reversed(chars))}"


def cnpj_check_digits(base12: str) -> str:
    """The two check digits of a CNPJ whose first 12 digits are ``base12``."""
    digits = [int(c) for c in base12]
    for weights in ((5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2), (6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)):
        rest = sum(d * w for d, w in zip(digits, weights)) % 11
        digits.append(0 if rest < 2 else 11 - rest)
    return f"{digits[-2]}{digits[-1]}"


def is_valid_cnpj(cnpj: str) -> bool:
    digits = re.sub(r"\D", "", cnpj)
    if len(digits) != 14 or len(set(digits)) == 1:
        return False
    return cnpj_check_digits(digits[:12]) == digits[12:]


def _random_cnpj(rng: random.Random) -> str:
    """14 digits (no mask, as ANEEL's open data writes them): 8-digit root, branch 0001
    (the head office), check digits."""
    base = f"{rng.randrange(10**7, 10**8):08d}0001"
    return base + cnpj_check_digits(base)


def _weighted(rng: random.Random, options: Sequence[tuple[str, float]]) -> str:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]


def _at(day: date, rng: random.Random) -> datetime:
    """A business-hours instant (08:00–18:00 in Brasília = 11:00–21:00 UTC) on ``day``."""
    seconds = rng.randrange(11 * 3600, 21 * 3600)
    return datetime.combine(day, time(), tzinfo=timezone.utc) + timedelta(seconds=seconds)


def _consumption_profile(rng: random.Random, average: float, low: float | None,
                         high: float | None) -> list[int]:
    """12 months (Jan..Dec) with a mild summer peak (air conditioning, Dec–Mar) and noise."""
    amplitude = rng.uniform(0.05, 0.15)
    months = []
    for m in range(12):
        season = 1 + amplitude * math.cos(2 * math.pi * (m - 0.5) / 12)  # peak Jan/Feb
        value = average * season * (1 + rng.gauss(0, 0.03))
        if low is not None:
            value = max(low, value)
        if high is not None:
            value = min(high, value)
        months.append(round(value))
    return months


def _load_catalog(conn: psycopg.Connection) -> tuple[list[CatalogItem], list[CatalogItem],
                                                     list[CatalogItem], set[tuple[str, str]]]:
    rows = conn.execute(
        "SELECT distributor, sku, category, power_w, price_brl FROM items_normalized "
        "ORDER BY distributor, sku").fetchall()
    if not rows:
        raise ValueError("items_normalized is empty: run the catalog job first")
    known = {(r[0], r[1]) for r in rows}
    usable = [CatalogItem(*r) for r in rows
              if r[3] is not None and r[4] is not None and r[3] > 0 and r[4] > 0]
    modules = [i for i in usable if i.category == "module" and 100 <= i.power_w <= 1000]
    inverters = [i for i in usable if i.category == "inverter"]
    micros = [i for i in usable if i.category == "microinverter"]
    if not modules or not (inverters or micros):
        raise ValueError("items_normalized has no quotable modules and inverters (with power_w and "
                         "price_brl): run the catalog job over feeds that have them")
    return modules, inverters, micros, known


def _pick_string_inverter(rng: random.Random, inverters: list[CatalogItem], kwp: float,
                          distributor: str) -> tuple[CatalogItem, int]:
    """One inverter model (``quantity`` units) with kWp / AC within the target DC/AC band,
    the fewest units, preferring the module's distributor (integrators buy kits)."""
    lo, hi = DC_AC_TARGET
    for pool in ([i for i in inverters if i.distributor == distributor], inverters):
        fits = []
        for inv in pool:
            qty = max(1, math.ceil(kwp * 1000 / hi / inv.power_w))
            if lo <= kwp * 1000 / (qty * inv.power_w) <= hi:
                fits.append((qty, inv))
        if fits:
            fewest = min(q for q, _ in fits)
            qty, inv = rng.choice([f for f in fits if f[0] == fewest])
            return inv, qty
    # nothing in the band (a tiny or odd system): closest to the middle of the band
    best = min(((max(1, round(kwp * 1000 / 1.2 / i.power_w)), i) for i in inverters),
               key=lambda f: (abs(kwp * 1000 / (f[0] * f[1].power_w) - 1.2), f[1].distributor, f[1].sku))
    return best[1], best[0]


def _pick_microinverter(rng: random.Random, micros: list[CatalogItem], modules: int, kwp: float,
                        distributor: str) -> tuple[CatalogItem, int]:
    """A microinverter model serving 2–4 modules each, AC close to kWp/1.1–1.3."""
    def options(pool):
        out = []
        for micro in pool:
            for per in (2, 3, 4):
                qty = math.ceil(modules / per)
                ratio = kwp * 1000 / (qty * micro.power_w)
                out.append((abs(ratio - 1.2), per, qty, micro))
        return out

    for pool in ([m for m in micros if m.distributor == distributor], micros):
        fits = [o for o in options(pool) if o[0] <= 0.25]  # kWp/AC within 0.95–1.45
        if fits:
            _, _, qty, micro = rng.choice(fits)
            return micro, qty
    best = min(options(micros), key=lambda o: (o[0], o[3].distributor, o[3].sku))
    return best[3], best[2]


def _stale_sku(rng: random.Random, template: CatalogItem, known: set[tuple[str, str]]) -> str:
    """A SKU in the distributor's format that is not (any more) in the catalog."""
    for attempt in range(100):
        sku = re.sub(r"\d", lambda _: str(rng.randrange(10)), template.sku)
        if sku == template.sku or not re.search(r"\d", sku) or attempt > 50:
            sku = f"{template.sku}-DESC{rng.randrange(100, 999)}"
        if (template.distributor, sku) not in known:
            return sku
    raise RuntimeError("could not invent an unknown SKU")  # pragma: no cover


# -- the seed ------------------------------------------------------------------------------

_UPSERTS = {
    "company": ("company", ("id", "name", "cnpj", "municipality", "state", "latitude", "longitude",
                            "utility", "icms_pct", "created_at")),
    "quote": ("quote", ("id", "company_id", "status", "customer_class", "connection",
                        "consumption_kwh_month", "tilt_deg", "azimuth_deg", "access_request_date",
                        "created_at", "updated_at")),
    "quote_item": ("quote_item", ("id", "quote_id", "distributor", "sku", "quantity", "unit_price_brl")),
    "order": ('"order"', ("id", "quote_id", "status", "created_at")),
}


def _upsert_sql(kind: str) -> str:
    table, cols = _UPSERTS[kind]
    rest = cols[1:]
    return (f"INSERT INTO {table} AS t ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))}) "
            f"ON CONFLICT (id) DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in rest)} "
            f"WHERE ({', '.join(f't.{c}' for c in rest)}) IS DISTINCT FROM "
            f"({', '.join(f'EXCLUDED.{c}' for c in rest)})")


def seed_medusa(conn: psycopg.Connection, *, companies: int = 40, quotes: int = 400, seed: int = 14,
                today: date | None = None) -> SeedReport:
    """Upsert ``companies`` integrators and ``quotes`` quotes (with items and orders) built
    from the catalog in ``items_normalized``; commits. ``conn``'s search_path must point at
    the platform schema. Raises ValueError when there is nothing to quote."""
    if companies < 1 or quotes < 0:
        raise ValueError("need at least one company and a non-negative number of quotes")
    today = today or datetime.now(timezone.utc).date()
    modules, inverters, micros, known = _load_catalog(conn)
    rng = random.Random(seed)

    # companies: every municipality first (as far as there are companies), then weighted
    towns = list(MUNICIPALITIES)
    rng.shuffle(towns)
    company_rows, cnpjs, names = [], set(), set()
    for i in range(companies):
        town = towns[i] if i < len(towns) else rng.choices(
            MUNICIPALITIES, weights=[m.weight for m in MUNICIPALITIES])[0]
        cnpj = _random_cnpj(rng)
        while cnpj in cnpjs:
            cnpj = _random_cnpj(rng)
        cnpjs.add(cnpj)
        brand, region = rng.choice(_BRANDS), rng.choice(_REGIONAL[town.state])
        trade, legal = rng.choice(_TRADES), rng.choice(_LEGAL)
        name = f"{brand} {region} {trade} {legal}"
        if name in names:  # another one already took it: the town tells them apart
            name = f"{brand} {trade} {town.name} {legal}"
        suffix = 2
        while name in names:
            name, suffix = f"{brand} {trade} {town.name} {suffix} {legal}", suffix + 1
        names.add(name)
        created = _at(today - timedelta(days=rng.randint(400, 3000)), rng)
        company_rows.append((medusa_id("comp", seed, "company", i), name, cnpj, town.name, town.state,
                             town.latitude, town.longitude, town.utility,
                             ICMS_PCT_BY_STATE[town.state], created))
    # some integrators are busier than others (the busiest ~5x the median)
    activity = [rng.lognormvariate(0, 0.7) for _ in company_rows]

    unknown_idx = set(rng.sample(range(quotes), round(UNKNOWN_SKU_SHARE * quotes)))
    mini_idx = set(rng.sample(range(quotes), round(MINI_SHARE * quotes)))
    grandfathered_idx = set(rng.sample(range(quotes), round(GRANDFATHERED_SHARE * quotes)))

    quote_rows, item_rows, order_rows = [], [], []
    day_end = datetime.combine(today, time(), tzinfo=timezone.utc) - timedelta(minutes=1)
    for q in range(quotes):
        quote_id = medusa_id("quote", seed, "quote", q)
        company = rng.choices(company_rows, weights=activity)[0]
        mini = q in mini_idx
        cls = "B3" if mini else ("B1" if rng.random() < 0.75 else "B3")
        status = _weighted(rng, _STATUSES)
        # dates: the last 12 months before today (expired ones older than their validity)
        days_ago = rng.randint(16 if status == "expired" else 2, 365)
        created = _at(today - timedelta(days=days_ago), rng)
        updated = min(created + timedelta(hours=rng.uniform(0, 96)), day_end)
        if q in grandfathered_idx:  # access requested before the Lei 14.300 transition
            access = date(2021, 1, 1) + timedelta(days=rng.randrange(730))
        else:
            access = created.date()

        coverage = rng.uniform(0.70, 1.20)
        module = rng.choice(modules)
        if mini:
            target_kwp = rng.uniform(MICRO_LIMIT_KW + 5, MINI_LIMIT_KW)
            average = target_kwp * SPECIFIC_YIELD_KWH_PER_KWP / coverage / 12
            consumption = _consumption_profile(rng, average, None, None)
            limit_kw = MINI_LIMIT_KW
        else:
            low, high, mode = _CONSUMPTION[cls]
            consumption = _consumption_profile(rng, rng.triangular(low, high, mode), low, high)
            target_kwp = min(sum(consumption) * coverage / SPECIFIC_YIELD_KWH_PER_KWP, MICRO_LIMIT_KW)
            limit_kw = MICRO_LIMIT_KW
        connection = "tri" if mini else _weighted(rng, _CONNECTIONS[cls])
        if connection == "mono" and sum(consumption) / 12 > 500:
            connection = "bi"  # a single-phase supply does not carry that load
        n_modules = max(1, round(target_kwp * 1000 / module.power_w))
        n_modules = min(n_modules, math.floor(limit_kw * 1000 / module.power_w))
        if mini:
            n_modules = max(n_modules, math.floor(MICRO_LIMIT_KW * 1000 / module.power_w) + 1)
        kwp = n_modules * module.power_w / 1000

        wants_micro = rng.random() < 0.25
        use_micro = bool(micros) and (not inverters or kwp < 3.2 or (wants_micro and kwp <= 15))
        if use_micro:
            inverter, n_inverters = _pick_microinverter(rng, micros, n_modules, kwp, module.distributor)
        else:
            inverter, n_inverters = _pick_string_inverter(rng, inverters, kwp, module.distributor)
        while n_inverters > 1 and n_inverters * inverter.power_w > limit_kw * 1000:
            n_inverters -= 1

        discount = 1 - rng.uniform(0.0, 0.08)  # negotiated on the whole kit
        lines = [(module, n_modules), (inverter, n_inverters)]
        line_rows = [(item.distributor, item.sku, qty, round(item.price_brl * discount, 2))
                     for item, qty in lines]
        if q in unknown_idx:  # a SKU the distributor no longer lists (stale quote template)
            template = rng.choice([module, inverter])
            line_rows.append((template.distributor, _stale_sku(rng, template, known),
                              rng.randint(1, 4), round(rng.uniform(150, 2500), 2)))
        for n, (distributor, sku, qty, price) in enumerate(line_rows):
            item_rows.append((medusa_id("qitem", seed, "quote_item", q, n), quote_id, distributor,
                              sku, qty, price))

        tilt = float(rng.randint(10, 25))
        if rng.random() < 0.92:  # north-facing roof, ±30° (west of north is 330–359°)
            azimuth = float(round(max(-30.0, min(30.0, rng.gauss(0, 14)))) % 360)
        else:  # an east or west roof face
            azimuth = float(rng.choice((rng.randint(75, 105), rng.randint(255, 285))))
        quote_rows.append((quote_id, company[0], status, cls, connection, Jsonb(consumption), tilt,
                           azimuth, access, created, updated))

        chance = _ORDER_CHANCE.get(status, 0.0)
        ordered = rng.random() < chance
        delay = rng.randint(1, 30)
        progress = rng.random()
        if ordered:
            delay = min(delay, days_ago - 1)  # the day before today at the latest
            placed = _at(created.date() + timedelta(days=delay), rng)
            age = (today - placed.date()).days
            if age < 3:
                order_status = "placed"
            elif age < 10:
                order_status = "placed" if progress < 0.4 else "paid"
            else:
                order_status = "paid" if progress < 0.25 else "shipped"
            order_rows.append((medusa_id("order", seed, "order", q), quote_id, order_status, placed))

    quote_ids = [r[0] for r in quote_rows]
    with conn.transaction():
        with conn.cursor() as cur:
            cur.executemany(_upsert_sql("company"), company_rows)
            cur.executemany(_upsert_sql("quote"), quote_rows)
            # lines and orders a previous run wrote for these quotes but this one does not
            cur.execute("DELETE FROM quote_item WHERE quote_id = ANY(%s) AND NOT id = ANY(%s)",
                        (quote_ids, [r[0] for r in item_rows]))
            cur.execute('DELETE FROM "order" WHERE quote_id = ANY(%s) AND NOT id = ANY(%s)',
                        (quote_ids, [r[0] for r in order_rows]))
            cur.executemany(_upsert_sql("quote_item"), item_rows)
            cur.executemany(_upsert_sql("order"), order_rows)
    conn.commit()
    return SeedReport(companies=len(company_rows), quotes=len(quote_rows), quote_items=len(item_rows),
                      orders=len(order_rows), unknown_sku_quotes=len(unknown_idx))
