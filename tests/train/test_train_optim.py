"""Optimizer, schedule, accumulation and mixed precision of the trainer."""

from __future__ import annotations

import json

import pytest
import torch

from galaxalign_astro.train import StageConfig, Trainer
from galaxalign_astro.train.optim import WarmupCosine, param_groups, resolve_precision
from tests.train.tiny_run import split, tiny_config, tiny_data

TRAIN, VAL = split(tiny_data())


def test_warmup_and_cosine_follow_the_data_set_size(tmp_path):
    stage = StageConfig("only", epochs=1, lr=1e-3, warmup_fraction=0.4)
    peaks = {}
    for n in (80, 48):
        out = tmp_path / str(n)
        Trainer(tiny_config(batch_size=16, stages=[stage])).fit(
            TRAIN.subset(torch.arange(n).numpy()), output=out
        )
        records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        lrs = [r["lr"] for r in records if r["kind"] == "step"]
        total = n // 16
        assert len(lrs) == total
        assert max(lrs) == pytest.approx(1e-3)
        assert lrs[0] == pytest.approx(1e-3 / round(0.4 * total))
        curve = WarmupCosine(total, round(0.4 * total))
        assert lrs == pytest.approx([1e-3 * curve(s) for s in range(total)])
        peaks[n] = lrs.index(max(lrs)) + 1  # warm-up steps
    assert peaks == {80: 2, 48: 1}


def test_gradient_accumulation_makes_fewer_optimizer_steps():
    stage = StageConfig("only", epochs=1, lr=1e-3)
    result = Trainer(tiny_config(batch_size=8, accumulate=2, stages=[stage])).fit(TRAIN)
    assert result.history[-1]["global_step"] == 80 // (8 * 2)
    assert result.history[-1]["loss"] > 0


def test_warmup_cosine_curve():
    curve = WarmupCosine(total=10, warmup=2, min_fraction=0.1)
    assert [curve(s) for s in (0, 1)] == [0.5, 1.0]
    assert curve(2) == pytest.approx(1.0)
    assert curve(10) == pytest.approx(0.1)
    assert WarmupCosine(10, 0, cosine=False)(7) == 1.0


def test_no_weight_decay_on_norms_biases_and_temperature():
    trainer = Trainer(tiny_config())
    model = trainer.model
    groups = param_groups(model.named_parameters(), weight_decay=0.1, model=model)
    decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    names = {id(p): n for n, p in model.named_parameters()}
    for pid in decayed:
        name = names[pid]
        assert "ln_" not in name and not name.endswith("bias") and "logit_scale" not in name
    assert id(model.logit_scale) not in decayed
    assert id(model.clip.visual.transformer.resblocks[0].ln_1.weight) not in decayed
    assert id(model.clip.visual.transformer.resblocks[0].attn.in_proj_weight) in decayed


def test_mixed_precision_choice(monkeypatch):
    cpu = resolve_precision("auto", torch.device("cpu"))
    assert (cpu.dtype, cpu.scaler) == (None, False)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    bf16 = resolve_precision("auto", torch.device("cuda"))
    assert (bf16.dtype, bf16.scaler) == (torch.bfloat16, False)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    fp16 = resolve_precision("auto", torch.device("cuda"))
    assert (fp16.dtype, fp16.scaler) == (torch.float16, True)
    assert resolve_precision("fp32", torch.device("cuda")).dtype is None


def test_tensorboard_events_when_installed_else_a_warning(tmp_path):
    import importlib.util

    from galaxalign_astro.errors import GalaxAlignWarning

    stage = StageConfig("only", epochs=1, lr=1e-3)
    trainer = Trainer(tiny_config(stages=[stage], tensorboard=True))
    if importlib.util.find_spec("tensorboard") is None:
        with pytest.warns(GalaxAlignWarning, match="tensorboard is not installed"):
            trainer.fit(TRAIN, output=tmp_path / "m")
    else:
        trainer.fit(TRAIN, output=tmp_path / "m")
        assert any((tmp_path / "m" / "tensorboard").iterdir())
    assert (tmp_path / "m" / "metrics.jsonl").exists()
