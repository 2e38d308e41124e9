"""Dagster assets of the catalog job (thin wrappers: the work runs in Pathway, via Pipes).

Lineage: ``catalog_raw`` (landed feed files) and ``catalog_inmetro_raw`` (the landed
Inmetro registry tables) → ``catalog_normalized`` (items, quarantine, per-file counts, and
each item's ``inmetro_status`` in ``items_inmetro``) → ``catalog_products``. Blocking checks on
``catalog_normalized`` stop bad data before products are rebuilt.
"""


from datetime import timedelta

import dagster as dg

from ..kit.pipes import launch
from ..resources import SettingsResource, WarehouseResource
from ..settings import Settings
from . import landing
from .items import POWER_RANGES_W
from ..console import markdown_table

GROUP = "catalog"
QUARANTINE_RATE_WARN = 0.05


def _s3_client(settings: Settings):
    """A boto3 client of the object store in the settings (YSH_S3_*)."""
    import boto3

    return boto3.client(
        "s3", endpoint_url=settings.s3.endpoint_url, region_name=settings.s3.region,
        aws_access_key_id=settings.s3.access_key_id.get_secret_value() if settings.s3.access_key_id else None,
        aws_secret_access_key=(settings.s3.secret_access_key.get_secret_value()
                               if settings.s3.secret_access_key else None),
    )


def _landed_files(settings: Settings) -> list[landing.LandedFile]:
    if settings.catalog.source == "s3":
        client = _s3_client(settings)
        return landing.manifest_s3(client, settings.catalog.s3_bucket or "", settings.catalog.s3_prefix)
    return landing.manifest(settings.catalog.landing_dir, with_hash=True)


@dg.asset(
    group_name=GROUP,
    kinds={"file"},
    description="Distributor feed files in the landing area (folder or S3 prefix).",
    freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=26)),
)
def catalog_raw(context: dg.AssetExecutionContext, settings: SettingsResource) -> dg.MaterializeResult:
    settings = settings.get()
    files = _landed_files(settings)
    if not files:
        # an empty landing area is more often a missing mount than an intent to delete the
        # whole catalog: fail loudly instead of reconciling everything away
        raise dg.Failure(f"no feed files in the landing area ({settings.catalog.landing_dir}); "
                         "to retire a distributor, remove its feeds and keep the others")
    rows = [(f.path, f.size_bytes, (f.sha256 or "")[:12]) for f in files]
    return dg.MaterializeResult(
        data_version=dg.DataVersion(landing.fingerprint(files)),
        metadata={
            "files": len(files),
            "bytes": sum(f.size_bytes for f in files),
            "landing": dg.MetadataValue.text(
                f"s3://{settings.catalog.s3_bucket}/{settings.catalog.s3_prefix}"
                if settings.catalog.source == "s3" else str(settings.catalog.landing_dir)),
            "manifest": dg.MetadataValue.md(markdown_table(["path", "bytes", "sha256"], rows)),
        },
    )


def _registry_files(settings: Settings) -> list[landing.LandedFile]:
    from .job import RegistrySource

    source = RegistrySource.from_settings(settings)
    if source.s3 is not None:
        return _landed_files(settings.model_copy(update={"catalog": settings.catalog.model_copy(
            update={"s3_prefix": settings.catalog.inmetro_s3_prefix})}))
    return landing.manifest(source.path, with_hash=True) if source.path is not None else []


def _read_registry_file(settings: Settings, file: landing.LandedFile) -> bytes:
    if settings.catalog.source == "s3":
        client = _s3_client(settings)
        return client.get_object(Bucket=settings.catalog.s3_bucket, Key=file.path)["Body"].read()
    from pathlib import Path

    return Path(file.path).read_bytes()


@dg.asset(
    group_name=GROUP,
    kinds={"file", "pdf"},
    description="The Inmetro registry of PV equipment (modules and inverters: brand, model, power, "
                "registration number, situation, validity, efficiency class) as landed from Inmetro's "
                "tables (CSV, spreadsheet, PDF) in YSH_CATALOG_INMETRO_DIR or the S3 prefix "
                "YSH_CATALOG_INMETRO_S3_PREFIX. The catalog graph reads it and writes inmetro_registry "
                "and items_inmetro (docs/catalog.md, \"Inmetro registry\").",
    owners=["team:data-platform"],
)
def catalog_inmetro_raw(context: dg.AssetExecutionContext, settings: SettingsResource) -> dg.MaterializeResult:
    from collections import Counter

    from .inmetro import read_registry

    settings = settings.get()
    files = _registry_files(settings)
    if not files:
        context.log.warning("no Inmetro registry files landed: items get no inmetro_status")
    per_file, categories, situations, problems = [], Counter(), Counter(), Counter()
    for f in files:
        result = read_registry(_read_registry_file(settings, f), f.path)
        categories.update(r.category for r in result.rows)
        situations.update(r.situation or "not stated" for r in result.rows)
        problems.update(reason.split(":", 1)[0] for _, reason in result.problems)
        per_file.append((f.path, result.format, len(result.rows), len(result.problems), (f.sha256 or "")[:12]))
    return dg.MaterializeResult(
        data_version=dg.DataVersion(landing.fingerprint(files) if files else "empty"),
        metadata={
            "files": len(files),
            "rows": sum(categories.values()),
            "modules": categories.get("module", 0),
            "inverters": categories.get("inverter", 0),
            "cancelled": situations.get("cancelled", 0),
            "unreadable_rows": sum(problems.values()),
            "problems": dg.MetadataValue.json(dict(problems)),
            "landing": dg.MetadataValue.text(
                f"s3://{settings.catalog.s3_bucket}/{settings.catalog.inmetro_s3_prefix}"
                if settings.catalog.source == "s3" else str(settings.catalog.inmetro_dir)),
            "manifest": dg.MetadataValue.md(markdown_table(["path", "format", "rows", "problems", "sha256"],
                                                           per_file)),
        },
    )


def _run_pipes(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
               client: dg.PipesSubprocessClient, action: str, processes: int) -> dg.MaterializeResult:
    """Run ``ysh.catalog.pipes_entry ACTION`` in a fresh process (a fresh Pathway graph);
    the subprocess gets the same warehouse, already started and migrated."""
    return launch(context, warehouse, client, "catalog", action, processes=processes).get_materialize_result()


@dg.asset(
    group_name=GROUP,
    deps=[catalog_raw, catalog_inmetro_raw],
    kinds={"pathway", "postgres"},
    description="items_normalized (one row per distributor and SKU) and items_quarantine "
                "(bad rows with a reason), written by the Pathway catalog pipeline; with the "
                "Inmetro registry, items_inmetro (each item's inmetro_status and the registry row it matched).",
    freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=26)),
    owners=["team:data-platform"],
)
def catalog_normalized(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    pipes_subprocess_client: dg.PipesSubprocessClient,
) -> dg.MaterializeResult:
    processes = warehouse.settings().pathway.processes
    return _run_pipes(context, warehouse, pipes_subprocess_client, "normalize", processes)


@dg.asset(
    group_name=GROUP,
    deps=[catalog_normalized],
    kinds={"pathway", "postgres"},
    description="products: the same physical product (brand + model) across distributors, "
                "with offer count and min/median/max price.",
    owners=["team:data-platform"],
)
def catalog_products(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    pipes_subprocess_client: dg.PipesSubprocessClient,
) -> dg.MaterializeResult:
    # products read items back from the warehouse through a Python connector: one process
    return _run_pipes(context, warehouse, pipes_subprocess_client, "products", 1)


@dg.asset(
    group_name=GROUP,
    deps=[catalog_products],
    kinds={"pgvector", "postgres"},
    description="catalog_embeddings: one vector per distinct offer text (Hélio's embedder, YSH_RAG_EMBEDDER) "
                "and which text each offer has; incremental: only new or changed texts are embedded "
                "(keyed by sha256). The semantic signal of catalog search.",
    owners=["team:data-platform"],
)
def catalog_embeddings(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    from . import search

    settings = warehouse.settings()
    backend = None

    def encode(texts: list[str]):
        nonlocal backend
        if backend is None:  # the model is loaded only when a text is new
            from ..rag.embedding import backend_from_settings

            backend = backend_from_settings(settings)
        return backend.encode(texts)

    model = settings.rag.embedder.strip()
    done = search.sync_embeddings(
        warehouse.warehouse(), encode, model,
        progress=lambda n, total: context.log.info(f"embedded {n}/{total} catalog texts"))
    return dg.MaterializeResult(
        data_version=dg.DataVersion(f"{done.model}:{done.texts}:{done.embedded}:{done.offers_changed}"),
        metadata={"offers": done.offers, "distinct_texts": done.texts, "embedded_now": done.embedded,
                  "reused": done.reused, "offers_changed": done.offers_changed,
                  "offers_removed": done.offers_removed, "vectors_removed": done.vectors_removed,
                  "model": done.model, "dimensions": done.dimensions or 0},
    )


# --------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------


@dg.asset_check(asset=catalog_normalized, blocking=True,
                description="No two items share a distributor and normalized SKU.")
def catalog_normalized_unique_keys(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    # The primary key stops exact duplicates; this catches keys that are not in normal form
    # (written by another writer, or a normalization change) and would split one offer.
    duplicates = warehouse.query(
        "SELECT distributor, upper(regexp_replace(sku, '\\s', '', 'g')) AS key, count(*) "
        "FROM items_normalized GROUP BY 1, 2 HAVING count(*) > 1 ORDER BY 3 DESC LIMIT 20"
    )
    (not_normalized,), = warehouse.query(
        "SELECT count(*) FROM items_normalized WHERE sku <> upper(regexp_replace(sku, '\\s', '', 'g'))"
    )
    return dg.AssetCheckResult(
        passed=not duplicates and not_normalized == 0,
        metadata={"duplicate_keys": len(duplicates), "skus_not_normalized": int(not_normalized),
                  "examples": dg.MetadataValue.md(markdown_table(["distributor", "sku", "rows"], duplicates))},
    )


@dg.asset_check(asset=catalog_normalized, blocking=True,
                description="Every module/inverter/microinverter has a power inside its plausible range.")
def catalog_normalized_power_in_range(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    conditions = " OR ".join(
        f"(category = '{category}' AND (power_w IS NULL OR power_w < {low} OR power_w > {high}))"
        for category, (low, high) in POWER_RANGES_W.items()
    )
    bad = warehouse.query(
        f"SELECT distributor, sku, category, power_w FROM items_normalized WHERE {conditions} "
        "ORDER BY 1, 2 LIMIT 20"
    )
    return dg.AssetCheckResult(
        passed=not bad,
        metadata={"out_of_range": len(bad),
                  "examples": dg.MetadataValue.md(markdown_table(["distributor", "sku", "category", "power_w"], bad))},
    )


@dg.asset_check(asset=catalog_normalized, blocking=False,
                description=f"Warn when more than {QUARANTINE_RATE_WARN:.0%} of feed rows are quarantined.")
def catalog_normalized_quarantine_rate(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    (rows, quarantined), = warehouse.query(
        "SELECT coalesce(sum(rows), 0), coalesce(sum(quarantined), 0) FROM catalog_feed_files"
    )
    rate = float(quarantined) / float(rows) if rows else 0.0
    by_file = warehouse.query(
        "SELECT source_file, rows, quarantined FROM catalog_feed_files "
        "WHERE quarantined > 0 ORDER BY quarantined DESC LIMIT 20"
    )
    return dg.AssetCheckResult(
        passed=rate <= QUARANTINE_RATE_WARN,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"quarantine_rate": round(rate, 4), "rows": int(rows), "quarantined": int(quarantined),
                  "by_file": dg.MetadataValue.md(markdown_table(["file", "rows", "quarantined"], by_file))},
    )


@dg.asset_check(asset=catalog_normalized, blocking=False,
                description="Warn when more than YSH_CATALOG_INMETRO_UNMATCHED_WARN of the modules and inverters "
                            "match no row of the Inmetro registry (inmetro_status not_registered).")
def catalog_normalized_inmetro_unmatched(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    threshold = warehouse.settings().catalog.inmetro_unmatched_warn
    by_status = dict(warehouse.query(
        "SELECT inmetro_status, count(*) FROM items_inmetro WHERE inmetro_status <> 'unknown' GROUP BY 1"))
    covered = sum(by_status.values())
    unmatched = by_status.get("not_registered", 0)
    share = unmatched / covered if covered else 0.0
    examples = warehouse.query(
        "SELECT i.distributor, i.sku, n.brand, n.model, i.category FROM items_inmetro i "
        "JOIN items_normalized n USING (distributor, sku) WHERE i.inmetro_status = 'not_registered' "
        "ORDER BY 3, 4 LIMIT 20")
    return dg.AssetCheckResult(
        passed=covered > 0 and share <= threshold,
        severity=dg.AssetCheckSeverity.WARN,
        description=None if covered else "no item has an Inmetro status: is the registry landed?",
        metadata={"unmatched_share": round(share, 4), "threshold": threshold, "modules_and_inverters": int(covered),
                  **{status: int(n) for status, n in sorted(by_status.items())},
                  "unmatched_examples": dg.MetadataValue.md(
                      markdown_table(["distributor", "sku", "brand", "model", "category"], examples))},
    )


@dg.asset_check(asset=catalog_products, blocking=False,
                description="Offers counted in products equal the groupable items.")
def catalog_products_offers_match_items(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    (offers, items), = warehouse.query(
        "SELECT (SELECT coalesce(sum(offers), 0) FROM products),"
        " (SELECT count(*) FROM items_normalized WHERE product_key IS NOT NULL)"
    )
    return dg.AssetCheckResult(passed=offers == items,
                               metadata={"offers": int(offers), "groupable_items": int(items)})


# --------------------------------------------------------------------------------------
# job, schedule, sensor
# --------------------------------------------------------------------------------------

catalog_job = dg.define_asset_job(
    "catalog_job",
    selection=dg.AssetSelection.groups(GROUP),
    description="Land → normalize → products, with checks.",
)

catalog_daily_schedule = dg.ScheduleDefinition(
    name="catalog_daily",
    job=catalog_job,
    cron_schedule="0 2 * * *",
    execution_timezone="America/Sao_Paulo",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)


@dg.sensor(job=catalog_job, minimum_interval_seconds=30,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Runs the catalog job when feed files are added, changed or removed.")
def catalog_landing_sensor(context: dg.SensorEvaluationContext, settings: SettingsResource):
    settings = settings.get()
    files = _landed_files(settings)
    if not files:
        return dg.SkipReason("landing area is empty")
    registry = _registry_files(settings)  # a new Inmetro table re-judges the items too
    current = landing.fingerprint(files) + (f"+{landing.fingerprint(registry)}" if registry else "")
    if current == context.cursor:
        return dg.SkipReason("no change in the landing area")
    previous = context.cursor or "empty"
    context.update_cursor(current)
    # the key names the transition, so returning to an earlier state still runs
    return dg.RunRequest(run_key=f"{previous}->{current}", tags={"ysh/landing_fingerprint": current})


#: the job's Dagster definitions (merged with the others in ysh.definitions)
defs = dg.Definitions(
    assets=[catalog_raw, catalog_inmetro_raw, catalog_normalized, catalog_products, catalog_embeddings],
    asset_checks=[catalog_normalized_unique_keys, catalog_normalized_power_in_range,
                  catalog_normalized_quarantine_rate, catalog_normalized_inmetro_unmatched,
                  catalog_products_offers_match_items],
    jobs=[catalog_job], schedules=[catalog_daily_schedule], sensors=[catalog_landing_sensor],
)
