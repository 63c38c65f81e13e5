"""A run killed with SIGTERM saves a checkpoint, exits cleanly, and resumes to the same weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from galaxalign_astro.train import Trainer
from galaxalign_astro.train.state import latest_checkpoint, load_state
from tests.train.tiny_run import split, tiny_config, tiny_data, weights

SCRIPT = Path(__file__).with_name("tiny_run.py")
ROOT = Path(__file__).resolve().parents[2]


def _steps_logged(metrics: Path) -> int:
    if not metrics.exists():
        return 0
    steps = [json.loads(x) for x in metrics.read_text().splitlines() if '"step"' in x]
    return max((r["global_step"] for r in steps if r["kind"] == "step"), default=0)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_mid_run_checkpoints_and_resume_matches_uninterrupted(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    # 0.3 s per optimizer step: 10 steps in all, so the signal lands mid-run
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(tmp_path), "16", "0.3"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics = tmp_path / "model" / "metrics.jsonl"
    deadline = time.monotonic() + 50
    while _steps_logged(metrics) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, f"run ended before the signal: {proc.communicate()[1][-2000:]}"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=50)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "SIGTERM received" in stderr
    checkpoint = latest_checkpoint(tmp_path / "model" / "checkpoints")
    stopped_at = load_state(checkpoint).position
    assert 3 <= stopped_at.global_step < 10
    assert not (tmp_path / "rank0.safetensors").exists()  # the run did not finish

    train, val = split(tiny_data())
    resumed = Trainer(tiny_config(16))
    resumed.fit(train, val, output=tmp_path / "model", resume=True)
    uninterrupted = Trainer(tiny_config(16))
    uninterrupted.fit(train, val)
    expected = weights(uninterrupted.model)
    for key, value in weights(resumed.model).items():
        assert torch.equal(value, expected[key]), key
