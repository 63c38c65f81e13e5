"""Throughput of the cutout simulator: one process versus all cores.

Usage::

    python benchmarks/simulate_throughput.py [-n 600] [--size 256] [--workers W] [--profile]

Prints cutouts per second (wall clock) for one process and for ``W`` processes
(default: all cores), their ratio, the CPU time per cutout, and the load average
(other processes on a shared machine slow both numbers down). ``--profile`` adds
the time per pipeline stage and the top functions of a cProfile run.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time
from collections import defaultdict

from galaxalign_astro.simulate import simulate_batch, simulate_cutout, tune_allocator
from galaxalign_astro.simulate.cutout import default_workers


def _rate(n: int, size: int, workers: int, start: int) -> tuple[float, float]:
    wall = time.perf_counter()
    cpu = time.process_time()
    simulate_batch(range(start, start + n), seed=1, size=size, workers=workers)
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    return n / wall, cpu / n


def _stages(n: int, size: int) -> None:
    """CPU time of each stage of simulate_cutout (wall time is unreliable on a busy machine)."""
    from galaxalign_astro.simulate import cutout as module

    totals: dict[str, float] = defaultdict(float)
    originals = {}
    for name in ("RECIPES", "draw_conditions", "add_field", "observe", "_half_light_radius"):
        originals[name] = getattr(module, name)

    def timed(label, func):
        def wrapper(*args, **kwargs):
            t0 = time.process_time()
            try:
                return func(*args, **kwargs)
            finally:
                totals[label] += time.process_time() - t0

        return wrapper

    module.RECIPES = {k: timed("galaxy (recipe)", f) for k, f in originals["RECIPES"].items()}
    for name, label in (
        ("draw_conditions", "conditions + PSF"),
        ("add_field", "stars, background, neighbours"),
        ("observe", "PSF FFT, saturation, noise"),
        ("_half_light_radius", "half-light radius"),
    ):
        setattr(module, name, timed(label, originals[name]))
    try:
        t0 = time.process_time()
        for i in range(n):
            simulate_cutout(10_000 + i, seed=1, size=size)
        total = time.process_time() - t0
    finally:
        for name, func in originals.items():
            setattr(module, name, func)
    print(f"\nper-stage CPU time, ms per cutout ({n} cutouts, one process):")
    for label, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"  {label:32s} {1e3 * seconds / n:6.2f}")
    print(
        f"  {'other (rng, header-free glue)':32s} {1e3 * (total - sum(totals.values())) / n:6.2f}"
    )
    print(f"  {'total':32s} {1e3 * total / n:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=600, help="cutouts per measurement")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--default-malloc", action="store_true", help="do not call tune_allocator() here"
    )
    args = parser.parse_args()
    # the pool workers of simulate_batch always tune; do the same here for a fair ratio
    tuned = False if args.default_malloc else tune_allocator()

    # warm the per-process PSF cache (forked workers inherit it)
    simulate_batch(range(100_000, 100_200), seed=1, size=args.size, workers=1)
    one, cpu = _rate(args.n, args.size, 1, 0)
    many, _ = _rate(args.n * args.workers, args.size, args.workers, args.n)
    print(
        f"cutouts of {args.size}x{args.size}x3, load average {os.getloadavg()[0]:.2f}, "
        f"tuned allocator in this process: {tuned}"
    )
    print(f"1 process:    {one:7.1f} cutouts/s  ({1e3 * cpu:.2f} ms CPU per cutout)")
    print(f"{args.workers} processes: {many:7.1f} cutouts/s")
    print(f"ratio:        {many / one:7.2f}")
    if args.profile:
        _stages(min(args.n, 300), args.size)
        profiler = cProfile.Profile()
        profiler.enable()
        for i in range(min(args.n, 200)):
            simulate_cutout(20_000 + i, seed=1, size=args.size)
        profiler.disable()
        print()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
