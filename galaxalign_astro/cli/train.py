"""``galaxalign-astro train``: the two-stage GalaxAlign trainer."""

from __future__ import annotations

import sys

import click

from .options import common_options, overwrite_option

__all__ = ["command"]


@click.command("train")
@click.argument("recipe", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--data",
    "data",
    type=click.Path(exists=True, dir_okay=False),
    help="Label catalog of cutouts (path and label columns).",
)
@click.option(
    "--simulate",
    "n_sim",
    type=click.IntRange(10),
    default=None,
    help="Train on N cutouts from the simulator instead of --data.",
)
@click.option(
    "--sim-seed",
    type=int,
    default=1,
    show_default=True,
    help="Simulator seed of the training cutouts.",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False),
    help="Model directory to write.",
)
@click.option("--arch", default=None, help="open_clip architecture [recipe or gxa-tiny].")
@click.option("--pretrained", default=None, help="open_clip pretrained tag or checkpoint file.")
@click.option("--epochs1", type=click.IntRange(0), default=None, help="Stage-1 epochs.")
@click.option("--epochs2", type=click.IntRange(0), default=None, help="Stage-2 epochs.")
@click.option("--lr", type=float, default=None, help="Peak learning rate of stage 1.")
@click.option("--batch-size", type=click.IntRange(2), default=None)
@click.option("--seed", type=int, default=None)
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Processes preparing the training cutouts.",
)
@click.option("--name", default=None, help="Model name stored in catalogs' provenance.")
@click.option("--half", is_flag=True, help="Store weights as float16 (half the size).")
@click.option("--device", default=None, help="torch device.")
@overwrite_option
@common_options
def command(
    recipe,
    data,
    n_sim,
    sim_seed,
    output,
    arch,
    pretrained,
    epochs1,
    epochs2,
    lr,
    batch_size,
    seed,
    workers,
    name,
    half,
    device,
    overwrite,
):
    """Fine-tune a tri-modal model: stage 1 (shared visual tower), then stage 2.

    RECIPE is an optional TOML file with a [train] table; options override it.
    """
    import os

    from ..train.api import train_model

    if (data is None) == (n_sim is None):
        raise click.UsageError("give exactly one of --data CATALOG or --simulate N")
    if os.path.exists(output) and os.listdir(output) and not overwrite:
        raise click.UsageError(f"{output} exists and is not empty; use --overwrite")
    quiet = click.get_current_context().meta.get("galaxalign.quiet", False)
    result = train_model(
        recipe=recipe,
        data=data,
        n_simulated=n_sim,
        sim_seed=sim_seed,
        output=output,
        overrides={
            "architecture": arch,
            "pretrained": pretrained,
            "batch_size": batch_size,
            "seed": seed,
            "name": name,
            "device": device,
        },
        epochs1=epochs1,
        epochs2=epochs2,
        lr=lr,
        workers=workers,
        half=half,
        progress=not quiet and sys.stderr.isatty(),
        command=" ".join(sys.argv),
    )
    if not quiet:
        acc = result.val_accuracy
        click.echo(f"Saved {output} (weights sha256 {result.weights_sha256[:12]}...)")
        if acc:
            click.echo(
                f"  validation accuracy: mix {acc['val_acc_mix']:.3f} (alpha {result.alpha:.1f}), "
                f"text {acc['val_acc_text']:.3f}, symbol {acc['val_acc_symbol']:.3f}"
            )
