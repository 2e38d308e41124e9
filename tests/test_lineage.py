"""Lineage that tells the truth: over the merged asset graph (`ysh.definitions.defs`, the
one the Dagster UI shows), each asset is downstream of the tables it reads."""

import dagster as dg
import pytest

from ysh.definitions import defs


def key(name: str) -> dg.AssetKey:
    return dg.AssetKey(name)


@pytest.fixture(scope="module")
def graph():
    return defs.get_repository_def().asset_graph


def parents(graph, name: str) -> set[str]:
    return {k.to_user_string() for k in graph.get(key(name)).parent_keys}


def test_helio_reads_the_catalog_and_the_tariffs_it_answers_from(graph):
    # ysh.rag.records: products + items_normalized, tarifas_normalized (+ fio_b) + tarifas_bandeiras
    assert {"rag_docs_raw", "catalog_products", "catalog_normalized", "tarifas_normalized",
            "tarifas_bandeiras"} <= parents(graph, "helio_rag_index")


def test_the_catalog_embeddings_feed_helio(graph):
    """`catalog_embeddings` is the semantic signal of Hélio's catalog search route."""
    assert "catalog_embeddings" in parents(graph, "helio_rag_index")


def test_helio_is_downstream_of_the_whole_catalog_and_tariff_chains(graph):
    upstream = {k.to_user_string() for k in graph.upstream_key_iterator(key("helio_rag_index"))}
    assert {"catalog_raw", "tarifas_raw"} <= upstream


def test_the_om_daily_summary_reads_its_stream(graph):
    assert parents(graph, "om_alerts_daily") == {"om_inverters_stream"}


def test_the_rag_group_has_an_upstream_in_other_groups(graph):
    """The issue's symptom: in the UI the `rag` group had no upstream."""
    rag = [k for k in graph.get_all_asset_keys() if graph.get(k).group_name == "rag"]
    outside = {p for k in rag for p in graph.get(k).parent_keys if graph.get(p).group_name != "rag"}
    assert {graph.get(p).group_name for p in outside} >= {"catalog", "tariffs"}


def test_every_declared_dependency_is_an_asset_of_the_platform(graph):
    """A dependency on a key no job defines shows as a phantom external asset in the UI (a
    typo, or a table whose asset was renamed)."""
    defined = {k for assets_def in defs.assets for k in assets_def.keys}
    missing = {f"{child.to_user_string()} <- {parent.to_user_string()}"
               for child in defined for parent in graph.get(child).parent_keys if parent not in defined}
    assert not missing
