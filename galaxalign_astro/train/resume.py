"""The saved state of a training run: checkpoints, resuming, and model directories.

A checkpoint (:mod:`.state`) holds the model, optimizer, scheduler, scaler, RNG
state and the run's history; `_ResumeMixin._load_for_resume` refuses one that was
written with other settings (`config_differences`), other data or, inside an
epoch, another number of processes. `_ResumeMixin.save` writes the current model
as a model directory (the best and the last epoch's model of a run).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..models.checkpoint import ModelSpec, save_model
from ..symbols import SymbolConfig
from ..text import TextConfig
from .interrupt import StopGuard, TrainingInterrupted
from .state import (
    Position,
    TrainingState,
    capture_rng,
    latest_checkpoint,
    load_state,
    save_state,
)

if TYPE_CHECKING:
    import torch

    from ..models.trimodal import GalaxAlignModel
    from ..taxonomy import Taxonomy
    from .config import TrainConfig
    from .distributed import DistContext

__all__ = ["RESUMABLE_CHANGES", "config_differences"]

log = logging.getLogger(__name__)

#: settings that may differ between a run and its resumption
RESUMABLE_CHANGES = frozenset(
    {"device", "num_workers", "log_every", "tensorboard", "eval_batch_size", "keep_checkpoints"}
)


def config_differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the settings that differ between two configuration records.

    Settings in `RESUMABLE_CHANGES` and the data loader's ``workers`` do not count.
    """
    out = []
    for key in sorted(set(old) | set(new)):
        if not prefix and key in RESUMABLE_CHANGES:
            continue
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, f"{prefix}{key}.")
        elif a != b and not (key == "workers" and prefix == "data."):
            out.append(f"{prefix}{key}")
    return out


class _ResumeMixin:
    """Checkpointing, resuming, stopping and model saving of `~.trainer.Trainer`."""

    config: TrainConfig
    model: GalaxAlignModel
    dist: DistContext
    device: torch.device
    history: list[dict[str, Any]]
    best: dict[str, Any]
    position: Position
    taxonomy: Taxonomy
    _guard: StopGuard

    if TYPE_CHECKING:

        def _current_prototypes(self) -> tuple[torch.Tensor, torch.Tensor]: ...

    def _checkpoint(
        self,
        folder: Path | None,
        position: Position,
        stage_index: int,
        opt: tuple,
        sums: dict[str, float] | None = None,
    ) -> Path | None:
        path = None
        if folder is not None and self.dist.is_main:
            optimizer, scheduler, scaler = opt
            state = TrainingState(
                position=position,
                model=self.model.state_dict(),
                optimizer=optimizer.state_dict() if optimizer is not None else None,
                scheduler=scheduler.state_dict() if scheduler is not None else None,
                scaler=scaler.state_dict() if scaler is not None else None,
                optimizer_stage=stage_index,
                rng=capture_rng(),
                config=self.config.to_dict(),
                history=self.history,
                best=self.best,
                world_size=self.dist.world_size,
                epoch_sums=sums or {},
            )
            path = save_state(folder, state, keep=self.config.keep_checkpoints)
            log.info("checkpoint %s", path)
        self.dist.barrier()
        return path

    def _load_for_resume(self, folder: Path, n_train: int) -> TrainingState:
        path = latest_checkpoint(folder)
        if path is None:
            msg = f"{folder}: no checkpoint to resume from"
            raise FileNotFoundError(msg)
        state = load_state(path)
        current = json.loads(json.dumps(self.config.to_dict()))
        changed = config_differences(state.config, current)
        if changed:
            msg = (
                f"{path}: the run was started with other settings ({', '.join(changed)}); "
                "resume with the same recipe and overrides"
            )
            raise ValueError(msg)
        if state.best.get("n_train", n_train) != n_train:
            msg = (
                f"{path}: the run trained on {state.best['n_train']} images, this one has "
                f"{n_train}; resume with the same data"
            )
            raise ValueError(msg)
        if state.world_size != self.dist.world_size:
            if state.position.step != 0:
                msg = (
                    f"{path}: stopped inside an epoch with {state.world_size} processes; resume "
                    f"with the same number (not {self.dist.world_size})"
                )
                raise ValueError(msg)
            log.warning(
                "resuming a %d-process run with %d processes: the global batch changes",
                state.world_size,
                self.dist.world_size,
            )
        if any(k.startswith("symbol_visual.") for k in state.model):
            self.model.split_symbol_tower()
        self.model.load_state_dict(state.model)
        self.model.to(self.device)
        self.history = list(state.history)
        self.best = dict(state.best)
        log.info("resuming from %s at %s", path, state.position)
        return state

    def _interrupted(self, folder: Path | None) -> None:
        where = self.position
        stage = self.config.stages[min(where.stage, len(self.config.stages) - 1)].name
        saved = f"; checkpoint in {folder}, continue with --resume" if folder is not None else ""
        msg = (
            f"training stopped after optimizer step {where.global_step} "
            f"({stage}, epoch {where.epoch + 1}, {where.step} steps into it){saved}"
        )
        raise TrainingInterrupted(
            msg, checkpoint=latest_checkpoint(folder) if folder else None, signum=self._guard.signum
        )

    def save(
        self,
        output: str | Path,
        *,
        alpha: float,
        metrics: dict[str, float],
        half: bool = False,
        provenance: dict[str, Any] | None = None,
    ) -> str:
        """Write the current model as a model directory (safetensors + JSON spec)."""
        text, symbol = self._current_prototypes()
        cfg = self.config
        spec = ModelSpec(
            architecture=cfg.architecture,
            architecture_config=self.model.config,
            symbol_tower=self.model.symbol_tower,
            preprocess=cfg.preprocess,
            class_keys=self.taxonomy.keys,
            class_names=self.taxonomy.names,
            text=TextConfig.from_dict(cfg.text).to_dict(self.taxonomy.keys),
            symbols=SymbolConfig.from_dict(cfg.symbols).to_dict(),
            prototype_alpha=alpha,
            taxonomy=self.taxonomy.name,
            name=cfg.name,
            training={
                "config": cfg.to_dict(),
                "history": self.history,
                "validation": metrics,
                "pretrained": cfg.pretrained,
                "package_version": __version__,
                "position": {
                    "stage": self.position.stage,
                    "epoch": self.position.epoch,
                    "global_step": self.position.global_step,
                },
                **(provenance or {}),
            },
        )
        return save_model(
            output, self.model, spec, prototypes_text=text, prototypes_symbol=symbol, half=half
        )
