"""``galaxalign-astro annotate-hats INPUT -o OUTPUT``: annotate a HATS catalog with LSDB."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import click

from .options import (
    EXIT_PARTIAL,
    batch_size_option,
    classes_option,
    common_options,
    fetch_options_from,
    fetch_source_options,
    model_option,
    overwrite_option,
    path_col_options,
)

__all__ = ["command"]


def _shape(value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        shape = tuple(int(v) for v in value.lower().replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a shape like 3,64,64") from None
    if not shape or min(shape) < 1:
        raise click.BadParameter(f"{value!r} is not a shape like 3,64,64")
    return shape


@click.command("annotate-hats")
@click.argument("input", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory of the new HATS catalog.",
)
@click.option("--images", help="Cutouts: column of image arrays (bands, H, W) in fluxes.")
@click.option("--image-shape", help="Shape of one image when --images holds flat lists: 3,64,64.")
@click.option("--image-bands", help="Band letters of the --images planes, e.g. grz.")
@path_col_options
@click.option(
    "--cutouts",
    "cutouts_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Cutouts: directory of files named by --pattern from --id-col.",
)
@click.option("--id-col", help="ID column: {id} of --pattern.")
@click.option("--pattern", default="{id}.fits", show_default=True, help="File name in --cutouts.")
@fetch_source_options(
    fetch_help="Cutouts: download from this survey on the workers.",
    fetch_dir_help="Fetch: keep the downloaded cutouts here, per partition [default: discard].",
)
@model_option
@classes_option
@click.option("--prefix", default="gxa_", show_default=True, help="Prefix of the added columns.")
@click.option("--embeddings/--no-embeddings", default=True, show_default=True)
@batch_size_option
@click.option(
    "--device", default="cpu", show_default=True, help="torch device of every worker (cpu, cuda)."
)
@click.option(
    "--scheduler",
    help="Dask scheduler address (tcp://host:8786) or scheduler file to run the partitions on.",
)
@click.option(
    "--dask-workers",
    type=click.IntRange(1),
    help="Run the partitions on a local Dask cluster of N worker processes.",
)
@click.option("--catalog-name", help="Name of the output catalog [default: OUTPUT's name].")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in OUTPUT.")
@overwrite_option
@common_options
def command(**params: Any) -> None:
    """Add GalaxAlign morphology columns to every row of the HATS catalog INPUT.

    INPUT is a HATS catalog or collection (read with LSDB; every column is kept,
    a margin cache is left out). OUTPUT is a new HATS catalog with the same
    partitions and the model's columns appended with --prefix. Cutouts come from
    --images COL, --path-col COL, --cutouts DIR or --fetch SURVEY (exactly one).
    Partitions run one after another here, or on a Dask cluster (--scheduler,
    --dask-workers) with one loaded model per worker. An interrupted run continues
    with --resume, skipping finished partitions. Exit status: 0 all rows
    classified, 3 some rows failed, 1 fatal error, 2 usage error.
    """
    from ..annotate import AnnotateOptions, CutoutSpec
    from ..scale.hats import annotate_hats

    ctx = click.get_current_context()
    quiet = bool(ctx.meta.get("galaxalign.quiet", False))
    fetch_options = fetch_options_from(params)
    if fetch_options and params["fetch"] is None:
        given = ", ".join("--" + key.replace("_", "-") for key in sorted(fetch_options))
        raise click.UsageError(f"{given} only apply with --fetch")
    try:
        source = CutoutSpec(
            images=params["images"],
            bands=params["image_bands"],
            path_col=params["path_col"],
            base_dir=params["base_dir"],
            cutouts_dir=params["cutouts_dir"],
            id_col=params["id_col"],
            pattern=params["pattern"],
            fetch=params["fetch"],
            fetch_options=fetch_options or None,
            fetch_dir=params["fetch_dir"],
        )
    except ValueError:
        raise click.UsageError("give one of --images, --path-col, --cutouts and --fetch") from None
    if params["scheduler"] is not None and params["dask_workers"] is not None:
        raise click.UsageError("--scheduler and --dask-workers exclude each other")
    if params["resume"] and params["overwrite"]:
        raise click.UsageError("--resume and --overwrite exclude each other")
    options = AnnotateOptions(
        model=params["model"],
        classes=params["classes"],
        prefix=params["prefix"],
        embeddings=params["embeddings"],
        batch_size=params["batch_size"],
        device=params["device"],
        scheduler=params["scheduler"],
        dask_workers=params["dask_workers"],
        resume=params["resume"],
        overwrite=params["overwrite"],
        progress=not quiet and sys.stderr.isatty(),
        command=shlex.join(["galaxalign-astro", "annotate-hats", *sys.argv[2:]]),
    )
    summary = annotate_hats(
        params["input"],
        params["output"],
        source,
        options,
        image_shape=_shape(params["image_shape"]),
        catalog_name=params["catalog_name"],
    )
    if not quiet:
        resumed = (
            f", {summary.partitions_resumed} from the interrupted run"
            if summary.partitions_resumed
            else ""
        )
        click.echo(
            f"Annotated {summary.n_ok} of {summary.n_rows} rows in {summary.n_partitions} "
            f"partitions{resumed} in {summary.seconds:.1f} s "
            f"({summary.rows_per_second:.0f} rows/s) -> {summary.output}"
        )
        for name, count in sorted(summary.class_counts.items(), key=lambda kv: -kv[1]):
            click.echo(f"  {count:8d}  {name}")
    if summary.n_failed:
        click.echo(
            f"{summary.n_failed} row(s) failed (status=error, reason in the message column)",
            err=True,
        )
        ctx.exit(EXIT_PARTIAL)
