"""Catalog search over the real distributor exports normalized into a real warehouse:
query parsing, filters, ranking, grouping by product, facets, the judged queries, the
incremental embeddings, the Hélio route and the CLI."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid

import numpy as np
import psycopg
import pytest
from psycopg import sql

from ysh import db
from ysh.catalog import job
from ysh.catalog.search import (CatalogSearch, SearchFilters, Weights, _term_tiers, evaluate, load_judged,
                                parse_query, sync_embeddings)

from ..conftest import REPO, query, real_exports

pytestmark = pytest.mark.integration

EXPORTS = REPO / "data" / "distributors" / "exports"
JUDGED = REPO / "data" / "sample" / "catalog_search_queries.jsonl"
BRANDS = ("GoodWe", "Growatt", "Deye", "Huawei", "Solar N Plus", "Enphase")


@pytest.fixture(scope="module")
def real_warehouse(pg_server, tmp_path_factory):
    """The real exports normalized (items and products) into a fresh schema, once."""
    schema = f"t_{uuid.uuid4().hex[:10]}"
    dsn = pg_server.dsn()
    db.migrate(dsn, schema)
    warehouse = db.Warehouse(dsn, schema)
    job.run_static([real_exports(tmp_path_factory.mktemp("exports"))], warehouse=warehouse)
    yield warehouse
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(scope="module")
def engine(real_warehouse):
    engine = CatalogSearch(real_warehouse)
    yield engine
    engine.close()


# --------------------------------------------------------------------------------------
# parsing
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["inversor 5kw", "inversor 5 kW", "inversor 5000W", "INVERSOR 5 KW", "inv 5,0 kw"])
def test_powers_in_w_and_kw_are_one_power(text):
    parsed = parse_query(text)
    assert parsed.power_w == 5000.0 and parsed.categories == ("inverter", "hybrid_inverter", "offgrid_inverter")
    assert parsed.terms == ()


def test_integrators_abbreviations_and_missing_accents():
    parsed = parse_query("inv 5kw monof growatt", BRANDS)
    assert (parsed.phases, parsed.brands, parsed.terms) == (1, ("growatt",), ("growatt",))
    assert parse_query("inversor monofásico").phases == parse_query("inversor monofasico").phases == 1
    assert parse_query("inv tri 380v").phases == 3 and parse_query("inv tri 380v").voltage_v == 380.0
    assert parse_query("mod 550w").categories == ("module",) and parse_query("mod 550w").power_w == 550.0
    assert parse_query("placa 610w").categories == ("module",)
    assert parse_query("micro inversor deye").categories == ("microinverter",)
    assert parse_query("micro 2kw").categories == ("microinverter",)
    assert parse_query("inversor hibrido 6kw").categories == ("hybrid_inverter",)
    assert parse_query("bat 5kwh").categories == ("battery",) and parse_query("bat 5kwh").battery_kwh == 5.0
    assert parse_query("bat 5kwh").power_w is None


def test_a_kit_is_described_by_its_parts_and_sized_in_kwp():
    parsed = parse_query("kit 8,4 kwp microinversor deye mono", ("Deye",))
    assert parsed.categories == ("kit",) and parsed.power_w == 8400.0
    assert "microinversor" in parsed.terms and "deye" in parsed.terms
    filters = parsed.filters()
    assert filters.power_min_w == pytest.approx(7560) and filters.power_max_w == pytest.approx(9240)
    assert filters.phases is None  # kits state no phases: not a filter


def test_model_codes_prices_and_stock_wishes():
    assert "GW5000DNS30" in parse_query("GW5000-DNS-30").codes
    assert "SUN5K" in parse_query("sun 5k").codes  # a short series word is joined to the code
    assert "5KW" not in parse_query("inversor 5kw").codes  # a power is not a code
    parsed = parse_query("inversor ate 5 mil em estoque")
    assert parsed.price_max_brl == 5000.0 and parsed.wants_in_stock and parsed.terms == ()
    assert parse_query("modulo acima de R$ 400").price_min_brl == 400.0
    brands = parse_query("kit solarnplus", ("Solar N Plus",)).brands
    assert brands == ("solar n plus",)


# --------------------------------------------------------------------------------------
# search over the real exports
# --------------------------------------------------------------------------------------


def test_an_exact_model_match_comes_first(engine):
    for text, key in (("GW5000-DNS-30", "GoodWe|GW5000DNS3016AAFCI"), ("sun-5k-g", "Deye|SUN5KG"),
                      ("mid 25ktl3", "Growatt|MID25KTL3X")):
        first = engine.search(text, k=5).products[0]
        assert (first.product_key, first.exact_model) == (key, True), text


def test_offers_are_grouped_by_product(engine):
    result = engine.search("inversor deye 50kw tri", k=10)
    keys = [p.product_key for p in result.products]
    assert len(keys) == len(set(keys))
    deye = next(p for p in result.products if p.product_key == "Deye|SUN50KGLV")
    assert sorted(o.sku for o in deye.offers) == ["600147", "SUN-50K-G-LV~2652CEF8", "SUN-50K-G-LV~D8E4616D"]
    assert deye.min_price_brl == min(o.price_brl for o in deye.offers)


def test_filters_from_the_query_and_given_filters_hold_on_every_offer(engine):
    result = engine.search("inv 10kw mono", k=20)
    assert result.products and all(p.power_w == 10000 and p.phases == 1 for p in result.products)
    given = SearchFilters(brands=("goodwe",), price_max_brl=7440.0)
    result = engine.search("inv 10kw mono", k=20, filters=given)
    offers = [o for p in result.products for o in p.offers]
    assert offers and all(p.brand == "GoodWe" for p in result.products)
    assert all(o.price_brl <= 7440.0 for o in offers)
    assert engine.search("inversor", k=20, filters=SearchFilters(distributors=("fotus",))).products == ()
    stocked = engine.search("estrutura", k=20, filters=SearchFilters(in_stock=True))
    assert {o.availability for p in stocked.products for o in p.offers} == {"in_stock"}


def test_a_brand_that_lacks_the_power_asked_gives_the_power_asked(engine):
    # no Growatt inverter of 5 kW: the 5 kW single-phase inverters of other brands
    result = engine.search("inversor 5 kw monofásico growatt", k=5)
    assert {p.product_key for p in result.products} == {
        "Deye|SUN5KG", "Sofar|5KTLMG3AFCI", "GoodWe|GW5000DNS3016AAFCI"}
    # a power nobody sells: the filter is dropped and the closest powers rank first
    relaxed = engine.search("modulo 650w", k=3)
    assert relaxed.relaxed == ("power",) and relaxed.products[0].power_w == 610.0


def test_facets_count_the_matching_offers(engine):
    result = engine.search("inversor goodwe", k=5)
    assert not result.capped  # fewer matches than candidates: every match counted
    facets = result.facets
    assert sum(n for _, n in facets["category"]) == result.total_offers
    assert sum(n for _, n in facets["distributor"]) == result.total_offers
    assert dict(facets["phases"]).keys() <= {1, 2, 3}
    assert facets["power_w"] and all("W" in label for label, _ in facets["power_w"])


def test_text_tiers_go_from_every_term_to_exactly_one():
    assert _term_tiers([]) == [] and _term_tiers(["deye"]) == ["deye"]
    tiers = _term_tiers(["a", "b", "c"])
    assert tiers == ["a & b & c",
                     "((a & b) | (a & c) | (b & c)) & !((a & b & c))",
                     "((a) | (b) | (c)) & !((a & b) | (a & c) | (b & c))"]
    many = _term_tiers([f"t{i}" for i in range(8)])
    assert len(many) == 2 and many[0].count("&") == 7


def test_a_capped_search_scores_the_most_specific_candidates(real_warehouse):
    small = CatalogSearch(real_warehouse, candidates=4)
    try:
        result = small.search("GW5000-DNS-30", k=5)
        broad = small.search("kit deye microinversor", k=5)
    finally:
        small.close()
    # the exact model is read first (model-code tier), before trigram-similar codes
    assert (result.products[0].product_key, result.products[0].exact_model) == ("GoodWe|GW5000DNS3016AAFCI", True)
    assert result.capped and result.total_offers <= 4
    assert sum(n for _, n in result.facets["category"]) == result.total_offers
    # 145 kits name both terms, 240 only one: the 4 candidates are kits that name both
    assert broad.capped and broad.total_offers == 4
    keys = [f"{o.distributor}|{o.sku}" for p in broad.products for o in p.offers]
    (both,), = query(real_warehouse, "SELECT count(*) FROM items_normalized WHERE distributor || '|' || sku = ANY(%s)"
                                     " AND search_tsv @@ to_tsquery('catalog_pt', 'deye & microinversor')", (keys,))
    assert len(keys) == both == 4


def test_judged_buyer_queries_hit_at_5(engine):
    judged = load_judged(JUDGED)
    assert len(judged) >= 30 and {j.split for j in judged} == {"tuning", "evaluation"}
    for split in ("tuning", "evaluation"):
        subset = [j for j in judged if j.split == split]
        result = evaluate(lambda j: engine.search(j.query, k=5, filters=j.filters, semantic=False), subset)
        assert result.hit_at_5 >= 0.9, (split, result.misses)


# --------------------------------------------------------------------------------------
# embeddings: incremental by content hash; the semantic signal
# --------------------------------------------------------------------------------------


class CountingEncoder:
    """A deterministic stand-in for the sentence model (hash → unit vector), counting texts."""

    def __init__(self, dim: int = 384):
        self.dim, self.texts = dim, []

    def __call__(self, texts):
        self.texts.extend(texts)
        out = []
        for text in texts:
            rng = np.random.default_rng(int(hashlib.sha256(text.encode()).hexdigest()[:12], 16))
            vector = rng.normal(size=self.dim).astype(np.float32)
            out.append(vector / np.linalg.norm(vector))
        return np.array(out)


def test_embeddings_are_incremental_by_content(warehouse):
    job.run_static([EXPORTS / "solfacil" / "solfacil-inverters.json"], warehouse=warehouse, with_products=False)
    encoder = CountingEncoder()
    first = sync_embeddings(warehouse, encoder, "test-model")
    assert first.embedded == first.texts == len(encoder.texts) and first.offers_changed == first.offers > 0
    again = sync_embeddings(warehouse, encoder, "test-model")
    assert (again.embedded, again.offers_changed, again.offers_removed) == (0, 0, 0)
    (sku,), = query(warehouse, "SELECT sku FROM items_normalized ORDER BY sku LIMIT 1")
    query_then_commit(warehouse, "UPDATE items_normalized SET name = name || ' NOVO' WHERE sku = %s", (sku,))
    query_then_commit(warehouse, "DELETE FROM items_normalized WHERE sku = (SELECT max(sku) FROM items_normalized)")
    changed = sync_embeddings(warehouse, encoder, "test-model")
    assert (changed.embedded, changed.offers_changed, changed.offers_removed) == (1, 1, 1)
    (rows,), = query(warehouse, "SELECT count(*) FROM catalog_embedding_items")
    assert rows == changed.offers


def query_then_commit(warehouse, statement, params=()):
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        conn.execute(statement, params)
        conn.commit()


def test_the_semantic_signal_is_fused_when_asked(warehouse):
    job.run_static([EXPORTS / "solfacil" / "solfacil-inverters.json"], warehouse=warehouse, with_products=False)
    encoder = CountingEncoder()
    sync_embeddings(warehouse, encoder, "test-model")
    (sku, text), = query(warehouse, "SELECT i.sku, e.text FROM catalog_embeddings e JOIN catalog_embedding_items i "
                                    "USING (model, content_sha256) ORDER BY i.sku DESC LIMIT 1")
    # a query whose vector is that offer's: the semantic signal alone lifts it
    engine = CatalogSearch(warehouse, embed_query=lambda texts: encoder([text] * len(texts)), model="test-model",
                           weights=Weights(semantic=5.0))
    try:
        plain = engine.search("inversor fotovoltaico", k=3, semantic=False)
        fused = engine.search("inversor fotovoltaico", k=3, semantic=True)
    finally:
        engine.close()
    assert fused.semantic and not plain.semantic
    assert plain.products[0].offers[0].sku != sku and fused.products[0].offers[0].sku == sku


def test_query_vectors_are_cached(warehouse):
    job.run_static([EXPORTS / "solfacil" / "solfacil-inverters.json"], warehouse=warehouse, with_products=False)
    encoder = CountingEncoder()
    sync_embeddings(warehouse, encoder, "test-model")
    asked = []
    engine = CatalogSearch(warehouse, embed_query=lambda texts: asked.extend(texts) or encoder(texts),
                           model="test-model", query_cache=2)
    try:
        for text in ("inversor 5kw", "inversor 5kw", "inversor 8kw", "inversor 5kw", "inversor 10kw", "inversor 8kw"):
            assert engine.search(text, k=3, semantic=True).semantic
        engine.clear_query_cache()
        engine.search("inversor 10kw", k=3, semantic=True)
    finally:
        engine.close()
    # the second 5 kW hits the cache; 8 kW is pushed out by 5 kW and 10 kW (two vectors kept)
    assert asked == ["inversor 5kw", "inversor 8kw", "inversor 10kw", "inversor 8kw", "inversor 10kw"]


# --------------------------------------------------------------------------------------
# the Hélio route and the CLI
# --------------------------------------------------------------------------------------


def _api(catalog):
    from ysh.rag.server import HelioApi
    from ysh.rag.serving import LatestRow, LiveIndex

    return HelioApi(LiveIndex(3, dense_weight=0.0), LatestRow(), LatestRow(),
                    lambda: {"embedded": 0, "cache_hits": 0}, catalog=catalog)


def _requests(api, calls, api_key=None):
    from aiohttp.test_utils import TestClient, TestServer

    async def run():
        app = api.application(api_key=api_key, max_request_bytes=65536, local_only=True)
        out = []
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            for method, path, kwargs in calls:
                response = await client.request(method, path, **kwargs)
                out.append((response.status, await response.json()))
        return out

    return asyncio.run(run())


def test_the_helio_route_searches_and_refuses_bad_input(engine):
    (ok_status, ok), (get_status, got), *bad = _requests(_api(engine), [
        ("POST", "/v1/catalog/search", {"json": {"query": "inv 5kw mono", "k": 3, "semantic": False}}),
        ("GET", "/v1/catalog/search", {"params": {"query": "GW5000-DNS-30", "phases": "1", "category": "inverter"}}),
        ("POST", "/v1/catalog/search", {"json": {"k": 3}}),
        ("POST", "/v1/catalog/search", {"json": {"query": "inv", "phases": 4}}),
        ("POST", "/v1/catalog/search", {"json": {"query": "inv", "category": ["spaceship"]}}),
        ("POST", "/v1/catalog/search", {"json": {"query": "inv", "price_max_brl": "cheap"}}),
        ("POST", "/v1/catalog/search", {"json": {"query": "inv", "k": 0}}),
        ("POST", "/v1/catalog/search", {"json": {"query": "inv", "brand": {"a": 1}}}),
        ("POST", "/v1/catalog/search", {"data": b"query=inv", "headers": {"Content-Type": "text/plain"}}),
    ])
    assert ok_status == 200 and len(ok["products"]) == 3
    assert all(p["power_w"] == 5000 and p["phases"] == 1 for p in ok["products"])
    assert ok["products"][0]["offers"][0]["distributor"] == "solfacil" and "category" in ok["facets"]
    assert get_status == 200 and got["products"][0]["product_key"] == "GoodWe|GW5000DNS3016AAFCI"
    assert got["products"][0]["exact_model"] is True
    assert [status for status, _ in bad] == [400, 400, 400, 400, 400, 400, 415]
    assert "query" in bad[0][1]["error"] and "phases" in bad[1][1]["error"] and "spaceship" in bad[2][1]["error"]


def test_the_route_needs_the_key_and_a_warehouse(engine):
    from ysh.rag.server import openapi_document

    (no_key, _), (with_key, _) = _requests(_api(engine), [
        ("POST", "/v1/catalog/search", {"json": {"query": "inv"}}),
        ("POST", "/v1/catalog/search", {"json": {"query": "inv"}, "headers": {"X-API-Key": "k" * 32}}),
    ], api_key="k" * 32)
    assert (no_key, with_key) == (401, 200)
    [(status, body)] = _requests(_api(None), [("POST", "/v1/catalog/search", {"json": {"query": "inv"}})])
    assert status == 503 and "not configured" in body["error"]
    assert "/v1/catalog/search" in openapi_document()["paths"]


def test_the_cli_searches_the_warehouse(real_warehouse, monkeypatch):
    from typer.testing import CliRunner

    from ysh.cli import app
    from ysh.settings import get_settings

    monkeypatch.setenv("YSH_POSTGRES_DSN", real_warehouse.dsn)
    monkeypatch.setenv("YSH_POSTGRES_SCHEMA", real_warehouse.schema)
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        as_json = runner.invoke(app, ["catalog", "search", "GW5000-DNS-30", "--no-semantic", "--json", "-k", "2"])
        table = runner.invoke(app, ["catalog", "search", "inversor 5 kw monofásico growatt", "--no-semantic"])
        filtered = runner.invoke(app, ["catalog", "search", "inversor", "--no-semantic", "--json",
                                       "--phases", "3", "--power-min-w", "60000", "--distributor", "solfacil"])
    finally:
        get_settings.cache_clear()
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    assert data["products"][0]["product_key"] == "GoodWe|GW5000DNS3016AAFCI" and len(data["products"]) == 2
    assert table.exit_code == 0 and "Deye SUN-5K-G" in table.output and "solfacil" in table.output
    rows = json.loads(filtered.output)["products"]
    assert rows and all(p["phases"] == 3 and p["power_w"] >= 60000 for p in rows)
