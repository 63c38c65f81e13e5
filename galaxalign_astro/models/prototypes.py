"""Class prototypes from descriptions and symbols (PAPER.md "Using the trained model").

``P_c = normalise(alpha * mean f_T(texts of c) + (1 - alpha) * mean f_S(symbols of c))``;
``p(c | x) = softmax_c(s * f_I(x) . P_c)``. The mixing and its tuning are ours.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "class_probabilities",
    "encode_symbol_images",
    "encode_texts",
    "mix_prototypes",
    "prototypes_for_classes",
]


def mix_prototypes(text: torch.Tensor, symbol: torch.Tensor, alpha: float) -> torch.Tensor:
    """``normalise(alpha * text + (1 - alpha) * symbol)`` row by row."""
    if not 0.0 <= alpha <= 1.0:
        msg = f"prototype alpha must be in [0, 1], got {alpha}"
        raise ValueError(msg)
    return F.normalize(alpha * text + (1.0 - alpha) * symbol, dim=-1)


def class_probabilities(
    image_embeddings: torch.Tensor, prototypes: torch.Tensor, logit_scale: torch.Tensor | float
) -> torch.Tensor:
    """``softmax(s * x . P)`` over classes."""
    scale = torch.as_tensor(logit_scale).exp().clamp(max=100.0)
    return torch.softmax(scale * image_embeddings @ prototypes.T, dim=-1)


@torch.no_grad()
def encode_texts(model, tokenizer, texts: Sequence[str], *, batch_size: int = 256) -> torch.Tensor:
    """Normalised text-tower embeddings of every text, (n, dim)."""
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(texts), batch_size):
        tokens = tokenizer(list(texts[start : start + batch_size])).to(device)
        out.append(model.encode_text(tokens))
    return torch.cat(out)


@torch.no_grad()
def encode_symbol_images(model, images: np.ndarray, *, batch_size: int = 128) -> torch.Tensor:
    """Normalised symbol-tower embeddings of uint8 (n, H, W, 3) symbol images."""
    from ..preprocess.pipeline import resize_planes

    device = next(model.parameters()).device
    size = model.image_size
    out = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        planes = [
            resize_planes(np.moveaxis(img, -1, 0).astype(np.float32) / 255.0, size) for img in chunk
        ]
        out.append(model.encode_symbol(torch.from_numpy(np.stack(planes)).to(device)))
    return torch.cat(out)


def prototypes_for_classes(
    model,
    tokenizer,
    *,
    texts: Sequence[Sequence[str]],
    symbols: Sequence[np.ndarray],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Text and symbol prototypes (n_classes, dim) from per-class texts and symbol images.

    A class with no texts (or no symbols) gets a zero text (symbol) prototype, so
    mixing then uses the other modality alone.
    """
    dim = model.embed_dim
    device = next(model.parameters()).device
    text_rows, symbol_rows = [], []
    for class_texts, class_symbols in zip(texts, symbols, strict=True):
        if len(class_texts):
            text_rows.append(
                F.normalize(encode_texts(model, tokenizer, class_texts).mean(0), dim=0)
            )
        else:
            text_rows.append(torch.zeros(dim, device=device))
        if len(class_symbols):
            emb = encode_symbol_images(model, np.asarray(class_symbols))
            symbol_rows.append(F.normalize(emb.mean(0), dim=0))
        else:
            symbol_rows.append(torch.zeros(dim, device=device))
    return torch.stack(text_rows), torch.stack(symbol_rows)
