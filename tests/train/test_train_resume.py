"""Determinism, checkpoints, resume and the output directory layout (CPU)."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from galaxalign_astro.models import load_model
from galaxalign_astro.train import Trainer, TrainingInterrupted
from galaxalign_astro.train.state import latest_checkpoint, load_state
from tests.train.tiny_run import split, tiny_config, tiny_data, weights

TRAIN, VAL = split(tiny_data())


class StopAt:
    """Asks the trainer to stop after optimizer step ``step`` or after epoch ``epoch``."""

    def __init__(self, *, step: int | None = None, epoch: int | None = None) -> None:
        self.step, self.epoch = step, epoch

    def on_step_end(self, trainer, position) -> None:
        if position.global_step == self.step:
            trainer.request_stop()

    def on_epoch_end(self, trainer, record) -> None:
        if len(trainer.history) == self.epoch:
            trainer.request_stop()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run: stage 1 and stage 2, one epoch each, 5 steps per epoch."""
    out = tmp_path_factory.mktemp("reference") / "model"
    trainer = Trainer(tiny_config())
    result = trainer.fit(TRAIN, VAL, output=out)
    return out, result, weights(trainer.model)


def timeless(records: list[dict]) -> list[dict]:
    """Records without the throughput, the one value that depends on the machine's load."""
    return [{k: v for k, v in r.items() if k != "images_per_s"} for r in records]


def csv_rows(path) -> list[dict]:
    return timeless(list(csv.DictReader(path.read_text().splitlines())))


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_same_seed_gives_identical_weights(reference):
    _, result, expected = reference
    again = Trainer(tiny_config())
    again_result = again.fit(TRAIN, VAL)
    assert_same_weights(weights(again.model), expected)
    assert [r["loss"] for r in again_result.history] == [r["loss"] for r in result.history]


@pytest.mark.parametrize("stop", [{"epoch": 1}, {"step": 7}], ids=["after-epoch-1", "mid-epoch"])
def test_resume_reaches_the_weights_of_the_uninterrupted_run(reference, tmp_path, stop, caplog):
    ref_out, ref_result, expected = reference
    out = tmp_path / "model"
    random = "random initialisation (no pretrained weights)"
    with (
        caplog.at_level("INFO"),
        pytest.raises(TrainingInterrupted, match="continue with --resume") as info,
    ):
        Trainer(tiny_config(), callbacks=[StopAt(**stop)]).fit(TRAIN, VAL, output=out)
    assert random in caplog.text  # a fresh run starts from random weights, and says so
    caplog.clear()
    assert info.value.checkpoint == latest_checkpoint(out / "checkpoints")
    state = load_state(info.value.checkpoint)
    assert state.position.global_step == (5 if "epoch" in stop else 7)
    with caplog.at_level("INFO"):
        resumed = Trainer(tiny_config())
        result = resumed.fit(TRAIN, VAL, output=out, resume=True)
    assert random not in caplog.text and "resuming from" in caplog.text
    assert_same_weights(weights(resumed.model), expected)
    assert timeless(result.history) == timeless(ref_result.history)
    assert csv_rows(out / "metrics.csv") == csv_rows(ref_out / "metrics.csv")
    steps = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["global_step"] for r in steps if r["kind"] == "step"] == list(range(1, 11))


def test_checkpoints_hold_only_tensors_and_plain_values(reference):
    out, _, _ = reference
    path = latest_checkpoint(out / "checkpoints")
    payload = torch.load(path, weights_only=True)  # refuses any pickled object
    assert {"model", "optimizer", "scheduler", "rng", "position"} <= set(payload)
    assert payload["position"] == {"stage": 2, "epoch": 0, "step": 0, "global_step": 10}


def test_resume_refuses_other_settings(reference, tmp_path):
    out = tmp_path / "model"
    with pytest.raises(TrainingInterrupted):
        Trainer(tiny_config(), callbacks=[StopAt(step=2)]).fit(TRAIN, VAL, output=out)
    with pytest.raises(ValueError, match=r"other settings.*batch_size"):
        Trainer(tiny_config(batch_size=8)).fit(TRAIN, VAL, output=out, resume=True)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        Trainer(tiny_config()).fit(TRAIN, VAL, output=tmp_path / "empty", resume=True)


def test_output_holds_best_model_last_model_and_metrics(reference):
    out, result, _ = reference
    rows = csv_rows(out / "metrics.csv")
    assert [(r["stage"], r["epoch"]) for r in rows] == [("stage1", "1"), ("stage2", "1")]
    best_row = max(rows, key=lambda r: float(r["val_acc_mix"]))
    best = load_model(out)
    last = load_model(out / "last")
    assert best.spec.training["selected"] == "best"
    assert last.spec.training["selected"] == "last"
    assert result.best_epoch["stage"] == best_row["stage"]
    assert result.val_accuracy["val_acc_mix"] == pytest.approx(float(best_row["val_acc_mix"]))
    assert best.spec.prototype_alpha == pytest.approx(float(best_row["alpha"]))
    assert last.spec.symbol_tower == "separate"
    assert result.last == out / "last"
