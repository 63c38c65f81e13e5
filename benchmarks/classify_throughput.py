"""Throughput of ``classify``: decode, model and end to end, against the previous path.

Prints cutouts per second of

* decode: reading + preprocessing through classify's loader (same workers), no model;
* model: the forward pass alone on already prepared batches, with the torch threads
  classify gives it;
* end to end: ``classify_to_file`` writing a FITS catalog;

each also for the **previous code path** (``baseline_classify`` below, kept here as
the reference: every FITS file through astropy's general reader and WCS, items
collated one by one, the previous stretch, cleaning and medians, as many loader
workers as cores, torch engine), alternating over
``--repeats`` rounds, with the ratios of the medians. It also checks that both
paths give the same class ids and probabilities (largest difference printed).

``--baseline MODEL`` adds ``classify_to_file`` with another model (for instance
``simulated``) to the alternation. Usage::

    python benchmarks/classify_throughput.py [--n 1000] [--model default] [--batch-size 64]
        [--repeats 3] [--baseline simulated]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _cutouts import write_cutouts  # benchmarks/_cutouts.py (scripts run from here)


def _previous_clean(cube, path):
    """``preprocess.pipeline._clean`` as it was: always a full copy through ``np.where``."""
    from galaxalign_astro.errors import CutoutError

    finite = np.isfinite(cube)
    if not finite.any():
        raise CutoutError(f"{path}: no usable signal (all pixels NaN or infinite)")
    cube = np.where(finite, cube, 0.0).astype(np.float32, copy=False)
    if not np.any(cube):
        raise CutoutError(f"{path}: no usable signal (all pixels zero)")
    return cube


def _previous_dr2_rgb(cube, bands, *, scales=None, m=0.03, Q=20.0):
    """``dr2_rgb`` as it was: one whole-array temporary per step."""
    from galaxalign_astro.preprocess.stretch import _DR2_SCALES, _rgb_order

    cube = np.asarray(cube, dtype=np.float32)
    table = dict(_DR2_SCALES if scales is None else scales)
    scale = np.array([table.get(b, table.get("r", 3.4)) for b in bands], dtype=np.float32)
    scaled = cube * scale.reshape(-1, 1, 1) + np.float32(m)
    intensity = np.maximum(scaled, 0.0).mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.arcsinh(float(Q) * intensity) / (float(np.sqrt(Q)) * intensity)
    factor[~(intensity > 0)] = 0.0
    return np.clip(scaled[_rgb_order(bands)] * factor, 0.0, 1.0).astype(np.float32, copy=False)


@contextlib.contextmanager
def previous_preprocessing():
    """The preprocessing functions as they were before the speed work (same values)."""
    from galaxalign_astro.preprocess import framing, pipeline, stretch

    saved = (pipeline._clean, stretch.STRETCHES["dr2_rgb"], framing.median)
    pipeline._clean = _previous_clean
    stretch.STRETCHES["dr2_rgb"] = _previous_dr2_rgb
    framing.median = lambda values: float(np.median(values))
    try:
        yield
    finally:
        pipeline._clean, stretch.STRETCHES["dr2_rgb"], framing.median = saved


def baseline_classify(paths, output, predictor, *, batch_size, workers):
    """The previous ``classify_to_file`` loop: astropy reader, per-item collation, and
    (`previous_preprocessing`) the previous stretch, cleaning and medians."""
    import torch
    from torch.utils.data import DataLoader

    from galaxalign_astro.catalog import open_writer
    from galaxalign_astro.inference.columns import output_columns
    from galaxalign_astro.inference.dataset import CutoutFiles, worker_init
    from galaxalign_astro.inference.run import model_threads
    from galaxalign_astro.io.cutouts import read_cutout

    class AstropyFiles(CutoutFiles):
        def load(self, index):
            return read_cutout(self.paths[index], fast=False)

    dataset = AstropyFiles(paths, predictor.config)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        worker_init_fn=worker_init,
        prefetch_factor=4,
    )
    names = np.array(predictor.class_names)
    specs = output_columns(
        predictor.class_names, embed_dim=predictor.embed_dim, embeddings=True, path_width=200
    )
    before = torch.get_num_threads()
    torch.set_num_threads(model_threads(workers))
    try:
        with (
            previous_preprocessing(),
            open_writer(output, specs, meta={}, overwrite=True) as writer,
        ):
            for batch in loader:
                ok = batch["ok"].numpy().astype(bool)
                probs = np.full((len(ok), len(names)), np.nan, dtype=np.float32)
                emb = np.full((len(ok), predictor.embed_dim), np.nan, dtype=np.float32)
                if ok.any():
                    probs[ok], emb[ok] = predictor.predict(batch["image"][ok])
                best = np.where(ok, np.nan_to_num(probs, nan=-1).argmax(axis=1), -1)
                writer.write(
                    {
                        "source": np.array([paths[i] for i in batch["index"]], dtype=str),
                        "ra": batch["ra"].numpy().astype(np.float64),
                        "dec": batch["dec"].numpy().astype(np.float64),
                        "class_id": best.astype(np.int16),
                        "class_name": np.where(ok, names[np.maximum(best, 0)], ""),
                        "class_prob": np.where(ok, probs.max(axis=1), np.nan).astype(np.float32),
                        "probs": probs,
                        "status": np.where(ok, "ok", "error"),
                        "message": np.array(batch["error"], dtype=str),
                        "embedding": emb,
                    }
                )
    finally:
        torch.set_num_threads(before)


def stage_times(paths, predictor, torch_predictor) -> dict[str, float]:
    """Milliseconds per cutout of each stage in this process, one thread, previous and now."""
    import torch

    from galaxalign_astro.io.cutouts import read_cutout
    from galaxalign_astro.preprocess.pipeline import prepare

    def per_item(func, items) -> float:
        func(items[0])  # warm-up (imports, caches)
        t0 = time.perf_counter()
        for item in items:
            func(item)
        return (time.perf_counter() - t0) / len(items) * 1e3

    cutouts = [read_cutout(p) for p in paths]
    images = torch.stack([torch.from_numpy(prepare(c, predictor.config).image) for c in cutouts])
    batches = list(torch.split(images, 64))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = {
            "read, astropy path (previous)": per_item(lambda p: read_cutout(p, fast=False), paths),
            "read, plain-HDU path": per_item(read_cutout, paths),
        }
        with previous_preprocessing():
            out["prepare, previous"] = per_item(lambda c: prepare(c, predictor.config), cutouts)
        out["prepare (stretch, framing, resize)"] = per_item(
            lambda c: prepare(c, predictor.config), cutouts
        )
        for name, who in (("torch (previous)", torch_predictor), (predictor.engine, predictor)):
            rate = per_item(who.predict, batches) / 64 * len(batches) * 64 / len(images)
            out[f"model forward, {name}"] = rate
    finally:
        torch.set_num_threads(before)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--model", default="default")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--baseline", default=None, help="a second model timed end to end")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch
    from astropy.table import Table
    from torch.utils.data import DataLoader

    from galaxalign_astro.inference.dataset import (
        Batches,
        CutoutFiles,
        preload_readers,
        worker_init,
    )
    from galaxalign_astro.inference.run import (
        Predictor,
        classify_to_file,
        default_workers,
        model_threads,
    )

    predictor = Predictor(args.model)
    torch_predictor = Predictor(predictor.loaded, engine="torch")  # the previous engine
    workers = (
        default_workers(args.n, args.batch_size, engine=predictor.engine)
        if args.workers is None
        else args.workers
    )
    old_workers = max(1, min(4, os.cpu_count() or 1))  # the previous default
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_cutouts(Path(tmp), args.n, args.size)
        dataset = CutoutFiles(paths, predictor.config)
        stages = stage_times(paths[: min(300, args.n)], predictor, torch_predictor)
        preload_readers(predictor.config)  # as classify does before its workers fork

        loader = DataLoader(
            Batches(dataset),
            batch_size=args.batch_size,
            num_workers=workers,
            collate_fn=Batches.collate,
            worker_init_fn=worker_init if workers else None,
        )
        t0 = time.perf_counter()
        batches = [b["image"] for b in loader]
        decode = args.n / (time.perf_counter() - t0)

        # the model alone, with the threads classify gives it beside its loader workers
        threads = model_threads(workers)
        default_threads = torch.get_num_threads()
        torch.set_num_threads(threads)
        predictor.predict(batches[0])  # warm-up
        t0 = time.perf_counter()
        for images in batches:
            predictor.predict(images)
        model = args.n / (time.perf_counter() - t0)
        torch.set_num_threads(default_threads)

        runs = {
            "classify": lambda out: classify_to_file(
                paths, out, model=predictor.loaded, batch_size=args.batch_size, workers=workers
            ),
            "previous path": lambda out: baseline_classify(
                paths, out, torch_predictor, batch_size=args.batch_size, workers=old_workers
            ),
        }
        if args.baseline is not None:
            other = Predictor(args.baseline).loaded
            runs[f"classify, model {other.spec.name}"] = lambda out: classify_to_file(
                paths, out, model=other, batch_size=args.batch_size, workers=workers
            )
        rates: dict[str, list[float]] = {name: [] for name in runs}
        for i in range(args.repeats):
            for j, (name, run) in enumerate(runs.items()):
                target = os.path.join(tmp, f"run{j}-{i}.fits")
                t0 = time.perf_counter()
                run(target)
                rates[name].append(args.n / (time.perf_counter() - t0))
        new = Table.read(os.path.join(tmp, "run0-0.fits"))
        old = Table.read(os.path.join(tmp, "run1-0.fits"))
        same_ids = bool(np.array_equal(np.asarray(new["class_id"]), np.asarray(old["class_id"])))
        prob_diff = float(np.abs(np.asarray(new["probs"]) - np.asarray(old["probs"])).max())
        radec_diff = float(
            max(
                np.abs(np.asarray(new["ra"]) - np.asarray(old["ra"])).max(),
                np.abs(np.asarray(new["dec"]) - np.asarray(old["dec"])).max(),
            )
        )

    load = os.getloadavg()[0]
    print(
        f"cutouts: {args.n} of {args.size}x{args.size}x3, batch {args.batch_size}, "
        f"loader workers {workers} (previous path {old_workers}), model torch threads "
        f"{threads}, model {predictor.loaded.spec.name} ({predictor.loaded.spec.architecture}), "
        f"{os.cpu_count()} cores, load average {load:.2f} at the end"
    )
    print("per cutout in one process, one thread:")
    for name, ms in stages.items():
        print(f"  {name:<36}: {ms:6.3f} ms")
    bound = 1.0 / (1.0 / decode + 1.0 / model)
    print(f"decode+preprocess : {decode:9.1f} cutouts/s")
    print(f"model forward     : {model:9.1f} cutouts/s")
    print(f"serial bound      : {bound:9.1f} cutouts/s")
    medians = {name: statistics.median(r) for name, r in rates.items()}
    for name, rate in medians.items():
        shown = ", ".join(f"{r:.0f}" for r in rates[name])
        print(f"{name:<30}: {rate:9.1f} cutouts/s end to end (median of {shown})")
    print(f"ratio classify / serial bound : {medians['classify'] / bound:.2f}  (target >= 1.0)")
    print(
        f"ratio classify / previous path: {medians['classify'] / medians['previous path']:.2f}"
        "  (target >= 1.8)"
    )
    for name in list(medians)[2:]:
        print(f"ratio classify / {name}: {medians['classify'] / medians[name]:.2f}")
    print(
        f"same class ids as the previous path: {same_ids}; largest probability difference "
        f"{prob_diff:.2e}; largest ra/dec difference {radec_diff:.2e} deg"
    )


if __name__ == "__main__":
    main()
