"""A convolutional image tower (timm through open_clip, with BatchNorm), as the default uses.

BatchNorm makes a network's output depend on its batch while it trains; a saved
model must give every cutout the same class whatever else is in its batch, with
either engine, and its image tower's running statistics must be those of images
(not of the symbols the shared stage-1 tower also saw).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from galaxalign_astro.inference import classify
from galaxalign_astro.models import export, load_model

#: a small timm RegNet at 32 px: the bundled default's tower family, cheap enough for tests
CONV_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {
        "timm_model_name": "regnetx_002",
        "timm_model_pretrained": False,
        "timm_pool": "avg",
        "timm_proj": "linear",
        "image_size": 32,
    },
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def conv_model(tmp_path_factory):
    """A two-stage-trained conv-tower model on synthetic blobs, saved to a folder."""
    import open_clip

    from tests.cutout_factory import train_blob_model

    configs = tmp_path_factory.mktemp("configs")
    (configs / "gxa-test-conv.json").write_text(json.dumps(CONV_CONFIG))
    open_clip.add_model_config(configs)
    out = tmp_path_factory.mktemp("models") / "conv"
    return train_blob_model("gxa-test-conv", out, n=60, n_train=48, name="conv-test", device="cpu")


def test_a_saved_conv_model_loads_with_its_stored_architecture(conv_model):
    loaded = load_model(conv_model)
    spec = json.loads((conv_model / "galaxalign.json").read_text())
    assert spec["architecture_config"]["vision_cfg"]["timm_model_name"] == "regnetx_002"
    assert loaded.model.image_size == 32
    assert not loaded.model.training


def test_conv_tower_embeds_an_image_the_same_alone_or_in_a_batch(conv_model):
    loaded = load_model(conv_model)
    images = torch.rand(6, 3, 32, 32)
    with torch.inference_mode():
        batch = loaded.model.encode_image(images)
        alone = loaded.model.encode_image(images[:1])
    torch.testing.assert_close(alone, batch[:1], atol=1e-5, rtol=0)


def test_conv_tower_onnx_engine_equals_torch(conv_model, tmp_path, monkeypatch):
    monkeypatch.setenv("GALAXALIGN_ASTRO_CACHE", str(tmp_path / "cache"))
    loaded = load_model(conv_model)
    images = torch.rand(5, 3, 32, 32)
    with torch.inference_mode():
        want = loaded.model.encode_image(images).numpy()
    got = export.OnnxImageEncoder(loaded)(images.numpy())
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_conv_model_classifies_a_cutout_the_same_alone_or_among_others(
    conv_model, cutout_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("GALAXALIGN_ASTRO_CACHE", str(tmp_path / "cache"))
    files = sorted(cutout_dir.glob("*.fits"))
    for engine in ("torch", "onnx"):
        together = classify(files, model=conv_model, engine=engine, workers=0)
        alone = classify(files[:1], model=conv_model, engine=engine, workers=0)
        assert alone["class_id"][0] == together["class_id"][0]
        np.testing.assert_allclose(alone["probs"][0], together["probs"][0], atol=1e-5)


def _norms(tower):
    return [m for m in tower.modules() if isinstance(m, torch.nn.BatchNorm2d)]


def test_symbols_through_the_shared_tower_leave_its_running_statistics_to_images(conv_model):
    """Stage 1: symbols share the image tower but not its batch-norm statistics."""
    import copy

    model = copy.deepcopy(load_model(conv_model).model)
    model.symbol_visual = None  # the stage-1 layout: one tower for images and symbols
    model.train()
    norms = _norms(model.clip.visual)
    assert norms
    before = [(m.running_mean.clone(), m.running_var.clone()) for m in norms]
    tracked = [int(m.num_batches_tracked) for m in norms]
    symbols = torch.rand(8, 3, 32, 32)
    model.encode_symbol(symbols).sum().backward()  # trains: gradients flow
    for m, (mean, var), n in zip(norms, before, tracked, strict=True):
        torch.testing.assert_close(m.running_mean, mean, atol=0, rtol=0)
        torch.testing.assert_close(m.running_var, var, atol=0, rtol=0)
        assert int(m.num_batches_tracked) == n
        assert m.momentum == 0.1  # restored
    assert model.clip.visual.trunk.stem.conv.weight.grad is not None
    # images do update them
    model.encode_image(torch.rand(8, 3, 32, 32) * 0.2)
    assert any(
        not torch.equal(m.running_mean, mean) for m, (mean, _) in zip(norms, before, strict=True)
    )
