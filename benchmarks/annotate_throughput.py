"""Throughput and memory of ``annotate`` from local cutouts, measured in one run.

Prints

* rows per second of ``annotate_file`` (a FITS catalog with a path column) and of
  ``classify_to_file`` on the same cutout files, same model, batch size and loader
  workers, each the best of ``--repeat`` alternating runs (the machine may be shared),
  and their ratio (target >= 0.9); also the CPU time per row of each (this process and
  its loader workers), which a busy machine disturbs less than wall time;
* peak resident memory of ``annotate_file`` run in a fresh process for two catalog
  sizes ten times apart (``--rows`` and ten times that; rows cycle over the cutout
  files), for each of ``--memory-chunks`` (default: the default chunk size 4096, and 256
  so that both catalogs span several chunks), and their ratio (target: the larger
  within 1.2x). The loader workers' peak is printed apart.

Embeddings are on. Usage::

    python benchmarks/annotate_throughput.py --model MODEL_DIR [--rows 300] [--size 128]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _cutouts import write_cutouts  # benchmarks/_cutouts.py (scripts run from here)
from astropy.table import Table


def write_catalog(path: Path, files: list[str], rows: int) -> None:
    """A catalog of ``rows`` rows whose ``file`` column cycles over ``files``."""
    index = np.arange(rows) % len(files)
    table = Table(
        {
            "id": np.arange(rows),
            "ra": 150.0 + 0.01 * index,
            "dec": np.full(rows, 2.0),
            "mag": np.linspace(15, 20, rows),
            "file": np.array(files)[index],
        }
    )
    table["ra"].unit = table["dec"].unit = "deg"
    table.write(path)


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def memory_child(args: argparse.Namespace) -> None:
    """Run one annotate in this (fresh) process and print its peak memory as JSON."""
    from galaxalign_astro.annotate import annotate_file

    t0 = time.perf_counter()
    summary = annotate_file(
        args.catalog,
        args.out,
        model=args.model,
        path_col="file",
        chunk_size=args.chunk_size,
        batch_size=args.batch_size,
        workers=args.workers,
    )
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(
        json.dumps(
            {
                "rows": summary.n_rows,
                "ok": summary.n_ok,
                "seconds": time.perf_counter() - t0,
                "maxrss_mib": usage / 1024,  # Linux reports KiB
                "children_maxrss_mib": children / 1024,
            }
        )
    )


def peak_memory(catalog: Path, out: Path, args: argparse.Namespace, chunk_size: int) -> dict:
    command = [
        sys.executable,
        __file__,
        "--memory-child",
        "--catalog",
        str(catalog),
        "--out",
        str(out),
        "--model",
        args.model,
        "--chunk-size",
        str(chunk_size),
        "--batch-size",
        str(args.batch_size),
    ]
    if args.workers is not None:
        command += ["--workers", str(args.workers)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def throughput(args, predictor, files, catalog, folder, workers):
    """Best rows/s and CPU ms/row of classify and annotate over alternating runs."""
    from galaxalign_astro.annotate import annotate_file
    from galaxalign_astro.inference.run import classify_to_file

    rates: dict[str, list[float]] = {"classify": [], "annotate": []}
    cpu: dict[str, list[float]] = {"classify": [], "annotate": []}
    for r in range(args.repeat):
        for name in ("classify", "annotate") if r % 2 == 0 else ("annotate", "classify"):
            out = folder / f"{name}{r}.fits"
            t0, c0 = time.perf_counter(), cpu_seconds()
            if name == "classify":
                classify_to_file(
                    files, out, model=predictor.loaded, batch_size=args.batch_size, workers=workers
                )
            else:
                annotate_file(
                    catalog,
                    out,
                    model=predictor,
                    path_col="file",
                    batch_size=args.batch_size,
                    workers=workers,
                )
            rates[name].append(args.rows / (time.perf_counter() - t0))
            cpu[name].append((cpu_seconds() - c0) / args.rows * 1e3)
    for name in ("classify", "annotate"):
        runs = ", ".join(f"{v:.1f}" for v in rates[name])
        print(
            f"{name:9s}: {max(rates[name]):8.1f} rows/s (runs: {runs}); "
            f"CPU {min(cpu[name]):.2f} ms/row"
        )
    ratio = max(rates["annotate"]) / max(rates["classify"])
    print(f"ratio annotate / classify: {ratio:.2f}  (target >= 0.9)")
    print(f"CPU ratio classify / annotate: {min(cpu['classify']) / min(cpu['annotate']):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--rows", type=int, default=300, help="smaller catalog (the other x10)")
    parser.add_argument("--size", type=int, default=128, help="cutout side in pixels")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--memory-chunks",
        default="4096,256",
        help="chunk sizes of the memory runs, comma-separated (4096 is the default chunk "
        "size; empty: no memory runs)",
    )
    parser.add_argument("--no-throughput", action="store_true", help="only the memory runs")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--catalog", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--chunk-size", type=int, default=4096, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args)
        return

    import torch

    from galaxalign_astro.inference.run import Predictor, default_workers

    predictor = Predictor(args.model)
    workers = default_workers(args.rows, args.batch_size) if args.workers is None else args.workers
    chunks = [int(c) for c in args.memory_chunks.split(",") if c.strip()]
    print(
        f"cutouts: {args.rows} of {args.size}x{args.size}x3, batch {args.batch_size}, "
        f"loader workers {workers}, torch threads {torch.get_num_threads()}, "
        f"model {predictor.loaded.spec.name} ({predictor.loaded.spec.architecture}, "
        f"{predictor.config.size} px input)",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "cut").mkdir()
        files = write_cutouts(folder / "cut", args.rows, args.size)
        catalog = folder / "catalog.fits"
        write_catalog(catalog, files, args.rows)
        if not args.no_throughput:
            predictor.predict(torch.zeros(2, 3, predictor.config.size, predictor.config.size))
            throughput(args, predictor, files, catalog, folder, workers)
        for chunk in chunks:
            memory = {}
            for rows in (args.rows, 10 * args.rows):
                big = folder / f"catalog{rows}.fits"
                if not big.exists():
                    write_catalog(big, files, rows)
                memory[rows] = peak_memory(big, folder / f"mem{rows}_{chunk}.fits", args, chunk)
            small, large = memory[args.rows], memory[10 * args.rows]
            print(
                f"peak RSS, chunk {chunk}: {small['rows']} rows {small['maxrss_mib']:.0f} MiB, "
                f"{large['rows']} rows {large['maxrss_mib']:.0f} MiB "
                f"(+{large['maxrss_mib'] - small['maxrss_mib']:.0f} MiB); ratio "
                f"{large['maxrss_mib'] / small['maxrss_mib']:.2f} (target <= 1.2); loader "
                f"workers peak {small['children_maxrss_mib']:.0f} / "
                f"{large['children_maxrss_mib']:.0f} MiB",
                flush=True,
            )


if __name__ == "__main__":
    main()
