"""The two stages as configurations of one trainer: towers, freezing, temperature, schedule."""

from __future__ import annotations

import math

import pytest
import torch

from galaxalign_astro.train import StageConfig, Trainer
from tests.train.tiny_run import split, tiny_config, tiny_data, weights

pytestmark = pytest.mark.filterwarnings(
    # open_clip's tokenizer module imports a deprecated ftfy/regex helper on first use
    "ignore::DeprecationWarning"
)

TRAIN, VAL = split(tiny_data())
IMAGE_ONLY = {"symbol_text": 0.0, "image_symbol": 0.0}


class SplitRecorder:
    """Snapshots the towers at the end of stage 1 and at the start of stage 2."""

    def __init__(self) -> None:
        self.end_of_stage1 = None
        self.at_split = None

    def on_epoch_end(self, trainer, record) -> None:
        if record["stage"] == "stage1":
            self.end_of_stage1 = weights(trainer.model.clip.visual)

    def on_stage_start(self, trainer, stage) -> None:
        if stage.name == "stage2":
            model = trainer.model
            self.at_split = (weights(model.clip.visual), weights(model.symbol_visual))


def test_stage2_symbol_tower_starts_as_exact_copy_of_stage1_image_tower():
    recorder = SplitRecorder()
    trainer = Trainer(tiny_config(), callbacks=[recorder])
    assert trainer.model.symbol_visual is None
    trainer.fit(TRAIN, VAL)
    image, symbol = recorder.at_split
    assert image.keys() == symbol.keys()
    for key in image:
        assert torch.equal(image[key], symbol[key]), key
        assert torch.equal(recorder.end_of_stage1[key], symbol[key]), key
    # a copy, not an alias: stage 2 trains the two towers apart
    after = trainer.model
    assert after.symbol_visual is not after.clip.visual
    assert any(
        not torch.equal(a, b)
        for a, b in zip(
            after.clip.visual.state_dict().values(),
            after.symbol_visual.state_dict().values(),
            strict=True,
        )
    )


def test_frozen_towers_and_fixed_temperature_do_not_change():
    stage = StageConfig(
        "text-only", epochs=1, lr=1e-3, train=("text",), learn_temperature=False, temperature=0.05
    )
    trainer = Trainer(tiny_config(stages=[stage]))
    image_before = weights(trainer.model.clip.visual)
    text_before = weights(trainer.model.clip.transformer)
    trainer.fit(TRAIN)
    for key, value in weights(trainer.model.clip.visual).items():
        assert torch.equal(value, image_before[key]), key
    assert any(
        not torch.equal(v, text_before[k])
        for k, v in weights(trainer.model.clip.transformer).items()
    )
    assert float(trainer.model.logit_scale) == pytest.approx(math.log(20.0))


def test_image_text_ablation_never_touches_the_symbol_tower(tmp_path):
    stages = [
        StageConfig("stage1", epochs=1, lr=1e-3, loss_weights=IMAGE_ONLY),
        StageConfig("stage2", epochs=1, lr=1e-3, symbol_tower="separate", loss_weights=IMAGE_ONLY),
    ]
    recorder = SplitRecorder()
    trainer = Trainer(tiny_config(stages=stages), callbacks=[recorder])
    result = trainer.fit(TRAIN, VAL, output=tmp_path / "m")
    _, symbol_at_split = recorder.at_split
    for key, value in weights(trainer.model.symbol_visual).items():
        assert torch.equal(value, symbol_at_split[key]), key
    assert all("loss_symbol_text" not in r and "loss_image_text" in r for r in result.history)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_mixed_precision_training_on_cuda(tmp_path):
    stage = StageConfig("only", epochs=2, lr=1e-3)
    trainer = Trainer(tiny_config(stages=[stage], device="cuda", precision="auto"))
    assert trainer.precision.dtype in (torch.bfloat16, torch.float16)
    result = trainer.fit(TRAIN, VAL, output=tmp_path / "m")
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_a_saved_best_model_lists_its_own_epoch_last_in_its_history(micro_model):
    """The card reads a model's history: it must end with the epoch whose weights it holds."""
    import json

    training = json.loads((micro_model / "galaxalign.json").read_text())["training"]
    best = training["best"]
    last = training["history"][-1]
    assert (last["stage"], last["epoch"]) == (best["stage"], best["epoch"])
    assert last["best"] is True
