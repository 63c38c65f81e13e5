"""The GalaxAlign trainer: one loop, run once per :class:`~.config.StageConfig`.

Per batch, every galaxy image is paired with a random description of its class
(text tower) and a random symbol variant of its class (symbol tower, or the image
tower while it is shared), and the class-aware tri-modal loss is minimised. At the
end the prototype mix ``alpha`` is tuned on the validation images (ours) and the
model is saved with everything inference needs.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._version import __version__
from ..inference.prototypes import class_probabilities, mix_prototypes, prototypes_for_classes
from ..modalities import class_symbol_images, class_text_lists
from ..models.checkpoint import ModelSpec, save_model
from ..models.factory import architecture_config, create_clip, get_tokenizer
from ..models.loss import trimodal_loss
from ..models.trimodal import GalaxAlignModel
from ..symbols import SymbolConfig
from ..taxonomy import get_taxonomy
from ..text import TextConfig
from .config import StageConfig, TrainConfig
from .data import LabelledImages

__all__ = ["TrainResult", "Trainer", "augment_batch", "build_optimizer"]

log = logging.getLogger(__name__)

ALPHA_GRID = tuple(round(a, 2) for a in np.linspace(0.0, 1.0, 11))


@dataclass
class TrainResult:
    """What a run produced."""

    output: Path | None
    weights_sha256: str | None
    alpha: float
    history: list[dict[str, Any]] = field(default_factory=list)
    val_accuracy: dict[str, float] = field(default_factory=dict)


def augment_batch(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random 90-degree rotations and flips: galaxy morphology has no preferred orientation."""
    k = int(torch.randint(0, 4, (1,), generator=generator))
    images = torch.rot90(images, k, dims=(2, 3))
    if bool(torch.randint(0, 2, (1,), generator=generator)):
        images = torch.flip(images, dims=(3,))
    return images


def build_optimizer(params: list[tuple[str, nn.Parameter]], lr: float, weight_decay: float):
    """AdamW with no decay on norms, biases, embeddings of scalars and the temperature."""
    decay, no_decay = [], []
    for name, p in params:
        if p.ndim < 2 or "logit_scale" in name or "ln" in name or "bias" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=(0.9, 0.98))


def _cosine(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class Trainer:
    """Runs the configured stages on prepared images and saves the model."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.taxonomy = get_taxonomy(config.taxonomy)
        torch.manual_seed(config.seed)
        self.device = torch.device(config.device)
        clip = create_clip(config.architecture, pretrained=config.pretrained)
        self.model = GalaxAlignModel(
            clip, architecture=config.architecture, config=architecture_config(config.architecture)
        ).to(self.device)
        if self.model.image_size != config.preprocess.size:
            msg = (
                f"architecture {config.architecture} takes {self.model.image_size} px images "
                f"but preprocessing makes {config.preprocess.size} px"
            )
            raise ValueError(msg)
        self.tokenizer = get_tokenizer(config.architecture)
        keys = self.taxonomy.keys
        self.class_texts = class_text_lists(keys, config.text)
        self.class_symbols = class_symbol_images(keys, config.symbols, size=self.model.image_size)
        self.text_tokens = [self.tokenizer(t) for t in self.class_texts]
        symbols = torch.from_numpy(self.class_symbols).permute(0, 1, 4, 2, 3).contiguous()
        self.symbol_tensor = symbols  # uint8 (C, V, 3, S, S)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.history: list[dict[str, Any]] = []

    # -- batches -------------------------------------------------------------------------
    def _batch_modalities(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = self.generator
        tokens = torch.stack(
            [
                self.text_tokens[c][int(torch.randint(len(self.text_tokens[c]), (1,), generator=g))]
                for c in labels.tolist()
            ]
        )
        n_var = self.symbol_tensor.shape[1]
        variant = torch.randint(n_var, (len(labels),), generator=g)
        symbols = self.symbol_tensor[labels, variant].float() / 255.0
        if self.config.augment:
            symbols = augment_batch(symbols, g)
        return tokens.to(self.device), symbols.to(self.device)

    # -- stages --------------------------------------------------------------------------
    def _configure_stage(self, stage: StageConfig) -> list[tuple[str, nn.Parameter]]:
        model = self.model
        if stage.symbol_tower == "separate" and model.symbol_visual is None:
            model.split_symbol_tower()
            log.info("%s: symbol tower created as a copy of the image tower", stage.name)
        elif stage.symbol_tower == "shared" and model.symbol_visual is not None:
            msg = f"stage {stage.name}: cannot share the symbol tower again once it is separate"
            raise ValueError(msg)
        for p in model.parameters():
            p.requires_grad_(False)
        groups = {
            "image": list(model.clip.visual.named_parameters(prefix="clip.visual")),
            "text": [
                (n, p)
                for n, p in model.named_parameters()
                if any(p is q for q in model.text_parameters())
            ],
            "symbol": (
                list(model.symbol_visual.named_parameters(prefix="symbol_visual"))
                if model.symbol_visual is not None
                else []
            ),
        }
        chosen: list[tuple[str, nn.Parameter]] = []
        for tower in stage.train:
            chosen.extend(groups[tower])
        if stage.learn_temperature:
            chosen.append(("clip.logit_scale", model.logit_scale))
        for _, p in chosen:
            p.requires_grad_(True)
        return chosen

    def fit(
        self,
        train: LabelledImages,
        val: LabelledImages | None = None,
        *,
        output: str | Path | None = None,
        progress: bool = False,
        half: bool = False,
        provenance: dict[str, Any] | None = None,
    ) -> TrainResult:
        """Train every stage in order; save to ``output`` when given."""
        from tqdm.auto import tqdm

        cfg = self.config
        n = len(train)
        steps_per_epoch = max(1, n // cfg.batch_size)
        images_all = torch.from_numpy(train.images)
        labels_all = torch.from_numpy(train.labels)
        for stage in cfg.stages:
            params = self._configure_stage(stage)
            optimizer = build_optimizer(params, stage.lr, stage.weight_decay)
            total = steps_per_epoch * stage.epochs
            warmup = int(stage.warmup_fraction * total)
            scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda s, total=total, warmup=warmup: _cosine(s, total, warmup)
            )
            trainable = [p for _, p in params]
            step = 0
            for epoch in range(stage.epochs):
                self.model.train()
                order = torch.randperm(n, generator=self.generator)
                t0, seen, running = time.perf_counter(), 0, 0.0
                pair_sums: dict[str, float] = {}
                bar = tqdm(
                    range(steps_per_epoch),
                    desc=f"{stage.name} epoch {epoch + 1}/{stage.epochs}",
                    disable=not progress,
                    leave=False,
                )
                for b in bar:
                    idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                    labels = labels_all[idx]
                    images = images_all[idx].float() / 255.0
                    if cfg.augment:
                        images = augment_batch(images, self.generator)
                    tokens, symbols = self._batch_modalities(labels)
                    images, labels = images.to(self.device), labels.to(self.device)
                    loss, parts = trimodal_loss(
                        self.model.encode_image(images),
                        self.model.encode_symbol(symbols),
                        self.model.encode_text(tokens),
                        labels,
                        self.model.logit_scale,
                        stage.loss_weights,
                    )
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if cfg.grad_clip:
                        torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
                    optimizer.step()
                    scheduler.step()
                    step += 1
                    seen += len(labels)
                    running += float(loss.detach())
                    for key, value in parts.items():
                        pair_sums[key] = pair_sums.get(key, 0.0) + value
                    bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
                record: dict[str, Any] = {
                    "stage": stage.name,
                    "epoch": epoch + 1,
                    "loss": running / steps_per_epoch,
                    **{f"loss_{k}": v / steps_per_epoch for k, v in pair_sums.items()},
                    "images_per_s": seen / (time.perf_counter() - t0),
                    "logit_scale": float(self.model.logit_scale.detach().exp()),
                }
                if val is not None and len(val):
                    record.update(self.evaluate(val))
                self.history.append(record)
                log.info("%s", record)
        alpha = self.tune_alpha(val) if val is not None and len(val) else 0.5
        val_acc = self.evaluate(val, alpha=alpha) if val is not None and len(val) else {}
        result = TrainResult(None, None, alpha, self.history, val_acc)
        if output is not None:
            result.output = Path(output)
            result.weights_sha256 = self.save(
                output, alpha=alpha, metrics=val_acc, half=half, provenance=provenance
            )
        return result

    # -- evaluation ----------------------------------------------------------------------
    @torch.no_grad()
    def prototypes(self) -> tuple[torch.Tensor, torch.Tensor]:
        self.model.eval()
        return prototypes_for_classes(
            self.model, self.tokenizer, texts=self.class_texts, symbols=list(self.class_symbols)
        )

    @torch.no_grad()
    def embed_images(self, data: LabelledImages, batch_size: int = 512) -> torch.Tensor:
        self.model.eval()
        out = []
        for start in range(0, len(data), batch_size):
            chunk = torch.from_numpy(data.images[start : start + batch_size]).float() / 255.0
            out.append(self.model.encode_image(chunk.to(self.device)))
        return torch.cat(out)

    @torch.no_grad()
    def evaluate(self, data: LabelledImages, *, alpha: float | None = None) -> dict[str, float]:
        """Validation accuracy with text, symbol and mixed prototypes."""
        text, symbol = self.prototypes()
        emb = self.embed_images(data)
        labels = torch.from_numpy(data.labels).to(self.device)
        out = {}
        mixes = {"val_acc_text": 1.0, "val_acc_symbol": 0.0, "val_acc_mix": alpha or 0.5}
        for name, a in mixes.items():
            probs = class_probabilities(
                emb, mix_prototypes(text, symbol, a), self.model.logit_scale
            )
            out[name] = float((probs.argmax(1) == labels).float().mean())
        return out

    @torch.no_grad()
    def tune_alpha(self, data: LabelledImages) -> float:
        """The prototype mix with the best validation accuracy (ties: closest to 0.5)."""
        text, symbol = self.prototypes()
        emb = self.embed_images(data)
        labels = torch.from_numpy(data.labels).to(self.device)
        scores = []
        for a in ALPHA_GRID:
            probs = class_probabilities(
                emb, mix_prototypes(text, symbol, a), self.model.logit_scale
            )
            scores.append((float((probs.argmax(1) == labels).float().mean()), -abs(a - 0.5), a))
        best = max(scores)
        log.info("prototype alpha %.2f (validation accuracy %.3f)", best[2], best[0])
        return float(best[2])

    def save(
        self,
        output: str | Path,
        *,
        alpha: float,
        metrics: dict[str, float],
        half: bool = False,
        provenance: dict[str, Any] | None = None,
    ) -> str:
        text, symbol = self.prototypes()
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
                **(provenance or {}),
            },
        )
        return save_model(
            output, self.model, spec, prototypes_text=text, prototypes_symbol=symbol, half=half
        )
