"""Live business data as documents for Hélio: catalog products and current B1/B3 tariffs.

Each catalog product (``products`` with its offers in ``items_normalized``) and each
utility's current B1 and B3 *Tarifa de Aplicação* (``tarifas_normalized`` +
``tarifas_fio_b`` + ``tarifas_bandeiras``, the book of :mod:`ysh.tariffs.store`)
becomes a short Portuguese text record with a stable path:

* ``catalog://produto/<marca>/<modelo>`` — a physical product across distributors
  (``products.product_key`` = ``brand|MODELKEY``), with its offers (distributor, SKU, price,
  stock); an item without a product key (no brand or model) is ``catalog://item/<distribuidor>/<sku>``;
* ``tarifa://<distribuidora>/<B1|B3>`` — the tariff in force today, with the month's flag.

The render functions are pure; :func:`records_from_warehouse` reads the tables;
:func:`live_records_table` is the Pathway source the RAG pipeline takes as one more
document table (``data: bytes``, ``_metadata: Json``), emitting a row only when a record's
text changed and deleting the rows whose product or tariff disappeared.
"""

import hashlib
import logging
import re
import threading
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from .. import db
from ..db import Warehouse

log = logging.getLogger("ysh.rag.records")

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
PRODUCT_SCHEME = "catalog://"
TARIFF_SCHEME = "tarifa://"
SUBGROUPS = ("B1", "B3")

CATEGORY_PT = {
    "module": "Módulo fotovoltaico",
    "inverter": "Inversor",
    "microinverter": "Microinversor",
    "hybrid_inverter": "Inversor híbrido",
    "offgrid_inverter": "Inversor off-grid",
    "battery": "Bateria",
    "kit": "Kit gerador fotovoltaico",
    "structure": "Estrutura de fixação",
    "string_box": "String box",
    "cable": "Cabo",
    "charge_controller": "Controlador de carga",
    "ev_charger": "Carregador veicular",
    "pump_kit": "Kit de bombeamento solar",
    "accessory": "Acessório",
    "other": "Item",
}
SUBGROUP_PT = {
    "B1": "B1 (residencial, baixa tensão)",
    "B3": "B3 (comercial, serviços e demais classes, baixa tensão)",
}
MONTHS_PT = ["janeiro", "fevereiro", "março", "abril", "maio", "junho", "julho", "agosto", "setembro",
             "outubro", "novembro", "dezembro"]


@dataclass(frozen=True)
class Record:
    """One live business record, indexed like a document."""

    path: str
    kind: str  # "produto" | "item" | "tarifa"
    title: str
    text: str
    updated_at: datetime | None  # when the source row last changed (UTC)

    @property
    def content_sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def metadata(self) -> dict[str, Any]:
        """The document metadata (the shape of ``pw.io.fs.read``'s ``_metadata``: unix
        seconds in ``modified_at``) plus title, kind and source."""
        stamp = self.updated_at.timestamp() if self.updated_at is not None else None
        return {"path": self.path, "title": self.title, "kind": self.kind, "source": "warehouse",
                "modified_at": int(stamp) if stamp is not None else None,
                "updated_at": self.updated_at.isoformat() if self.updated_at is not None else None,
                "size": len(self.text.encode("utf-8"))}


# --------------------------------------------------------------------------------------
# formatting (pure)
# --------------------------------------------------------------------------------------
def slug(text: str) -> str:
    """Lower-case ASCII with dashes (``"JA Solar"`` → ``"ja-solar"``): stable path parts."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", str(text)) if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-") or "-"


def number_pt(value: float, decimals: int = 2) -> str:
    """Brazilian number format: ``1234.5`` → ``"1.234,50"``."""
    text = f"{value:,.{decimals}f}"
    return text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")


def brl(value: float | None, decimals: int = 2) -> str:
    return "preço não informado" if value is None else f"R$ {number_pt(value, decimals)}"


def _num(value: float | None, unit: str, decimals: int = 2) -> str | None:
    if value is None:
        return None
    text = number_pt(value, decimals)
    if "," in text:
        text = text.rstrip("0").rstrip(",")
    return f"{text} {unit}".strip()


def _power(power_w: float | None) -> str | None:
    if power_w is None or power_w <= 0:
        return None
    if power_w >= 1000:
        return _num(power_w / 1000, "kW", 3)
    return _num(power_w, "W", 1)


def _date_pt(day: date | None) -> str:
    return day.strftime("%d/%m/%Y") if day else "sem data de fim"


def product_path(product_key: str) -> str:
    brand, _, model = product_key.partition("|")
    return f"{PRODUCT_SCHEME}produto/{slug(brand)}/{slug(model)}"


def item_path(distributor: str, sku: str) -> str:
    return f"{PRODUCT_SCHEME}item/{slug(distributor)}/{sku.strip()}"


def tariff_path(utility: str, subgroup: str) -> str:
    return f"{TARIFF_SCHEME}{slug(utility)}/{subgroup.upper()}"


def _specs(item: Mapping[str, Any]) -> list[str]:
    specs = []
    for label, key, unit, decimals in (
        ("eficiência", "efficiency_pct", "%", 2), ("Voc", "voc_v", "V", 2), ("Isc", "isc_a", "A", 2),
        ("Vmp", "vmp_v", "V", 2), ("Imp", "imp_a", "A", 2),
        ("tensão CC máxima", "max_dc_voltage_v", "V", 0),
    ):
        value = _num(item.get(key), unit, decimals)
        if value:
            specs.append(f"{label} {value}")
    if item.get("technology"):
        specs.insert(0, f"tecnologia {item['technology']}")
    if item.get("mppt_count"):
        specs.append(f"{item['mppt_count']} MPPT")
    if item.get("phases"):
        specs.append("monofásico" if item["phases"] == 1 else f"{item['phases']} fases")
    return specs


#: what the Inmetro registry says of an item (items_inmetro, ysh.catalog.inmetro)
_REGISTRY_PT = {"registered": "com registro no INMETRO", "not_registered": "sem registro no INMETRO",
                "power_mismatch": "com registro no INMETRO para outra potência",
                "expired": "com registro no INMETRO vencido ou cancelado"}


def inmetro_sentence(item: Mapping[str, Any]) -> str | None:
    """What the Inmetro registry says of an item, as a sentence (None: not judged, or a
    category the registry does not cover). ``item`` carries ``inmetro_registry_status``,
    ``inmetro_registry_registration``, ``inmetro_registry_model``, ``inmetro_registry_power_w``
    and ``power_w`` [W]."""
    status = item.get("inmetro_registry_status")
    if status not in _REGISTRY_PT:
        return None
    number = item.get("inmetro_registry_registration")
    model = item.get("inmetro_registry_model")
    row = (f"nº {number}" if number else "sem número publicado") + (f", modelo {model}" if model else "")
    if status == "registered":
        return f"Registro no INMETRO: sim, registrado ({row})."
    if status == "not_registered":
        return "Registro no INMETRO: não; o modelo não consta no registro do INMETRO de módulos e inversores."
    if status == "expired":
        return f"Registro no INMETRO: vencido ou cancelado ({row}); não está regular."
    listed, registered = _power(item.get("power_w")), _power(item.get("inmetro_registry_power_w"))
    return (f"Registro no INMETRO: registrado ({row}), mas com potência registrada de {registered or '?'}, "
            f"diferente da anunciada ({listed or '?'}).")


def _offer_line(item: Mapping[str, Any]) -> str:
    stock = item.get("stock_units")
    stock_text = "estoque não informado" if stock is None else (
        "sem estoque" if stock == 0 else f"{stock} unidade{'s' if stock != 1 else ''} em estoque")
    inmetro = _REGISTRY_PT.get(item.get("inmetro_registry_status") or "") or {
        "ok": "INMETRO regular", "missing": "sem registro INMETRO",
        "invalid": "registro INMETRO inválido"}.get(item.get("inmetro_status") or "", "")
    parts = [f"{item['distributor']} (SKU {item['sku']}): {brl(item.get('price_brl'))}", stock_text]
    if inmetro:
        parts.append(inmetro)
    return ", ".join(parts)


def render_product(product: Mapping[str, Any], offers: Iterable[Mapping[str, Any]] = ()) -> str:
    """A product of ``products`` (with its rows of ``items_normalized``) as Portuguese text.

    Parameters
    ----------
    product : mapping
        a ``products`` row: brand, model, category, power_w [W], offers, distributors,
        min/median/max_price_brl [R$].
    offers : iterable of mappings
        its ``items_normalized`` rows (distributor, sku, price_brl [R$], stock_units, specs).
    """
    offers = sorted(offers, key=lambda o: (o.get("price_brl") is None, o.get("price_brl") or 0.0,
                                           o["distributor"], o["sku"]))
    category = CATEGORY_PT.get(product["category"], "Item")
    power = _power(product.get("power_w"))
    head = f"{category} {product['brand']} {product['model']}" + (f" de {power}" if power else "")
    lines = [head + "."]
    n_offers, n_dist = product.get("offers") or len(offers), product.get("distributors") or len(
        {o["distributor"] for o in offers})
    availability = (f"Disponível no catálogo YSH em {n_dist} distribuidora{'s' if n_dist != 1 else ''} "
                    f"({n_offers} oferta{'s' if n_offers != 1 else ''}).")
    if product.get("min_price_brl") is not None:
        low, high = product["min_price_brl"], product.get("max_price_brl")
        if high is not None and abs(high - low) >= 0.005:
            availability += (f" Preço de {brl(low)} a {brl(high)}"
                             f" (mediana {brl(product.get('median_price_brl'))}).")
        else:
            availability += f" Preço {brl(low)}."
        if product.get("power_w") and product["category"] == "module":
            availability += f" Menor preço por watt: {brl(low / product['power_w'], 2)}/W."
    lines.append(availability)
    specs = next((_specs(o) for o in offers if _specs(o)), [])
    if specs:
        lines.append("Especificações: " + "; ".join(specs) + ".")
    # the registry's word on the product: an offer's, registered ones first (offers of one
    # product share brand and model; their listed powers may differ)
    judged = sorted((o for o in offers if inmetro_sentence(o)),
                    key=lambda o: list(_REGISTRY_PT).index(o["inmetro_registry_status"]))
    if judged:
        lines.append(inmetro_sentence(judged[0]))
    if offers:
        lines.append("Ofertas: " + "; ".join(_offer_line(o) for o in offers) + ".")
        descriptions = [o["description"] for o in offers if o.get("description")]
        if descriptions:
            lines.append(f"Descrição: {descriptions[0]}")
    return "\n".join(lines)


def render_item(item: Mapping[str, Any]) -> str:
    """An ``items_normalized`` row that belongs to no product (no brand or model)."""
    category = CATEGORY_PT.get(item["category"], "Item")
    name = " ".join(x for x in (item.get("brand"), item.get("model")) if x) or (item.get("description") or item["sku"])
    power = _power(item.get("power_w"))
    lines = [f"{category} {name}" + (f" de {power}" if power else "") + "."]
    lines.append("Oferta no catálogo YSH: " + _offer_line(item) + ".")
    specs = _specs(item)
    if specs:
        lines.append("Especificações: " + "; ".join(specs) + ".")
    if inmetro_sentence(item):
        lines.append(inmetro_sentence(item))
    if item.get("description") and item.get("description") != name:
        lines.append(f"Descrição: {item['description']}")
    return "\n".join(lines)


def render_tariff(tariff, flag=None) -> str:
    """A tariff in force (a :class:`ysh.tariffs.book.TariffAt`) and the month's flag (a
    :class:`ysh.tariffs.aneel.FlagMonth` or None) as Portuguese text [R$/kWh, without
    taxes]. Fio B is the TUSD component charged on compensated energy under Lei
    14.300/2022, Art. 27 (the transition share is in the regulation documents)."""
    subgroup = tariff.subgroup.upper()
    total = tariff.te_brl_per_kwh + tariff.tusd_brl_per_kwh
    valid = f"vigente desde {_date_pt(tariff.valid_from)}" + (
        f" até {_date_pt(tariff.valid_to)}" if tariff.valid_to else " (sem data de fim)")
    lines = [
        f"Tarifa {SUBGROUP_PT.get(subgroup, subgroup)} da distribuidora {tariff.utility}, "
        f"modalidade {tariff.modality}.",
        f"Tarifa de Aplicação homologada pela ANEEL, sem impostos, {valid}"
        + (f" ({tariff.resolution})." if tariff.resolution else "."),
        f"TE (tarifa de energia): {brl(tariff.te_brl_per_kwh, 5)} por kWh. "
        f"TUSD (tarifa de uso do sistema de distribuição): {brl(tariff.tusd_brl_per_kwh, 5)} por kWh. "
        f"Total TE + TUSD: {brl(total, 5)} por kWh.",
    ]
    if tariff.fio_b_brl_per_kwh is not None:
        lines.append(f"TUSD Fio B: {brl(tariff.fio_b_brl_per_kwh, 5)} por kWh (parcela cobrada sobre a energia "
                     "compensada na geração distribuída, Lei 14.300/2022).")
    if flag is not None:
        month = f"{MONTHS_PT[flag.month.month - 1]} de {flag.month.year}"
        addon = flag.addon_brl_per_kwh
        lines.append(f"Bandeira tarifária de {month}: {flag.flag}"
                     + (f", acréscimo de {brl(addon, 5)} por kWh; total com bandeira {brl(total + addon, 5)} por kWh."
                        if addon else ", sem acréscimo."))
    lines.append("Valores sem ICMS e sem PIS/COFINS.")
    return "\n".join(lines)


def product_title(product: Mapping[str, Any]) -> str:
    return f"{CATEGORY_PT.get(product['category'], 'Item')} {product['brand']} {product['model']}"


# --------------------------------------------------------------------------------------
# reading the warehouse
# --------------------------------------------------------------------------------------
_ITEM_COLUMNS = ("distributor", "sku", "category", "brand", "model", "description", "power_w", "price_brl",
                 "stock_units", "inmetro_status", "efficiency_pct", "technology", "voc_v", "isc_a", "vmp_v",
                 "imp_a", "mppt_count", "phases", "max_dc_voltage_v", "product_key", "ingested_at")
_PRODUCT_COLUMNS = ("product_key", "brand", "model", "category", "power_w", "offers", "distributors",
                    "min_price_brl", "median_price_brl", "max_price_brl", "updated_at")


def _dicts(conn, query: str, params: tuple = ()) -> list[dict]:
    cur = conn.execute(query, params)
    names = [c.name for c in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def catalog_records(conn) -> list[Record]:
    """Product records (and records of items that belong to no product)."""
    # with what the Inmetro registry says of each item (items_inmetro, when judged)
    items = _dicts(conn, f"SELECT {', '.join('n.' + c for c in _ITEM_COLUMNS)}, "
                         "r.inmetro_status AS inmetro_registry_status, "
                         "r.registration AS inmetro_registry_registration, "
                         "r.registry_model AS inmetro_registry_model, r.registry_power_w AS inmetro_registry_power_w "
                         "FROM items_normalized n LEFT JOIN items_inmetro r USING (distributor, sku)")
    by_product: dict[str, list[dict]] = defaultdict(list)
    out = []
    for item in items:
        if item["product_key"]:
            by_product[item["product_key"]].append(item)
        else:
            out.append(Record(item_path(item["distributor"], item["sku"]), "item",
                              f"{CATEGORY_PT.get(item['category'], 'Item')} {item['sku']} ({item['distributor']})",
                              render_item(item), item["ingested_at"]))
    for product in _dicts(conn, f"SELECT {', '.join(_PRODUCT_COLUMNS)} FROM products"):
        offers = by_product.get(product["product_key"], [])
        out.append(Record(product_path(product["product_key"]), "produto", product_title(product),
                          render_product(product, offers), product["updated_at"]))
    return out


def tariff_records(conn, book, today: date) -> list[Record]:
    """Each utility's B1 and B3 tariff in force on ``today`` in ``book`` (a
    :class:`ysh.tariffs.book.TariffBook`; utilities without one, or with an ambiguous one,
    get no record), stamped with the newest ``updated_at`` of its rows in force."""
    from ..tariffs.book import TariffLookupError
    from ..tariffs.store import tariffs_on

    updated = defaultdict(lambda: None)
    for utility, subgroup, stamp in conn.execute(
            "SELECT utility, upper(subgroup), max(updated_at) FROM tarifas_normalized "
            "WHERE unit = 'MWh' AND valid_from <= %s AND (valid_to IS NULL OR valid_to >= %s) "
            "AND base = 'aplicacao' AND upper(subgroup) IN ('B1', 'B3') GROUP BY 1, 2", (today, today)).fetchall():
        updated[(utility, subgroup)] = stamp
    flag = book.flag_of(today)
    out = []
    for _, subgroup, at in tariffs_on(book, today, SUBGROUPS):
        if isinstance(at, TariffLookupError):
            log.debug("no live tariff record: %s", at)
            continue
        stamp = updated[(at.utility, subgroup)]
        out.append(Record(tariff_path(at.utility, subgroup), "tarifa", f"Tarifa {subgroup} {at.utility}",
                          render_tariff(at, flag), stamp))
    return out


def records_from_warehouse(warehouse: Warehouse, today: date | None = None) -> list[Record]:
    """Every live record (catalog products and current B1/B3 tariffs), sorted by path.

    ``today`` (default: today in America/Sao_Paulo) picks the tariffs in force."""
    from ..tariffs.store import book_from_warehouse

    today = today or datetime.now(SAO_PAULO).date()
    book = book_from_warehouse(warehouse)
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        records = catalog_records(conn) + tariff_records(conn, book, today)
    seen: dict[str, Record] = {}
    for record in records:
        seen.setdefault(record.path, record)  # two SKUs slugging alike: keep the first
    return sorted(seen.values(), key=lambda r: r.path)


_FINGERPRINT = (
    "SELECT (SELECT count(*) FROM products), (SELECT max(updated_at) FROM products),"
    " (SELECT count(*) FROM items_normalized), (SELECT max(ingested_at) FROM items_normalized),"
    " (SELECT count(*) FROM tarifas_normalized), (SELECT max(updated_at) FROM tarifas_normalized),"
    " (SELECT count(*) FROM tarifas_fio_b), (SELECT max(updated_at) FROM tarifas_fio_b),"
    " (SELECT count(*) FROM tarifas_bandeiras), (SELECT max(updated_at) FROM tarifas_bandeiras)"
)


def warehouse_fingerprint(warehouse: Warehouse) -> tuple:
    """Cheap change detector: row counts and newest update times of the source tables."""
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        return tuple(conn.execute(_FINGERPRINT).fetchone())


# --------------------------------------------------------------------------------------
# diffing and the Pathway source
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RecordChanges:
    upserts: list[Record]
    deletions: list[str]  # paths


def diff_records(previous: Mapping[str, str], current: Iterable[Record]) -> RecordChanges:
    """What to send given the texts already sent (path → text): records whose text is new
    or changed, and the paths no longer present."""
    current = list(current)
    upserts = [r for r in current if previous.get(r.path) != r.text]
    present = {r.path for r in current}
    return RecordChanges(upserts, sorted(p for p in previous if p not in present))


def _pathway():
    import pathway as pw

    return pw


def _schema():
    pw = _pathway()

    class LiveRecordSchema(pw.Schema):
        path: str = pw.column_definition(primary_key=True)
        data: bytes
        metadata: pw.Json

    return LiveRecordSchema


def _subject_class():
    pw = _pathway()

    class LiveRecordsSubject(pw.io.python.ConnectorSubject):
        """Polls the warehouse every ``poll_s`` seconds; upserts records whose text changed,
        deletes records that disappeared (keyed by path). A warehouse error is logged and
        retried at the next poll, never raised into the pipeline."""

        def __init__(self, warehouse: Warehouse, poll_s: float, today=None):
            super().__init__(datasource_name="rag-live-records", session_type="upsert")
            self.warehouse, self.poll_s, self._today = warehouse, poll_s, today
            self._stop = threading.Event()
            self._sent: dict[str, str] = {}
            self._meta: dict[str, dict] = {}
            self._fingerprint = None
            self.polls = 0

        def stop(self) -> None:
            self._stop.set()

        def on_stop(self) -> None:
            self._stop.set()

        def poll_once(self) -> RecordChanges | None:
            today = self._today() if callable(self._today) else (self._today or datetime.now(SAO_PAULO).date())
            fingerprint = (warehouse_fingerprint(self.warehouse), today)
            if fingerprint == self._fingerprint:
                return None
            changes = diff_records(self._sent, records_from_warehouse(self.warehouse, today))
            self._fingerprint = fingerprint
            return changes

        def run(self) -> None:
            pw = _pathway()
            while not self._stop.is_set():
                try:
                    changes = self.poll_once()
                except Exception as exc:  # warehouse down, table missing: keep serving, retry
                    log.warning("live records: reading the warehouse failed (%s); retrying in %.0f s",
                                exc, self.poll_s)
                    changes = None
                self.polls += 1
                if changes and (changes.upserts or changes.deletions):
                    for path in changes.deletions:
                        self.delete(path=path, data=self._sent.pop(path).encode("utf-8"),
                                    metadata=pw.Json(self._meta.pop(path)))
                    for record in changes.upserts:
                        meta = record.metadata()
                        if record.path in self._sent and record.updated_at is None:
                            meta["modified_at"] = int(datetime.now(timezone.utc).timestamp())
                        self.next(path=record.path, data=record.text.encode("utf-8"), metadata=pw.Json(meta))
                        self._sent[record.path], self._meta[record.path] = record.text, meta
                    self.commit()
                    log.info("live records: %d upserted, %d deleted (%d in total)",
                             len(changes.upserts), len(changes.deletions), len(self._sent))
                self._stop.wait(self.poll_s)

    return LiveRecordsSubject


def live_records_subject(warehouse: Warehouse, poll_s: float = 5.0, today=None):
    """The connector subject behind :func:`live_records_table` (``today``: a date or a
    callable returning one, for tests; default today in America/Sao_Paulo)."""
    return _subject_class()(warehouse, poll_s, today)


def live_records_table(warehouse: Warehouse, poll_s: float = 5.0, *, name: str = "rag_live_records",
                       subject=None, today=None):
    """A streaming Pathway table of the live records: ``data`` (the text, UTF-8 bytes) and
    ``_metadata`` (Json: path, title, kind, modified_at [unix s], updated_at, size,
    source="warehouse"), one row per path, updated only when the text changes.

    Pass it to the document store beside the folder's table (same two columns); ``today``
    as in :func:`live_records_subject`."""
    pw = _pathway()
    subject = subject or live_records_subject(warehouse, poll_s, today)
    table = pw.io.python.read(subject, schema=_schema(), name=name, autocommit_duration_ms=200)
    return table.select(data=pw.this.data, _metadata=pw.this.metadata)
