"""``galaxalign-astro evaluate --model M --data D -o REPORT_DIR``."""

from __future__ import annotations

import click

from .options import common_options, overwrite_option

__all__ = ["command"]


@click.command("evaluate")
@click.option(
    "--model",
    "model",
    default="default",
    show_default=True,
    help="Bundled model name or a model directory.",
)
@click.option(
    "--data",
    "data",
    required=True,
    help=(
        "Galaxy10_DECals.h5, a GalaxyMNIST train_dataset.hdf5/test_dataset.hdf5 (or their "
        "folder), a label catalog (file column; fine and/or coarse label columns; split "
        "column: e.g. a Galaxy Zoo labels.csv), or simulated:N:SEED."
    ),
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False),
    help="Report folder: report.json, report.md, confusion.png, reliability.png.",
)
@click.option(
    "--split",
    type=click.Choice(["test", "val", "train", "all"]),
    default="test",
    show_default=True,
    help="Part of --data to evaluate on.",
)
@click.option(
    "--train-data",
    default=None,
    help="Training images of the linear probe (its train split) [default: train split of --data].",
)
@click.option("--no-probe", is_flag=True, help="Skip the linear probe (no training images read).")
@click.option(
    "--label-fraction",
    type=click.FloatRange(0, 1, min_open=True),
    default=1.0,
    show_default=True,
    help="Fraction of each class the probe trains on (few-shot: 0.01, 0.1).",
)
@click.option(
    "--seed", type=int, default=42, show_default=True, help="Split and few-shot seed (42: ours)."
)
@click.option("--batch-size", default=256, show_default=True, type=click.IntRange(1))
@click.option("--device", default="cpu", show_default=True, help="torch device.")
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Processes preparing images.",
)
@click.option("--verify", is_flag=True, help="Check the SHA-256 of Galaxy10_DECals.h5 first.")
@overwrite_option
@common_options
def command(
    model,
    data,
    output,
    split,
    train_data,
    no_probe,
    label_fraction,
    seed,
    batch_size,
    device,
    workers,
    verify,
    overwrite,
):
    """Evaluate a model: accuracy, macro-F1, calibration, linear probe and similarity-search mAP.

    Classifies the evaluation images with the text, symbol and mixed prototypes
    and (unless --no-probe) a linear probe on the image embeddings, and ranks
    them against each other for the mAP. Prints the summary and writes it, with
    every number, to the report folder.
    """
    from ..evaluate import evaluate_to_dir
    from ..evaluate.report import summary_markdown

    result = evaluate_to_dir(
        model,
        data,
        output,
        split=split,
        train_data=train_data,
        probe=not no_probe,
        label_fraction=label_fraction,
        seed=seed,
        batch_size=batch_size,
        device=device,
        workers=workers,
        verify=verify,
        overwrite=overwrite,
    )
    if not click.get_current_context().meta.get("galaxalign.quiet", False):
        click.echo(summary_markdown(result).split("\n## Protocol")[0].rstrip())
        click.echo(f"\nReport written to {output}")
