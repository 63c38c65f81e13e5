"""Tiny training runs for the trainer tests, importable and runnable as a script.

As a script (a worker for the subprocess tests)::

    python tiny_run.py OUT BATCH [STEP_SLEEP]
    python -m torch.distributed.run --standalone --nproc_per_node 2 tiny_run.py OUT BATCH

trains gxa-micro on :func:`tiny_data`; every process writes its final weights
to ``OUT/rank{RANK}.safetensors`` and its epoch losses to ``OUT/rank{RANK}.json``
(the trainer itself writes the model ``OUT/model`` from rank 0 only). A stopped
run exits with the trainer's status (143 after SIGTERM).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from galaxalign_astro.preprocess import PreprocessConfig
from galaxalign_astro.train import (
    LabelledImages,
    TrainConfig,
    Trainer,
    TrainingInterrupted,
    default_stages,
)

N_TRAIN, N_VAL = 80, 16


def tiny_data(n: int = N_TRAIN + N_VAL, size: int = 32, seed: int = 0) -> LabelledImages:
    """Random uint8 images whose brightness depends on the class (so there is signal)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    images = rng.integers(0, 60, (n, 3, size, size)).astype(np.int64)
    images += (labels * 19)[:, None, None, None]
    return LabelledImages(images.clip(0, 255).astype(np.uint8), labels)


def split(data: LabelledImages) -> tuple[LabelledImages, LabelledImages]:
    return data.subset(np.arange(N_TRAIN)), data.subset(np.arange(N_TRAIN, len(data)))


def tiny_config(batch_size: int = 16, epochs=(1, 1), **changes) -> TrainConfig:
    """gxa-micro (32 px), both stages, CPU, few texts and symbols, no augmentation unless asked."""
    settings = {
        "architecture": "gxa-micro",
        "preprocess": PreprocessConfig(size=32),
        "stages": default_stages(*epochs, lr=1e-3),
        "batch_size": batch_size,
        "symbols": {"variants": 2},
        "text": {"templates": ["{}"]},
        "augment": False,
        "log_every": 1,
        "device": "cpu",
    }
    settings.update(changes)
    return TrainConfig(**settings)


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


class Sleep:
    """Slows every optimizer step so a test can signal the run in the middle."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_step_end(self, trainer, position) -> None:
        time.sleep(self.seconds)


def main(out: str, batch_size: int, step_sleep: float = 0.0) -> int:
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    folder = Path(out)
    train, val = split(tiny_data())
    callbacks = [Sleep(step_sleep)] if step_sleep else []
    trainer = Trainer(tiny_config(batch_size), callbacks=callbacks)
    try:
        result = trainer.fit(train, val, output=folder / "model")
    except TrainingInterrupted as exc:
        return exc.exit_status
    rank = int(os.environ.get("RANK", "0"))
    save_file(weights(trainer.model), str(folder / f"rank{rank}.safetensors"))
    (folder / f"rank{rank}.json").write_text(json.dumps([r["loss"] for r in result.history]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]) if len(sys.argv) > 3 else 0.0))
