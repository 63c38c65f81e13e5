"""The ONNX image-tower engine: same embeddings and classes as torch, cached once per weights."""

import numpy as np
import pytest
import torch

from galaxalign_astro.inference import classify
from galaxalign_astro.inference.run import Predictor
from galaxalign_astro.models import export, load_model


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("GALAXALIGN_ASTRO_CACHE", str(folder))
    return folder


def test_onnx_embeddings_equal_torch(micro_model, cache):
    loaded = load_model(micro_model)
    images = torch.rand(5, 3, loaded.model.image_size, loaded.model.image_size)
    with torch.inference_mode():
        want = loaded.model.encode_image(images).numpy()
    got = export.OnnxImageEncoder(loaded)(images.numpy())
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-5)
    # any batch size (the graph's batch axis is dynamic)
    np.testing.assert_allclose(
        export.OnnxImageEncoder(loaded)(images[:1].numpy()), want[:1], atol=1e-5
    )


def test_graph_is_exported_once_per_weights_and_rebuilt_when_damaged(
    micro_model, cache, monkeypatch
):
    loaded = load_model(micro_model)
    first = export.OnnxImageEncoder(loaded)
    assert first.path.is_file() and first.path.parent == cache / "onnx"
    assert loaded.weights_sha256[:24] in first.path.name

    def no_export(*args, **kwargs):
        raise AssertionError("exported again although the graph is cached")

    monkeypatch.setattr(torch.onnx, "export", no_export)
    export.OnnxImageEncoder(loaded)  # from the cache
    monkeypatch.undo()
    monkeypatch.setenv("GALAXALIGN_ASTRO_CACHE", str(cache))
    first.path.write_bytes(b"truncated")
    again = export.OnnxImageEncoder(loaded)
    assert again.path.stat().st_size > 1000
    x = np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32)
    np.testing.assert_allclose(again(x), first(x), atol=1e-6)


def test_unwritable_cache_keeps_the_graph_in_memory(micro_model, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("GALAXALIGN_ASTRO_CACHE", str(blocker))
    encoder = export.OnnxImageEncoder(load_model(micro_model))
    assert encoder(np.zeros((1, 3, 32, 32), dtype=np.float32)).shape[0] == 1


def test_classify_gives_the_same_catalog_with_either_engine(micro_model, cutout_dir, cache):
    rows = {
        engine: classify([cutout_dir], model=micro_model, engine=engine, workers=0)
        for engine in ("torch", "onnx")
    }
    assert list(rows["torch"]["class_id"]) == list(rows["onnx"]["class_id"])
    np.testing.assert_allclose(
        np.asarray(rows["onnx"]["probs"]), np.asarray(rows["torch"]["probs"]), atol=1e-5
    )


def test_engine_choice(micro_model, monkeypatch):
    assert Predictor(micro_model, engine="torch").engine == "torch"
    assert Predictor(micro_model).engine == "onnx"  # installed with the package
    monkeypatch.setattr(export, "onnx_available", lambda: False)
    assert Predictor(micro_model).engine == "torch"
    with pytest.raises(ValueError, match="onnxruntime"):
        Predictor(micro_model, engine="onnx")
    with pytest.raises(ValueError, match="unknown engine"):
        Predictor(micro_model, engine="tensorrt")


def test_auto_falls_back_to_torch_when_the_export_fails(micro_model, cache, monkeypatch, caplog):
    import logging

    from galaxalign_astro.errors import ModelLoadError

    def broken(*args, **kwargs):
        raise RuntimeError("operator not supported")

    monkeypatch.setattr(export, "_export", broken)
    predictor = Predictor(micro_model)
    with caplog.at_level(logging.WARNING):
        assert predictor.ready() == "torch"
    assert "ONNX export failed (operator not supported)" in caplog.text
    images = torch.rand(2, 3, 32, 32)
    probs, _ = predictor.predict(images)
    want, _ = Predictor(micro_model, engine="torch").predict(images)
    np.testing.assert_allclose(probs, want, atol=1e-6)
    with pytest.raises(ModelLoadError, match="cannot run on ONNX Runtime"):
        Predictor(micro_model, engine="onnx").ready()


def test_a_cache_write_that_fails_leaves_no_temporary_file(micro_model, cache, monkeypatch):
    import os

    real_fdopen = os.fdopen

    class Full:
        def __init__(self, fd, mode):
            self.fh = real_fdopen(fd, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(export.os, "fdopen", Full)
    encoder = export.OnnxImageEncoder(load_model(micro_model))
    assert encoder(np.zeros((1, 3, 32, 32), dtype=np.float32)).shape[0] == 1  # from memory
    assert list((cache / "onnx").iterdir()) == []
