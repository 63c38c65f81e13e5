"""``galaxalign-astro ablate RECIPE -o DIR``: the ablation grid of PAPER.md."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .options import common_options

__all__ = ["command"]


@click.command("ablate")
@click.argument("recipe", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for the variant models and ablation.md.",
)
@click.option(
    "--test-data",
    required=True,
    help="Evaluation data spec (e.g. simulated:1000:777, a Galaxy10 file).",
)
@click.option("--variants", default=None, help="Comma-separated subset of variants [all].")
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a recipe setting (as for train).",
)
@common_options
def command(recipe, output, test_data, variants, settings):
    """Train and evaluate every ablation variant and write one comparison table.

    Variants: clip_image_text, stage1_only, two_stage, two_stage_shared,
    fixed_temperature, label_10pct, label_1pct (see docs/training.md).
    """
    from ..evaluate.ablation import run_ablations
    from ..train.recipe import load_recipe

    quiet = click.get_current_context().meta.get("galaxalign.quiet", False)
    base = load_recipe(recipe, settings)
    names = [v.strip() for v in variants.split(",")] if variants else None
    run_ablations(
        base,
        output,
        test_data=test_data,
        variants=names,
        progress=not quiet and sys.stderr.isatty(),
    )
    if not quiet:
        click.echo((Path(output) / "ablation.md").read_text())
