"""Throughput of ``classify``: decoding, model and end to end, measured in one run.

Prints cutouts per second of

* decode: reading + preprocessing through the same DataLoader (same workers), no model;
* model: the forward pass alone on already prepared batches;
* end to end: ``classify_to_file`` writing a FITS catalog;

and the ratio of end to end to the serial bound ``1 / (1/decode + 1/model)``.
A ratio near 1 means the pipeline adds no overhead; above 1, decoding overlaps
the model. With ``--baseline MODEL`` the end-to-end run of that model (for
instance ``simulated``, the previous default, whose preprocessing has no framing)
is timed on the same cutouts, alternating with ``--model`` over ``--repeats``
rounds, and the ratio of the medians is printed. Usage::

    python benchmarks/classify_throughput.py [--n 1000] [--model default] [--batch-size 64]
        [--baseline simulated --repeats 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from _cutouts import write_cutouts  # benchmarks/_cutouts.py (scripts run from here)


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
    from torch.utils.data import DataLoader

    from galaxalign_astro.inference.dataset import CutoutFiles, worker_init
    from galaxalign_astro.inference.run import (
        Predictor,
        _default_workers,
        classify_to_file,
        model_threads,
    )

    predictor = Predictor(args.model)
    workers = _default_workers(args.n, args.batch_size) if args.workers is None else args.workers
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_cutouts(Path(tmp), args.n, args.size)
        dataset = CutoutFiles(paths, predictor.config)

        loader = DataLoader(
            dataset,
            batch_size=args.batch_size,
            num_workers=workers,
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

        out = os.path.join(tmp, "out.fits")
        t0 = time.perf_counter()
        classify_to_file(
            paths, out, model=predictor.loaded, batch_size=args.batch_size, workers=workers
        )
        end_to_end = args.n / (time.perf_counter() - t0)
        compared = None
        if args.baseline is not None:
            import statistics

            other = Predictor(args.baseline).loaded
            rates: dict[str, list[float]] = {"model": [], "baseline": []}
            for i in range(args.repeats):
                for role, loaded in (("model", predictor.loaded), ("baseline", other)):
                    target = os.path.join(tmp, f"{role}{i}.fits")
                    t0 = time.perf_counter()
                    classify_to_file(
                        paths, target, model=loaded, batch_size=args.batch_size, workers=workers
                    )
                    rates[role].append(args.n / (time.perf_counter() - t0))
            compared = (
                other.spec.name,
                statistics.median(rates["model"]),
                statistics.median(rates["baseline"]),
            )

    bound = 1.0 / (1.0 / decode + 1.0 / model)
    print(
        f"cutouts: {args.n} of {args.size}x{args.size}x3, batch {args.batch_size}, "
        f"loader workers {workers}, model torch threads {threads}, "
        f"model {predictor.loaded.spec.name} ({predictor.loaded.spec.architecture})"
    )
    print(f"decode+preprocess : {decode:9.1f} cutouts/s")
    print(f"model forward     : {model:9.1f} cutouts/s")
    print(f"serial bound      : {bound:9.1f} cutouts/s")
    print(f"classify end2end  : {end_to_end:9.1f} cutouts/s")
    print(f"ratio end2end / serial bound: {end_to_end / bound:.2f}  (target >= 0.9)")
    if compared is not None:
        name, mine, theirs = compared
        print(
            f"end2end, median of {args.repeats} alternating runs: {predictor.loaded.spec.name} "
            f"{mine:.1f}/s, {name} {theirs:.1f}/s, ratio {mine / theirs:.2f}"
        )


if __name__ == "__main__":
    main()
