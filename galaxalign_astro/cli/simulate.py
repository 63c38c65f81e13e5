"""``galaxalign-astro simulate``: write labelled synthetic Legacy Surveys cutouts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click

from .options import common_options, overwrite_option

__all__ = ["command"]


@click.command("simulate")
@click.option(
    "-n",
    "--number",
    "n",
    type=click.IntRange(min=1),
    required=True,
    help="Number of cutouts to simulate.",
)
@click.option(
    "-o",
    "--output",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the FITS cutouts and labels.ecsv.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Run seed; cutout i of a seed is always the same.",
)
@click.option(
    "--size",
    type=click.IntRange(min=16),
    default=256,
    show_default=True,
    help="Cutout side in pixels.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Processes to use [default: all cores].",
)
@click.option(
    "--galaxy10-h5",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write a Galaxy10-DECaLS-format HDF5 file here.",
)
@click.option(
    "--mnist-h5",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write a GalaxyMNIST-format HDF5 file (4 classes, 64x64) here.",
)
@click.option(
    "--preview",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write a PNG montage with four examples of each class.",
)
@overwrite_option
@common_options
def command(
    n: int,
    out_dir: Path,
    seed: int,
    size: int,
    workers: int | None,
    galaxy10_h5: Path | None,
    mnist_h5: Path | None,
    preview: Path | None,
    overwrite: bool,
) -> None:
    """Simulate N labelled g,r,z cutouts (Galaxy10 DECaLS classes) into DIR."""
    from ..errors import OutputExistsError
    from ..simulate import LABELS_FILE, preview_montage, tune_allocator, write_simulated
    from ..taxonomy import GALAXY10_DECALS

    tune_allocator()  # this process is ours: keep freed memory (see simulate.memory)

    if preview is not None and preview.exists() and not overwrite:
        msg = f"preview {preview} already exists; use --overwrite to replace it"
        raise OutputExistsError(msg)
    table = write_simulated(
        out_dir,
        n,
        seed=seed,
        size=size,
        workers=workers,
        galaxy10_h5=galaxy10_h5,
        mnist_h5=mnist_h5,
        overwrite=overwrite,
    )
    ctx = click.get_current_context()
    quiet = ctx.meta.get("galaxalign.quiet", False)
    if preview is not None:
        preview_montage(preview, seed=seed, size=size)
    if quiet:
        return
    click.echo(f"Wrote {len(table)} cutouts to {out_dir} (catalogue {out_dir / LABELS_FILE}).")
    counts = Counter(int(x) for x in table["label"])
    for label, name in enumerate(GALAXY10_DECALS.names):
        click.echo(f"  {label} {name:<24s} {counts.get(label, 0)}")
    for what, path in (
        ("Galaxy10 HDF5", galaxy10_h5),
        ("GalaxyMNIST HDF5", mnist_h5),
        ("Preview", preview),
    ):
        if path is not None:
            click.echo(f"{what}: {path}")
