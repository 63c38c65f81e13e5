"""Batches of a training run and the tri-modal step computed on them.

Per batch, every galaxy image is paired with a random description of its class
(text tower) and a random symbol variant of its class (symbol tower, or the image
tower while it is shared). The draws come from generators seeded by counters
(`step_seed`), so a resumed run draws exactly what the uninterrupted run would
have, and every process of a multi-GPU run agrees on the global batch. The loss
is the class-aware tri-modal one of :mod:`galaxalign_astro.models.loss`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import nn

from ..models.loss import trimodal_loss
from .distributed import gather_with_local_grad

if TYPE_CHECKING:
    from ..datasets.augment import AugmentConfig
    from ..models.trimodal import GalaxAlignModel
    from ..taxonomy import Taxonomy
    from .config import StageConfig, TrainConfig
    from .distributed import DistContext
    from .optim import Precision

__all__ = ["step_seed"]


def step_seed(*counters: int) -> int:
    """A 63-bit seed from integer counters (seed, stage, epoch, step...), well mixed."""
    state = np.random.SeedSequence([int(c) for c in counters]).generate_state(2, np.uint64)
    return int(state[0]) >> 1


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


class _BatchesMixin:
    """The batches of `~.trainer.Trainer` and its tri-modal step.

    Uses the trainer's model, configuration, process group, device, precision,
    taxonomy, augmentation and the per-node token and symbol tables it builds.
    """

    config: TrainConfig
    model: GalaxAlignModel
    dist: DistContext
    device: torch.device
    precision: Precision
    taxonomy: Taxonomy
    augment: AugmentConfig | None
    _token_table: torch.Tensor
    _token_counts: torch.Tensor
    _symbol_table: torch.Tensor
    tokenizer: Any
    _members: torch.Tensor

    def _build_tables(self, node_texts: list[list[str]], node_symbols: np.ndarray) -> None:
        """The token and symbol tables, one row per taxonomy node, that batches draw from.

        ``node_texts`` and ``node_symbols`` hold the descriptions and symbol
        variants of the classes, then of the taxonomy's coarse groups.
        """
        n_classes, nodes = len(self.taxonomy.keys), self.taxonomy.node_keys
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
        self.symbol_tensor = symbols[:n_classes]  # uint8 (C, V, 3, S, S)
        self._symbol_table = symbols.to(self.device)
        self._members = torch.from_numpy(self.taxonomy.members_matrix()).to(self.device)

    def _generator(self, *counters: int, device: torch.device | None = None) -> torch.Generator:
        g = torch.Generator(device=device or "cpu")
        g.manual_seed(step_seed(self.config.seed, *counters))
        return g

    def _augment(self, images: torch.Tensor, *counters: int) -> torch.Tensor:
        """``images`` augmented as configured (called only when augmentation is on)."""
        from ..datasets.augment import augment

        g = self._generator(*counters, self.dist.rank, device=images.device)
        return augment(images, cast("AugmentConfig", self.augment), g)

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

    def _step_loss(
        self,
        step_module: nn.Module,
        images: torch.Tensor,
        symbols: torch.Tensor | None,
        tokens: torch.Tensor,
        labels: torch.Tensor,
        stage: StageConfig,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The tri-modal loss of one local batch (from `_batch`) and its weighted parts.

        The towers run under the configured precision; the batch's embeddings are
        gathered over the processes (gradients flow through the local ones) and
        scored by `~galaxalign_astro.models.loss.trimodal_loss`.
        """
        with self.precision.autocast():
            image, symbol, text, scale = step_module(images, symbols, tokens)
        protos: dict[str, torch.Tensor] = {}
        if stage.loss_weights.prototype:
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
        return trimodal_loss(
            image,
            symbol,
            text,
            labels,
            scale,
            stage.loss_weights,
            members=self._members,
            prototypes=protos,
        )

    def _wrap(self) -> nn.Module:
        """The tri-modal step, wrapped in DistributedDataParallel in a multi-process run."""
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
