"""Training throughput: the Trainer against a bare hand-written loop, measured in one run.

Both train the same architecture on the same in-memory uint8 images, with the same
batch, AdamW settings, precision and the same three-tower forward and class-aware
loss (image-text, symbol-text, image-symbol; symbols through the shared image
tower, as in stage 1). The bare loop is what one would write by hand: index a batch,
draw one description and one symbol variant per image, forward, loss, backward,
step. The Trainer adds everything it does by default except augmentation and
validation (gradient clipping, the learning-rate schedule, loss bookkeeping, the
interrupt check). The two are run alternately, ``--repeats`` times each, and the
medians of images per second are compared; the target ratio is >= 0.9. Usage::

    python benchmarks/train_throughput.py [--arch gxa-tiny] [--batch-size 32] [--steps 8]
        [--repeats 5] [--device auto] [--threads 1]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from dataclasses import replace

import numpy as np
import torch


def bare_loop(model, images, labels, tokens, counts, symbols, *, steps, batch, precision, lr):
    """Images per second of a hand-written stage-1 loop over ``steps`` batches."""
    from galaxalign_astro.models.loss import class_aware_contrastive
    from galaxalign_astro.train.optim import param_groups

    device = images.device
    groups = param_groups(model.named_parameters(), weight_decay=0.05, model=model)
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6)
    g = torch.Generator().manual_seed(0)
    model.train()

    def step(order, b):
        idx = order[b * batch : (b + 1) * batch]
        y = labels[idx]
        pick = (torch.rand(batch, generator=g, dtype=torch.float64) * counts[y]).long()
        variant = torch.randint(symbols.shape[1], (batch,), generator=g)
        yd = y.to(device)
        x = images[idx.to(device)].float().div_(255.0)
        s = symbols[yd, variant.to(device)].float().div_(255.0)
        t = tokens[yd, pick.to(device)]
        with precision.autocast():
            fi, fs, ft = model.encode_image(x), model.encode_symbol(s), model.encode_text(t)
        fi, fs, ft = fi.float(), fs.float(), ft.float()
        scale = model.logit_scale
        loss = (
            class_aware_contrastive(fi, ft, yd, scale)
            + class_aware_contrastive(fs, ft, yd, scale)
            + class_aware_contrastive(fi, fs, yd, scale)
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    order = torch.randperm(len(labels), generator=g)
    _sync(device)
    t0 = time.perf_counter()
    for b in range(steps):
        step(order, b % (len(labels) // batch))
    _sync(device)
    return steps * batch / (time.perf_counter() - t0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="gxa-tiny")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per measurement")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)

    from galaxalign_astro.models.factory import create_model
    from galaxalign_astro.train import LabelledImages, StageConfig, Trainer, load_recipe

    stage = StageConfig("stage1", epochs=1, lr=1e-4, symbol_tower="shared")
    config = load_recipe(None, [f"architecture={args.arch}", f"device={args.device}"])
    config = replace(
        config, stages=[stage], batch_size=args.batch_size, augment=False, log_every=10**6
    )
    trainer = Trainer(config)
    size = trainer.model.image_size
    n = args.batch_size * args.steps
    rng = np.random.default_rng(0)
    data = LabelledImages(
        rng.integers(0, 255, (n, 3, size, size), dtype=np.uint8),
        np.arange(n) % len(trainer.taxonomy),
    )

    device = trainer.device
    bare_model = create_model(args.arch).to(device)
    images = torch.from_numpy(data.images).to(device)
    labels = torch.from_numpy(data.labels)
    tokens, counts = trainer._token_table, trainer._token_counts
    symbols = trainer._symbol_table

    tables = (tokens, counts, symbols)
    kwargs = {"steps": args.steps, "batch": args.batch_size, "precision": trainer.precision}
    bare_loop(bare_model, images, labels, *tables, lr=1e-4, **kwargs)  # warm-up
    trainer.fit(data)  # warm-up
    bare, framework = [], []
    for _ in range(args.repeats):
        bare.append(
            bare_loop(bare_model, images, labels, tokens, counts, symbols, lr=1e-4, **kwargs)
        )
        framework.append(trainer.fit(data).history[-1]["images_per_s"])
    b, f = statistics.median(bare), statistics.median(framework)
    print(
        f"{args.arch}, batch {args.batch_size}, {args.steps} steps, {device} "
        f"({trainer.precision.name}), {args.threads} thread(s), {args.repeats} alternating runs"
    )
    print(f"bare loop : {b:8.1f} images/s (runs: {', '.join(f'{x:.1f}' for x in bare)})")
    print(f"Trainer   : {f:8.1f} images/s (runs: {', '.join(f'{x:.1f}' for x in framework)})")
    print(f"ratio Trainer / bare = {f / b:.3f} (target >= 0.9)")


if __name__ == "__main__":
    main()
