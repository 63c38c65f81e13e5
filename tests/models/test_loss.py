import math

import pytest
import torch

from galaxalign_astro.models.loss import (
    LossWeights,
    class_aware_contrastive,
    class_targets,
    trimodal_loss,
)


def test_targets_rows_sum_to_one_and_share_class():
    t = class_targets(torch.tensor([0, 1, 0, 2]))
    torch.testing.assert_close(t.sum(1), torch.ones(4))
    assert t[0, 2] == pytest.approx(0.5) and t[0, 1] == 0


def test_hand_computed_value():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1])
    scale = torch.tensor(math.log(2.0))  # s = 2
    # logits = [[2, 0], [0, 2]]; CE per row = -log(e^2 / (e^2 + 1))
    expected = -math.log(math.exp(2) / (math.exp(2) + 1))
    assert float(class_aware_contrastive(a, b, labels, scale)) == pytest.approx(expected)


def test_same_class_pairs_are_pulled_together():
    """Merging two same-class embeddings lowers the class-aware loss (plain InfoNCE: raises)."""
    norm = torch.nn.functional.normalize
    apart = norm(torch.tensor([[1.0, 0.5], [1.0, -0.5], [-1.0, 0.0]]), dim=1)
    together = norm(torch.tensor([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]]), dim=1)
    scale = torch.tensor(math.log(10.0))
    same, distinct = torch.tensor([0, 0, 1]), torch.tensor([0, 1, 2])
    assert class_aware_contrastive(together, together, same, scale) < class_aware_contrastive(
        apart, apart, same, scale
    )
    assert class_aware_contrastive(together, together, distinct, scale) > class_aware_contrastive(
        apart, apart, distinct, scale
    )


def test_logit_scale_clamped_at_100():
    a = torch.eye(2)
    labels = torch.tensor([0, 1])
    big = class_aware_contrastive(a, a, labels, torch.tensor(10.0))
    at_100 = class_aware_contrastive(a, a, labels, torch.tensor(math.log(100.0)))
    assert float(big) == pytest.approx(float(at_100))


def test_trimodal_weights_and_skips():
    torch.manual_seed(0)
    x, s, t = (torch.nn.functional.normalize(torch.randn(6, 4), dim=1) for _ in range(3))
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    scale = torch.tensor(1.0)
    total, parts = trimodal_loss(x, s, t, y, scale, LossWeights(1.0, 2.0, 0.0))
    assert set(parts) == {"image_text", "symbol_text"}
    assert float(total) == pytest.approx(parts["image_text"] + 2 * parts["symbol_text"], rel=1e-5)
    _, only_it = trimodal_loss(x, None, t, y, scale)
    assert set(only_it) == {"image_text"}
    with pytest.raises(ValueError, match="nothing to train"):
        trimodal_loss(x, None, t, y, scale, LossWeights(0.0, 1.0, 1.0))
