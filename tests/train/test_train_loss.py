"""The trainer's loss is the loss module's (`models.loss.trimodal_loss`) on its batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from galaxalign_astro.models.loss import LossWeights, trimodal_loss
from galaxalign_astro.taxonomy import GALAXY10_DECALS
from galaxalign_astro.train import LabelledImages, Trainer, default_stages
from tests.train.tiny_run import split, tiny_config, tiny_data

pytestmark = pytest.mark.filterwarnings(
    # open_clip's tokenizer module imports a deprecated ftfy/regex helper on first use
    "ignore::DeprecationWarning"
)

GROUP = GALAXY10_DECALS.group_of_class() + len(GALAXY10_DECALS)


def _stages(weights: LossWeights | None):
    stages = default_stages(1, 0, lr=1e-3)
    if weights is None:
        return stages
    return [type(s)(**{**s.__dict__, "loss_weights": weights}) for s in stages]


@pytest.mark.parametrize("prototype", [False, True])
def test_epoch_loss_is_the_loss_module_on_the_first_batch(prototype):
    # one optimizer step per epoch: the epoch's loss is that of its only batch, drawn
    # before any update, so it can be recomputed from the initial model
    train, _ = split(tiny_data())
    data = train.subset(np.arange(16))
    if prototype:  # coarse labels and the prototype term as well
        labels = data.labels.copy()
        labels[::2] = GROUP[labels[::2]]
        data = LabelledImages(data.images, labels)
    config = tiny_config(stages=_stages(LossWeights(prototype=1.0) if prototype else None))
    record = Trainer(config).fit(data).history[0]

    reference = Trainer(config)  # the same seed: the same initial weights
    stage = config.stages[0]
    reference._start_stage(stage, fresh=True)  # the stage's temperature
    reference.model.train()
    order = torch.randperm(len(data), generator=reference._generator(0, 0))
    images, symbols, tokens, labels = reference._batch(
        torch.from_numpy(data.images),
        torch.from_numpy(np.asarray(data.labels, dtype=np.int64)),
        order,
        (0, 0, 0),
        stage.uses_symbols,
        prototype,
    )
    model = reference.model
    with torch.no_grad():
        image = model.encode_image(images).float()
        text = model.encode_text(tokens).float()
        symbol = model.encode_symbol(symbols).float() if symbols is not None else None
        protos = {}
        if prototype:
            n = len(GALAXY10_DECALS)
            protos["text"], text = text[-n:], text[:-n]
            if symbol is not None:
                protos["symbol"], symbol = symbol[-n:], symbol[:-n]
        members = torch.from_numpy(GALAXY10_DECALS.members_matrix())
        loss, parts = trimodal_loss(
            image,
            symbol,
            text,
            labels,
            model.logit_scale,
            stage.loss_weights,
            members=members,
            prototypes=protos,
        )
    assert record["loss"] == pytest.approx(float(loss), rel=1e-5)
    logged = {k.removeprefix("loss_"): v for k, v in record.items() if k.startswith("loss_")}
    assert logged and set(logged) <= set(parts)
    for key, value in logged.items():
        assert value == pytest.approx(float(parts[key]), rel=1e-5, abs=1e-7)
