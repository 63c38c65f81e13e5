"""Rows per second of ``annotate`` on 1 and 2 local Dask workers, measured in one run.

Prints, for the same catalog of FITS cutouts (a path column) and the same model:

* the single-process ``annotate_file`` (no Dask: torch's threads and the DataLoader's
  processes use the cores) as the baseline;
* ``annotate_file(dask_workers=N)`` for N = 1 and 2 local worker processes of one
  thread each; the cluster is started and every worker has loaded the model before
  the clock starts (both costs are printed apart: they are paid once per run);
* optionally (``--hats``) ``annotate_hats`` of the same rows as a HATS catalog on the
  two workers;

and the ratio of 2 workers to 1. Each rate is the best of ``--repeat`` runs, since the
machine may be shared. Without ``--model`` a throwaway model of ``--arch`` is trained
for one short epoch: its weights do not matter for speed. Usage::

    python benchmarks/scaleout.py [--model MODEL_DIR | --arch gxa-small] [--rows 512]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from _cutouts import write_cutouts  # benchmarks/_cutouts.py (scripts run from here)
from astropy.table import Table


def throwaway_model(arch: str, folder: Path) -> Path:
    """A model of architecture ``arch`` after one short epoch per stage (for timing only)."""
    import json

    import galaxalign_astro.models
    from galaxalign_astro.io import Cutout
    from galaxalign_astro.preprocess import PreprocessConfig, prepare
    from galaxalign_astro.train import LabelledImages, TrainConfig, Trainer, default_stages
    from galaxalign_astro.train.data import to_uint8

    configs = Path(galaxalign_astro.models.__file__).parent / "configs"
    side = json.loads((configs / f"{arch}.json").read_text())["vision_cfg"]["image_size"]
    pre = PreprocessConfig(size=int(side))
    rng = np.random.default_rng(1)
    images = []
    for _ in range(40):
        cube = rng.normal(0, 0.01, (3, 2 * side, 2 * side)).astype(np.float32) + 0.05
        images.append(
            to_uint8(prepare(Cutout(cube, ("g", "r", "z"), "flux", None, "x"), pre).image)
        )
    data = LabelledImages(np.stack(images), np.arange(40) % 10)
    config = TrainConfig(
        architecture=arch,
        preprocess=pre,
        stages=default_stages(1, 1),
        batch_size=20,
        symbols={"variants": 2},
        name=f"throwaway-{arch}",
    )
    out = folder / "model"
    Trainer(config).fit(data.subset(np.arange(30)), data.subset(np.arange(30, 40)), output=out)
    return out


def best_rate(rows: int, repeat: int, run) -> tuple[float, list[float]]:
    rates = []
    for r in range(repeat):
        t0 = time.perf_counter()
        run(r)
        rates.append(rows / (time.perf_counter() - t0))
    return max(rates), rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model directory (default: a throwaway --arch model)")
    parser.add_argument("--arch", default="gxa-small", help="architecture of the throwaway model")
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--size", type=int, default=128, help="cutout side in pixels")
    parser.add_argument("--chunk-size", type=int, default=32, help="rows per Dask task")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--hats", action="store_true", help="also time annotate_hats")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from galaxalign_astro.annotate import annotate_file
    from galaxalign_astro.inference import Predictor
    from galaxalign_astro.scale import dask_client, worker_predictor

    with tempfile.TemporaryDirectory(prefix="gxa-scaleout-") as tmp:
        folder = Path(tmp)
        model = Path(args.model) if args.model else throwaway_model(args.arch, folder)
        (folder / "cut").mkdir()
        files = write_cutouts(folder / "cut", args.rows, args.size)
        table = Table(
            {
                "id": np.arange(args.rows),
                "ra": 150.0 + 0.01 * np.arange(args.rows),
                "dec": np.full(args.rows, 2.0),
                "file": files,
            }
        )
        catalog = folder / "catalog.fits"
        table.write(catalog)
        predictor = Predictor(model)
        load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
        print(
            f"{args.rows} rows of {args.size} px cutouts, model {predictor.loaded.spec.name} "
            f"({predictor.loaded.spec.architecture}), chunk {args.chunk_size}, batch "
            f"{args.batch_size}; {os.cpu_count()} CPUs, load average {load}"
        )

        def single(r: int) -> None:
            annotate_file(
                catalog,
                folder / f"single{r}.fits",
                model=predictor,
                path_col="file",
                chunk_size=args.chunk_size,
                batch_size=args.batch_size,
            )

        rate, runs = best_rate(args.rows, args.repeat, single)
        print(f"single process : {rate:8.1f} rows/s (runs: {', '.join(f'{v:.1f}' for v in runs)})")

        rates = {}
        for n in (1, 2):
            t0 = time.perf_counter()
            with dask_client(n_workers=n) as client:
                started = time.perf_counter() - t0
                t0 = time.perf_counter()
                client.run(worker_predictor, str(model))
                loaded = time.perf_counter() - t0

                def on_cluster(r: int, n: int = n, client=client) -> None:
                    annotate_file(
                        catalog,
                        folder / f"dask{n}-{r}.fits",
                        model=predictor,
                        path_col="file",
                        chunk_size=args.chunk_size,
                        batch_size=args.batch_size,
                        scheduler=client,
                    )

                rates[n], runs = best_rate(args.rows, args.repeat, on_cluster)
                print(
                    f"{n} Dask worker{'s' if n > 1 else ' '}: {rates[n]:8.1f} rows/s (runs: "
                    f"{', '.join(f'{v:.1f}' for v in runs)}); cluster start {started:.1f} s, "
                    f"model load on the workers {loaded:.1f} s"
                )
                if n == 2 and args.hats:
                    hats_rate(args, folder, table, model, client)
        print(f"ratio 2 workers / 1 worker: {rates[2] / rates[1]:.2f}")
        print(f"ratio 2 workers / single process: {rates[2] / rate:.2f}")


def hats_rate(args, folder: Path, table: Table, model: Path, client) -> None:
    """Rows per second of annotate_hats on ``client``, for the same rows as HATS."""
    from galaxalign_astro.scale import annotate_hats
    from galaxalign_astro.scale.hats import _import_lsdb

    frame = table.to_pandas()
    catalog = _import_lsdb().from_dataframe(
        frame, partition_rows=args.chunk_size, margin_threshold=None
    )
    catalog.write_catalog(folder / "hats_in", progress_bar=False)

    def run(r: int) -> None:
        annotate_hats(
            folder / "hats_in",
            folder / f"hats_out{r}",
            model=model,
            path_col="file",
            batch_size=args.batch_size,
            scheduler=client,
        )

    rate, runs = best_rate(args.rows, args.repeat, run)
    print(
        f"annotate_hats, 2 workers: {rate:8.1f} rows/s (runs: "
        f"{', '.join(f'{v:.1f}' for v in runs)}; {len(catalog.get_healpix_pixels())} partitions)"
    )


if __name__ == "__main__":
    main()
