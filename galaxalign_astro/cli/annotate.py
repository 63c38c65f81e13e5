"""``galaxalign-astro annotate CATALOG -o OUT``: add morphology columns to a catalog."""

from __future__ import annotations

import dataclasses
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
    device_option,
    fetch_options_from,
    fetch_source_options,
    model_option,
    overwrite_option,
    path_col_options,
)

__all__ = ["command"]


def _explicit(ctx: click.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is click.core.ParameterSource.COMMANDLINE


@click.command("annotate")
@click.argument("catalog", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Output catalog; format from the suffix: .fits .hdf5/.h5 .parquet .ecsv .csv",
)
@click.option(
    "--recipe",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Run a declared job (pipelines/*.toml); options given here override it.",
)
@click.option("--format", "input_format", help="astropy format of CATALOG if not guessed.")
@click.option("--hdf5-path", help="Dataset of an HDF5 CATALOG [default: catalog, or the only one].")
@click.option("--ra-col", help="RA column [default: first of ra, RA, ra_deg, RAJ2000, ...].")
@click.option("--dec-col", help="Dec column [default: first of dec, DEC, dec_deg, DEJ2000, ...].")
@path_col_options
@click.option(
    "--cutouts",
    "cutouts_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Cutouts: directory of files named by --pattern.",
)
@click.option(
    "--id-col", help="ID column: {id} of --pattern; with --fetch, part of the file names."
)
@click.option(
    "--pattern",
    default="{id}.fits",
    show_default=True,
    help="File name in --cutouts: fields {id} (the --id-col value) and {row} (row number).",
)
@fetch_source_options(
    fetch_help="Cutouts: download from this survey while the model runs.",
    fetch_dir_help=(
        "Fetch: keep the downloaded cutouts here [default: work directory, removed at the end]."
    ),
)
@model_option
@classes_option
@click.option(
    "--prefix",
    default="gxa_",
    show_default=True,
    help="Prefix of the added column names (avoids clashes with input columns).",
)
@click.option(
    "--embeddings/--no-embeddings",
    default=True,
    show_default=True,
    help="Add the image embedding column.",
)
@click.option(
    "--embeddings-hdf5",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write row, --id-col and the added columns as h5py datasets to this file.",
)
@click.option(
    "--chunk-size",
    default=4096,
    show_default=True,
    type=click.IntRange(1),
    help="Rows read, classified and stored at a time (memory depends on it).",
)
@batch_size_option
@device_option
@click.option(
    "--workers",
    type=click.IntRange(0),
    default=None,
    help="Cutout-reading processes [default: automatic; 0 with --fetch].",
)
@click.option(
    "--scheduler",
    help="Classify the chunks on this Dask cluster: scheduler address or scheduler file.",
)
@click.option(
    "--dask-workers",
    type=click.IntRange(1),
    help="Classify the chunks on a local Dask cluster of N worker processes.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the unfinished run in OUT.partial (refused if input, model or options differ).",
)
@click.option("--restart", is_flag=True, help="Discard an unfinished run in OUT.partial.")
@overwrite_option
@common_options
def command(**params: Any) -> None:
    """Add GalaxAlign morphology columns to every row of CATALOG.

    CATALOG is any table astropy reads (FITS, Parquet, HDF5, CSV, ECSV, VOTable...).
    Every input column and row is kept in order; the model's columns (class, class
    name, probabilities, embedding, separation from the cutout centre, source
    measurements when the model has source steps, status, message) are appended with
    --prefix. Cutouts come from --path-col, --cutouts DIR or --fetch SURVEY (exactly
    one). The input is streamed in chunks; an interrupted run continues with --resume
    and gives the same catalog. --scheduler or --dask-workers classifies the chunks
    on a Dask cluster (same output). Rows without a usable cutout are kept with
    status=error. Exit status: 0 all rows classified, 3 some rows failed, 1 fatal
    error, 2 usage error.
    """
    from ..annotate import AnnotateOptions, AnnotateSummary, CutoutSpec, annotate_file, load_recipe

    ctx = click.get_current_context()
    quiet = bool(ctx.meta.get("galaxalign.quiet", False))
    kwargs: dict[str, Any] = {}
    recipe = params.pop("recipe")
    if recipe is not None:
        kwargs = load_recipe(recipe).kwargs
    if params["catalog"] is not None:
        kwargs["input"] = params["catalog"]
    if params["output"] is not None:
        kwargs["output"] = params["output"]
    for key in ("input", "output"):
        if key not in kwargs:
            name = "CATALOG" if key == "input" else "-o/--output"
            raise click.UsageError(f"missing {name} (or a --recipe that names it)")

    fetch_options = fetch_options_from(params)
    if fetch_options and params["fetch"] is None and "fetch" not in kwargs:
        given = ", ".join("--" + key.replace("_", "-") for key in sorted(fetch_options))
        raise click.UsageError(f"{given} only apply with --fetch")
    if fetch_options:
        kwargs["fetch_options"] = {**kwargs.get("fetch_options", {}), **fetch_options}
    sources = [k for k in ("path_col", "cutouts_dir", "fetch") if params[k] is not None]
    if sources:  # a source on the command line replaces the recipe's
        for key in ("path_col", "cutouts_dir", "fetch"):
            kwargs.pop(key, None)
        if params["fetch"] is None:
            kwargs.pop("fetch_options", None)
    for key in (
        "input_format",
        "hdf5_path",
        "ra_col",
        "dec_col",
        "path_col",
        "base_dir",
        "cutouts_dir",
        "id_col",
        "fetch",
        "fetch_dir",
        "embeddings_hdf5",
        "classes",
    ):
        if params[key] is not None:
            kwargs[key] = params[key]
    for key in ("pattern", "model", "prefix", "embeddings", "chunk_size", "batch_size", "device"):
        if recipe is None or _explicit(ctx, key):
            kwargs[key] = params[key]
    if params["workers"] is not None:
        kwargs["workers"] = params["workers"]
    if params["scheduler"] is not None and params["dask_workers"] is not None:
        raise click.UsageError("--scheduler and --dask-workers exclude each other")
    for key in ("scheduler", "dask_workers"):
        if params[key] is not None:
            kwargs[key] = params[key]
    for key in ("resume", "restart", "overwrite"):
        if params[key] or key not in kwargs:
            kwargs[key] = params[key]
    if params["resume"] and params["restart"]:
        raise click.UsageError("--resume and --restart exclude each other")

    kwargs["progress"] = not quiet and sys.stderr.isatty()
    kwargs["command"] = shlex.join(["galaxalign-astro", "annotate", *sys.argv[2:]])
    cutout_fields = {f.name for f in dataclasses.fields(CutoutSpec)}
    try:
        source = CutoutSpec(**{k: kwargs.pop(k) for k in cutout_fields & set(kwargs)})
    except ValueError:
        if recipe is None or len(sources) > 1:
            raise click.UsageError("give one of --path-col, --cutouts and --fetch") from None
        raise
    option_fields = {f.name for f in dataclasses.fields(AnnotateOptions)}
    options = AnnotateOptions(**{k: kwargs.pop(k) for k in option_fields & set(kwargs)})
    runner: Any = None
    if options.on_cluster:
        from ..scale import run_on_cluster as runner
    summary: AnnotateSummary = annotate_file(
        kwargs.pop("input"), kwargs.pop("output"), source, options, runner=runner, **kwargs
    )
    if not quiet:
        resumed = (
            f", {summary.rows_resumed} from the interrupted run" if summary.rows_resumed else ""
        )
        click.echo(
            f"Annotated {summary.n_ok} of {summary.n_rows} rows{resumed} in "
            f"{summary.seconds:.1f} s ({summary.rows_per_second:.0f} rows/s) -> {summary.output}"
        )
        for name, count in sorted(summary.class_counts.items(), key=lambda kv: -kv[1]):
            click.echo(f"  {count:8d}  {name}")
        if summary.fetch_counts:
            parts = ", ".join(f"{n} {k}" for k, n in sorted(summary.fetch_counts.items()))
            click.echo(f"  fetched cutouts: {parts}")
    if summary.n_failed:
        # the rows themselves were named once, by id, in the run's log lines above
        click.echo(
            f"{summary.n_failed} row(s) failed (status=error, reason in the message column)",
            err=True,
        )
        ctx.exit(EXIT_PARTIAL)
