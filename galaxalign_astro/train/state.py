"""Resumable training checkpoints in ``OUTPUT/checkpoints``.

A checkpoint is one ``torch.save`` file of tensors and plain Python values only
(dicts, lists, numbers, strings): model weights, optimizer, learning-rate
schedule and gradient-scaler state, the random-number generator states, and
the position (stage, epoch, step) of the next step to run. It is read with
``torch.load(weights_only=True)``, which refuses anything else, so loading a
checkpoint never runs code. The settings and the history travel as JSON text.

Files are named by the global optimizer step (``step-00001234.pt``) and written
atomically; ``latest`` names the newest. These are for resuming a run; the
model a user classifies with is the safetensors directory the trainer writes
(:mod:`galaxalign_astro.models.checkpoint`).
"""

from __future__ import annotations

import json
import logging
import os
import random
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ModelLoadError

__all__ = [
    "CHECKPOINT_DIR",
    "Position",
    "TrainingState",
    "capture_rng",
    "latest_checkpoint",
    "load_state",
    "restore_rng",
    "save_state",
]

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
LATEST = "latest"
FORMAT = 1


@dataclass
class Position:
    """The next step to run: optimizer ``step`` of ``epoch`` of stage number ``stage``."""

    stage: int = 0
    epoch: int = 0
    step: int = 0
    global_step: int = 0


@dataclass
class TrainingState:
    """Everything needed to continue a run exactly where it stopped."""

    position: Position
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    scaler: dict[str, Any] | None = None
    optimizer_stage: int = -1
    rng: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=dict)
    world_size: int = 1
    epoch_sums: dict[str, float] = field(default_factory=dict)


def capture_rng() -> dict[str, Any]:
    """torch (CPU and CUDA), numpy and Python global generator states as tensors and lists."""
    np_state: Any = np.random.get_state()  # noqa: NPY002 (the legacy global state is what we save)
    py_version, py_state, py_gauss = random.getstate()
    out: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore_rng(state: dict[str, Any]) -> None:
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "numpy" in state:
        n = state["numpy"]
        keys = n["keys"].numpy().astype(np.uint32)
        legacy = ("MT19937", keys, n["pos"], n["has_gauss"], n["cached_gaussian"])
        np.random.set_state(legacy)  # noqa: NPY002
    if "python" in state:
        p = state["python"]
        random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_cpu(v) for v in value)
    return value


def save_state(directory: str | os.PathLike[str], state: TrainingState, *, keep: int = 2) -> Path:
    """Write ``state`` to ``directory/step-NNNNNNNN.pt`` atomically; keep the newest ``keep``."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "position": asdict(state.position),
        "model": _to_cpu(state.model),
        "optimizer": _to_cpu(state.optimizer) if state.optimizer is not None else {},
        "scheduler": state.scheduler or {},
        "scaler": state.scaler or {},
        "optimizer_stage": state.optimizer_stage,
        "rng": state.rng,
        "config": json.dumps(state.config, sort_keys=True),
        "history": json.dumps(state.history),
        "best": json.dumps(state.best),
        "world_size": state.world_size,
        "epoch_sums": {k: float(v) for k, v in state.epoch_sums.items()},
    }
    name = f"step-{state.position.global_step:08d}.pt"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".ckpt-", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, folder / name)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".latest-", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(name + "\n")
    os.replace(tmp, folder / LATEST)
    for old in sorted(folder.glob("step-*.pt"))[:-keep]:
        if old.name != name:
            old.unlink()
    return folder / name


def latest_checkpoint(directory: str | os.PathLike[str]) -> Path | None:
    """The newest checkpoint in ``directory`` (per ``latest``), or None."""
    folder = Path(directory)
    pointer = folder / LATEST
    if pointer.exists():
        candidate = folder / pointer.read_text().strip()
        if candidate.exists():
            return candidate
    found = sorted(folder.glob("step-*.pt"))
    return found[-1] if found else None


def load_state(path: str | os.PathLike[str]) -> TrainingState:
    """Read a checkpoint written by :func:`save_state` (tensors and plain values only)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        msg = f"{path}: not a readable training checkpoint ({exc})"
        raise ModelLoadError(msg.splitlines()[0]) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        msg = f"{path}: not a galaxalign-astro training checkpoint of format {FORMAT}"
        raise ModelLoadError(msg)
    return TrainingState(
        position=Position(**payload["position"]),
        model=payload["model"],
        optimizer=payload["optimizer"] or None,
        scheduler=payload["scheduler"] or None,
        scaler=payload["scaler"] or None,
        optimizer_stage=int(payload["optimizer_stage"]),
        rng=payload["rng"],
        config=json.loads(payload["config"]),
        history=json.loads(payload["history"]),
        best=json.loads(payload["best"]),
        world_size=int(payload["world_size"]),
        epoch_sums=dict(payload.get("epoch_sums", {})),
    )
