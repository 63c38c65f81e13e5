"""``galaxalign-astro train``: the two-stage GalaxAlign trainer."""

from __future__ import annotations

import sys

import click

from .options import common_options, overwrite_option

__all__ = ["command"]


@click.command("train")
@click.argument("recipe", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "-o",
    "--output",
    default=None,
    type=click.Path(file_okay=False),
    help="Model directory to write (best model; last/, checkpoints/, metrics too) "
    "[recipe's meta.output].",
)
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a recipe setting: dotted key, TOML value "
    "(--set batch_size=32 --set stages.stage2.epochs=3 --set data.label_fraction=0.1).",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the stopped run in OUTPUT from its newest checkpoint (same recipe and options).",
)
@click.option(
    "--data",
    "data",
    default=None,
    help="Training data: Galaxy10/GalaxyMNIST HDF5, label catalog, or simulated:N:SEED "
    "[recipe's [data] spec].",
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
@click.option("--arch", default=None, help="open_clip architecture [recipe or gxa-tiny].")
@click.option("--pretrained", default=None, help="open_clip pretrained tag or checkpoint file.")
@click.option("--epochs1", type=click.IntRange(0), default=None, help="Stage-1 epochs.")
@click.option("--epochs2", type=click.IntRange(0), default=None, help="Stage-2 epochs.")
@click.option("--lr", type=float, default=None, help="Peak learning rate of stage 1.")
@click.option("--batch-size", type=click.IntRange(2), default=None, help="Images per process.")
@click.option("--seed", type=int, default=None)
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=None,
    help="Processes preparing the training images [recipe or 1].",
)
@click.option("--name", default=None, help="Model name stored in catalogs' provenance.")
@click.option("--half", is_flag=True, help="Store weights as float16 (half the size).")
@click.option("--device", default=None, help="torch device [auto: CUDA when available].")
@overwrite_option
@common_options
def command(
    recipe,
    output,
    settings,
    resume,
    data,
    n_sim,
    sim_seed,
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

    RECIPE is a TOML file (see pipelines/); --set and the options override it.
    OUTPUT receives the model with the best validation accuracy (what
    `classify --model OUTPUT` uses), the last epoch's model in OUTPUT/last,
    resumable checkpoints and metrics.jsonl/metrics.csv. SIGINT or SIGTERM
    saves a checkpoint and exits with status 128 + signal; --resume continues.
    Under `torchrun --nproc_per_node N` every process trains a shard and
    process 0 writes.
    """
    import os

    from ..train.api import train_model
    from ..train.interrupt import TrainingInterrupted
    from ..train.recipe import recipe_meta

    if data is not None and n_sim is not None:
        raise click.UsageError("give at most one of --data and --simulate")
    if output is None:
        output = recipe_meta(recipe).get("output") if recipe is not None else None
        if not output:
            raise click.UsageError("give -o/--output (the recipe names no meta.output)")
    if os.path.exists(output) and os.listdir(output) and not (overwrite or resume):
        raise click.UsageError(f"{output} exists and is not empty; use --overwrite or --resume")
    ctx = click.get_current_context()
    quiet = ctx.meta.get("galaxalign.quiet", False)
    main_process = os.environ.get("RANK", "0") == "0"
    try:
        result = train_model(
            recipe=recipe,
            settings=settings,
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
            resume=resume,
            progress=not quiet and sys.stderr.isatty() and main_process,
            # a line per epoch on stderr whether or not it is a terminal (logs, batch jobs)
            callbacks=[] if quiet or not main_process else [_EpochLines()],
            command=" ".join(["galaxalign-astro", *sys.argv[1:]]),
        )
    except TrainingInterrupted as exc:
        if main_process:
            click.echo(f"Stopped: {exc}", err=True)
        sys.exit(exc.exit_status)
    if quiet or not main_process:
        return
    acc = result.val_accuracy
    click.echo(f"Saved {output} (weights sha256 {result.weights_sha256[:12]}...)")
    if result.best_epoch:
        best = result.best_epoch
        click.echo(
            f"  best epoch: {best['stage']} epoch {best['epoch']}; last epoch in {result.last}"
        )
    if acc:
        click.echo(
            f"  validation accuracy: mix {acc['val_acc_mix']:.3f} (alpha {result.alpha:.1f}), "
            f"text {acc['val_acc_text']:.3f}, symbol {acc['val_acc_symbol']:.3f}"
        )


class _EpochLines:
    """Trainer callback: one summary line per epoch on stderr."""

    def on_epoch_end(self, trainer, record) -> None:
        from ..train.metrics import epoch_summary

        stage = next((s for s in trainer.config.stages if s.name == record["stage"]), None)
        epochs = stage.epochs if stage is not None else None
        click.echo(epoch_summary(record, epochs=epochs), err=True)
