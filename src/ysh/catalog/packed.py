"""A feed file's items packed for a batch load (docs/catalog.md, "Performance").

In a static run into the warehouse, the items of a distributor's only, ordinary feed (no
second feed that could repeat a SKU, no storefront offers to decide between) need no
row-by-row work in the engine: the file's normalizing UDF turns them at once into the
text of a ``COPY`` (:func:`copy_text`), their partial product groups
(:func:`product_parts`) and, with an Inmetro registry, the few columns its matching reads
(:func:`registry_rows`). One Pathway row then carries a whole file, and
:class:`ysh.kit.sinks.CopyTextSink` sends the text as it is. What a row of
``items_normalized`` holds is the same either way (tested against the row graph).
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Iterable

from ..kit import copytext
from .items import CatalogItem

#: the columns of ``items_normalized`` a packed item fills, in :func:`copy_text` order
#: (the item's fields, ``line`` stored as ``source_line``, then ``ingested_at``)
ITEM_COLUMNS: tuple[str, ...] = (*("source_line" if f == "line" else f for f in CatalogItem._fields), "ingested_at")

#: a partial product group: one distributor's offers of one product
PART_FIELDS = ("product_key", "distributor", "brand", "model", "category", "power_w", "offers", "prices")


def copy_text(items: Iterable[CatalogItem], ingested_at: dt.datetime) -> bytes:
    """The items as rows of ``COPY items_normalized (ITEM_COLUMNS) FROM STDIN`` (text
    format, UTF-8), each with ``ingested_at``."""
    return copytext.encode(items, tail=(ingested_at,))


def product_parts(items: Iterable[CatalogItem]) -> list[tuple]:
    """The items' products, grouped within this list (:data:`PART_FIELDS`): per product
    key, the least brand and category, the greatest model and power (0.0 for none), the
    number of offers and their prices — what :func:`ysh.catalog.pipeline.build_products`
    combines across distributors."""
    groups: dict[str, list] = {}
    for item in items:
        key = item.product_key
        if key is None:
            continue
        power = item.power_w if item.power_w is not None else 0.0
        group = groups.get(key)
        if group is None:
            groups[key] = [key, item.distributor, item.brand, item.model, item.category, power, 1, [item.price_brl]]
            continue
        group[2] = min(group[2], item.brand)
        group[3] = max(group[3], item.model)
        group[4] = min(group[4], item.category)
        group[5] = max(group[5], power)
        group[6] += 1
        group[7].append(item.price_brl)
    return [(*group[:7], tuple(group[7])) for group in groups.values()]


#: the columns of an item that the Inmetro matching reads (``pipeline.match_registry``)
REGISTRY_FIELDS = ("distributor", "sku", "category", "brand", "model", "power_w", "source_file")


def registry_rows(items: Iterable[CatalogItem]) -> list[tuple]:
    """The items as :data:`REGISTRY_FIELDS` tuples."""
    return list(map(_registry_fields, items))


_registry_fields = operator.attrgetter(*REGISTRY_FIELDS)
