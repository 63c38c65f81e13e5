"""Typed training configuration: the two GalaxAlign stages are two :class:`StageConfig`.

A stage says which towers exist (symbol tower shared with the image tower, or a
separate copy), which are trained, the loss-pair weights, whether the temperature
is learnt, and its schedule. Stage 1 and stage 2 of the paper are the two default
stages; ablations are other lists of stages, never other code.

Recipes (TOML files of these settings) and ``--set`` overrides are read in
:mod:`galaxalign_astro.train.recipe`; its functions can be imported from here too.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from ..models.loss import LossWeights
from ..preprocess.pipeline import PreprocessConfig
from ..utils import check_fields

__all__ = [
    "PRECISIONS",
    "DataSpec",
    "StageConfig",
    "TrainConfig",
    "default_stages",
]

TOWERS = ("image", "text", "symbol")
SCHEDULES = ("cosine", "constant")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: torch devices a recipe may name
DEVICE_RE = re.compile(r"auto|cpu|mps|(cuda|xpu)(:\d+)?")


@dataclass(frozen=True)
class StageConfig:
    """One training stage.

    Parameters
    ----------
    name : str
    epochs : int
    lr : float
        Peak learning rate.
    symbol_tower : {'shared', 'separate'}
        'separate' copies the current image tower into a symbol tower when the
        stage starts (if it is not separate already).
    train : tuple of str
        Towers whose weights are updated: any of 'image', 'text', 'symbol'.
        A tower no loss pair of the stage uses is not trained.
    loss_weights : LossWeights
        Weights of the image-text, symbol-text and image-symbol pairs; a pair
        with weight 0 is not computed.
    learn_temperature : bool
        Train ``logit_scale`` (PAPER.md: learnable) or keep it fixed.
    temperature : float or None
        Ours: set the temperature to this value (``logit_scale = ln(1 / T)``)
        when the stage starts; None keeps the current one (pretrained CLIP's,
        or ``1 / 0.07`` for random initialisation).
    schedule : {'cosine', 'constant'}
        Learning-rate shape after the warm-up.
    warmup_fraction : float
        Fraction of the stage's optimizer steps spent in linear warm-up; the
        number of steps follows from the data set size, batch and epochs.
    warmup_steps : int or None
        Explicit warm-up length; overrides ``warmup_fraction``.
    min_lr_fraction : float
        Floor of the cosine as a fraction of ``lr``.
    weight_decay : float
        AdamW decay for weight matrices (never for norms, biases, temperature).
    betas : tuple of float
        AdamW betas (CLIP's 0.9, 0.98).
    eps : float
        AdamW epsilon (CLIP's 1e-6).
    """

    name: str
    epochs: int = 1
    lr: float = 5e-4
    symbol_tower: str = "shared"
    train: tuple[str, ...] = TOWERS
    loss_weights: LossWeights = field(default_factory=LossWeights)
    learn_temperature: bool = True
    temperature: float | None = None
    schedule: str = "cosine"
    warmup_fraction: float = 0.1
    warmup_steps: int | None = None
    min_lr_fraction: float = 0.0
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6

    def __post_init__(self) -> None:
        where = f"stage {self.name!r}"
        check_fields(self, where=where)
        if self.symbol_tower not in ("shared", "separate"):
            msg = f"{where}: symbol_tower must be 'shared' or 'separate', got {self.symbol_tower!r}"
            raise ValueError(msg)
        if isinstance(self.train, str):
            object.__setattr__(self, "train", (self.train,))
        bad = set(self.train) - set(TOWERS)
        if bad:
            msg = f"{where}: unknown towers {sorted(bad)}; known: {TOWERS}"
            raise ValueError(msg)
        if isinstance(self.loss_weights, Mapping):
            known = {f.name for f in fields(LossWeights)}
            unknown = set(self.loss_weights) - known
            if unknown:
                msg = f"{where}: unknown loss weights {sorted(unknown)}; known: {sorted(known)}"
                raise ValueError(msg)
            object.__setattr__(self, "loss_weights", LossWeights(**self.loss_weights))
        weights = asdict(self.loss_weights)
        if any(w < 0 for w in weights.values()) or not any(weights.values()):
            msg = f"{where}: loss weights must be >= 0 and not all 0, got {weights}"
            raise ValueError(msg)
        object.__setattr__(self, "train", tuple(self.train))
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        if self.epochs < 0:
            msg = f"{where}: epochs must be >= 0, got {self.epochs}"
            raise ValueError(msg)
        if not self.lr > 0:
            msg = f"{where}: lr must be positive, got {self.lr}"
            raise ValueError(msg)
        if self.schedule not in SCHEDULES:
            msg = f"{where}: schedule must be one of {SCHEDULES}, got {self.schedule!r}"
            raise ValueError(msg)
        if not 0.0 <= self.warmup_fraction < 1.0:
            msg = f"{where}: warmup_fraction must be in [0, 1), got {self.warmup_fraction}"
            raise ValueError(msg)
        if self.warmup_steps is not None and self.warmup_steps < 0:
            msg = f"{where}: warmup_steps must be >= 0, got {self.warmup_steps}"
            raise ValueError(msg)
        if not 0.0 <= self.min_lr_fraction <= 1.0:
            msg = f"{where}: min_lr_fraction must be in [0, 1], got {self.min_lr_fraction}"
            raise ValueError(msg)
        if self.temperature is not None and not self.temperature > 0:
            msg = f"{where}: temperature must be positive, got {self.temperature}"
            raise ValueError(msg)

    @property
    def uses_symbols(self) -> bool:
        """Whether any loss pair of this stage needs symbol embeddings."""
        w = self.loss_weights
        return bool(w.symbol_text or w.image_symbol)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["train"] = list(self.train)
        out["betas"] = list(self.betas)
        return out


def default_stages(epochs1: int = 4, epochs2: int = 4, lr: float = 5e-4) -> list[StageConfig]:
    """PAPER.md's two stages: shared visual tower, then a separate symbol tower.

    The epochs, learning rates (stage 2 at half the peak of stage 1) and the
    other schedule settings are ours; the paper does not state them.
    """
    return [
        StageConfig("stage1", epochs=epochs1, lr=lr, symbol_tower="shared"),
        StageConfig("stage2", epochs=epochs2, lr=lr * 0.5, symbol_tower="separate"),
    ]


@dataclass(frozen=True)
class DataSpec:
    """Where the training images come from (the ``[data]`` table of a recipe).

    Read by :func:`galaxalign_astro.datasets.load_dataset`.

    Parameters
    ----------
    spec : str, list of str, or None
        A Galaxy10 DECaLS HDF5 file, a GalaxyMNIST file or folder, a label
        catalog, or ``simulated:N:SEED``; a list of them trains on all of them
        together (e.g. simulated and real images); None: given on the command
        line (``--data`` / ``--simulate``).
    split : {'train', 'all'}
        Train on the data set's training split (its test split is never
        seen), or on every row (for data with no test use).
    label_fraction : float
        Fraction of the training labels kept per class (few-shot ablations).
    split_seed : int
        Seed of the data set split and few-shot subset; 42 gives the shipped
        splits.
    workers : int
        Processes preparing the images.
    verify : bool
        Check the SHA-256 of a Galaxy10 DECaLS file first.
    repeat : list of int or None
        How many times each spec's training images appear in an epoch (ours:
        weights simulated against real data); None: once each.
    balance : float
        Oversampling of rare classes (ours): within each spec, the training images
        of a class (or, with coarse groups, of a group) are repeated
        ``round((n_largest / n_class) ** balance)`` times, at most 8; 0 is off.
        Repeats come after the validation hold-out, so no image is on both sides.
    """

    spec: str | tuple[str, ...] | None = None
    split: str = "train"
    label_fraction: float = 1.0
    split_seed: int = 42
    workers: int = 1
    verify: bool = False
    repeat: tuple[int, ...] | None = None
    balance: float = 0.0

    def __post_init__(self) -> None:
        check_fields(self, where="[data]")
        if isinstance(self.spec, list | tuple):
            object.__setattr__(self, "spec", tuple(str(s) for s in self.spec))
            if not self.spec:
                msg = "data spec must not be an empty list"
                raise ValueError(msg)
        for one in self.specs:
            if not one.strip():
                msg = "data spec must not be empty"
                raise ValueError(msg)
        if self.split not in ("train", "all"):
            msg = f"data split must be 'train' or 'all', got {self.split!r}"
            raise ValueError(msg)
        if not 0.0 < self.label_fraction <= 1.0:
            msg = f"label_fraction must be in (0, 1], got {self.label_fraction}"
            raise ValueError(msg)
        if self.workers < 1:
            msg = f"data workers must be >= 1, got {self.workers}"
            raise ValueError(msg)
        if self.repeat is not None:
            repeat = tuple(self.repeat)
            if len(repeat) != len(self.specs) or any(
                not isinstance(r, int) or r < 1 for r in repeat
            ):
                msg = (
                    f"data repeat must be one whole number >= 1 per spec ({len(self.specs)}), "
                    f"got {list(repeat)}"
                )
                raise ValueError(msg)
            object.__setattr__(self, "repeat", repeat)
        if not 0.0 <= self.balance <= 2.0:
            msg = f"data balance must be in [0, 2], got {self.balance}"
            raise ValueError(msg)

    @property
    def specs(self) -> tuple[str, ...]:
        """The data specs, as a tuple (empty when none is set)."""
        if self.spec is None:
            return ()
        return self.spec if isinstance(self.spec, tuple) else (str(self.spec),)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if isinstance(self.spec, tuple):
            out["spec"] = list(self.spec)
        if self.repeat is not None:
            out["repeat"] = list(self.repeat)
        return out


@dataclass
class TrainConfig:
    """Everything a training run needs besides its data (and where the data is).

    Parameters
    ----------
    architecture : str
        open_clip architecture (``ViT-B-16``, ``convnext_base_w``, ``gxa-tiny``...).
    pretrained : str or None
        open_clip pretrained tag or local checkpoint file; None: random init.
    init_from : str or None
        A saved GalaxAlign model (directory or bundled name) whose image and text
        towers start the run (ours: a warm start, e.g. from the simulated-only model);
        same architecture. None: ``pretrained`` decides.
    image_weights : str or None
        Weights for the trunk of a timm image tower before training (ours): a known
        source that an installed package ships (``efficientnet-lite0-imagenet``, see
        :mod:`galaxalign_astro.models.trunk_weights`) or a file with a timm state
        dict. Applied before ``init_from``. None: the tower starts as ``pretrained``
        leaves it.
    preprocess : PreprocessConfig
        Stored with the model; ``size`` must be the architecture's image size.
    stages : list of StageConfig
        Run in order (PAPER.md's two stages by default).
    batch_size : int
        Images per process per micro-step (open_clip's convention: with
        ``torchrun`` on N GPUs the contrastive batch is N x batch_size, since
        embeddings are gathered across processes; the paper used 2 x 256).
    accumulate : int
        Micro-steps per optimizer step (ours: each micro-step's contrastive
        loss sees only its own batch; gradients are averaged).
    precision : {'auto', 'fp32', 'bf16', 'fp16'}
        'auto': bf16 autocast on CUDA when supported, else fp16 with a
        gradient scaler; fp32 on CPU (autocast is always off on CPU).
    grad_clip : float
        Maximum global gradient norm; 0 turns clipping off.
    seed : int
        Seeds initialisation, the split, batch order and modality draws; on a
        CPU the same seed gives identical weights.
    val_fraction : float
        Stratified fraction of the training data held out for validation.
    augment : bool, str or dict
        Augmentation of galaxy images (:class:`~galaxalign_astro.datasets.AugmentConfig`):
        True the defaults (random 90-degree turns and flips), False none, a
        preset name ('flips', 'galaxy'...), or a table of settings (may name a
        ``preset`` to start from).
    augment_symbols : bool
        Apply the same augmentation to the symbols (ours).
    checkpoint_every : int
        Save a resumable checkpoint every this many epochs (0: only on
        interrupt); it is always saved at the end of a stage.
    keep_checkpoints : int
        How many resumable checkpoints to keep in ``OUTPUT/checkpoints``.
    select_best : bool
        OUTPUT holds the weights of the epoch with the best validation
        accuracy (mixed prototypes); False: the last epoch's.
    log_every : int
        Optimizer steps between step records in the metrics log.
    tensorboard : bool
        Also write TensorBoard events to ``OUTPUT/tensorboard``.
    device : str
        'auto' (CUDA when available), 'cpu', 'cuda', 'cuda:1'... Under
        ``torchrun`` with CUDA each process uses ``cuda:LOCAL_RANK``.
    """

    architecture: str = "gxa-tiny"
    pretrained: str | None = None
    init_from: str | None = None
    image_weights: str | None = None
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    stages: list[StageConfig] = field(default_factory=default_stages)
    batch_size: int = 64
    accumulate: int = 1
    precision: str = "auto"
    grad_clip: float = 1.0
    seed: int = 0
    val_fraction: float = 0.1
    taxonomy: str = "galaxy10_decals"
    symbols: dict[str, Any] = field(default_factory=dict)
    text: dict[str, Any] = field(default_factory=dict)
    augment: bool | str | dict[str, Any] = True
    augment_symbols: bool = True
    data: DataSpec = field(default_factory=DataSpec)
    checkpoint_every: int = 1
    keep_checkpoints: int = 2
    select_best: bool = True
    log_every: int = 50
    eval_batch_size: int = 256
    tensorboard: bool = False
    device: str = "auto"
    num_workers: int = 0
    name: str = "galaxalign"

    def __post_init__(self) -> None:
        if self.grad_clip is None:
            self.grad_clip = 0.0
        check_fields(self, where="recipe")
        if not DEVICE_RE.fullmatch(self.device):
            msg = (
                f"recipe: device must be auto, cpu, cuda, cuda:N, mps or xpu:N, got {self.device!r}"
            )
            raise ValueError(msg)
        if isinstance(self.preprocess, Mapping):
            self.preprocess = PreprocessConfig.from_dict(dict(self.preprocess))
        if isinstance(self.data, Mapping):
            known = {f.name for f in fields(DataSpec)}
            unknown = set(self.data) - known
            if unknown:
                msg = f"unknown data settings: {', '.join(sorted(unknown))}"
                raise ValueError(msg)
            self.data = DataSpec(**self.data)
        self.stages = [_stage(s) for s in self.stages]
        if not self.stages:
            msg = "a training run needs at least one stage"
            raise ValueError(msg)
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            msg = f"stage names must be unique, got {names}"
            raise ValueError(msg)
        seen_separate = False
        for s in self.stages:
            if s.symbol_tower == "separate":
                seen_separate = True
            elif seen_separate:
                msg = f"stage {s.name!r}: cannot share the symbol tower again once it is separate"
                raise ValueError(msg)
        if self.batch_size < 2:
            msg = f"batch_size must be at least 2 for contrastive training, got {self.batch_size}"
            raise ValueError(msg)
        if self.accumulate < 1:
            msg = f"accumulate must be >= 1, got {self.accumulate}"
            raise ValueError(msg)
        if self.precision not in PRECISIONS:
            msg = f"precision must be one of {PRECISIONS}, got {self.precision!r}"
            raise ValueError(msg)
        if self.grad_clip < 0:
            msg = f"grad_clip must be >= 0, got {self.grad_clip}"
            raise ValueError(msg)
        if not 0.0 <= self.val_fraction < 1.0:
            msg = f"val_fraction must be in [0, 1), got {self.val_fraction}"
            raise ValueError(msg)
        if self.checkpoint_every < 0 or self.keep_checkpoints < 1:
            msg = (
                f"checkpoint_every must be >= 0 and keep_checkpoints >= 1, got "
                f"{self.checkpoint_every} and {self.keep_checkpoints}"
            )
            raise ValueError(msg)
        if self.log_every < 1 or self.eval_batch_size < 1:
            msg = "log_every and eval_batch_size must be >= 1"
            raise ValueError(msg)
        self.augment_config()

    def augment_config(self):
        """The :class:`~galaxalign_astro.datasets.AugmentConfig` of ``augment``, or None (off)."""
        from ..datasets.augment import AugmentConfig

        value = self.augment
        if value is False:
            return None
        if value is True:
            return AugmentConfig()
        if isinstance(value, str):
            return AugmentConfig.preset(value)
        if isinstance(value, Mapping):
            settings = dict(value)
            preset = settings.pop("preset", None)
            base = AugmentConfig.preset(preset).to_dict() if preset else {}
            return AugmentConfig.from_dict({**base, **settings})
        msg = f"augment must be true, false, a preset name or a table, got {value!r}"
        raise ValueError(msg)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["preprocess"] = self.preprocess.to_dict()
        out["stages"] = [s.to_dict() for s in self.stages]
        out["data"] = self.data.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            msg = f"unknown training settings: {', '.join(sorted(unknown))}"
            raise ValueError(msg)
        try:
            return cls(**copy.deepcopy(dict(data)))
        except TypeError as exc:
            raise ValueError(str(exc)) from None

    def with_overrides(self, **changes: Any) -> TrainConfig:
        return replace(self, **changes)

    @property
    def total_epochs(self) -> int:
        return sum(s.epochs for s in self.stages)


def _stage(value: StageConfig | Mapping[str, Any]) -> StageConfig:
    if isinstance(value, StageConfig):
        return value
    data = dict(value)
    if "name" not in data:
        msg = f"a stage needs a name: {data}"
        raise ValueError(msg)
    known = {f.name for f in fields(StageConfig)}
    unknown = set(data) - known
    if unknown:
        msg = f"stage {data['name']!r}: unknown settings {', '.join(sorted(unknown))}"
        raise ValueError(msg)
    return StageConfig(**data)


def __getattr__(name: str) -> Any:
    # the recipe functions (train.recipe imports this module, so they are looked up lazily)
    from . import recipe

    if name in recipe.__all__:
        return getattr(recipe, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
