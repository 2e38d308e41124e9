"""Legacy ERP exports → catalog records: the pure rules of the ``migrate_legacy`` flow.

The old ERP ("SOLARIS ERP 4.2") exports an XLSX workbook (one sheet per product family)
and CSV lists (latin-1, ``;``, decimal comma), with its own column names, type codes and
branch codes. This package holds what the Prefect flow (:mod:`ysh.flows.migrate_legacy`)
runs, without Prefect:

* :mod:`.mapping` (pure) - the code tables and a legacy row → the record dict the catalog
  normalizer reads (``sku``, ``description``, ``brand``, ``model``, ``category``,
  ``power_w``, ``price``, ``stock``, ``inmetro``). Numbers written the legacy way
  (decimal comma) become floats, kW become W.
* :mod:`.readers` - the export files (XLSX sheets, CSV lists) → sources of rows with
  their line numbers.
* :mod:`.plan` (pure) - each mapped record through
  :func:`ysh.catalog.normalize.normalize_record`, so a migrated item obeys exactly the
  catalog's rules (units, ranges, brands, Inmetro, reason codes in ``docs/catalog.md``);
  then the plan: what differs from the warehouse.
* :mod:`.report` (pure) - the migration report (markdown).
* :mod:`.warehouse` - reading the warehouse rows to compare with, writing the plan.

Legacy code tables
------------------

``TIPO`` (product type) → catalog category (:data:`LEGACY_TYPE_CODES`)::

    MF  módulo fotovoltaico          module
    MB  módulo bifacial              module
    IN  inversor (string)            inverter
    IH  inversor híbrido             inverter
    MI  microinversor                microinverter
    BT  bateria                      battery
    SB  string box                   other
    CB  cabo                         other
    ES  estrutura de fixação         other
    OU  outros / acessórios          other

Codes are read trimmed and case-insensitively. ``SV`` (serviço) is deliberately *not*
mapped: services are not catalog items. A code outside the table is quarantined as
``unknown_category``; an empty code lets the normalizer infer the category from the
description (as for a distributor feed without a category column).

``COD_FILIAL`` (legacy branch) → platform distributor (:data:`LEGACY_DISTRIBUTORS`)::

    FIL01  sol_nascente_distribuidora
    FIL02  casa_do_integrador
    FIL03  lumen_solar_atacado

A branch code outside the table (or an empty one) is quarantined as
``unknown_distributor`` — the one reason code this flow adds to the catalog's (the
quarantine row's ``distributor`` is then the code as written). ``distributor=`` forces one
distributor for every row and skips the table; a source without a branch column belongs
to the distributor named by the file's stem (the catalog's convention).

Legacy columns (:data:`LEGACY_COLUMNS`; matched case-, accent- and spacing-insensitively;
other columns are kept in the quarantined row's ``raw`` only): ``COD_PROD`` (sku),
``DESCR`` (description), ``FABRIC`` (brand), ``MODELO``, ``TIPO``, ``POT_W`` (W) /
``POT_KW`` (kW; ``POT_W`` wins when both are filled), ``PRECO_VENDA``, ``ESTOQUE``,
``COD_INMETRO``, ``COD_FILIAL``, with the synonyms of the old ERP's other reports.
Required: ``COD_PROD``, ``DESCR``, ``PRECO_VENDA`` (or a synonym).

Sources, lines, idempotency
---------------------------

* An XLSX sheet is one source, ``source_file = "legacy:<file name>#<sheet>"``; a CSV is
  one source, ``source_file = "legacy:<file name>"``. Sheets named ``LEIAME``/``README``/``NOTAS``/
  ``INSTRUCOES`` are notes and are skipped. The header is the first row (among the first
  20) that names a product-code column, so title rows above it are fine.
* ``line`` is the row number in the sheet (Excel's numbering: a header on row 3 puts the
  first item on row 4), or the CSV's physical line (header = line 1).
* Items are upserted by ``(distributor, sku)`` into ``items_normalized``, quarantined rows
  by ``(source_file, line)`` into ``items_quarantine``; within one run the last row of a
  ``(distributor, sku)`` wins (files, then sheets, then rows in order). Only rows that
  differ from the warehouse are written, so a second run changes nothing (0 inserted,
  0 updated, ``ingested_at`` untouched). Quarantine rows of a migrated source whose line
  is no longer quarantined are deleted (the row was fixed); items are never deleted.
* ``dry_run=True`` computes the same plan and writes nothing (no schema migration either).

The catalog job's full runs prune only the rows of landed feeds: rows whose source starts
with ``legacy:`` are kept. After writing, the flow recomputes ``products`` from all of
``items_normalized``, so migrated items count as offers. A legacy row and a feed row with
the same (distributor, sku) are the same item: whichever was written last wins.
"""

from .mapping import (
    LEGACY_COLUMNS,
    LEGACY_DISTRIBUTORS,
    LEGACY_SOURCE_PREFIX,
    LEGACY_TYPE_CODES,
    REQUIRED_COLUMNS,
    UNKNOWN_DISTRIBUTOR,
    MappedRecord,
    legacy_category,
    legacy_distributor,
    legacy_number,
    legacy_power_w,
    map_legacy_headers,
    map_legacy_row,
)
from .plan import (
    ITEM_COLUMNS,
    Change,
    MigrationPlan,
    NormalizedBatch,
    SourceCounts,
    item_row,
    normalize_source,
    normalize_sources,
    plan_changes,
    quarantine_row,
)
from .readers import LegacyFileError, LegacySource, expand_paths, read_legacy_file
from .report import MigrationReport

__all__ = [
    "ITEM_COLUMNS",
    "LEGACY_COLUMNS",
    "LEGACY_DISTRIBUTORS",
    "LEGACY_SOURCE_PREFIX",
    "LEGACY_TYPE_CODES",
    "REQUIRED_COLUMNS",
    "UNKNOWN_DISTRIBUTOR",
    "Change",
    "LegacyFileError",
    "LegacySource",
    "MappedRecord",
    "MigrationPlan",
    "MigrationReport",
    "NormalizedBatch",
    "SourceCounts",
    "expand_paths",
    "item_row",
    "legacy_category",
    "legacy_distributor",
    "legacy_number",
    "legacy_power_w",
    "map_legacy_headers",
    "map_legacy_row",
    "normalize_source",
    "normalize_sources",
    "plan_changes",
    "quarantine_row",
    "read_legacy_file",
]
