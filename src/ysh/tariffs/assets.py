"""Dagster assets of the tariffs job (thin wrappers over ``scrape``, ``landing`` and the
Pathway recompute, which runs in a Pipes subprocess).

Lineage: ``tarifas_aneel_scrape`` (CKAN downloads in the landing folder) → ``tarifas_raw``
(the landing folder mirrored into Postgres) → ``tarifas_normalized`` →
``tarifas_bandeiras`` / ``tarifas_efetivas_mensais``. The last three come out of one
Pathway run over ``tarifas_raw`` (the same graph the CDC follower runs).
"""


from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from .. import db
from ..console import markdown_table
from ..kit.pipes import launch
from ..resources import SettingsResource, WarehouseResource
from . import landing, reporting
from .scrape import scrape

GROUP = "tariffs"
ERROR_RATE_MAX = 0.01
SAO_PAULO = ZoneInfo("America/Sao_Paulo")
#: SLO: the day's tariffs are in before 08:00 on business days (the 06:00 run has two hours)
BUSINESS_DAY_SLO = dg.FreshnessPolicy.cron(deadline_cron="0 8 * * 1-5", lower_bound_delta=timedelta(hours=2),
                                           timezone="America/Sao_Paulo")


@dg.asset(
    group_name=GROUP,
    kinds={"http", "file"},
    description="ANEEL's tarifas homologadas, componentes tarifárias (Fio B) and bandeiras, downloaded from the "
                "CKAN DataStore (datastore_search, paged) into the tariffs landing folder as CSV.",
    owners=["team:data-platform"],
)
def tarifas_aneel_scrape(context: dg.AssetExecutionContext, settings: SettingsResource) -> dg.MaterializeResult:
    settings = settings.get()
    last_logged: dict[str, int] = {}

    def progress(name: str, done: int, total: int) -> None:
        if done == total or done - last_logged.get(name, 0) >= 50_000:
            last_logged[name] = done
            context.log.info(f"{name}: {done}/{total} rows")

    results = scrape(settings, progress=progress)
    rows = [(r.path.name, r.rows, r.pages) for r in results]
    return dg.MaterializeResult(metadata={
        "portal": dg.MetadataValue.url(settings.tariffs.aneel.ckan_url),
        "rows": sum(r.rows for r in results),
        "files": dg.MetadataValue.md(markdown_table(["file", "rows", "pages"], rows)),
        "landing": dg.MetadataValue.path(str(settings.tariffs.landing_dir)),
    })


@dg.asset(
    group_name=GROUP,
    deps=[tarifas_aneel_scrape],
    kinds={"postgres"},
    description="tarifas_raw: every line of the files in the tariffs landing folder, as published, with the "
                "batch that last changed it. Sources no longer in the folder are removed.",
    owners=["team:data-platform"],
)
def tarifas_raw(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    settings = warehouse.settings()
    folder = settings.tariffs.landing_dir
    files = landing.feed_files([folder]) if folder.is_dir() else []
    if not files:
        raise dg.Failure(f"no files in the tariffs landing folder {folder}; run tarifas_aneel_scrape or "
                         "`ysh tariffs fetch` first")
    wh = warehouse.warehouse()
    with db.connect(wh.dsn, wh.schema) as conn:
        reports = [landing.land_file(conn, path) for path in files]
        removed = landing.prune_sources(conn, keep={p.name for p in files})
    for r in reports:
        context.log.info(f"{r.source}: {r.rows} rows, +{r.inserted} ~{r.updated} -{r.deleted}")
    summary = reporting.raw_metadata(wh)
    return dg.MaterializeResult(metadata={
        "rows": summary["rows"], "sources": summary["sources"],
        "inserted": sum(r.inserted for r in reports), "updated": sum(r.updated for r in reports),
        "deleted": sum(r.deleted for r in reports) + removed,
        "by_source": dg.MetadataValue.md(summary["by_source"]),
    })


@dg.multi_asset(
    specs=[
        dg.AssetSpec("tarifas_normalized", group_name=GROUP, deps=[tarifas_raw], kinds={"pathway", "postgres"},
                     description="tarifas_normalized (+ tarifas_fio_b, tarifas_quarantine): ANEEL rows in base "
                                 "units, validity overlaps quarantined.",
                     freshness_policy=BUSINESS_DAY_SLO, owners=["team:data-platform"]),
        dg.AssetSpec("tarifas_bandeiras", group_name=GROUP, deps=[tarifas_raw], kinds={"pathway", "postgres"},
                     description="tarifas_bandeiras: the flag of each month and its add-on [R$/kWh]."),
        dg.AssetSpec("tarifas_efetivas_mensais", group_name=GROUP, deps=["tarifas_normalized", "tarifas_bandeiras"],
                     kinds={"pathway", "postgres"}, freshness_policy=BUSINESS_DAY_SLO,
                     description="B1/B3 per utility and month: TE, TUSD (pro rata die), flag add-on, total."),
    ],
    name="tarifas_normalize",
)
def tarifas_normalize(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                      pipes_subprocess_client: dg.PipesSubprocessClient):
    yield from launch(context, warehouse, pipes_subprocess_client, "tariffs", "normalize").get_results()


# --------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------


@dg.asset_check(asset="tarifas_normalized", blocking=False,
                description=f"Quarantined rows are at most {ERROR_RATE_MAX:.0%} of the raw rows.")
def tarifas_normalized_error_rate(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    (raw_rows,), = warehouse.query("SELECT count(*) FROM tarifas_raw")
    reasons = warehouse.query("SELECT reason, count(*) FROM tarifas_quarantine GROUP BY 1 ORDER BY 2 DESC, 1")
    examples = warehouse.query("SELECT source_file, line, reason, detail FROM tarifas_quarantine "
                               "ORDER BY source_file, line LIMIT 20")
    quarantined = sum(n for _, n in reasons)
    rate = quarantined / raw_rows if raw_rows else 0.0
    return dg.AssetCheckResult(
        passed=rate <= ERROR_RATE_MAX,
        metadata={"error_rate": round(rate, 4), "raw_rows": int(raw_rows), "quarantined": quarantined,
                  "by_reason": dg.MetadataValue.md(markdown_table(["reason", "rows"], reasons)),
                  "examples": dg.MetadataValue.md(markdown_table(["file", "line", "reason", "detail"], examples))},
    )


def _today() -> date:
    return datetime.now(SAO_PAULO).date()


@dg.asset_check(asset="tarifas_efetivas_mensais", blocking=False,
                description="Every utility has a B1 and a B3 effective tariff for the current month.")
def tarifas_efetivas_mensais_current_month(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    month = _today().replace(day=1)
    missing = warehouse.query(
        "SELECT u.utility, s.subgroup FROM (SELECT DISTINCT utility FROM tarifas_normalized) u "
        "CROSS JOIN (VALUES ('B1'), ('B3')) s(subgroup) "
        "WHERE NOT EXISTS (SELECT 1 FROM tarifas_efetivas_mensais m WHERE m.utility = u.utility "
        "AND m.subgroup = s.subgroup AND m.month = %s) ORDER BY 1, 2", (month,))
    return dg.AssetCheckResult(
        passed=not missing, severity=dg.AssetCheckSeverity.WARN,
        metadata={"month": month.isoformat(), "missing": len(missing),
                  "missing_utilities": dg.MetadataValue.md(markdown_table(["utility", "subgroup"], missing))},
    )


# --------------------------------------------------------------------------------------
# job and schedule
# --------------------------------------------------------------------------------------

tariffs_job = dg.define_asset_job(
    "tariffs_job", selection=dg.AssetSelection.groups(GROUP),
    description="Scrape ANEEL → tarifas_raw → normalized tables, with checks.",
)

tariffs_weekday_schedule = dg.ScheduleDefinition(
    name="tariffs_weekdays_0600", job=tariffs_job, cron_schedule="0 6 * * 1-5",
    execution_timezone="America/Sao_Paulo", default_status=dg.DefaultScheduleStatus.RUNNING,
)

#: the job's Dagster definitions (merged with the others in ysh.definitions)
defs = dg.Definitions(
    assets=[tarifas_aneel_scrape, tarifas_raw, tarifas_normalize],
    asset_checks=[tarifas_normalized_error_rate, tarifas_efetivas_mensais_current_month],
    jobs=[tariffs_job], schedules=[tariffs_weekday_schedule],
)
