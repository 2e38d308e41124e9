"""Catalog search: what a buyer types → products with each distributor's offer.

Three parts, each usable on its own:

* :func:`parse_query` (pure): reads a query the way integrators type it — abbreviations
  (``inv``, ``mod``, ``micro``, ``mono``/``monof``, ``tri``/``trif``, ``bat``), no accents,
  powers in W, kW or kWp glued or not (``5kw``, ``5 kW``, ``5000W``, ``550w``,
  ``8,4 kwp``), voltages (``220v``), prices (``ate 5 mil``) and model codes
  (``gw5000-dns``, ``sun 5k``) — into structured filters, model codes and free-text terms.
* :class:`CatalogSearch`: one SQL statement over ``items_normalized`` (migration 0012):
  PostgreSQL full-text search with the ``catalog_pt`` configuration (Portuguese stemming
  after ``unaccent``), trigram similarity of model codes (``pg_trgm``), filters, a score
  that puts an exact model match first and prefers stated in-stock offers, offers grouped
  by product (``product_key``; kits and commodities stand alone), and facet counts over
  the matching offers. The work per query is bounded: at most ``candidates`` offers are
  read, tier by tier from the indexes (most specific first), and scored (``capped`` says
  when more matched). An optional semantic signal (the ``catalog_embeddings`` vectors,
  embedded by Hélio's embedder, query vectors kept in an LRU) is fused by reciprocal rank.
* :func:`evaluate` (pure over results): hit@k and MRR of judged queries
  (``data/sample/catalog_search_queries.jsonl``).

The ranking weights are :class:`Weights` (defaults tuned on the tuning half of the judged
queries only; docs/catalog.md, "Search").
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import re
import threading
import unicodedata
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import psycopg
from psycopg import sql

from .. import db
from ..db import Warehouse

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------
# vocabulary (folded: lower case, no accents)
# --------------------------------------------------------------------------------------

INVERTER_FAMILY = ("inverter", "hybrid_inverter", "offgrid_inverter")
#: words (and abbreviations) that name a category
CATEGORY_WORDS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("inv", "inversor", "inversores", "inverter", "inverters", "ongrid"), INVERTER_FAMILY),
    **dict.fromkeys(("micro", "microinversor", "microinversores", "microinverter", "mi"), ("microinverter",)),
    **dict.fromkeys(("hibrido", "hibridos", "hibrida", "hybrid", "hib"), ("hybrid_inverter",)),
    **dict.fromkeys(("offgrid",), ("offgrid_inverter",)),
    **dict.fromkeys(("mod", "mods", "modulo", "modulos", "painel", "paineis", "placa", "placas", "module",
                     "modules", "panel", "panels"), ("module",)),
    **dict.fromkeys(("bat", "bateria", "baterias", "battery", "batteries"), ("battery",)),
    **dict.fromkeys(("kit", "kits", "gerador", "geradores"), ("kit",)),
    **dict.fromkeys(("estrutura", "estruturas", "suporte", "suportes"), ("structure",)),
    **dict.fromkeys(("cabo", "cabos"), ("cable",)),
    **dict.fromkeys(("stringbox",), ("string_box",)),
    **dict.fromkeys(("controlador",), ("charge_controller",)),
    **dict.fromkeys(("carregador",), ("ev_charger",)),
}
#: the Portuguese name of each category, for the text an offer is embedded from
CATEGORY_PT = {"module": "módulo fotovoltaico", "inverter": "inversor", "hybrid_inverter": "inversor híbrido",
               "offgrid_inverter": "inversor off-grid", "microinverter": "microinversor", "battery": "bateria",
               "kit": "kit gerador fotovoltaico", "structure": "estrutura", "cable": "cabo",
               "string_box": "string box", "charge_controller": "controlador de carga",
               "ev_charger": "carregador veicular", "pump_kit": "kit bombeamento", "accessory": "acessório",
               "other": ""}
PHASE_WORDS = {**dict.fromkeys(("mono", "monof", "monofasico", "monofasica", "monofase", "1f"), 1),
               **dict.fromkeys(("bifasico", "bifasica", "2f"), 2),
               **dict.fromkeys(("tri", "trif", "trifasico", "trifasica", "trifase", "3f"), 3)}
IN_STOCK_PHRASES = ("em estoque", "pronta entrega", "disponivel", "a pronta entrega")
#: words that say nothing about the product ("quero um inversor barato")
NOISE_WORDS = frozenset((
    "a o os as de da do das dos em no na nos nas um uma e ou para pra p com c sem por ao "
    "que qual quero preciso procuro busco comprar compra preco precos valor barato barata melhor bom boa "
    "cotacao orcamento tem voces r reais mil ate abaixo acima menos mais entre max min maximo minimo "
    "fotovoltaico fotovoltaica fotovoltaicos solar energia sistema usina"
).split())
#: the tolerance of a power read from the query, by category [fraction of the target]
POWER_TOLERANCE = {"module": 0.02, "microinverter": 0.05, "inverter": 0.03, "hybrid_inverter": 0.03,
                   "offgrid_inverter": 0.03, "kit": 0.10, "battery": 0.15}
DEFAULT_POWER_TOLERANCE = 0.05
PLAUSIBLE_VOLTAGES_V = (127, 220, 230, 380, 440, 480, 800)

_POWER = re.compile(r"(?<![\w.,])(\d+(?:[.,]\d+)?)\s?(kwp|kw|wp|w|kva|kwh)(?![a-z0-9])")
_VOLTAGE = re.compile(r"(?<![\w.,])(\d{3})\s?(v|vac|vca)(?![a-z0-9])")
_PRICE_MAX = re.compile(r"\b(?:ate|abaixo de|menos de|max(?:imo)?|no maximo|<=?)\s*(?:r\s?\$\s*)?"
                        r"(\d+(?:[.,]\d+)*)\s*(mil|k)?(?:\s*reais)?(?![a-z0-9])")
_PRICE_MIN = re.compile(r"\b(?:acima de|mais de|a partir de|min(?:imo)?|>=?)\s*(?:r\s?\$\s*)?"
                        r"(\d+(?:[.,]\d+)*)\s*(mil|k)?(?:\s*reais)?(?![a-z0-9])")
_TOKEN = re.compile(r"[a-z0-9]+(?:[-/.][a-z0-9]+)*")


def fold(text: str) -> str:
    """Lower-case text without accents (``Monofásico`` → ``monofasico``)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def code_key(text: str) -> str:
    """A model code as the ``search_code`` column holds it: upper-case alphanumerics."""
    return re.sub(r"[^0-9A-Za-z]", "", text).upper()


def _number(text: str) -> float:
    """``5,5`` / ``5.5`` / ``5.000`` (thousands) → float."""
    if re.fullmatch(r"\d{1,3}(?:\.\d{3})+", text):
        return float(text.replace(".", ""))
    return float(text.replace(",", "."))


# --------------------------------------------------------------------------------------
# filters and the parsed query
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchFilters:
    """Hard filters on offers (every one given must hold). Units in the names."""

    categories: tuple[str, ...] = ()
    brands: tuple[str, ...] = ()          # case- and accent-insensitive
    distributors: tuple[str, ...] = ()
    power_min_w: float | None = None
    power_max_w: float | None = None
    voltage_v: float | None = None
    phases: int | None = None
    price_min_brl: float | None = None
    price_max_brl: float | None = None
    battery_min_kwh: float | None = None
    battery_max_kwh: float | None = None
    in_stock: bool = False               # availability = in_stock, or stock_units > 0

    def merged(self, other: SearchFilters) -> SearchFilters:
        """These filters, with ``other``'s given ones taking precedence."""
        changes = {name: value for name, value in asdict(other).items()
                   if value not in (None, (), False)}
        return replace(self, **changes)

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()
                if v not in (None, (), False)}


@dataclass(frozen=True)
class ParsedQuery:
    """What :func:`parse_query` understood."""

    text: str
    terms: tuple[str, ...] = ()           # free-text terms (folded), matched by full-text search
    codes: tuple[str, ...] = ()           # model-code candidates (``code_key`` form)
    brands: tuple[str, ...] = ()          # known brands named (folded)
    categories: tuple[str, ...] = ()
    power_w: float | None = None          # the power asked for (kits: kWp × 1000)
    battery_kwh: float | None = None
    phases: int | None = None
    voltage_v: float | None = None
    price_min_brl: float | None = None
    price_max_brl: float | None = None
    wants_in_stock: bool = False          # a preference: stock is rarely stated

    def filters(self) -> SearchFilters:
        """The hard filters the query implies (power as a tolerance band around the target;
        phases and voltage only where a category states them: inverters)."""
        tolerance = max((POWER_TOLERANCE.get(c, DEFAULT_POWER_TOLERANCE) for c in self.categories),
                        default=DEFAULT_POWER_TOLERANCE)
        electrical = not self.categories or any(c in (*INVERTER_FAMILY, "microinverter") for c in self.categories)
        return SearchFilters(
            categories=self.categories,
            power_min_w=self.power_w * (1 - tolerance) if self.power_w else None,
            power_max_w=self.power_w * (1 + tolerance) if self.power_w else None,
            battery_min_kwh=self.battery_kwh * 0.85 if self.battery_kwh else None,
            battery_max_kwh=self.battery_kwh * 1.15 if self.battery_kwh else None,
            phases=self.phases if electrical else None,
            voltage_v=self.voltage_v if electrical else None,
            price_min_brl=self.price_min_brl, price_max_brl=self.price_max_brl,
        )

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()
                if v not in (None, (), False)}


def _looks_like_code(token: str) -> bool:
    alnum = re.sub(r"[^a-z0-9]", "", token)
    return bool(re.search(r"\d", alnum)) and bool(re.search(r"[a-z]", alnum)) and len(alnum) >= 3


def parse_query(text: str, brands: Iterable[str] = ()) -> ParsedQuery:
    """Read a buyer's query into filters, codes and terms.

    Parameters
    ----------
    text : str
        the query as typed (``"inv 5kw mono growatt"``, ``"modulo 550w"``, ``"GW5000-DNS-30"``).
    brands : iterable of str
        known brand names (any case; multi-word allowed: ``"Solar N Plus"``), recognized in
        the query as brands.

    Returns
    -------
    ParsedQuery
        categories from category words and abbreviations (``kit`` wins over the words that
        describe a kit's parts; ``micro``/``hibrido`` narrow an ``inversor``), the power
        in W (``5kw`` = ``5 kW`` = ``5000W``; kWp for kits), phases (``mono`` 1, ``tri`` 3),
        a voltage of 127-800 V, price bounds (``ate 5 mil``: at most R$ 5,000), model codes
        (tokens with letters and digits; a short prefix word is joined: ``sun 5k`` → ``SUN5K``)
        and the remaining free-text terms.
    """
    folded = " " + re.sub(r"\s+", " ", fold(text).replace("\u00a0", " ")).strip() + " "
    folded = folded.replace("off grid", "offgrid").replace("off-grid", "offgrid").replace("on grid", "ongrid")
    folded = folded.replace("on-grid", "ongrid").replace("string box", "stringbox")
    folded = re.sub(r"\bmicro\s+inv\w*", "microinversor", folded)

    wants_in_stock = False
    for phrase in IN_STOCK_PHRASES:
        if f" {phrase} " in folded:
            wants_in_stock = True
            folded = folded.replace(f" {phrase} ", " ")

    price_max = price_min = None
    for pattern, is_max in ((_PRICE_MAX, True), (_PRICE_MIN, False)):
        match = pattern.search(folded)
        if match:
            value = _number(match.group(1)) * (1000 if match.group(2) else 1)
            if is_max:
                price_max = value
            else:
                price_min = value
            folded = folded[:match.start()] + " " + folded[match.end():]

    power_w = battery_kwh = None
    for match in list(_POWER.finditer(folded)):
        value, unit = _number(match.group(1)), match.group(2)
        if unit == "kwh":
            battery_kwh = value
        elif power_w is None:
            power_w = value * 1000 if unit in ("kw", "kwp", "kva") else value
    folded = _POWER.sub(" ", folded)

    voltage = None
    for match in _VOLTAGE.finditer(folded):
        if int(match.group(1)) in PLAUSIBLE_VOLTAGES_V:
            voltage = float(match.group(1))
    folded = _VOLTAGE.sub(" ", folded)

    known = sorted({fold(b).strip() for b in brands if b and b.strip()}, key=len, reverse=True)
    found_brands: list[str] = []
    for brand in known:
        spaced = f" {brand} "
        squeezed = brand.replace(" ", "")
        if spaced in folded:
            found_brands.append(brand)
        elif " " in brand and f" {squeezed} " in folded:
            found_brands.append(brand)
            folded = folded.replace(f" {squeezed} ", spaced)

    categories: list[str] = []
    phases = None
    terms: list[str] = []
    codes: list[str] = []
    tokens = _TOKEN.findall(folded)
    for i, token in enumerate(tokens):
        if token in CATEGORY_WORDS:
            categories.extend(c for c in CATEGORY_WORDS[token] if c not in categories)
            continue
        if token in PHASE_WORDS:
            phases = PHASE_WORDS[token]
            continue
        alnum = re.sub(r"[^a-z0-9]", "", token)
        if _looks_like_code(token) or (re.search(r"\d", alnum) and re.search(r"[a-z]", alnum)):
            if _looks_like_code(token):
                codes.append(code_key(token))
            previous = tokens[i - 1] if i else ""
            if previous.isalpha() and 2 <= len(previous) <= 4 and previous not in CATEGORY_WORDS \
                    and previous not in PHASE_WORDS and previous not in NOISE_WORDS:
                codes.append(code_key(previous + token))
        for part in re.split(r"[-/.]", token):
            if part and part not in NOISE_WORDS and part not in terms:
                terms.append(part)

    # a kit is described by its parts ("kit 5kwp microinversor deye"): its words are text
    if "kit" in categories:
        describing = [c for c in categories if c != "kit"]
        categories = ["kit"]
        terms.extend(w for w in _category_words_in(tokens, describing) if w not in terms)
    elif "microinverter" in categories:
        categories = ["microinverter"]
    elif any(CATEGORY_WORDS.get(t) == ("hybrid_inverter",) for t in tokens):
        categories = ["hybrid_inverter"]
    return ParsedQuery(
        text=text, terms=tuple(terms), codes=tuple(dict.fromkeys(codes)), brands=tuple(found_brands),
        categories=tuple(categories), power_w=power_w, battery_kwh=battery_kwh, phases=phases,
        voltage_v=voltage, price_min_brl=price_min, price_max_brl=price_max, wants_in_stock=wants_in_stock,
    )


def _category_words_in(tokens: Sequence[str], categories: Sequence[str]) -> list[str]:
    return [t for t in tokens if t in CATEGORY_WORDS and set(CATEGORY_WORDS[t]) & set(categories)
            and t not in ("kit", "kits")]


# --------------------------------------------------------------------------------------
# the text an offer is embedded from (the semantic signal)
# --------------------------------------------------------------------------------------


def embedding_text(category: str | None, brand: str | None, model: str | None, name: str | None,
                   description: str | None) -> str:
    """The text of an offer given to the embedder: category in Portuguese, brand, model and
    title (or the description when there is no title), whitespace collapsed, at most 512
    characters. Distributor, price and stock are left out, so offers of one product
    share a vector."""
    title = name or description or ""
    parts = [CATEGORY_PT.get(category or "", ""), brand or "", model or "", title]
    text = re.sub(r"\s+", " ", " ".join(p for p in parts if p)).strip()
    return text[:512]


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    distributor: str
    sku: str
    price_brl: float | None
    availability: str | None
    stock_units: int | None
    name: str | None
    url: str | None
    score: float

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ProductHit:
    """One product (or a stand-alone offer: kits, cables, structures) with its offers."""

    product_key: str            # products.product_key, or "distributor|sku" for a stand-alone offer
    category: str
    brand: str | None
    model: str | None
    title: str | None
    power_w: float | None
    voltage_v: float | None
    phases: int | None
    score: float
    exact_model: bool
    min_price_brl: float | None
    offers: tuple[Offer, ...]

    def as_dict(self) -> dict:
        data = asdict(self)
        data["offers"] = [o.as_dict() for o in self.offers]
        return data


@dataclass(frozen=True)
class SearchResult:
    query: ParsedQuery
    filters: SearchFilters
    products: tuple[ProductHit, ...]
    total_offers: int                       # offers matching query and filters
    facets: dict[str, list[tuple[Any, int]]]
    relaxed: tuple[str, ...] = ()           # filters read from the query and dropped: nothing matched
    semantic: bool = False                  # the semantic signal was fused
    #: more offers matched than the candidates scored (``CatalogSearch.candidates``): the
    #: products are the best among the candidates, ``total_offers`` and the facets count
    #: the candidates (a lower bound), not every match
    capped: bool = False

    def as_dict(self) -> dict:
        return {"query": self.query.as_dict(), "filters": self.filters.as_dict(),
                "total_offers": self.total_offers, "capped": self.capped, "relaxed": list(self.relaxed),
                "semantic": self.semantic,
                "products": [p.as_dict() for p in self.products],
                "facets": {name: [{"value": v, "offers": n} for v, n in values]
                           for name, values in self.facets.items()}}


@dataclass(frozen=True)
class Weights:
    """The score of an offer: a sum of signals (each in [0, 1] unless said), × weight.

    ``coverage``: share of the free-text terms the offer matches; ``text``: PostgreSQL's
    ``ts_rank_cd`` (A/B/C weights 1.0/0.4/0.2), capped at 1; ``code_exact``: the model code
    equals a code of the query; ``code_prefix``: it starts with one; ``code_similarity``:
    trigram similarity (counted from ``min_similarity``); ``brand``: the offer's brand is
    one the query names; ``power``: 1 − relative distance to the asked power; ``in_stock``:
    the offer states stock; ``semantic``: reciprocal rank of the offer's text among the
    nearest vectors × ``rrf_k``, in [0, 1] (fused only when ``semantic`` > 0 and a query
    vector is given)."""

    coverage: float = 2.0
    text: float = 0.5
    code_exact: float = 6.0
    code_prefix: float = 3.0
    code_similarity: float = 2.0
    min_similarity: float = 0.3
    brand: float = 1.5
    power: float = 1.0
    in_stock: float = 0.3
    semantic: float = 0.5
    rrf_k: float = 60.0
    semantic_candidates: int = 50


POWER_FACET_EDGES_W = (0, 600, 1_000, 3_000, 5_000, 8_000, 10_000, 20_000, 50_000, 100_000)
PRICE_FACET_EDGES_BRL = (0, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000)
FACETS = ("category", "brand", "distributor", "phases", "voltage_v", "availability", "power_w", "price_brl")
MAX_OFFERS_PER_PRODUCT = 20
#: offers scored per query at most (``CatalogSearch(candidates=…)``)
DEFAULT_CANDIDATES = 1000
EXACT_PREFIX_MIN = 5


def _bucket_expr(column: str, edges: Sequence[float]) -> str:
    """SQL giving the lower edge of ``column``'s bucket (NULL stays NULL)."""
    return f"width_bucket({column}, ARRAY[{', '.join(str(float(e)) for e in edges)}]::float8[])"


def _bucket_label(index: int | None, edges: Sequence[float], unit: str) -> str | None:
    if index is None or index < 1:
        return None
    low = edges[index - 1]
    high = edges[index] if index < len(edges) else None
    return f"{low:g}–{high:g} {unit}" if high is not None else f"≥ {low:g} {unit}"


class _Pool:
    """A few warehouse connections shared by threads (autocommit, search_path set)."""

    def __init__(self, warehouse: Warehouse, size: int = 4, settings: Sequence[str] = ()):
        self.warehouse = warehouse
        self._settings = tuple(settings)
        self._idle: queue.LifoQueue = queue.LifoQueue()
        self._size = size
        self._lock = threading.Lock()

    def get(self):
        try:
            conn = self._idle.get_nowait()
            if not conn.closed and not conn.broken:
                return conn
        except queue.Empty:
            pass
        conn = db.connect(self.warehouse.dsn, self.warehouse.schema, autocommit=True)
        # no server-side prepared statements: psycopg prepares a statement run 5 times, and
        # PostgreSQL then may switch to a generic plan, blind to the LIMITs, the tsqueries
        # and the filters' values (measured: p95 ×6 from the second round of the benchmark)
        conn.prepare_threshold = None
        for statement in self._settings:
            conn.execute(statement)
        return conn

    def put(self, conn) -> None:
        if conn.closed or conn.broken or self._idle.qsize() >= self._size:
            conn.close()
        else:
            self._idle.put(conn)

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


class CatalogSearch:
    """Search over the catalog tables of one warehouse (thread-safe).

    Parameters
    ----------
    warehouse : Warehouse
        server DSN and platform schema (migrated to 0012 or later).
    embed_query : callable, optional
        ``list[str] → list[vector]`` with the embedder the ``catalog_embeddings`` rows were
        written with (Hélio's ``LiveIndex.embed_queries``); without it, or with
        ``weights.semantic == 0``, the search is lexical only.
    model : str
        the embedder's name (``catalog_embeddings.model``).
    weights : Weights
        the ranking weights.
    candidates : int
        at most this many offers are scored per query (read tier by tier from the indexes,
        most specific first: :meth:`_run`); beyond it the result is ``capped``.
    query_cache : int
        query vectors kept (least recently used dropped first), so a repeated query is
        not embedded again.
    """

    def __init__(self, warehouse: Warehouse, *, embed_query: Callable[[list[str]], list] | None = None,
                 model: str = "minilm", weights: Weights | None = None, brands_ttl_s: float = 300.0,
                 candidates: int = DEFAULT_CANDIDATES, query_cache: int = 1024):
        self.warehouse = warehouse
        self.embed_query = embed_query
        self.model = model
        self.weights = weights or Weights()
        self.candidates = int(candidates)
        self._vectors: OrderedDict[str, Any] = OrderedDict()
        self._vectors_size = int(query_cache)
        self._vectors_lock = threading.Lock()
        # pgvector's HNSW scan returns at most ef_search rows (40 by default), fewer after
        # the model filter unless it scans on (iterative scans: pgvector >= 0.8)
        ef_search = max(40, 2 * int(self.weights.semantic_candidates))
        self._pool = _Pool(warehouse, settings=(f"SET hnsw.ef_search = {ef_search}",
                                                "SET hnsw.iterative_scan = relaxed_order"))
        self._brands: tuple[float, tuple[str, ...]] | None = None
        self._brands_ttl_s = brands_ttl_s

    def close(self) -> None:
        self._pool.close()

    # ---- vocabulary ------------------------------------------------------------------
    def brands(self) -> tuple[str, ...]:
        """Brands of the catalog (offers' brands and kit components' brands), cached."""
        import time

        now = time.monotonic()
        if self._brands is not None and now - self._brands[0] < self._brands_ttl_s:
            return self._brands[1]
        rows = self._fetch(
            "SELECT DISTINCT b FROM ("
            " SELECT brand AS b FROM items_normalized WHERE brand IS NOT NULL"
            " UNION SELECT c->>'brand' FROM items_normalized, jsonb_array_elements("
            "   CASE WHEN jsonb_typeof(components) = 'array' THEN components ELSE '[]'::jsonb END) c"
            " WHERE category = 'kit') x WHERE b IS NOT NULL AND length(b) >= 2", ())
        brands = tuple(sorted(r[0] for r in rows))
        self._brands = (now, brands)
        return brands

    def query_vector(self, text: str):
        """The embedding of ``text`` (LRU-cached by the exact text)."""
        with self._vectors_lock:
            if text in self._vectors:
                self._vectors.move_to_end(text)
                return self._vectors[text]
        vector = self.embed_query([text])[0]
        with self._vectors_lock:
            self._vectors[text] = vector
            while len(self._vectors) > self._vectors_size:
                self._vectors.popitem(last=False)
        return vector

    def clear_query_cache(self) -> None:
        with self._vectors_lock:
            self._vectors.clear()

    def _fetch(self, statement, params) -> list[tuple]:
        conn = self._pool.get()
        try:
            return conn.execute(statement, params).fetchall()
        finally:
            self._pool.put(conn)

    # ---- search ----------------------------------------------------------------------
    def search(self, text: str, *, k: int = 10, filters: SearchFilters | None = None,
               semantic: bool | None = None, with_facets: bool = True) -> SearchResult:
        """The ``k`` best products for ``text`` under ``filters`` (given filters win over
        what the query says). When the filters read from the query match nothing, power,
        phases and voltage from the query are dropped (``relaxed``) and the power asked
        for still ranks the offers by closeness."""
        parsed = parse_query(text, self.brands())
        implied = parsed.filters()
        effective = implied.merged(filters) if filters else implied
        use_semantic = (self.weights.semantic > 0 if semantic is None else semantic) and self.embed_query is not None
        vector = None
        if use_semantic:
            vector = self.query_vector(text)
        conn = self._pool.get()
        try:
            products, total, facets, capped = self._run(conn, parsed, effective, k, vector, with_facets)
            relaxed: tuple[str, ...] = ()
            if total == 0:
                given = filters or SearchFilters()
                loosened = replace(
                    effective,
                    power_min_w=given.power_min_w, power_max_w=given.power_max_w,
                    phases=given.phases, voltage_v=given.voltage_v,
                    battery_min_kwh=given.battery_min_kwh, battery_max_kwh=given.battery_max_kwh)
                if loosened != effective:
                    relaxed = tuple(name for name in ("power", "phases", "voltage", "battery")
                                    if _dropped(effective, loosened, name))
                    effective = loosened
                    products, total, facets, capped = self._run(conn, parsed, effective, k, vector, with_facets)
        finally:
            self._pool.put(conn)
        return SearchResult(parsed, effective, products, total, facets, relaxed, vector is not None, capped)

    def _where(self, f: SearchFilters) -> tuple[list[sql.Composable], dict]:
        where: list[sql.Composable] = []
        params: dict[str, Any] = {}
        if f.categories:
            where.append(sql.SQL("i.category = ANY(%(categories)s)"))
            params["categories"] = list(f.categories)
        if f.brands:
            where.append(sql.SQL("lower(public.unaccent(i.brand)) = ANY(%(brands)s)"))
            params["brands"] = [fold(b).strip() for b in f.brands]
        if f.distributors:
            where.append(sql.SQL("i.distributor = ANY(%(distributors)s)"))
            params["distributors"] = list(f.distributors)
        for column, low, high, name in (("power_w", f.power_min_w, f.power_max_w, "power"),
                                        ("price_brl", f.price_min_brl, f.price_max_brl, "price"),
                                        ("battery_kwh", f.battery_min_kwh, f.battery_max_kwh, "battery")):
            if low is not None:
                where.append(sql.SQL("i.{} >= %({})s").format(sql.Identifier(column), sql.SQL(name + "_min")))
                params[name + "_min"] = float(low)
            if high is not None:
                where.append(sql.SQL("i.{} <= %({})s").format(sql.Identifier(column), sql.SQL(name + "_max")))
                params[name + "_max"] = float(high)
        if f.voltage_v is not None:
            where.append(sql.SQL("abs(i.voltage_v - %(voltage)s) <= 10"))
            params["voltage"] = float(f.voltage_v)
        if f.phases is not None:
            where.append(sql.SQL("i.phases = %(phases)s"))
            params["phases"] = int(f.phases)
        if f.in_stock:
            where.append(sql.SQL("(i.availability = 'in_stock' OR i.stock_units > 0)"))
        return where, params

    def explain(self, text: str, *, k: int = 10, filters: SearchFilters | None = None,
                semantic: bool | None = None) -> list[str]:
        """``EXPLAIN (ANALYZE, BUFFERS)`` of the search statement of ``text`` (as
        :meth:`search` runs it first, before any relaxing of the filters)."""
        parsed = parse_query(text, self.brands())
        effective = parsed.filters().merged(filters) if filters else parsed.filters()
        use_semantic = (self.weights.semantic > 0 if semantic is None else semantic) and self.embed_query is not None
        vector = self.query_vector(text) if use_semantic else None
        conn = self._pool.get()
        try:
            statement, params = self._statement(conn, parsed, effective, k, vector, True)
            return [r[0] for r in conn.execute(sql.SQL("EXPLAIN (ANALYZE, BUFFERS) ") + statement, params)]
        finally:
            self._pool.put(conn)

    def _run(self, conn, parsed: ParsedQuery, f: SearchFilters, k: int, vector, with_facets: bool):
        statement, params = self._statement(conn, parsed, f, k, vector, with_facets)
        rows = conn.execute(statement, params).fetchall()
        if not rows:
            return (), 0, {}, False
        total, capped, facet_rows = rows[0][-3], bool(rows[0][-2]), rows[0][-1]
        products = _group([r[:-3] for r in rows])
        facets = _facets(facet_rows or []) if with_facets else {}
        return products, int(total), facets, capped

    def _statement(self, conn, parsed: ParsedQuery, f: SearchFilters, k: int, vector, with_facets: bool):
        """The search statement and its parameters: one statement (one round trip), bounded
        candidates → full score → products → offers, with the candidates' facets on the first row.

        Candidates come in tiers, most specific first, each read through an index and cut
        at ``self.candidates`` rows (``LIMIT`` under ``UNION ALL``: a tier is not read once
        enough rows came before it): offers whose model code equals or starts with a typed
        code; offers matching every free-text term; the offers of the nearest texts
        (semantic signal); trigram-similar codes (most similar first); offers matching
        exactly m of the n terms, m = n−1 … 1; when the query has neither text nor codes,
        the offers under the filters (closest power, stated stock, lowest price first).
        Only these are scored, grouped and counted for facets; when the cut was reached,
        ``capped`` is set and totals/facets count the candidates, not every match."""
        w = self.weights
        where, params = self._where(f)
        terms = [t for t in parsed.terms if re.fullmatch(r"[a-z0-9]+", t)]
        codes = [c for c in parsed.codes if c]
        params.update(
            tsq=" | ".join(terms) if terms else None, terms=terms, n_terms=max(1, len(terms)), codes=codes,
            brands_named=list(parsed.brands), target_w=parsed.power_w, min_sim=w.min_similarity,
            w_cov=w.coverage, w_text=w.text, w_exact=w.code_exact, w_prefix=w.code_prefix,
            w_sim=w.code_similarity, w_brand=w.brand, w_power=w.power, w_stock=w.in_stock,
            w_sem=w.semantic, rrf_k=w.rrf_k, k=k, per_product=MAX_OFFERS_PER_PRODUCT,
            n_cand=self.candidates, with_facets=with_facets,
            code_patterns=[c + "%" for c in codes],
            # a model that starts with a typed code of 5+ characters is that model with a
            # suffix the buyer left out ("GW5000-DNS-30" = GW 5000-DNS-30 (16A) - AFCI)
            exact_patterns=[c + "%" for c in codes if len(c) >= EXACT_PREFIX_MIN],
        )
        base_where = sql.SQL(" AND ").join(where) if where else sql.SQL("true")
        text_tiers = _term_tiers(terms)
        use_text = bool(text_tiers or codes)
        if use_text and parsed.categories and not codes:
            # text that matches nothing under filters the query also set: the filters alone
            # rank (e.g. "inversor 5 kw mono growatt", no Growatt at 5 kW: the 5 kW inverters)
            exists = sql.SQL("SELECT EXISTS (SELECT 1 FROM items_normalized i "
                             "WHERE {} AND i.search_tsv @@ to_tsquery('catalog_pt', %(tsq)s))").format(base_where)
            if not conn.execute(exists, params).fetchone()[0]:
                use_text = False
        semantic_cte = sql.SQL("sem AS (SELECT NULL::text AS content_sha256, NULL::bigint AS sem_rank WHERE false)")
        if vector is not None:
            from ..rag.vectors import vector_literal

            # the offers of each near text through the (model, content_sha256) index, nearest
            # texts first, at most a quarter of the candidates over all texts
            params.update(vec=vector_literal(vector), model=self.model, n_sem=w.semantic_candidates,
                          per_text=max(1, self.candidates // (4 * max(1, w.semantic_candidates))))
            cast = sql.SQL("::public.vector(384)") if len(vector) == 384 else sql.SQL("")
            # the HNSW index (0012) serves the ORDER BY … LIMIT once the table is large enough
            # to beat a sort (the pool's connections raise hnsw.ef_search and scan
            # iteratively, so that LIMIT n_sem > 40 and the model filter are honoured)
            semantic_cte = sql.SQL(
                "sem AS MATERIALIZED (SELECT content_sha256, row_number() OVER (ORDER BY d) AS sem_rank FROM ("
                " SELECT content_sha256, embedding{cast} OPERATOR(public.<=>) %(vec)s::public.vector{cast} AS d"
                " FROM catalog_embeddings WHERE model = %(model)s AND dim = {dim}"
                " ORDER BY d LIMIT %(n_sem)s) n),"
                " sem_offers AS MATERIALIZED (SELECT e.distributor, e.sku, s.sem_rank FROM (SELECT * FROM sem"
                " ORDER BY sem_rank) s CROSS JOIN LATERAL (SELECT e.distributor, e.sku FROM catalog_embedding_items e"
                " WHERE e.model = %(model)s AND e.content_sha256 = s.content_sha256 LIMIT %(per_text)s) e"
                " LIMIT %(n_cand)s)").format(cast=cast, dim=sql.Literal(len(vector)))

        cols = sql.SQL(", ").join(sql.SQL("i." + c) for c in _CANDIDATE_COLUMNS)
        tiers: list[sql.Composable] = []

        def tier(number: int, condition: str | sql.Composable, *, source: str = "items_normalized i",
                 order: str = "") -> None:
            cond = sql.SQL(condition) if isinstance(condition, str) else condition
            tiers.append(sql.SQL("(SELECT {cols}, {n} AS tier FROM {source} WHERE {base} AND {cond}{order} "
                                 "LIMIT %(n_cand)s)").format(
                cols=cols, n=sql.Literal(number), source=sql.SQL(source), base=base_where, cond=cond,
                order=sql.SQL(" ORDER BY " + order if order else "")))

        if use_text:
            if codes:
                tier(1, "(i.search_code = ANY(%(codes)s) OR i.search_code LIKE ANY(%(code_patterns)s))")
            if text_tiers:
                params["tier_all"] = text_tiers[0]
                tier(2, "i.search_tsv @@ to_tsquery('catalog_pt', %(tier_all)s)")
            if vector is not None:
                tier(3, "true", source="sem_offers se JOIN items_normalized i USING (distributor, sku)")
            if codes:
                tier(4, "i.search_code %% ANY(%(codes)s)",
                     order="(SELECT max(public.similarity(i.search_code, c)) FROM unnest(%(codes)s::text[]) c) DESC")
            for number, tsq in enumerate(text_tiers[1:], start=5):
                params[f"tier_{number}"] = tsq
                tier(number, f"i.search_tsv @@ to_tsquery('catalog_pt', %(tier_{number})s)")
        else:
            tier(1, "true", order="CASE WHEN %(target_w)s::float8 IS NULL THEN 0"
                                  " ELSE abs(i.power_w - %(target_w)s::float8) END ASC NULLS LAST, (i.availability = 'in_stock' OR i.stock_units > 0) DESC NULLS LAST,"
                                  " i.price_brl ASC NULLS LAST")
        candidates = sql.SQL(" UNION ALL ").join(tiers)

        # an offer's semantic rank: the place of its text among the nearest (one index
        # lookup of its text per candidate, then a search in a 50-element array)
        sem_rank = (sql.SQL("array_position((SELECT array_agg(content_sha256 ORDER BY sem_rank) FROM sem),"
                            " (SELECT e.content_sha256 FROM catalog_embedding_items e"
                            " WHERE e.distributor = i.distributor AND e.sku = i.sku AND e.model = %(model)s))")
                    if vector is not None else sql.SQL("NULL::int"))
        code_score = (sql.SQL(
            "CASE WHEN i.search_code = ANY(%(codes)s) THEN %(w_exact)s"
            " WHEN i.search_code LIKE ANY(%(code_patterns)s) THEN %(w_prefix)s ELSE 0 END"
            " + %(w_sim)s * greatest(0, (SELECT max(public.similarity(i.search_code, c)) FROM unnest(%(codes)s::text[]) c)"
            "   - %(min_sim)s) / (1 - %(min_sim)s)") if codes else sql.SQL("0"))
        text_score = (sql.SQL(
            "%(w_cov)s * (SELECT count(*) FROM unnest(q.tqs) t WHERE i.search_tsv @@ t)::float8 / %(n_terms)s"
            " + %(w_text)s * least(1, ts_rank_cd('{0.1, 0.2, 0.4, 1.0}', i.search_tsv, q.tsq))")
            if terms else sql.SQL("0"))
        power = sql.SQL(_bucket_expr("power_w", POWER_FACET_EDGES_W))
        price = sql.SQL(_bucket_expr("price_brl", PRICE_FACET_EDGES_BRL))
        statement = sql.SQL("""
WITH q AS MATERIALIZED (
    SELECT to_tsquery('catalog_pt', coalesce(%(tsq)s, '')) AS tsq,
           ARRAY(SELECT to_tsquery('catalog_pt', t) FROM unnest(%(terms)s::text[]) t) AS tqs),
{semantic_cte},
hits AS MATERIALIZED (SELECT * FROM ({candidates}) h LIMIT %(n_cand)s),
cand AS (SELECT DISTINCT ON (distributor, sku) * FROM hits ORDER BY distributor, sku, tier),
ranked AS MATERIALIZED (
    SELECT i.distributor, i.sku, i.category, i.brand, i.model, i.name, i.description, i.power_w, i.voltage_v,
           i.phases, i.price_brl, i.availability, i.stock_units, i.url,
           coalesce(i.product_key, i.distributor || '|' || i.sku) AS group_key,
           (i.search_code <> '' AND (i.search_code = ANY(%(codes)s)
                                      OR i.search_code LIKE ANY(%(exact_patterns)s))) AS exact_model,
           ({text_score}) + ({code_score})
           + CASE WHEN lower(public.unaccent(coalesce(i.brand, ''))) = ANY(%(brands_named)s) THEN %(w_brand)s ELSE 0 END
           + CASE WHEN %(target_w)s::float8 IS NOT NULL AND i.power_w IS NOT NULL
                  THEN %(w_power)s * greatest(0, 1 - abs(i.power_w - %(target_w)s) / %(target_w)s) ELSE 0 END
           + CASE WHEN i.availability = 'in_stock' OR i.stock_units > 0 THEN %(w_stock)s ELSE 0 END
           + coalesce(%(w_sem)s * %(rrf_k)s / (%(rrf_k)s + {sem_rank}), 0) AS score
    FROM cand i CROSS JOIN q
),
groups AS (
    SELECT group_key, max(score) AS score, bool_or(exact_model) AS exact,
           count(*) AS n, min(price_brl) AS min_price
    FROM ranked GROUP BY group_key
    ORDER BY bool_or(exact_model) DESC, max(score) DESC, count(*) DESC, min(price_brl) ASC NULLS LAST, group_key
    LIMIT %(k)s
),
offers AS (
    SELECT r.*, row_number() OVER (PARTITION BY r.group_key
               ORDER BY (r.availability = 'in_stock' OR r.stock_units > 0) DESC NULLS LAST,
                        r.price_brl ASC NULLS LAST, r.score DESC, r.distributor, r.sku) AS n
    FROM ranked r JOIN groups g USING (group_key)
),
facet AS (
    SELECT GROUPING(category, brand, distributor, phases, voltage_v, availability, power_bucket, price_bucket) AS g,
           category, brand, distributor, phases, voltage_v, availability, power_bucket, price_bucket, count(*) AS n
    FROM (SELECT category, brand, distributor, phases, voltage_v, availability,
                 {power} AS power_bucket, {price} AS price_bucket FROM ranked WHERE %(with_facets)s) m
    GROUP BY GROUPING SETS ((category), (brand), (distributor), (phases), (voltage_v), (availability),
                            (power_bucket), (price_bucket))
),
result AS (
    SELECT g.group_key, g.score AS g_score, g.exact, g.min_price, o.distributor, o.sku, o.category, o.brand,
           o.model, o.name, o.description, o.power_w, o.voltage_v, o.phases, o.price_brl, o.availability,
           o.stock_units, o.url, o.score,
           row_number() OVER (ORDER BY g.exact DESC, g.score DESC, g.n DESC, g.min_price ASC NULLS LAST,
                                       g.group_key, o.n) AS pos
    FROM groups g JOIN offers o USING (group_key)
    WHERE o.n <= %(per_product)s
)
SELECT r.group_key, r.g_score, r.exact, r.min_price, r.distributor, r.sku, r.category, r.brand, r.model,
       r.name, r.description, r.power_w, r.voltage_v, r.phases, r.price_brl, r.availability, r.stock_units,
       r.url, r.score,
       CASE WHEN r.pos = 1 THEN (SELECT count(*) FROM ranked) END,
       CASE WHEN r.pos = 1 THEN (SELECT count(*) FROM hits) >= %(n_cand)s END,
       CASE WHEN r.pos = 1 THEN (SELECT json_agg(json_build_array(g, category, brand, distributor, phases,
                                                voltage_v, availability, power_bucket, price_bucket, n))
                                 FROM facet) END
FROM result r ORDER BY r.pos
""").format(semantic_cte=semantic_cte, candidates=candidates, text_score=text_score, code_score=code_score,
            sem_rank=sem_rank, power=power, price=price)
        return statement, params



#: the columns a candidate carries from items_normalized to the scoring
_CANDIDATE_COLUMNS = ("distributor", "sku", "category", "brand", "model", "name", "description", "power_w",
                      "voltage_v", "phases", "price_brl", "availability", "stock_units", "url", "product_key",
                      "search_tsv", "search_code")
#: beyond this many free-text terms the "exactly m of n" tiers are not spelled out
MAX_TIERED_TERMS = 6


def _term_tiers(terms: Sequence[str]) -> list[str]:
    """tsquery texts of the text tiers: every term, then exactly m of the n terms for
    m = n−1 … 1 (``(a & b) | (a & c) …`` and not m+1 of them). Beyond
    ``MAX_TIERED_TERMS`` terms: every term, then any term but not every one."""
    from itertools import combinations

    terms = list(dict.fromkeys(terms))
    if not terms:
        return []

    def at_least(m: int) -> str:
        return " | ".join("(" + " & ".join(c) + ")" for c in combinations(terms, m))

    n = len(terms)
    if n == 1:
        return [terms[0]]
    if n > MAX_TIERED_TERMS:
        return [" & ".join(terms), f"({' | '.join(terms)}) & !({' & '.join(terms)})"]
    return [" & ".join(terms)] + [f"({at_least(m)}) & !({at_least(m + 1)})" for m in range(n - 1, 0, -1)]


def _facets(rows: Sequence[Sequence[Any]]) -> dict[str, list[tuple[Any, int]]]:
    """Facet counts from the ``GROUPING SETS`` rows ``[grouping, *values, count]``."""
    facets: dict[str, list[tuple[Any, int]]] = {name: [] for name in FACETS}
    for grouping, *values, count in rows:
        # GROUPING(): one bit per argument, 1 = not grouped by it (the first argument is the high bit)
        index = next(i for i in range(8) if not grouping & (1 << (7 - i)))
        value = values[index]
        if value is None:
            continue
        name = FACETS[index]
        if name == "power_w":
            value = _bucket_label(value, POWER_FACET_EDGES_W, "W")
        elif name == "price_brl":
            value = _bucket_label(value, PRICE_FACET_EDGES_BRL, "R$")
        elif name == "voltage_v":
            value = float(value)
        elif name == "phases":
            value = int(value)
        facets[name].append((value, int(count)))
    for name, values in facets.items():
        if name in ("power_w", "price_brl"):
            edges = POWER_FACET_EDGES_W if name == "power_w" else PRICE_FACET_EDGES_BRL
            order = {_bucket_label(i, edges, "W" if name == "power_w" else "R$"): i for i in range(1, len(edges) + 1)}
            values.sort(key=lambda v: order.get(v[0], 99))
        else:
            values.sort(key=lambda v: (-v[1], str(v[0])))
    return facets


def _dropped(before: SearchFilters, after: SearchFilters, name: str) -> bool:
    fields = {"power": ("power_min_w", "power_max_w"), "phases": ("phases",), "voltage": ("voltage_v",),
              "battery": ("battery_min_kwh", "battery_max_kwh")}[name]
    return any(getattr(before, f) != getattr(after, f) for f in fields)


def _group(rows: list[tuple]) -> tuple[ProductHit, ...]:
    products: dict[str, dict] = {}
    for (key, g_score, exact, min_price, distributor, sku, category, brand, model, name, description, power_w,
         voltage_v, phases, price, availability, stock_units, url, score) in rows:
        product = products.get(key)
        if product is None:
            product = products[key] = dict(
                product_key=key, category=category, brand=brand, model=model,
                title=name or description, power_w=power_w, voltage_v=voltage_v, phases=phases,
                score=round(float(g_score), 4), exact_model=bool(exact),
                min_price_brl=float(min_price) if min_price is not None else None, offers=[])
        product["offers"].append(Offer(distributor, sku, price, availability, stock_units, name or description, url,
                                       round(float(score), 4)))
    return tuple(ProductHit(**{**p, "offers": tuple(p["offers"])}) for p in products.values())


# --------------------------------------------------------------------------------------
# evaluation (judged queries)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JudgedQuery:
    """A buyer query and what counts as a right answer: any product whose offers include
    one of ``relevant`` (``distributor|sku``) or whose ``product_key`` is listed."""

    query: str
    relevant: frozenset[str]
    split: str                      # "tuning" | "evaluation"
    note: str = ""
    filters: SearchFilters = field(default_factory=SearchFilters)


def load_judged(path) -> list[JudgedQuery]:
    out = []
    for line in open(path, encoding="utf-8"):
        if not line.strip() or line.lstrip().startswith("//"):
            continue
        row = json.loads(line)
        filters = SearchFilters(**{k: tuple(v) if isinstance(v, list) else v
                                   for k, v in (row.get("filters") or {}).items()})
        out.append(JudgedQuery(row["query"], frozenset(row["relevant"]), row["split"], row.get("note", ""), filters))
    return out


def is_relevant(product: ProductHit, relevant: frozenset[str]) -> bool:
    return product.product_key in relevant or any(f"{o.distributor}|{o.sku}" in relevant for o in product.offers)


@dataclass(frozen=True)
class Evaluation:
    queries: int
    hit_at_1: float
    hit_at_5: float
    mrr: float
    misses: tuple[str, ...]


def evaluate(search: Callable[[JudgedQuery], SearchResult], judged: Sequence[JudgedQuery], k: int = 5) -> Evaluation:
    """hit@1, hit@k (a relevant product among the first k) and MRR over ``judged``."""
    hits1 = hitsk = 0
    rr = 0.0
    misses = []
    for j in judged:
        products = search(j).products
        rank = next((i for i, p in enumerate(products, 1) if is_relevant(p, j.relevant)), None)
        hits1 += rank == 1
        hitsk += rank is not None and rank <= k
        rr += 1 / rank if rank else 0.0
        if rank is None or rank > k:
            misses.append(j.query)
    n = max(1, len(judged))
    return Evaluation(len(judged), hits1 / n, hitsk / n, rr / n, tuple(misses))


# --------------------------------------------------------------------------------------
# the indexes of items_normalized around a first load
# --------------------------------------------------------------------------------------

#: the secondary indexes of ``items_normalized``: the search's (migration 0012) and the
#: lookups of 0001/0008, with the migrations' names and definitions (a test compares them
#: with what the migrations built). A first load builds them once after its rows are in
#: (:func:`defer_item_indexes`, :func:`ensure_item_indexes`) instead of maintaining them
#: row by row: the per-row GIN maintenance cost PostgreSQL more time than the load's whole
#: budget (docs/catalog.md, "Performance").
ITEM_INDEXES: dict[str, str] = {
    "items_normalized_product_key_idx":
        "CREATE INDEX IF NOT EXISTS items_normalized_product_key_idx ON items_normalized (product_key)",
    "items_normalized_source_file_idx":
        "CREATE INDEX IF NOT EXISTS items_normalized_source_file_idx ON items_normalized (source_file)",
    "items_normalized_category_idx":
        "CREATE INDEX IF NOT EXISTS items_normalized_category_idx ON items_normalized (category)",
    "items_normalized_search_tsv_idx":
        "CREATE INDEX IF NOT EXISTS items_normalized_search_tsv_idx ON items_normalized USING gin (search_tsv)",
    "items_normalized_search_code_trgm_idx":
        "CREATE INDEX IF NOT EXISTS items_normalized_search_code_trgm_idx"
        " ON items_normalized USING gin (search_code public.gin_trgm_ops)",
    "items_normalized_category_power_idx":
        "CREATE INDEX IF NOT EXISTS items_normalized_category_power_idx ON items_normalized (category, power_w)",
    "items_normalized_price_idx":
        "CREATE INDEX IF NOT EXISTS items_normalized_price_idx ON items_normalized (price_brl)",
}
# one lock per schema: a deferral and a rebuild never interleave
_INDEX_LOCK = "SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':catalog_item_indexes'))"


def defer_item_indexes(warehouse: Warehouse) -> bool:
    """Before a first load: when ``items_normalized`` is empty, drop its secondary indexes
    (:data:`ITEM_INDEXES`) so that the load does not maintain them row by row; returns
    whether it did. The caller rebuilds them with :func:`ensure_item_indexes` once the
    rows are in (also after a failed load). A table with rows keeps its indexes: searches
    may be running on it. A role that does not own the table (it may write rows, not drop
    indexes) loads with the indexes in place."""
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        conn.execute(_INDEX_LOCK)
        if conn.execute("SELECT EXISTS (SELECT 1 FROM items_normalized)").fetchone()[0]:
            conn.rollback()
            return False
        try:
            for name in ITEM_INDEXES:
                conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(name)))
        except psycopg.errors.InsufficientPrivilege as exc:
            conn.rollback()
            log.info("items_normalized keeps its indexes during the load (%s)", str(exc).strip())
            return False
        conn.commit()
    return True


#: how long a connection of the index build waits for a lock: one connection waits for the
#: other in Python, a wait the server's deadlock detection cannot see
INDEX_LOCK_TIMEOUT = "60s"


def _lock_timeout(conn: psycopg.Connection) -> None:
    conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(INDEX_LOCK_TIMEOUT)))


def _build_indexes(warehouse: Warehouse, names: Sequence[str], locked: threading.Event) -> None:
    """The second connection's share: it locks the table before the first connection
    takes any lock on it (so no request queued in between can wait on both), then builds."""
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        _lock_timeout(conn)
        conn.execute("LOCK TABLE items_normalized IN SHARE MODE")
        locked.set()
        for name in names:
            conn.execute(ITEM_INDEXES[name])
        conn.commit()


def ensure_item_indexes(warehouse: Warehouse) -> list[str]:
    """Build the indexes of ``items_normalized`` (:data:`ITEM_INDEXES`) that are missing (after a load
    that deferred them, or one that stopped before rebuilding them); returns their names.
    Cheap when they all exist. Several are built on two connections at once (PostgreSQL
    builds a GIN index on one core; the two GIN indexes go to different connections),
    all while the first connection holds the schema's index lock. A lock not granted
    within :data:`INDEX_LOCK_TIMEOUT` fails the attempt, which is retried
    (:func:`ysh.db.with_reconnect`)."""
    return db.with_reconnect(lambda: _ensure_item_indexes(warehouse), what="building the indexes of items_normalized")


def _ensure_item_indexes(warehouse: Warehouse) -> list[str]:
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        conn.execute(_INDEX_LOCK)
        have = {name for (name,) in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename = 'items_normalized'")}
        built = [name for name in ITEM_INDEXES if name not in have]
        # the dearest first, dealt alternately to the two connections
        order = sorted(built, key=lambda name: "USING gin" not in ITEM_INDEXES[name])
        mine, theirs = order[0::2], order[1::2]
        _lock_timeout(conn)
        other = None
        try:
            with ThreadPoolExecutor(1) as pool:
                if theirs:
                    locked = threading.Event()
                    other = pool.submit(_build_indexes, warehouse, theirs, locked)
                    while not locked.wait(0.05) and not other.done():
                        pass
                try:
                    for name in mine:
                        conn.execute(ITEM_INDEXES[name])
                finally:
                    error = other.exception() if other is not None else None
            if error is not None:
                raise error
        except psycopg.errors.InsufficientPrivilege as exc:
            conn.rollback()
            done = theirs if other is not None and other.exception() is None else []
            log.warning("items_normalized lacks the indexes %s and this role may not build them (%s): "
                        "searches read the table without them until its owner runs the catalog",
                        ", ".join(n for n in built if n not in done), str(exc).strip())
            return done
        conn.commit()
    return built


# --------------------------------------------------------------------------------------
# catalog embeddings (incremental by content hash)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmbeddingSync:
    """What one :func:`sync_embeddings` pass did."""

    offers: int              # offers in items_normalized
    texts: int               # distinct texts among them
    embedded: int            # texts sent to the model now (new or changed)
    reused: int              # texts whose vector was already stored
    offers_changed: int      # offers whose text (hence vector) is new or changed
    offers_removed: int      # offers gone from the catalog
    vectors_removed: int     # vectors no offer uses any more
    model: str
    dimensions: int | None


def sync_embeddings(warehouse: Warehouse, encode: Callable[[list[str]], Any], model: str, *,
                    batch_size: int = 256, progress: Callable[[int, int], None] | None = None) -> EmbeddingSync:
    """Bring ``catalog_embeddings`` / ``catalog_embedding_items`` (migration 0012) up to
    date with ``items_normalized``, embedding only texts not stored yet for ``model``.

    Each offer's :func:`embedding_text` is keyed by its sha256: an offer whose text did
    not change keeps its vector, a changed one gets the vector of its new text (embedded
    once however many offers share it), rows of removed offers and unused vectors are
    deleted. ``encode(texts) → array (n, dim)`` is called only when something is new."""
    from ..rag.vectors import vector_literal

    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        items = conn.execute("SELECT distributor, sku, category, brand, model, name, description "
                             "FROM items_normalized").fetchall()
        texts: dict[str, str] = {}
        wanted: dict[tuple[str, str], str] = {}
        for distributor, sku, category, brand, model_code, name, description in items:
            text = embedding_text(category, brand, model_code, name, description)
            sha = text_sha256(text)
            texts[sha] = text
            wanted[(distributor, sku)] = sha
        have_items = {(d, s): sha for d, s, sha in conn.execute(
            "SELECT distributor, sku, content_sha256 FROM catalog_embedding_items WHERE model = %s", (model,))}
        have_vectors = {sha for (sha,) in conn.execute(
            "SELECT content_sha256 FROM catalog_embeddings WHERE model = %s", (model,))}
        missing = [sha for sha in texts if sha not in have_vectors]
        dimensions = None
        for start in range(0, len(missing), batch_size):
            batch = missing[start:start + batch_size]
            vectors = encode([texts[sha] for sha in batch])
            with conn.cursor() as cur:
                rows = []
                for sha, vector in zip(batch, vectors):
                    dimensions = len(vector)
                    rows.append((model, sha, texts[sha], dimensions, vector_literal(vector)))
                cur.executemany(
                    "INSERT INTO catalog_embeddings (model, content_sha256, text, dim, embedding) "
                    "VALUES (%s, %s, %s, %s, %s::public.vector) ON CONFLICT (model, content_sha256) DO UPDATE "
                    "SET embedding = EXCLUDED.embedding, dim = EXCLUDED.dim, updated_at = now()", rows)
            conn.commit()
            if progress is not None:
                progress(min(start + batch_size, len(missing)), len(missing))
        changed = [(d, s, model, sha) for (d, s), sha in wanted.items() if have_items.get((d, s)) != sha]
        removed = [(d, s, model) for (d, s) in have_items if (d, s) not in wanted]
        with conn.cursor() as cur:
            if changed:
                cur.executemany(
                    "INSERT INTO catalog_embedding_items (distributor, sku, model, content_sha256) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT (distributor, sku, model) DO UPDATE "
                    "SET content_sha256 = EXCLUDED.content_sha256, updated_at = now()", changed)
            if removed:
                cur.executemany("DELETE FROM catalog_embedding_items WHERE distributor = %s AND sku = %s "
                                "AND model = %s", removed)
            cur.execute("DELETE FROM catalog_embeddings v WHERE v.model = %s AND NOT EXISTS ("
                        " SELECT 1 FROM catalog_embedding_items e WHERE e.model = v.model"
                        " AND e.content_sha256 = v.content_sha256)", (model,))
            vectors_removed = cur.rowcount
        conn.commit()
        if dimensions is None:
            row = conn.execute("SELECT max(dim) FROM catalog_embeddings WHERE model = %s", (model,)).fetchone()
            dimensions = row[0] if row else None
    return EmbeddingSync(offers=len(wanted), texts=len(texts), embedded=len(missing),
                         reused=len(texts) - len(missing), offers_changed=len(changed),
                         offers_removed=len(removed), vectors_removed=max(0, vectors_removed), model=model,
                         dimensions=dimensions)
