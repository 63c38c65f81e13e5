"""Linear probe: multinomial logistic regression on frozen image embeddings.

The baseline protocol of representation papers (PAPER.md "Using the trained
model"). Ours, in detail: features are standardised with the training mean and
standard deviation; the loss is the mean cross-entropy plus ``l2 / 2 * ||W||^2``
(bias not penalised), minimised in float64 by full-batch L-BFGS with a
strong-Wolfe line search, which makes the fit deterministic. ``l2`` is chosen
from :data:`L2_GRID` by the cross-entropy on a stratified 20 % of the training
embeddings, then the probe is refitted on all of them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..datasets.splits import stratified_split

__all__ = ["L2_GRID", "LinearProbe", "fit_linear_probe"]

log = logging.getLogger(__name__)

L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
#: below this many feature values one thread is faster: L-BFGS makes hundreds of
#: tiny matrix products, and waking other threads costs more than each of them
SINGLE_THREAD_SIZE = 1_000_000


@contextmanager
def _threads_for(size: int) -> Iterator[None]:
    before = torch.get_num_threads()
    if size < SINGLE_THREAD_SIZE and before > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class LinearProbe:
    """A fitted probe: ``softmax(((x - mean) / std) @ weight.T + bias)``."""

    weight: np.ndarray  # (n_classes, dim)
    bias: np.ndarray  # (n_classes,)
    mean: np.ndarray  # (dim,)
    std: np.ndarray  # (dim,)
    l2: float
    n_train: int

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.std
        logits = z @ self.weight.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)


def _fit(x: torch.Tensor, y: torch.Tensor, n_classes: int, l2: float, max_iter: int):
    weight = torch.zeros(n_classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-6,
        tolerance_change=1e-9,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight.T + bias, y) + 0.5 * l2 * (weight**2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach()


def fit_linear_probe(
    x: np.ndarray,
    y: np.ndarray,
    *,
    n_classes: int,
    l2: float | None = None,
    seed: int = 42,
    max_iter: int = 300,
) -> LinearProbe:
    """Fit a probe on embeddings ``x`` (n, dim) with labels ``y`` (n,).

    Parameters
    ----------
    n_classes : int
        Number of outputs (classes missing from ``y`` get probability near 0).
    l2 : float, optional
        Fixed L2 strength; by default chosen from :data:`L2_GRID` (see the module doc).
    seed : int
        Seed of the held-out split used to choose ``l2``.
    max_iter : int
        L-BFGS iterations.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if x.ndim != 2 or len(x) != len(y):
        msg = f"probe needs (n, dim) features and n labels, got {x.shape} and {y.shape}"
        raise ValueError(msg)
    if len(np.unique(y)) < 2:
        msg = "the linear probe needs training images of at least two classes"
        raise ValueError(msg)
    mean = x.mean(axis=0)
    std = np.maximum(x.std(axis=0), 1e-6)
    z = torch.from_numpy((x - mean) / std)
    t = torch.from_numpy(y)
    with _threads_for(x.size):
        if l2 is None:
            l2 = _choose_l2(z, t, y, n_classes, seed, max_iter)
        weight, bias = _fit(z, t, n_classes, l2, max_iter)
    return LinearProbe(weight.numpy(), bias.numpy(), mean, std, float(l2), len(y))


def _choose_l2(z, t, y, n_classes, seed, max_iter) -> float:
    fit_rows, val_rows = stratified_split(y, 0.2, seed=seed, name="probe")
    if len(val_rows) == 0 or len(np.unique(y[fit_rows])) < 2:
        log.info("too few training images to tune the probe's l2; using 1e-2")
        return 1e-2
    fi, vi = torch.from_numpy(fit_rows), torch.from_numpy(val_rows)
    scores = []
    for l2 in L2_GRID:
        weight, bias = _fit(z[fi], t[fi], n_classes, l2, max_iter)
        with torch.no_grad():
            loss = float(F.cross_entropy(z[vi] @ weight.T + bias, t[vi]))
        scores.append((loss, -l2))
        log.debug("probe l2 %g: held-out cross-entropy %.4f", l2, loss)
    best = -min(scores)[1]
    log.info("linear probe l2 = %g", best)
    return best
