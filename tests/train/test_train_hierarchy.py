"""Training on coarse labels: group nodes in the batches, the prototype term, validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from galaxalign_astro.models.loss import LossWeights
from galaxalign_astro.taxonomy import GALAXY10_DECALS
from galaxalign_astro.train import LabelledImages, Trainer, default_stages
from tests.train.tiny_run import split, tiny_config, tiny_data

pytestmark = pytest.mark.filterwarnings(
    # open_clip's tokenizer module imports a deprecated ftfy/regex helper on first use
    "ignore::DeprecationWarning"
)

GROUP = GALAXY10_DECALS.group_of_class() + len(GALAXY10_DECALS)


def coarse_copy(data: LabelledImages, every: int = 2) -> LabelledImages:
    """Every ``every``-th image labelled by its coarse group only."""
    labels = data.labels.copy()
    labels[::every] = GROUP[labels[::every]]
    return LabelledImages(data.images, labels)


def prototype_stages():
    stages = default_stages(1, 1, lr=1e-3)
    weights = LossWeights(prototype=1.0)
    return [type(s)(**{**s.__dict__, "loss_weights": weights}) for s in stages]


def test_coarse_labels_train_with_the_prototype_term():
    train, val = split(tiny_data())
    trainer = Trainer(tiny_config(stages=prototype_stages()))
    result = trainer.fit(coarse_copy(train), coarse_copy(val))
    assert all("loss_prototype" in r and np.isfinite(r["loss_prototype"]) for r in result.history)
    # symbols and texts of the groups are in the batch tables, after the classes
    assert trainer._token_table.shape[0] == GALAXY10_DECALS.n_nodes
    assert trainer._symbol_table.shape[0] == GALAXY10_DECALS.n_nodes


def test_labels_beyond_the_groups_are_refused():
    train, _ = split(tiny_data())
    bad = LabelledImages(train.images, np.full(len(train), GALAXY10_DECALS.n_nodes))
    with pytest.raises(ValueError, match="coarse groups up to 13"):
        Trainer(tiny_config()).fit(bad)


def test_validation_counts_a_coarse_label_right_for_any_of_its_classes():
    train, val = split(tiny_data())
    trainer = Trainer(tiny_config(epochs=(1, 0)))
    trainer.fit(train)
    with torch.no_grad():
        text, symbol = trainer.prototypes()
        emb = trainer.embed_images(val)
    mixed = torch.nn.functional.normalize(text + symbol, dim=-1)  # the alpha = 0.5 mix
    predicted = (emb @ mixed.T).argmax(1).numpy()
    fine = trainer.validate(val)
    # labelled by the group of the predicted class, the 0.5 mix is always right
    scores = trainer._scores(LabelledImages(val.images, GROUP[predicted]), [0.5])
    assert scores[0.5] == pytest.approx(1.0)
    # coarse labels of the true classes: at least the fine accuracy
    coarse = trainer.validate(LabelledImages(val.images, GROUP[val.labels]))
    assert coarse["val_acc_text"] >= fine["val_acc_text"]


def test_oversampling_repeats_specs_and_rare_groups_after_the_hold_out():
    from galaxalign_astro.datasets import DatasetImages, concat_datasets
    from galaxalign_astro.train.api import oversample
    from galaxalign_astro.train.config import DataSpec

    images = np.zeros((1, 3, 4, 4), dtype=np.uint8)
    spiral = GALAXY10_DECALS.group_label("spiral")
    sim = DatasetImages(images.repeat(4, 0), np.array([0, 2, 5, 8]), source={"kind": "simulated"})
    # real: 4 smooth (coarse), 1 barred spiral (fine, in the spiral group), 1 spiral (coarse)
    real_labels = np.array([GALAXY10_DECALS.group_label("smooth")] * 4 + [5, spiral])
    real = DatasetImages(images.repeat(6, 0), real_labels, source={"kind": "catalog"})
    both = concat_datasets([sim, real])
    config = tiny_config(data=DataSpec(spec=("a", "b"), repeat=(1, 2), balance=1.0))
    rows = np.arange(len(both))
    out = oversample(both, rows, config)
    counts = np.bincount(out, minlength=len(both))
    # simulated: four classes of four groups, one each -> balanced already, repeat 1
    assert counts[:4].tolist() == [1, 1, 1, 1]
    # real: repeat 2; smooth 4 rows vs spiral 2 rows (fine and coarse together) -> spiral x2
    assert counts[4:].tolist() == [2, 2, 2, 2, 4, 4]
    # rows held out for validation are never repeated into training
    assert set(oversample(both, rows[:8], config)) <= set(range(8))
    with pytest.raises(ValueError, match="one whole number >= 1 per spec"):
        DataSpec(spec=("a", "b"), repeat=(1,))
