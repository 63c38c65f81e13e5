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
    expected = float(parts["image_text"]) + 2 * float(parts["symbol_text"])
    assert float(total) == pytest.approx(expected, rel=1e-5)
    _, only_it = trimodal_loss(x, None, t, y, scale)
    assert set(only_it) == {"image_text"}
    with pytest.raises(ValueError, match="nothing to train"):
        trimodal_loss(x, None, t, y, scale, LossWeights(0.0, 1.0, 1.0))


# -- hierarchical labels: classes 0, 1, 2 and a coarse group 3 = {0, 1} ----------------------
MEMBERS = torch.tensor(
    [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]],
    dtype=torch.bool,
)


def test_node_relation_positive_negative_and_unknown():
    from galaxalign_astro.models.loss import node_relation

    labels = torch.tensor([0, 3, 2])
    positive, known = node_relation(labels, labels, MEMBERS)
    # class 0 vs group {0, 1}: unknown; class 0 vs class 2, group vs class 2: negative
    assert positive.tolist() == [[True, False, False], [False, True, False], [False, False, True]]
    assert known.tolist() == [[True, False, True], [False, True, True], [True, True, True]]
    _, all_known = node_relation(torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2]), MEMBERS)
    assert all_known is None


def test_with_class_labels_only_the_hierarchical_loss_is_the_class_aware_one():
    torch.manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(6, 4), dim=1)
    b = torch.nn.functional.normalize(torch.randn(6, 4), dim=1)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    scale = torch.tensor(math.log(5.0))
    plain = class_aware_contrastive(a, b, labels, scale)
    tree = class_aware_contrastive(a, b, labels, scale, members=MEMBERS)
    assert float(tree) == pytest.approx(float(plain), rel=1e-6)


def test_a_coarse_label_leaves_its_fine_classes_out_of_the_softmax():
    """Hand value: rows 0 (class 0) and 1 (group {0, 1}); the unknown pair is masked."""
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    scale = torch.tensor(math.log(2.0))
    labels = torch.tensor([0, 3])
    # every off-diagonal pair is unknown: each softmax holds only its own pair -> CE = 0
    assert float(class_aware_contrastive(a, a, labels, scale, members=MEMBERS)) == pytest.approx(
        0.0, abs=1e-7
    )
    # a class-2 row is a negative for both: row 0 logits [2, 0] (pair with row 1 masked)
    labels = torch.tensor([0, 3, 2])
    b = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    loss = class_aware_contrastive(b, b, labels, scale, members=MEMBERS)
    row0 = -math.log(math.exp(2) / (math.exp(2) + math.exp(0)))  # vs row 2
    row1 = -math.log(math.exp(2) / (math.exp(2) + math.exp(2)))  # row 1 and 2 are the same point
    row2 = -math.log(math.exp(2) / (math.exp(0) + math.exp(2) + math.exp(2)))
    # the matrix is symmetric, so both directions are equal
    assert float(loss) == pytest.approx((row0 + row1 + row2) / 3, rel=1e-6)


def test_prototype_loss_hand_value_for_class_and_coarse_labels():
    from galaxalign_astro.models.loss import prototype_loss

    protos = torch.eye(3)
    x = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    scale = torch.tensor(0.0)  # s = 1: p = softmax(x . P) = softmax of one-hot rows
    p_hit = math.e / (math.e + 2)
    p_other = 1 / (math.e + 2)
    fine = prototype_loss(x, protos, torch.tensor([0, 0]), scale, MEMBERS)
    assert float(fine) == pytest.approx(-(math.log(p_hit) + math.log(p_other)) / 2, rel=1e-6)
    # group {0, 1}: -log(p0 + p1), the same for an image at class 0 or class 1
    coarse = prototype_loss(x, protos, torch.tensor([3, 3]), scale, MEMBERS)
    assert float(coarse) == pytest.approx(-math.log(p_hit + p_other), rel=1e-6)
    assert float(prototype_loss(x, protos, torch.tensor([0, 0]), scale)) == pytest.approx(
        float(fine)
    )


def test_a_coarse_label_gives_no_gradient_between_its_own_fine_classes():
    """An image known only as "group {0, 1}" is equally happy at class 0 or class 1."""
    from galaxalign_astro.models.loss import prototype_loss

    protos = torch.eye(3)
    scale = torch.tensor(math.log(4.0))
    x = torch.tensor([[0.6, 0.6, 0.0]], requires_grad=True)
    prototype_loss(x, protos, torch.tensor([3]), scale, MEMBERS).backward()
    g = x.grad[0]
    assert float(g[0]) == pytest.approx(float(g[1]))
    assert float(g[2]) > 0  # away from class 2 (gradient descent lowers x . P_2)


def test_trimodal_loss_adds_the_weighted_prototype_term():
    torch.manual_seed(1)
    norm = torch.nn.functional.normalize
    x, t = norm(torch.randn(4, 3), dim=1), norm(torch.randn(4, 3), dim=1)
    y = torch.tensor([0, 3, 2, 1])
    scale = torch.tensor(math.log(3.0))
    protos = {"text": norm(torch.randn(3, 3), dim=1)}
    weights = LossWeights(1.0, 0.0, 0.0, prototype=0.5)
    total, parts = trimodal_loss(x, None, t, y, scale, weights, members=MEMBERS, prototypes=protos)
    assert set(parts) == {"image_text", "prototype"}
    assert float(total) == pytest.approx(
        float(parts["image_text"]) + 0.5 * float(parts["prototype"]), rel=1e-6
    )
