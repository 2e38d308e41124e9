"""Dagster assets of the proposals job (thin: the work runs in Pathway, via Pipes).

Lineage: ``propostas_raw`` (the Medusa-like source tables) together with
``catalog_normalized`` and ``tarifas_normalized`` → ``propostas_enriched`` →
``propostas_analytics`` → ``kpis_b1_b3`` (one Pathway run produces the last three).
"""


import dagster as dg

from ..console import markdown_table
from ..kit.pipes import launch
from ..resources import WarehouseResource
from . import reporting

GROUP = "proposals"
#: the refresh times (São Paulo): at each, the quotes are evaluated again only when an
#: upstream (quotes, catalog, tariffs) changed since the last evaluation
REFRESH_CRON = "0 8,14,20 * * *"
TIMEZONE = "America/Sao_Paulo"
REFRESH = (
    # true on the evaluation right after a tick only: a change between ticks waits for the next
    dg.AutomationCondition.cron_tick_passed(REFRESH_CRON, TIMEZONE)
    & (dg.AutomationCondition.any_deps_updated().since(dg.AutomationCondition.newly_requested())
       | dg.AutomationCondition.missing())
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label(f"on {REFRESH_CRON} ({TIMEZONE}) when an upstream changed")


@dg.asset(
    group_name=GROUP,
    kinds={"postgres"},
    description="The Medusa-like B2B source tables (company, quote, quote_item, order), observed.",
    owners=["team:data-platform"],
)
def propostas_raw(warehouse: WarehouseResource) -> dg.MaterializeResult:
    counts = reporting.source_counts(warehouse.warehouse())
    if counts["quote"] == 0:
        raise dg.Failure("no quotes in the warehouse: seed them (`ysh proposals seed`) or connect the Medusa database")
    return dg.MaterializeResult(metadata={**counts, "tables": dg.MetadataValue.md(
        markdown_table(["table", "rows"], list(counts.items())))})


@dg.multi_asset(
    specs=[
        dg.AssetSpec("propostas_enriched", group_name=GROUP, automation_condition=REFRESH, kinds={"pathway", "postgres"},
                     deps=[propostas_raw, "catalog_normalized", "tarifas_normalized"],
                     description="Each quote with its system (kWp from the catalog), tariff in force, irradiance "
                                 "source and yearly generation."),
        dg.AssetSpec("propostas_analytics", group_name=GROUP, automation_condition=REFRESH, kinds={"pathway", "postgres"},
                     deps=["propostas_enriched"],
                     description="Billing model v1 per quote: NPV, IRR, paybacks, ROI, year-1 bills, yearly table."),
        dg.AssetSpec("kpis_b1_b3", group_name=GROUP, automation_condition=REFRESH, kinds={"pathway", "postgres"}, deps=["propostas_analytics"],
                     description="Per class, state and month: quotes, orders, conversion, kWp, median payback "
                                 "and IRR."),
    ],
    name="propostas_evaluate",
)
def propostas_evaluate(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                       pipes_subprocess_client: dg.PipesSubprocessClient):
    yield from launch(context, warehouse, pipes_subprocess_client, "proposals", "run").get_results()


@dg.asset_check(asset="propostas_enriched", blocking=False,
                description="Every quote found the tariff in force for its utility, class and day.")
def propostas_enriched_have_tariffs(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    missing = warehouse.query("SELECT quote_id, utility, customer_class, tariff_error FROM propostas_enriched "
                              "WHERE tariff_error IS NOT NULL ORDER BY quote_id LIMIT 20")
    (count,), = warehouse.query("SELECT count(*) FROM propostas_enriched WHERE tariff_error IS NOT NULL")
    return dg.AssetCheckResult(passed=count == 0, metadata={
        "without_tariff": int(count),
        "examples": dg.MetadataValue.md(markdown_table(["quote", "utility", "class", "why"], missing))})


@dg.asset_check(asset="propostas_analytics", blocking=False,
                description="IRR present when some yearly cash flow is positive (savings beat the costs in a "
                            "year, so the flows change sign); payback present when the proposal pays back "
                            "within its horizon (ROI > 0).")
def propostas_analytics_kpis_present(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    # yearly is json since migration 0014 (jsonb before): the cast reads either
    bad = warehouse.query(
        "SELECT quote_id, year1_savings_brl, roi, irr_pct, payback_years FROM propostas_analytics a "
        "WHERE error IS NULL AND ((irr_pct IS NULL AND EXISTS (SELECT 1 FROM json_array_elements(a.yearly::json) y "
        "WHERE (y->>'cash_flow_brl')::float > 0)) OR (roi > 0 AND payback_years IS NULL)) "
        "ORDER BY quote_id LIMIT 20")
    return dg.AssetCheckResult(passed=not bad, metadata={
        "inconsistent": len(bad),
        "examples": dg.MetadataValue.md(markdown_table(["quote", "year-1 savings", "ROI", "IRR %", "payback"], bad))})


proposals_job = dg.define_asset_job("proposals_job", selection=dg.AssetSelection.groups(GROUP),
                                    description="Evaluate every quote and refresh the B1/B3 KPIs.")

#: evaluates REFRESH (the default automation sensor would start stopped in a new deployment)
proposals_automation = dg.AutomationConditionSensorDefinition(
    "proposals_automation", target=dg.AssetSelection.groups(GROUP), minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=f"Refreshes the proposals at {REFRESH_CRON} ({TIMEZONE}) when quotes, catalog or tariffs changed.")


#: the job's Dagster definitions (merged with the others in ysh.definitions)
defs = dg.Definitions(
    assets=[propostas_raw, propostas_evaluate],
    asset_checks=[propostas_enriched_have_tariffs, propostas_analytics_kpis_present],
    jobs=[proposals_job], sensors=[proposals_automation],
)
