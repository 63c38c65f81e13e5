"""``galaxalign-astro plot embeddings CATALOG -o PNG``."""

from __future__ import annotations

import click

from .options import base_dirs_option, common_options, overwrite_option

__all__ = ["command"]


@click.group("plot")
def command() -> None:
    """Plots of catalogs."""


@command.command("embeddings")
@click.argument("catalog", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="PNG file.")
@click.option("--embedding-col", default="embedding", show_default=True)
@click.option(
    "--class-col",
    default=None,
    help="Column to colour by [default: class_name, with the embedding column's prefix].",
)
@click.option(
    "--method",
    type=click.Choice(["auto", "umap", "pca"]),
    default="auto",
    show_default=True,
    help="2-D projection; auto is UMAP when umap-learn is installed, else PCA.",
)
@click.option(
    "--thumbnails",
    default=12,
    show_default=True,
    type=click.IntRange(0),
    help="Cutouts (from the source column) drawn at their points.",
)
@click.option(
    "--max-points",
    default=20000,
    show_default=True,
    type=click.IntRange(3),
    help="Random subsample drawn from larger catalogs.",
)
@click.option("--seed", default=0, show_default=True, type=int)
@base_dirs_option
@overwrite_option
@common_options
def embeddings(
    catalog,
    output,
    embedding_col,
    class_col,
    method,
    thumbnails,
    max_points,
    seed,
    base_dirs,
    overwrite,
):
    """Draw a 2-D map of a catalog's embeddings, coloured by class, with thumbnails."""
    from ..search import embedding_map

    path = embedding_map(
        catalog,
        output,
        embedding_col=embedding_col,
        class_col=class_col,
        method=method,
        n_thumbnails=thumbnails,
        max_points=max_points,
        seed=seed,
        overwrite=overwrite,
        base_dirs=base_dirs,
    )
    if not click.get_current_context().meta.get("galaxalign.quiet", False):
        click.echo(f"Embedding map -> {path}")
