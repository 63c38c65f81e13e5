"""torchrun with 2 CPU processes (gloo) trains like one process on the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from galaxalign_astro.train import Trainer
from tests.train.tiny_run import split, tiny_config, tiny_data, weights

SCRIPT = Path(__file__).with_name("tiny_run.py")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")
def test_two_gloo_processes_match_one_process_on_the_global_batch(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    # 8 images per process: a contrastive batch of 16, gathered across the two
    proc = subprocess.run(
        [*run, str(SCRIPT), str(tmp_path), "8"], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    rank0 = load_file(str(tmp_path / "rank0.safetensors"))
    rank1 = load_file(str(tmp_path / "rank1.safetensors"))
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key  # DDP keeps the replicas identical

    train, val = split(tiny_data())
    single = Trainer(tiny_config(16))
    result = single.fit(train, val)
    expected = weights(single.model)
    # the same updates up to float summation order (Adam amplifies the last bits a little)
    for key, value in expected.items():
        torch.testing.assert_close(rank0[key], value, rtol=0, atol=1e-3, msg=key)
    losses = json.loads((tmp_path / "rank0.json").read_text())
    assert losses == pytest.approx([r["loss"] for r in result.history], rel=1e-4)
    assert losses[-1] < losses[0]
    # only rank 0 wrote the model directory
    assert (tmp_path / "model" / "model.safetensors").exists()
    assert (tmp_path / "model" / "last" / "model.safetensors").exists()
