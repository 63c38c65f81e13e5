"""The GalaxAlign trainer: one loop, run once per :class:`~.config.StageConfig`.

Per batch, every galaxy image is paired with a random description of its class
(text tower) and a random symbol variant of its class (symbol tower, or the image
tower while it is shared), and the class-aware tri-modal loss is minimised
(:mod:`galaxalign_astro.models.loss`); see :mod:`.batches`. After every epoch the
model is validated with class prototypes, the prototype mix ``alpha`` is tuned on
the validation images (ours, :mod:`.validation`), and a resumable checkpoint is
written (:mod:`.resume`). This module holds the orchestration: stages, epochs,
the selection of the best epoch and the saved models.

What a run writes to ``OUTPUT``:

``OUTPUT/`` (``model.safetensors``, ``galaxalign.json``)
    the model of the epoch with the best validation accuracy of mixed
    prototypes (``val_acc_mix``), or of the last epoch when there is no
    validation data or ``select_best`` is off. ``classify --model OUTPUT``
    uses these weights.
``OUTPUT/last/``
    the model after the last epoch, in the same format.
``OUTPUT/checkpoints/``
    resumable training state (``--resume``), see :mod:`.state`.
``OUTPUT/metrics.jsonl``, ``OUTPUT/metrics.csv``
    the metrics log, see :mod:`.metrics`.

Randomness is counter-based (ours): the batch order of an epoch and each
step's draws (descriptions, symbol variants, augmentations) come from
generators seeded by (seed, stage, epoch, step), so a resumed run draws exactly
what the uninterrupted run would have, and every process of a multi-GPU run
agrees on the global batch without communicating.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from ..modalities import class_text_lists, node_symbol_images
from ..models.factory import create_model, get_tokenizer
from ..models.loss import PAIRS
from ..taxonomy import get_taxonomy
from .batches import _BatchesMixin, step_seed
from .config import StageConfig, TrainConfig
from .data import LabelledImages
from .distributed import DistContext, init_distributed
from .interrupt import StopGuard, TrainingInterrupted
from .metrics import MetricsLog, epoch_summary
from .optim import WarmupCosine, build_optimizer, resolve_precision
from .resume import _ResumeMixin
from .state import CHECKPOINT_DIR, Position, TrainingState, restore_rng
from .validation import ALPHA_GRID, VAL_KEYS, _ValidationMixin

__all__ = [
    "ALPHA_GRID",
    "LAST_DIR",
    "TrainResult",
    "Trainer",
    "TrainingInterrupted",
    "build_optimizer",
    "step_seed",
]

log = logging.getLogger(__name__)

#: sub-directory of OUTPUT holding the last epoch's model
LAST_DIR = "last"


@dataclass
class TrainResult:
    """What a run produced.

    ``output`` holds the selected (best) model, ``weights_sha256``, ``alpha``
    and ``val_accuracy`` describe it; ``last`` is the last epoch's model.
    """

    output: Path | None
    weights_sha256: str | None
    alpha: float
    history: list[dict[str, Any]] = field(default_factory=list)
    val_accuracy: dict[str, float] = field(default_factory=dict)
    best_epoch: dict[str, Any] = field(default_factory=dict)
    last: Path | None = None


@dataclass
class _Run:
    """What one call of :meth:`Trainer.fit` works on."""

    images: torch.Tensor  # uint8 (N, 3, S, S), on the device when it fits
    labels: torch.Tensor  # int64 (N,), CPU
    steps_per_epoch: int
    metrics: MetricsLog
    folder: Path | None
    progress: bool
    val: LabelledImages | None
    out: Path | None
    alpha: float = 0.5  # prototype mix tuned after the latest epoch
    scores: dict[str, float] = field(default_factory=dict)  # its validation accuracies


def _resolve_device(name: str, context: DistContext) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and context.enabled:
        device = torch.device("cuda", context.local_rank)
    return device


class Trainer(_BatchesMixin, _ResumeMixin, _ValidationMixin):
    """Runs the configured stages on prepared images and saves the model.

    Parameters
    ----------
    config : TrainConfig
    callbacks : sequence
        Objects with any of ``on_stage_start(trainer, stage)``,
        ``on_step_end(trainer, position)``, ``on_epoch_end(trainer, record)``;
        called on every process. ``trainer.request_stop()`` from a callback
        stops the run as a signal would (checkpoint, then
        :class:`TrainingInterrupted`).
    """

    def __init__(self, config: TrainConfig, *, callbacks: Sequence[Any] = ()) -> None:
        self.config = config
        self.callbacks = list(callbacks)
        self.taxonomy = get_taxonomy(config.taxonomy)
        self.dist = init_distributed(config.device)
        self.device = _resolve_device(config.device, self.dist)
        self.precision = resolve_precision(config.precision, self.device)
        torch.manual_seed(config.seed)
        # where the weights come from is reported by fit, which knows whether it resumes
        self.model = create_model(
            config.architecture, pretrained=config.pretrained, weights_follow=True
        ).to(self.device)
        if self.model.image_size != config.preprocess.size:
            msg = (
                f"architecture {config.architecture} takes {self.model.image_size} px images "
                f"but preprocessing makes {config.preprocess.size} px"
            )
            raise ValueError(msg)
        if config.image_weights is not None:
            self._load_image_weights(config.image_weights)
        if config.init_from is not None:
            self._initialise_from(config.init_from)
        self.tokenizer = get_tokenizer(config.architecture, config=self.model.config)
        # labels are nodes: the classes, then the taxonomy's coarse groups (one row each)
        keys = self.taxonomy.keys
        nodes = self.taxonomy.node_keys
        node_texts = class_text_lists(nodes, config.text)
        self.class_texts = node_texts[: len(keys)]
        node_symbols = node_symbol_images(self.taxonomy, config.symbols, size=self.model.image_size)
        self.class_symbols = node_symbols[: len(keys)]
        self._build_tables(node_texts, node_symbols)
        self.augment = config.augment_config()
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {}
        self.position = Position()
        self._guard = StopGuard()
        self._carried_sums: dict[str, float] = {}
        self._prototype_cache: tuple | None = None

    def _load_image_weights(self, spec: str) -> None:
        """Fill the image tower's timm trunk with pretrained weights (ours)."""
        from ..models.trunk_weights import load_trunk_weights

        trunk = getattr(self.model.clip.visual, "trunk", None)
        if trunk is None:
            msg = (
                f"image_weights {spec!r}: architecture {self.config.architecture} has no timm "
                "image tower (vision_cfg.timm_model_name)"
            )
            raise ValueError(msg)
        timm_model = self.model.config.get("vision_cfg", {}).get("timm_model_name")
        info = load_trunk_weights(trunk, spec, timm_model=timm_model)
        self.model.to(self.device)
        log.info("image trunk initialised from %s (%d tensors)", spec, info["tensors"])

    def _initialise_from(self, source: str) -> None:
        """Start from the image and text towers of a saved model (ours: warm start)."""
        from ..models.checkpoint import load_model
        from ..models.factory import warm_start_state

        loaded = load_model(source, device="cpu")
        state = {k: v.float() for k, v in loaded.model.clip.state_dict().items()}
        if loaded.spec.architecture != self.config.architecture:
            try:  # the same towers at another input size (position embeddings interpolated)
                state = warm_start_state(loaded.model.config, state, self.model)
            except ValueError as exc:
                msg = (
                    f"init_from {source}: architecture {loaded.spec.architecture}, but the run "
                    f"trains {self.config.architecture} ({exc})"
                )
                raise ValueError(msg) from None
            log.info(
                "%s: position embeddings interpolated from %s to %s",
                source,
                loaded.spec.architecture,
                self.config.architecture,
            )
        self.model.clip.load_state_dict(state)
        self.model.to(self.device)
        log.info("image and text towers initialised from %s", source)

    # -- control ---------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Stop after the current optimizer step, as SIGINT/SIGTERM do."""
        self._guard.request()

    def _callback(self, name: str, *args: Any) -> None:
        for cb in self.callbacks:
            method = getattr(cb, name, None)
            if method is not None:
                method(self, *args)

    # -- stages ----------------------------------------------------------------------------
    def _tower_parameters(self) -> dict[str, list[tuple[str, nn.Parameter]]]:
        model = self.model
        text_ids = {id(p) for p in model.text_parameters()}
        visual = cast(nn.Module, model.clip.visual)
        return {
            "image": list(visual.named_parameters(prefix="clip.visual")),
            "text": [(n, p) for n, p in model.named_parameters() if id(p) in text_ids],
            "symbol": (
                list(model.symbol_visual.named_parameters(prefix="symbol_visual"))
                if model.symbol_visual is not None
                else []
            ),
        }

    def _start_stage(self, stage: StageConfig, *, fresh: bool) -> list[tuple[str, nn.Parameter]]:
        """Build the stage's towers (split the symbol tower), freeze and unfreeze, set T."""
        model = self.model
        if stage.symbol_tower == "separate" and model.symbol_visual is None:
            model.split_symbol_tower()
            log.info("%s: symbol tower created as a copy of the image tower", stage.name)
        elif stage.symbol_tower == "shared" and model.symbol_visual is not None:
            msg = f"stage {stage.name}: cannot share the symbol tower again once it is separate"
            raise ValueError(msg)
        if fresh and stage.temperature is not None:
            with torch.no_grad():
                model.logit_scale.fill_(math.log(1.0 / stage.temperature))
        for p in model.parameters():
            p.requires_grad_(False)
        w = stage.loss_weights
        used = {"image"} if (w.image_text or w.image_symbol) else set()
        if w.image_text or w.symbol_text:
            used.add("text")
        if stage.uses_symbols:
            used.add("symbol" if model.symbol_visual is not None else "image")
        groups = self._tower_parameters()
        chosen: list[tuple[str, nn.Parameter]] = []
        for tower in stage.train:
            if tower in used:
                chosen.extend(groups[tower])
        if stage.learn_temperature:
            chosen.append(("clip.logit_scale", model.logit_scale))
        for _, p in chosen:
            p.requires_grad_(True)
        if fresh:
            self._callback("on_stage_start", stage)
        return chosen

    # -- the loop --------------------------------------------------------------------------
    def fit(
        self,
        train: LabelledImages,
        val: LabelledImages | None = None,
        *,
        output: str | Path | None = None,
        progress: bool = False,
        half: bool = False,
        provenance: dict[str, Any] | None = None,
        resume: bool = False,
    ) -> TrainResult:
        """Train every stage in order; save to ``output`` when given.

        Parameters
        ----------
        train, val : LabelledImages
            Prepared training and validation images (every process of a
            ``torchrun`` job passes the same data; each trains on its shard).
        output : path, optional
            Model directory; also receives ``last/``, ``checkpoints/`` and the
            metrics log. None: nothing is written.
        progress : bool
            tqdm progress bars (main process only).
        half : bool
            Store the saved models' weights as float16.
        provenance : dict, optional
            Stored in the models' ``training`` record.
        resume : bool
            Continue from the newest checkpoint in ``output/checkpoints``; with
            the same settings, data and seed the final weights are those of an
            uninterrupted run (on a CPU, bit for bit).

        Raises
        ------
        TrainingInterrupted
            On SIGINT/SIGTERM or :meth:`request_stop`, after saving a checkpoint.
        """
        cfg = self.config
        out = Path(output) if output is not None else None
        folder = out / CHECKPOINT_DIR if out is not None else None
        n = len(train)
        world = self.dist.world_size
        global_batch = cfg.batch_size * world
        micro_per_epoch = n // global_batch
        steps_per_epoch = micro_per_epoch // cfg.accumulate
        if steps_per_epoch < 1:
            msg = (
                f"{n} training images make no optimizer step: need at least batch_size x "
                f"processes x accumulate = {global_batch * cfg.accumulate}"
            )
            raise ValueError(msg)
        labels = np.asarray(train.labels, dtype=np.int64)
        if labels.min() < 0 or labels.max() >= self.taxonomy.n_nodes:
            msg = (
                f"training labels must be class indices 0..{len(self.taxonomy) - 1} of "
                f"{self.taxonomy.name} (or coarse groups up to {self.taxonomy.n_nodes - 1}), "
                f"got {labels.min()}..{labels.max()}"
            )
            raise ValueError(msg)
        has_val = val is not None and len(val) > 0
        state = None
        if resume:
            if folder is None:
                msg = "resume needs an output directory"
                raise ValueError(msg)
            state = self._load_for_resume(folder, n)
            self.position = state.position
            self._carried_sums = dict(state.epoch_sums)
        else:
            self.history, self.best, self.position = [], {}, Position()
            if cfg.pretrained is None and cfg.init_from is None and cfg.image_weights is None:
                log.info("%s: random initialisation (no pretrained weights)", cfg.architecture)
        self.best.setdefault("n_train", n)
        self._prototype_cache = None
        self._provenance = provenance or {}
        self._half = half
        metrics = MetricsLog(
            out if self.dist.is_main else None,
            tensorboard=cfg.tensorboard,
            resume_step=state.position.global_step if state is not None else None,
            epochs=self.history,
        )
        run = _Run(
            self._device_images(train.images),
            torch.from_numpy(labels),
            steps_per_epoch,
            metrics,
            folder,
            progress,
            val if has_val else None,
            out,
        )
        if self.history:
            last = self.history[-1]
            run.alpha = last.get("alpha", 0.5)
            run.scores = {k: last[k] for k in VAL_KEYS if k in last}
        try:
            with self._guard:
                for si, stage in enumerate(cfg.stages):
                    if si >= self.position.stage:
                        self._run_stage(run, si, stage, state)
                        state = None
                if not self.history and run.val is not None:
                    run.scores = self.validate(run.val)
                    run.alpha = run.scores.pop("alpha")
        finally:
            metrics.close()
        return self._finish(run)

    def _run_stage(
        self, run: _Run, si: int, stage: StageConfig, state: TrainingState | None
    ) -> None:
        """Every remaining epoch of stage ``si`` (from ``state`` when resuming)."""
        start = self.position
        resuming = state is not None and si == start.stage
        mid_stage = resuming and (start.epoch, start.step) != (0, 0)
        params = self._start_stage(stage, fresh=not mid_stage)
        opt = self._stage_optimizer(stage, params, run.steps_per_epoch)
        optimizer, scheduler, scaler = opt
        if mid_stage and state is not None and state.optimizer_stage == si and state.optimizer:
            optimizer.load_state_dict(state.optimizer)
            if state.scheduler is not None:
                scheduler.load_state_dict(state.scheduler)
            if scaler is not None and state.scaler is not None:
                scaler.load_state_dict(state.scaler)
        if state is not None and resuming:
            restore_rng(state.rng)
        step_module = self._wrap()
        trainable = [p for _, p in params]
        for epoch in range(start.epoch if resuming else 0, stage.epochs):
            first = start.step if resuming and epoch == start.epoch else 0
            record = self._epoch(run, si, stage, epoch, first, step_module, trainable, opt)
            if run.val is not None:
                scores = self.validate(run.val)
                record.update(scores)
                run.alpha = scores.pop("alpha")
                run.scores = scores
            self.history.append(record)  # first: a best model saved now lists its own epoch
            self._select(record, run)
            run.metrics.epoch(record)
            log.debug("%s", epoch_summary(record, epochs=stage.epochs))
            self._callback("on_epoch_end", record)
            done = epoch + 1 == stage.epochs
            g = self.position.global_step
            self.position = Position(si + 1, 0, 0, g) if done else Position(si, epoch + 1, 0, g)
            every = self.config.checkpoint_every
            due = done or (every and (epoch + 1) % every == 0)
            stop = self.dist.any_flag(self._guard.requested)
            if due or stop:
                self._checkpoint(run.folder, self.position, si, opt)
            if stop:
                self._interrupted(run.folder)

    def _stage_optimizer(self, stage: StageConfig, params, steps_per_epoch: int):
        total = steps_per_epoch * stage.epochs
        warmup = (
            stage.warmup_steps
            if stage.warmup_steps is not None
            else round(stage.warmup_fraction * total)
        )
        optimizer = build_optimizer(
            params,
            stage.lr,
            stage.weight_decay,
            model=self.model,
            betas=stage.betas,
            eps=stage.eps,
        )
        curve = WarmupCosine(total, warmup, stage.min_lr_fraction, stage.schedule == "cosine")
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, curve)
        return optimizer, scheduler, self.precision.make_scaler()

    def _epoch(
        self, run: _Run, si: int, stage: StageConfig, epoch: int, first_step: int,
        step_module: nn.Module, trainable: list[nn.Parameter], opt: tuple,
    ) -> dict[str, Any]:  # fmt: skip
        from tqdm.auto import tqdm

        cfg = self.config
        steps_per_epoch, images_all, labels_all = run.steps_per_epoch, run.images, run.labels
        optimizer, scheduler, scaler = opt
        world = self.dist.world_size
        global_batch = cfg.batch_size * world
        order = torch.randperm(len(labels_all), generator=self._generator(si, epoch))
        self.model.train()
        use_symbols = stage.uses_symbols
        use_prototypes = bool(stage.loss_weights.prototype)
        zero = torch.zeros((), device=self.device)
        # loss sums over the epoch; a run resumed inside an epoch starts from the saved ones
        carried = self._carried_sums if first_step else {}
        self._carried_sums = {}
        loss_sum = zero + carried.get("loss", 0.0)
        part_sums = {p: zero + carried.get(p, 0.0) for p in (*PAIRS, "prototype")}
        window_loss, window_start, window_steps = zero.clone(), time.perf_counter(), 0
        t0 = time.perf_counter()
        bar = tqdm(
            range(first_step, steps_per_epoch),
            desc=f"{stage.name} epoch {epoch + 1}/{stage.epochs}",
            disable=not (run.progress and self.dist.is_main),
            leave=False,
        )
        for step in bar:
            for micro in range(cfg.accumulate):
                b = step * cfg.accumulate + micro
                index = order[b * global_batch : (b + 1) * global_batch]
                images, symbols, tokens, labels = self._batch(
                    images_all, labels_all, index, (si, epoch, b), use_symbols, use_prototypes
                )
                sync = (
                    cast(Any, step_module).no_sync()  # DDP: all-reduce only on the last micro-step
                    if self.dist.enabled and micro < cfg.accumulate - 1
                    else contextlib.nullcontext()
                )
                with sync:
                    loss, parts = self._step_loss(
                        step_module, images, symbols, tokens, labels, stage
                    )
                    scaled = loss * (world / cfg.accumulate)
                    (scaler.scale(scaled) if scaler is not None else scaled).backward()
                loss_sum += loss.detach()
                window_loss += loss.detach()
                for key, value in parts.items():
                    part_sums[key] += value
            if scaler is not None:
                scaler.unscale_(optimizer)
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            lr = scheduler.get_last_lr()[0]  # the rate this step used
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            window_steps += 1
            self.position = Position(si, epoch, step + 1, self.position.global_step + 1)
            if self.position.global_step % cfg.log_every == 0 or step + 1 == steps_per_epoch:
                elapsed = time.perf_counter() - window_start
                mean = float(window_loss) / (window_steps * cfg.accumulate)
                record = {
                    "stage": stage.name,
                    "epoch": epoch + 1,
                    "step": step + 1,
                    "global_step": self.position.global_step,
                    "loss": mean,
                    "lr": float(lr),
                    "logit_scale": float(self.model.logit_scale.detach().exp()),
                    "images_per_s": window_steps * cfg.accumulate * global_batch / elapsed,
                }
                run.metrics.step(record)
                bar.set_postfix(loss=f"{mean:.3f}")
                window_loss.zero_()
                window_start, window_steps = time.perf_counter(), 0
            self._callback("on_step_end", self.position)
            if self.dist.any_flag(self._guard.requested):
                at_end = step + 1 == steps_per_epoch
                if not at_end:
                    sums = {"loss": float(loss_sum), **{k: float(v) for k, v in part_sums.items()}}
                    self._checkpoint(run.folder, self.position, si, opt, sums)
                    self._interrupted(run.folder)
                break
        bar.close()
        micro = steps_per_epoch * cfg.accumulate
        seconds = time.perf_counter() - t0
        done = (steps_per_epoch - first_step) * cfg.accumulate
        return {
            "stage": stage.name,
            "epoch": epoch + 1,
            "global_step": self.position.global_step,
            "loss": float(loss_sum) / micro,
            **{f"loss_{k}": float(v) / micro for k, v in part_sums.items() if k in _used(stage)},
            "lr": float(lr),
            "logit_scale": float(self.model.logit_scale.detach().exp()),
            "images_per_s": done * global_batch / seconds,
        }

    def _select(self, record: dict[str, Any], run: _Run) -> None:
        """Keep the best epoch's model in ``run.out`` (main process)."""
        if not (self.config.select_best and run.val is not None):
            return
        metric = record["val_acc_mix"]
        record["best"] = metric > self.best.get("val_acc_mix", -1.0)
        if not record["best"]:
            return
        self.best.update(
            val_acc_mix=metric,
            stage=record["stage"],
            epoch=record["epoch"],
            global_step=record["global_step"],
            alpha=run.alpha,
            validation=dict(run.scores),
        )
        if run.out is not None and self.dist.is_main:
            self.best["weights_sha256"] = self._save_model(run.out, run, "best")
        self.model.train()

    def _save_model(self, path: Path, run: _Run, selected: str) -> str:
        provenance = {**self._provenance, "selected": selected}
        if selected == "best":
            provenance["best"] = {k: v for k, v in self.best.items() if k != "weights_sha256"}
        return self.save(
            path, alpha=run.alpha, metrics=run.scores, half=self._half, provenance=provenance
        )

    def _finish(self, run: _Run) -> TrainResult:
        best = self.config.select_best and run.val is not None and "stage" in self.best
        result = TrainResult(None, None, run.alpha, self.history, dict(run.scores))
        if best:
            result.alpha = self.best["alpha"]
            result.val_accuracy = dict(self.best["validation"])
            result.best_epoch = {k: self.best[k] for k in ("stage", "epoch", "global_step")}
        if run.out is None:
            return result
        last = run.out / LAST_DIR
        sha = None
        if self.dist.is_main:
            sha = self._save_model(last, run, "last")
            if not best:
                sha = self._save_model(run.out, run, "last")
        self.dist.barrier()
        result.output, result.last = run.out, last
        result.weights_sha256 = self.best.get("weights_sha256") if best else sha
        return result


def _used(stage: StageConfig) -> set[str]:
    return {p for p in (*PAIRS, "prototype") if getattr(stage.loss_weights, p)}
