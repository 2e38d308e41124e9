"""Storefront exports: what a feed's cells hold when its headers say nothing (pure Python).

Distributors' real exports are seldom tidy feeds. A browser scraping extension names the
columns after CSS classes (``loaded src``, ``title-left``, ``MuiTypography-root 2``),
moves columns between pages of one site, writes prices with non-breaking spaces, mixes
menu and breadcrumb rows with products and may pack several products in one wide row;
a scraper's JSON dump has an ``id`` but no SKU, the power only in the description, the
distributor in ``manufacturer`` and, now and then, fields shifted by one. This module
reads those shapes:

* :func:`infer_columns` — the role of each column whose header is not a known synonym,
  from what its cells hold (link, image, name, description, price, availability, brand,
  model, quantity), with a confidence; named headers stay the first choice;
* :func:`split_wide_rows` — a row that holds several products side by side becomes one
  record per product;
* :func:`non_product_reason` — menus, breadcrumbs, filter bars, repeated headers and
  empty rows, which are counted per file and never become items;
* :func:`derive_sku` — a stable SKU from what the export offers (precedence in
  docs/catalog.md);
* generator kits' components, structure and distribution centre are read in
  :mod:`ysh.catalog.kits` (:func:`~ysh.catalog.kits.kit_details`).

The rules are documented in docs/catalog.md ("Storefront exports").
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from . import parsing as p
from .parsing.brands import _BRAND_INDEX, _brand_key
from .parsing.facts import _NOT_A_MODEL
from .feeds import FeedRecord, Value

#: roles a column can be given by its content, and the canonical field each one fills
ROLE_FIELDS: dict[str, str] = {
    "sku_text": "sku_text", "link": "url", "image": "image", "name": "name",
    "description": "description", "price": "price", "availability": "availability",
    "brand": "brand", "model": "model", "quantity": "quantity", "text": "text",
}
MIN_CONFIDENCE = 0.6
SAMPLE_CELLS = 200

_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)
_PRICE_CELL = re.compile(r"^(?:a\s+partir\s+de\s+|por\s+)?r\$\s*-?\d[\d.,]*(?:\s*(?:/\s*un\w*|cada|\s))*$", re.I)
_URL_CELL = re.compile(r"^(?:https?://|//|/)[^\s]+$", re.I)
_IMAGE_PATH = re.compile(r"\.(?:jpe?g|png|webp|gif|svg|avif|bmp)$", re.I)
_AVAILABILITY = re.compile(
    r"^(?:produto\s+)?(?:dispon[ií]vel|indispon[ií]vel|em\s+estoque|sem\s+estoque|esgotado|fora\s+de\s+estoque"
    r"|sob\s+encomenda|pronta\s+entrega|in\s+stock|out\s+of\s+stock|available|unavailable|disponivel|indisponivel)"
    r"(?:\s+.*)?$", re.I)
_QUANTITY_CELL = re.compile(r"^(?:quantidade|qtd|qtde|quant)\.?\s*:?\s*(\d{1,4})$", re.I)
_SKU_TEXT = re.compile(r"\b(?:sku|c[oó]d(?:igo)?|ref(?:er[eê]ncia)?|part\s*number)\s*(?:#|n[ºo°]\.?)?\s*[:.#]\s*"
                       r"([A-Za-z0-9][A-Za-z0-9\-_./]{1,40})", re.I)
_CODE_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-/.+_]*")


def clean_cell(value: Value) -> str | None:
    """A cell as text: zero-width characters removed, non-breaking spaces made plain,
    trimmed; None when nothing is left (a cell holding only a zero-width space)."""
    if value is None:
        return None
    if value.__class__ is str:
        if value.isascii():  # the common case: no zero-width or non-breaking characters
            return value.strip() or None
        text = value
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    else:
        text = str(value)
    text = text.translate(_INVISIBLE).replace("\u00a0", " ").strip()
    return text or None


# --------------------------------------------------------------------------------------
# column roles by content
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnRole:
    role: str
    confidence: float


@dataclass
class ColumnInference:
    """Roles given to columns by their content (``roles[column]``), in file order."""

    roles: dict[str, ColumnRole] = field(default_factory=dict)

    def columns(self, role: str) -> list[str]:
        return [c for c, r in self.roles.items() if r.role == role]

    def to_json(self) -> dict[str, dict]:
        return {c: {"role": r.role, "confidence": round(r.confidence, 2)} for c, r in self.roles.items()}


def _is_url(cell: str) -> bool:
    return bool(_URL_CELL.match(cell)) and ("/" in cell[1:] or cell.startswith("http"))


def _is_image_url(cell: str) -> bool:
    path = urlsplit(cell).path
    return bool(_IMAGE_PATH.search(path)) or "/images/" in path.lower() or "/imagens/" in path.lower()


def _words(cell: str) -> list[str]:
    return re.findall(r"[A-Za-zÀ-ÿ]{2,}", cell)


def _is_code(cell: str) -> bool:
    """A short model code: at most 4 words and 40 characters, with a token that mixes
    letters and digits (``HN18N-72H``, ``GW 3300-XS-30 - AFCI``, ``IQ8P-72-2-BR``)."""
    if len(cell) > 40 or len(cell.split()) > 5:
        return False
    return any(re.search(r"[A-Za-z]", t) and re.search(r"\d", t) for t in _CODE_TOKEN.findall(cell))


def _is_known_brand(cell: str) -> bool:
    if len(cell) > 30 or p.is_distributor_name(cell):
        return False
    key = _brand_key(cell)
    return key in _BRAND_INDEX or (len(cell.split()) <= 3 and p.find_brand(cell) is not None)


def _scores(cells: list[str]) -> dict[str, float]:
    n = len(cells)
    share = lambda test: sum(1 for c in cells if test(c)) / n  # noqa: E731
    prose = share(lambda c: len(_words(c)) >= 3 and len(c) >= 15)
    return {
        "price": share(lambda c: bool(_PRICE_CELL.match(c))),
        "image": share(lambda c: _is_url(c) and _is_image_url(c)),
        "link": share(lambda c: _is_url(c) and not _is_image_url(c)),
        "availability": share(lambda c: bool(_AVAILABILITY.match(p.strip_accents(c)))),
        "quantity": share(lambda c: bool(_QUANTITY_CELL.match(p.strip_accents(c)))),
        "sku_text": share(lambda c: bool(_SKU_TEXT.search(c)) and len(c) <= 60),
        "brand": share(_is_known_brand),
        "model": share(lambda c: _is_code(c) and not _PRICE_CELL.match(c) and not _is_url(c)),
        "prose": prose,
    }


def infer_columns(headers: list[str], records: list[FeedRecord], named: set[str]) -> ColumnInference:
    """Roles of the columns not in ``named`` (columns a known header synonym already
    maps), read from up to :data:`SAMPLE_CELLS` non-empty cells of each.

    A role needs at least :data:`MIN_CONFIDENCE` of a column's cells to fit it. Prose
    columns (three words or more) become the ``description`` (the one with the most
    words), the ``name`` (the next, when it is shorter) and ``text`` (any other: a kit's
    component descriptions). A role that a named header already fills is not inferred
    again, except ``text``.
    """
    inference = ColumnInference()
    candidates: list[tuple[str, dict[str, float], float]] = []
    for header in headers:
        if header in named:
            continue
        cells = []
        for record in records:
            cell = clean_cell(record.fields.get(header))
            if cell is not None:
                cells.append(cell)
                if len(cells) >= SAMPLE_CELLS:
                    break
        if not cells or sum(1 for c in cells if c[:1] in "{[") > len(cells) / 2:
            continue  # nothing, or nested JSON (image variants, a kit's component arrays)
        mean_words = sum(len(_words(c)) for c in cells) / len(cells)
        candidates.append((header, _scores(cells), mean_words))

    taken: set[str] = set()
    # the unambiguous shapes first: a price, a URL, an availability word, a quantity
    for header, scores, _ in candidates:
        for role in ("price", "image", "link", "availability", "quantity", "sku_text"):
            if scores[role] >= MIN_CONFIDENCE:
                inference.roles[header] = ColumnRole(role, scores[role])
                taken.add(header)
                break
    # a column of short codes is a model column even when its codes have three words
    # ("GW 3300-XS-30 - AFCI"); the prose column with the most words is the description,
    # any other prose column is `text` (a kit's component descriptions)
    prose = sorted(((h, s, w) for h, s, w in candidates
                    if h not in taken and s["prose"] >= MIN_CONFIDENCE
                    and not (s["model"] >= MIN_CONFIDENCE and w < 4.0)),
                   key=lambda hsw: -hsw[2])
    for rank, (header, scores, _) in enumerate(prose):
        inference.roles[header] = ColumnRole("description" if rank == 0 else "text", scores["prose"])
        taken.add(header)
    for header, scores, _ in candidates:
        if header in taken:
            continue
        if scores["brand"] >= MIN_CONFIDENCE:
            inference.roles[header] = ColumnRole("brand", scores["brand"])
        elif scores["model"] >= MIN_CONFIDENCE:
            inference.roles[header] = ColumnRole("model", scores["model"])
    # one column per single-valued role: the most confident, then the first in the file
    for role in ("price", "availability", "brand", "model", "sku_text"):
        columns = inference.columns(role)
        if len(columns) > 1:
            best = max(columns, key=lambda c: inference.roles[c].confidence)
            for column in columns:
                if column != best and role != "price":  # several prices: a wide row (split_wide_rows)
                    inference.roles[column] = ColumnRole("text", inference.roles[column].confidence)
    return inference


# --------------------------------------------------------------------------------------
# wide rows: several products side by side
# --------------------------------------------------------------------------------------


def split_wide_rows(headers: list[str], records: list[FeedRecord],
                    inference: ColumnInference) -> tuple[list[FeedRecord], bool]:
    """When a scrape packs several products in one row (its columns repeat a group that
    ends with a price: image, title, price, image 2, title 2, price 2 …), each group of
    columns becomes a record of its own, keyed by the group's first column.

    Returns the records and whether the file was split. A file with one price column is
    returned as it is.
    """
    prices = [h for h in headers if inference.roles.get(h, ColumnRole("", 0)).role == "price"]
    if len(prices) < 2:
        return records, False
    # groups: the columns from after the previous price up to and including this price
    groups: list[list[str]] = []
    start = 0
    for price in prices:
        end = headers.index(price) + 1
        groups.append(headers[start:end])
        start = end
    texts = [[h for h in g if inference.roles.get(h, ColumnRole("", 0)).role in ("description", "name", "text")]
             for g in groups]
    if sum(1 for t in texts if t) < 2:
        return records, False  # several prices but one product text (a price and a list price)
    # each group's columns take the names of the first group's columns of the same role,
    # so the one header mapping reads every product of the row
    role_of = lambda h: inference.roles.get(h, ColumnRole("", 0)).role  # noqa: E731
    textual = ("description", "name", "text")
    first_columns: dict[str, str] = {}
    for h in groups[0]:
        key = "textual" if role_of(h) in textual else role_of(h)
        if key:
            first_columns.setdefault(key, h)
    renames: list[dict[str, str]] = []
    for group in groups:
        rename, used = {}, set()
        for h in group:
            key = "textual" if role_of(h) in textual else role_of(h)
            target = first_columns.get(key) if key else None
            rename[h] = target if target and target not in used else h
            used.add(rename[h])
        renames.append(rename)
    out: list[FeedRecord] = []
    for record in records:
        if record.error:
            out.append(record)
            continue
        for i, group in enumerate(groups):
            fields = {renames[i][h]: record.fields.get(h) for h in group}
            if all(clean_cell(v) is None for v in fields.values()):
                continue
            out.append(FeedRecord(line=record.line, fields=fields, raw_text=record.raw_text,
                                  detail=f"product {i + 1} of a wide row"))
    return out, True


# --------------------------------------------------------------------------------------
# rows that are not products
# --------------------------------------------------------------------------------------

_MENU_WORDS = frozenset(
    p.strip_accents(w) for w in (
        "inicio", "home", "todos", "todas", "categorias", "categoria", "produtos", "menu", "voltar",
        "ordenar", "ordenar por", "filtrar", "filtros", "filtrar por", "marcas", "marca", "ver mais",
        "ver todos", "carrinho", "minha conta", "entrar", "login", "sair", "buscar", "pesquisar",
        "inversores", "modulos", "paineis", "baterias", "estruturas", "cabos", "acessorios", "kits",
        "microinversores", "string box", "ofertas", "lancamentos", "mais vendidos", "comprar",
        "adicionar ao carrinho", "anterior", "proxima", "proximo", "pagina", "resultados", "limpar",
        "preco", "menor preco", "maior preco", "relevancia", "potencia", "fabricante", "disponibilidade",
    ))
_BREADCRUMB = re.compile(r"\S\s*(?:>|»|›|/|\|)\s*\S")
_PAGE_COUNTER = re.compile(r"^(?:mostrando|exibindo|showing|p[aá]gina)\b|^\d+\s+(?:produtos|resultados|itens)\b", re.I)


def _menu_cell(cell: str) -> bool:
    s = p.strip_accents(cell).lower().strip(" :•-")
    s = re.sub(r"\s*\(\d+\)$", "", s)  # "Inversores (42)": a category menu with counts
    return s in _MENU_WORDS or bool(_PAGE_COUNTER.match(s))


def non_product_reason(record: FeedRecord, headers: list[str], price_columns: list[str],
                       text_columns: list[str]) -> str | None:
    """Why a scraped row is not a product, or None when it is one.

    ``empty`` (only blank or zero-width cells), ``repeated_header`` (the header line
    again), ``menu`` (category menus, filter bars, sort options, page counters),
    ``breadcrumb`` (``Início > Inversores > Growatt``). A row with a stated price or a
    product text is always a product candidate.
    """
    cells = [clean_cell(v) for v in record.fields.values()]
    present = [c for c in cells if c is not None]
    if not present:
        return "empty"
    named = [(h, cell) for h in headers if (cell := clean_cell(record.fields.get(h))) is not None]
    if len(named) >= 2 and len(named) == len(present) and all(cell == h.strip() for h, cell in named):
        return "repeated_header"
    if any(_PRICE_CELL.match(clean_cell(record.fields.get(c)) or "") for c in price_columns):
        return None
    texts = [c for c in present if not _is_url(c)]
    if texts and all(_menu_cell(c) for c in texts):
        return "menu"
    if texts and all(_BREADCRUMB.search(c) and all(_menu_cell(part) or len(part.split()) <= 3
                                                   for part in re.split(r"\s*(?:>|»|›|/|\|)\s*", c) if part)
                     for c in texts) and not any(_is_code(c) for c in texts if len(c) < 25):
        return "breadcrumb"
    product_text = any(len(_words(clean_cell(record.fields.get(c)) or "")) >= 3 for c in text_columns)
    if not product_text and texts and all(len(c) <= 25 and not _is_code(c) for c in texts):
        return "menu"
    return None


# --------------------------------------------------------------------------------------
# SKU
# --------------------------------------------------------------------------------------

_URL_ID_PATTERNS = (
    re.compile(r"/(?:products?|produtos?|item|itens|p|sku)/([A-Za-z0-9][A-Za-z0-9\-_]{2,63})(?:/|$)", re.I),
    re.compile(r"(?:image_product|produto|product)[_\-](\d{3,})", re.I),
    re.compile(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})", re.I),
    re.compile(r"[\-_/](\d{4,})(?:\.html?|/)?$"),
    re.compile(r"/p/?$|-p-(\d+)", re.I),
)
_NAME_CODE = re.compile(r"\(\s*([A-Za-z0-9][A-Za-z0-9\-_./]{2,30})\s*\)\s*$")


def id_from_url(url: str | None) -> str | None:
    """A product id in a product or image URL: a query ``id``/``sku``, the segment after
    ``/products/``/``/produtos/``/``/p/``, an ``IMAGE_PRODUCT_600340`` file name, a UUID,
    or a number of 4+ digits closing the path (``…-inversor-5kw-289244``). The fragment
    (``#collapse3``, a position on the page) is never an id."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    query = parse_qs(parts.query)
    for key in ("sku", "id", "product_id", "produto", "pid"):
        if query.get(key) and re.fullmatch(r"[A-Za-z0-9\-_]{2,64}", query[key][0]):
            return query[key][0]
    path = parts.path
    for pattern in _URL_ID_PATTERNS:
        m = pattern.search(path)
        if m and m.lastindex and m.group(1) and _looks_like_id(m.group(1)):
            return m.group(1)
    return None


def _looks_like_id(segment: str) -> bool:
    """A product number or code, not a slug of words (``modulo-jinko-575w``)."""
    if not re.search(r"\d", segment):
        return False
    return sum(1 for part in re.split(r"[-_]", segment) if part.isalpha() and len(part) > 1) <= 1 \
        or bool(re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", segment, re.I))


#: SKU sources that identify a product by the distributor's own key (not derived from
#: the model code or the title)
KEYED_SKU_SOURCES = frozenset({"sku", "id", "id+name", "sku_text", "url", "image_url"})


def offer_text_key(distributor: str, category: str, description: str | None) -> str:
    """One distributor's offer as its title says it (accents, case and spacing ignored);
    empty for titles too short to tell offers apart. Two exports of one storefront (a
    JSON dump and a page scrape) describe an offer with the same title."""
    if not description or len(description) < 15:
        return ""
    return f"{distributor}|{category}|{name_hash(description)}"


def name_hash(text: str) -> str:
    """Stable 12-hex key of a product text (accents, case and spacing ignored)."""
    key = re.sub(r"\s+", " ", p.strip_accents(text).lower()).strip()
    return hashlib.sha1(key.encode()).hexdigest()[:12].upper()


def derive_sku(*, sku: str | None, product_id: str | None, texts: list[str], link: str | None,
               image: str | None, name: str | None, model: str | None) -> tuple[str | None, str]:
    """The SKU of a record and where it came from, in this order of precedence:

    1. ``sku`` — a column named as a SKU (``sku``, ``código``, ``part number`` …);
    2. ``id`` — an id field of the export (``id``, ``product_id``);
    3. ``sku_text`` — ``SKU#: 289244``, ``Cód.: X`` written in a cell;
    4. ``url`` — the product id in the product link; ``image_url`` — in the image link;
    5. ``name_code`` — a code in parentheses closing the name (``… (27314)``);
    6. ``model`` — the distributor's model code;
    7. ``name_hash`` — ``N`` + 12 hex digits of the product text, so a product with no
       identifier at all is still one stable item.
    """
    normalized = p.normalize_sku(sku)
    if normalized:
        return normalized, "sku"
    normalized = p.normalize_sku(product_id)
    if normalized:
        return normalized, "id"
    for text in texts:
        m = _SKU_TEXT.search(text)
        if m:
            return p.normalize_sku(m.group(1)), "sku_text"
    for url, source in ((link, "url"), (image, "image_url")):
        found = id_from_url(url)
        if found:
            return p.normalize_sku(found), source
    if name:
        m = _NAME_CODE.search(name)
        if m and re.search(r"\d", m.group(1)) and not _NOT_A_MODEL.fullmatch(m.group(1)):
            return p.normalize_sku(m.group(1)), "name_code"
    if model:
        return p.normalize_sku(model), "model"
    text = name or next((t for t in texts if t), None)
    if text:
        return "N" + name_hash(text), "name_hash"
    return None, ""


# --------------------------------------------------------------------------------------
# fields shifted by a scraper
# --------------------------------------------------------------------------------------

_LEADING_URL = re.compile(r"^(https?://\S+)\s+(.+)$")


def split_leading_url(text: str | None) -> tuple[str | None, str | None]:
    """``"https://cdn…/IMAGE_PRODUCT_559375.jpeg HANERSUN"`` → (the URL, ``"HANERSUN"``)."""
    if not text or text[0] not in "h/":
        return None, text
    m = _LEADING_URL.match(text)
    if m:
        return m.group(1), m.group(2).strip() or None
    if _is_url(text):
        return text, None
    return None, text


def is_prose(text: str | None) -> bool:
    """Product prose rather than a value (a price cell that holds the description)."""
    if not text or not text[:1].isalpha() or text[:2].upper() in ("R$", "BR"):
        return False
    return len(_words(text)) >= 3 and not re.search(r"r\$\s*\d", text, re.I)


def parse_availability(text: str | None) -> str | None:
    """``in_stock`` / ``out_of_stock`` / ``on_order`` from a storefront's word."""
    if not text:
        return None
    s = p.strip_accents(text).lower()
    if re.search(r"indisponivel|sem\s+estoque|esgotad|fora\s+de\s+estoque|out\s+of\s+stock|unavailable", s):
        return "out_of_stock"
    if re.search(r"encomenda|pre[\s\-]?venda|on\s+order|backorder", s):
        return "on_order"
    if re.search(r"disponivel|em\s+estoque|pronta\s+entrega|in\s+stock|available", s):
        return "in_stock"
    return None


def price_cell_value(text: str | None) -> str | None:
    """The price text of a cell, tolerant to ``a partir de`` and per-unit suffixes."""
    if not text:
        return text
    m = re.search(r"r\$\s*-?\d[\d.,]*", text, re.I)
    return m.group(0) if m and _PRICE_CELL.match(text) else text
