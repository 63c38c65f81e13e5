"""``galaxalign-astro classify PATH... -o OUT``."""

from __future__ import annotations

import shlex
import sys

import click

from .options import (
    EXIT_PARTIAL,
    batch_size_option,
    classes_option,
    common_options,
    device_option,
    loader_workers_option,
    model_option,
    overwrite_option,
    recursive_option,
)

__all__ = ["command"]


@click.command("classify")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="Output catalog; format from the suffix: .fits .hdf5/.h5 .ecsv .parquet .csv",
)
@model_option
@batch_size_option
@device_option
@loader_workers_option
@classes_option
@click.option(
    "--embeddings/--no-embeddings",
    default=True,
    show_default=True,
    help="Write the image embedding column.",
)
@click.option(
    "--engine",
    type=click.Choice(["auto", "torch", "onnx"]),
    default="auto",
    show_default=True,
    help="Image-tower engine: ONNX Runtime on CPU when installed (auto), or torch.",
)
@recursive_option
@overwrite_option
@common_options
def command(
    paths,
    output,
    model,
    batch_size,
    device,
    workers,
    classes,
    embeddings,
    engine,
    recursive,
    overwrite,
):
    """Classify galaxy cutouts (FITS, PNG, JPEG, TIFF; files, directories or globs).

    Writes one row per input with the morphology class, probabilities and
    (optionally) embeddings. Exit status: 0 all inputs classified, 3 some inputs
    failed (their rows have status=error), 1 fatal error, 2 usage error.
    """
    from ..inference.run import classify_to_file

    quiet = click.get_current_context().meta.get("galaxalign.quiet", False)
    summary = classify_to_file(
        paths,
        output,
        model=model,
        batch_size=batch_size,
        device=device,
        workers=workers,
        embeddings=embeddings,
        overwrite=overwrite,
        progress=not quiet and sys.stderr.isatty(),
        classes=classes,
        recursive=recursive,
        engine=engine,
        command=shlex.join(["galaxalign-astro", "classify", *sys.argv[2:]]),
    )
    if not quiet:
        rate = summary.n_total / summary.seconds if summary.seconds else float("nan")
        click.echo(
            f"Classified {summary.n_ok} of {summary.n_total} cutouts in {summary.seconds:.1f} s "
            f"({rate:.0f}/s) -> {summary.output}"
        )
        for name, count in sorted(summary.class_counts.items(), key=lambda kv: -kv[1]):
            click.echo(f"  {count:6d}  {name}")
        if summary.n_failed:
            click.echo(f"  {summary.n_failed:6d}  failed (status=error in the catalog)")
    if summary.n_failed:
        sys.exit(EXIT_PARTIAL)
