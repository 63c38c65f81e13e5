"""Batches built in place hold exactly what the per-item path gives."""

import math

import numpy as np
import torch
from torch.utils.data import DataLoader

from galaxalign_astro.inference.dataset import Batches, CutoutFiles
from galaxalign_astro.io import expand_inputs
from galaxalign_astro.preprocess import PreprocessConfig


def test_a_batch_equals_its_items_failures_included(cutout_dir):
    (cutout_dir / "broken.fits").write_bytes(b"not fits at all")
    config = PreprocessConfig(size=32, frame=1.5)
    dataset = CutoutFiles(expand_inputs([cutout_dir]), config, measurements=True)
    indices = list(range(len(dataset)))
    batch = dataset.batch(indices)
    items = [dataset[i] for i in indices]
    assert batch["image"].shape == (len(indices), 3, 32, 32)
    assert batch["index"].tolist() == indices
    assert batch["ok"].tolist() == [it["ok"] for it in items]
    assert not all(batch["ok"])  # the broken file is one failed row, not a failed batch
    assert batch["error"] == [it["error"] for it in items]
    for j, item in enumerate(items):
        assert torch.equal(batch["image"][j], item["image"])
        assert (math.isnan(item["ra"]) and math.isnan(batch["ra"][j])) or batch["ra"][j] == item[
            "ra"
        ]
        np.testing.assert_array_equal(batch["measurements"][j], item["measurements"])


def test_the_loader_of_batches_keeps_the_input_order(cutout_dir):
    config = PreprocessConfig(size=32)
    dataset = CutoutFiles(expand_inputs([cutout_dir]), config)
    loader = DataLoader(Batches(dataset), batch_size=2, num_workers=2, collate_fn=Batches.collate)
    seen = torch.cat([b["index"] for b in loader]).tolist()
    assert seen == list(range(len(dataset)))
    # and the dataset still works with a loader of the user's own (per-item collation)
    plain = next(iter(DataLoader(dataset, batch_size=3)))
    assert torch.equal(plain["image"], dataset.batch([0, 1, 2])["image"])
