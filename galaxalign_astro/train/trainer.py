"""The GalaxAlign trainer: one loop, run once per :class:`~.config.StageConfig`.

Per batch, every galaxy image is paired with a random description of its class
(text tower) and a random symbol variant of its class (symbol tower, or the image
tower while it is shared), and the class-aware tri-modal loss is minimised
(:mod:`galaxalign_astro.models.loss`). After every epoch the model is validated
with class prototypes, the prototype mix ``alpha`` is tuned on the validation
images (ours), and a resumable checkpoint is written.

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
import json
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

from .._version import __version__
from ..inference.prototypes import class_probabilities, mix_prototypes, prototypes_for_classes
from ..modalities import class_text_lists, node_symbol_images
from ..models.checkpoint import ModelSpec, save_model
from ..models.factory import architecture_config, create_model, get_tokenizer
from ..models.loss import PAIRS, trimodal_loss
from ..models.trimodal import GalaxAlignModel
from ..symbols import SymbolConfig
from ..taxonomy import get_taxonomy
from ..text import TextConfig
from .config import StageConfig, TrainConfig
from .data import LabelledImages
from .distributed import DistContext, gather_with_local_grad, init_distributed
from .interrupt import StopGuard, TrainingInterrupted
from .metrics import MetricsLog, epoch_summary
from .optim import WarmupCosine, build_optimizer, resolve_precision
from .state import (
    CHECKPOINT_DIR,
    Position,
    TrainingState,
    capture_rng,
    latest_checkpoint,
    load_state,
    restore_rng,
    save_state,
)

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

ALPHA_GRID = tuple(round(a, 2) for a in np.linspace(0.0, 1.0, 11))
#: sub-directory of OUTPUT holding the last epoch's model
LAST_DIR = "last"
#: settings that may differ between a run and its resumption
RESUMABLE_CHANGES = frozenset(
    {"device", "num_workers", "log_every", "tensorboard", "eval_batch_size", "keep_checkpoints"}
)
VAL_KEYS = ("val_acc_text", "val_acc_symbol", "val_acc_mix")


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


def step_seed(*counters: int) -> int:
    """A 63-bit seed from integer counters (seed, stage, epoch, step...), well mixed."""
    state = np.random.SeedSequence([int(c) for c in counters]).generate_state(2, np.uint64)
    return int(state[0]) >> 1


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


class _TriModalStep(nn.Module):
    """The three towers in one ``forward``, the unit DistributedDataParallel wraps."""

    def __init__(self, model: GalaxAlignModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, images, symbols, tokens):
        model = self.model
        image = model.encode_image(images) if images is not None else None
        symbol = model.encode_symbol(symbols) if symbols is not None else None
        text = model.encode_text(tokens) if tokens is not None else None
        return image, symbol, text, model.logit_scale


def _resolve_device(name: str, context: DistContext) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and context.enabled:
        device = torch.device("cuda", context.local_rank)
    return device


def _config_differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        if not prefix and key in RESUMABLE_CHANGES:
            continue
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _config_differences(a, b, f"{prefix}{key}.")
        elif a != b and not (key == "workers" and prefix == "data."):
            out.append(f"{prefix}{key}")
    return out


class Trainer:
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
        if config.init_from is not None:
            self._initialise_from(config.init_from)
        self.tokenizer = get_tokenizer(config.architecture)
        # labels are nodes: the classes, then the taxonomy's coarse groups (one row each)
        keys = self.taxonomy.keys
        nodes = self.taxonomy.node_keys
        node_texts = class_text_lists(nodes, config.text)
        self.class_texts = node_texts[: len(keys)]
        node_symbols = node_symbol_images(self.taxonomy, config.symbols, size=self.model.image_size)
        self.class_symbols = node_symbols[: len(keys)]
        self.text_tokens = [self.tokenizer(t) for t in node_texts]
        counts = [len(t) for t in self.text_tokens]
        if min(counts) == 0:
            empty = [k for k, c in zip(nodes, counts, strict=True) if c == 0]
            msg = f"classes without descriptions cannot be trained: {empty}"
            raise ValueError(msg)
        context = self.text_tokens[0].shape[1]
        table = torch.zeros((len(nodes), max(counts), context), dtype=torch.long)
        for c, tokens in enumerate(self.text_tokens):
            table[c, : len(tokens)] = tokens
        self._token_table = table.to(self.device)
        self._token_counts = torch.tensor(counts, dtype=torch.float64)
        symbols = torch.from_numpy(node_symbols).permute(0, 1, 4, 2, 3).contiguous()
        self.symbol_tensor = symbols[: len(keys)]  # uint8 (C, V, 3, S, S)
        self._symbol_table = symbols.to(self.device)
        self._members = torch.from_numpy(self.taxonomy.members_matrix()).to(self.device)
        self.augment = config.augment_config()
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {}
        self.position = Position()
        self._guard = StopGuard()
        self._carried_sums: dict[str, float] = {}
        self._prototype_cache: tuple | None = None

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

    # -- batches ---------------------------------------------------------------------------
    def _generator(self, *counters: int, device: torch.device | None = None) -> torch.Generator:
        g = torch.Generator(device=device or "cpu")
        g.manual_seed(step_seed(self.config.seed, *counters))
        return g

    def _augment(self, images: torch.Tensor, *counters: int) -> torch.Tensor:
        from ..datasets.augment import augment

        g = self._generator(*counters, self.dist.rank, device=images.device)
        return augment(images, self.augment, g)

    def _batch(
        self,
        images_all: torch.Tensor,
        labels_all: torch.Tensor,
        index: torch.Tensor,
        counters: tuple[int, ...],
        use_symbols: bool,
        prototypes: bool = False,
    ):
        """Local shard of one global batch: images, symbols, tokens (on device), global labels.

        With ``prototypes``, one description and one symbol of every class follow the
        batch's own (the prototype loss term); they are drawn after everything else,
        so runs without that term draw exactly what they did before it existed.
        """
        g = self._generator(*counters)
        labels = labels_all[index]
        n = len(index)
        text_pick = torch.rand(n, generator=g, dtype=torch.float64) * self._token_counts[labels]
        variant = torch.randint(self._symbol_table.shape[1], (n,), generator=g)
        per = n // self.dist.world_size
        local = slice(self.dist.rank * per, (self.dist.rank + 1) * per)
        dev = self.device
        non_blocking = dev.type == "cuda"
        local_labels = labels[local].to(dev, non_blocking=non_blocking)
        rows = index[local].to(images_all.device)
        images = images_all[rows].to(dev, non_blocking=non_blocking).float().div_(255.0)
        tokens = self._token_table[local_labels, text_pick[local].long().to(dev)]
        symbols = None
        if use_symbols:
            symbols = self._symbol_table[local_labels, variant[local].to(dev)].float().div_(255.0)
        if prototypes:
            classes = torch.arange(len(self.taxonomy))
            pick = torch.rand(len(classes), generator=g, dtype=torch.float64)
            pick = (pick * self._token_counts[classes]).long()
            tokens = torch.cat([tokens, self._token_table[classes.to(dev), pick.to(dev)]])
            if symbols is not None:
                kind = torch.randint(self._symbol_table.shape[1], (len(classes),), generator=g)
                extra = self._symbol_table[classes.to(dev), kind.to(dev)].float().div_(255.0)
                symbols = torch.cat([symbols, extra])
        if self.augment is not None:
            images = self._augment(images, *counters, 0)
            if symbols is not None and self.config.augment_symbols:
                symbols = self._augment(symbols, *counters, 1)
        return images, symbols, tokens, labels.to(dev, non_blocking=non_blocking)

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

    # -- checkpoints -----------------------------------------------------------------------
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
        changed = _config_differences(state.config, current)
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
            if cfg.pretrained is None and cfg.init_from is None:
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
            self._select(record, run)
            self.history.append(record)
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

    def _wrap(self) -> nn.Module:
        module = _TriModalStep(self.model)
        if not self.dist.enabled:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def _device_images(self, images: np.ndarray) -> torch.Tensor:
        """uint8 images as a tensor, moved to the GPU once when they take < 1/4 of its memory."""
        tensor = torch.from_numpy(np.ascontiguousarray(images))
        if self.device.type == "cuda":
            total = torch.cuda.get_device_properties(self.device).total_memory
            if tensor.numel() < total // 4:
                return tensor.to(self.device)
        return tensor

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
                    with self.precision.autocast():
                        image, symbol, text, scale = step_module(images, symbols, tokens)
                    protos: dict[str, torch.Tensor] = {}
                    if use_prototypes:
                        # the class rows appended by _batch, split off before gathering
                        n_classes = len(self.taxonomy)
                        protos["text"], text = text[-n_classes:].float(), text[:-n_classes]
                        if symbol is not None:
                            protos["symbol"] = symbol[-n_classes:].float()
                            symbol = symbol[:-n_classes]
                    image, symbol, text = (
                        gather_with_local_grad(e.float(), self.dist) if e is not None else None
                        for e in (image, symbol, text)
                    )
                    loss, parts = trimodal_loss(
                        image,
                        symbol,
                        text,
                        labels,
                        scale,
                        stage.loss_weights,
                        members=self._members,
                        prototypes=protos,
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

    # -- evaluation ------------------------------------------------------------------------
    @torch.no_grad()
    def prototypes(self) -> tuple[torch.Tensor, torch.Tensor]:
        self.model.eval()
        return prototypes_for_classes(
            self.model, self.tokenizer, texts=self.class_texts, symbols=list(self.class_symbols)
        )

    @torch.no_grad()
    def embed_images(self, data: LabelledImages, batch_size: int | None = None) -> torch.Tensor:
        self.model.eval()
        size = batch_size or self.config.eval_batch_size
        out = []
        for start in range(0, len(data), size):
            chunk = torch.from_numpy(data.images[start : start + size]).to(self.device)
            with self.precision.autocast():
                out.append(self.model.encode_image(chunk.float().div_(255.0)).float())
        return torch.cat(out)

    def _current_prototypes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`prototypes` once per optimizer step (validation and saving share them)."""
        key = (self.position.global_step, self.model.symbol_tower)
        if self._prototype_cache is None or self._prototype_cache[0] != key:
            self._prototype_cache = (key, self.prototypes())
        return self._prototype_cache[1]

    def _scores(self, data: LabelledImages, alphas: Sequence[float]) -> dict[float, float]:
        text, symbol = self._current_prototypes()
        emb = self.embed_images(data)
        labels = torch.from_numpy(np.asarray(data.labels)).to(self.device)
        allowed = self._members[labels]  # a coarse label is right for any of its classes
        rows = torch.arange(len(labels), device=self.device)
        out = {}
        for a in alphas:
            probs = class_probabilities(
                emb, mix_prototypes(text, symbol, a), self.model.logit_scale
            )
            out[a] = float(allowed[rows, probs.argmax(1)].float().mean())
        return out

    @torch.no_grad()
    def validate(self, data: LabelledImages) -> dict[str, float]:
        """Accuracies of text, symbol and tuned mixed prototypes, and the tuned ``alpha``.

        One pass: the prototypes and image embeddings are computed once and
        every mix of :data:`ALPHA_GRID` is scored (ties: closest to 0.5).
        """
        scores = self._scores(data, ALPHA_GRID)
        acc, _, alpha = max((acc, -abs(a - 0.5), a) for a, acc in scores.items())
        self.model.train()
        return {
            "val_acc_text": scores[1.0],
            "val_acc_symbol": scores[0.0],
            "val_acc_mix": acc,
            "alpha": float(alpha),
        }

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
            architecture_config=architecture_config(cfg.architecture),
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


def _used(stage: StageConfig) -> set[str]:
    return {p for p in (*PAIRS, "prototype") if getattr(stage.loss_weights, p)}
