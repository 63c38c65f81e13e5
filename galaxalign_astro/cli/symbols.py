"""``galaxalign-astro symbols``: draw the schematic symbols of a taxonomy to PNG files."""

from __future__ import annotations

import click

from .options import common_options, overwrite_option

__all__ = ["command"]


@click.command("symbols")
@click.option(
    "-o",
    "--output",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, writable=True),
    help="Directory for DIR/<key>/<key>_<v>.png, DIR/symbols.png and DIR/symbols.json.",
)
@click.option(
    "--size",
    default=224,
    show_default=True,
    type=click.IntRange(min=8),
    help="Symbol side, pixels.",
)
@click.option(
    "--variants",
    default=16,
    show_default=True,
    type=click.IntRange(min=1),
    help="Variants per class (0 = canonical).",
)
@click.option(
    "--seed", default=0, show_default=True, type=int, help="Seed of the randomised variants."
)
@click.option(
    "--taxonomy",
    default="galaxy10_decals",
    show_default=True,
    help="Class set whose symbols are drawn (galaxy10_decals, galaxy_mnist).",
)
@overwrite_option
@common_options
def command(
    out_dir: str, size: int, variants: int, seed: int, taxonomy: str, overwrite: bool
) -> None:
    """Draw every symbol variant of every class, plus an overview montage (symbols.png)."""
    from ..symbols import SymbolConfig, write_symbol_set
    from ..taxonomy import get_taxonomy

    tax = get_taxonomy(taxonomy)
    config = SymbolConfig(variants=variants, seed=seed)
    written = write_symbol_set(
        out_dir, tax.keys, size=size, config=config, labels=tax.names, overwrite=overwrite
    )
    click.echo(f"wrote {len(written) - 2} symbols and the montage {written[-2]}")
