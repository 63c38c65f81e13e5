"""``galaxalign-astro index CATALOG -o INDEX`` (or ``--cutouts PATH... -o INDEX``)."""

from __future__ import annotations

import sys

import click

from .options import (
    EXIT_PARTIAL,
    batch_size_option,
    common_options,
    device_option,
    loader_workers_option,
    overwrite_option,
    recursive_option,
)

__all__ = ["command"]

_KINDS = ("auto", "exact", "ivf", "hnsw")


def _model_provenance(model: str):
    """Name, weights sha256, path and preprocessing of a model, without loading torch."""
    from ..models.checkpoint import WEIGHTS_NAME, read_spec, resolve_model_path
    from ..search import CatalogProvenance
    from ..utils import file_sha256

    path = resolve_model_path(model)
    spec = read_spec(path)
    return CatalogProvenance(
        model_name=spec.name,
        weights_sha256=file_sha256(path / WEIGHTS_NAME),
        model_path=str(path.resolve()),
        preprocess=spec.preprocess.to_dict(),
        class_names=list(spec.class_names),
    )


def _merge(catalog, given):
    """The catalog's provenance, completed (never contradicted) by a given model's."""
    from dataclasses import fields

    from ..search import IndexMismatchError

    if given is None:
        return catalog
    if catalog.weights_sha256 and catalog.weights_sha256 != given.weights_sha256:
        msg = (
            f"the catalog's embeddings come from model {catalog.model_name!r} (weights sha256 "
            f"{catalog.weights_sha256[:12]}...), not from --model {given.model_path}"
        )
        raise IndexMismatchError(msg)
    for f in fields(catalog):
        if getattr(catalog, f.name) is None:
            setattr(catalog, f.name, getattr(given, f.name))
    return catalog


@click.command("index")
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False),
    help="Index directory (created).",
)
@click.option(
    "--cutouts",
    is_flag=True,
    help="INPUTS are cutouts (files, folders, globs): classify and embed them with --model "
    "first; their catalog is written into the index folder as catalog.fits.",
)
@click.option(
    "--embedding-col",
    default=None,
    help="Embedding column of the catalog [default: embedding; with --add, the index's].",
)
@click.option(
    "--kind",
    type=click.Choice(_KINDS),
    default="auto",
    show_default=True,
    help="Index kind: exact up to 100,000 rows and ivf above when auto.",
)
@click.option(
    "--target-recall",
    type=click.FloatRange(0, 1),
    default=0.95,
    show_default=True,
    help="Recall@10 that ivf/hnsw search parameters are tuned to at build time.",
)
@click.option(
    "--add",
    is_flag=True,
    help="Add the rows not yet indexed (a grown catalog, or new cutouts) to an existing "
    "index; refused if they come from another model.",
)
@click.option(
    "--model",
    default=None,
    help="With --cutouts: the model to embed them with [default: bundled 'default'; with "
    "--add, the index's]. With a catalog: the model that made its embeddings, recorded "
    "when the catalog does not say.",
)
@batch_size_option
@device_option
@loader_workers_option
@recursive_option
@overwrite_option
@common_options
def command(
    inputs,
    output,
    cutouts,
    embedding_col,
    kind,
    target_recall,
    add,
    model,
    batch_size,
    device,
    workers,
    recursive,
    overwrite,
):
    """Build a similarity-search index from a catalog's embeddings, or from cutouts.

    A catalog is any table with an embedding column (classify or annotate output):
    rows are keyed by row number, rows without an embedding (failed) are skipped,
    and the model recorded in the catalog is recorded in the index. Query it with
    `galaxalign-astro search`. Exit status: 0 done, 3 some cutouts failed (not
    indexed), 1 fatal error, 2 usage error.
    """
    from pathlib import Path

    from ..errors import OutputExistsError
    from ..search import IndexParams

    quiet = click.get_current_context().meta.get("galaxalign.quiet", False)
    params = IndexParams(target_recall=target_recall)
    out = Path(output)
    if not add and (out / "index.json").exists() and not overwrite:
        msg = f"{out} already holds an index; use --overwrite to replace it or --add to extend it"
        raise OutputExistsError(msg)
    if cutouts:
        from ..search import index_cutouts

        if embedding_col not in (None, "embedding"):
            raise click.UsageError("--embedding-col does not apply to --cutouts")
        search_index, summary = index_cutouts(
            inputs,
            out,
            model=model or "default",
            add=add,
            kind=kind,
            params=params,
            batch_size=batch_size,
            device=device,
            workers=workers,
            overwrite=overwrite,
            progress=not quiet and sys.stderr.isatty(),
            recursive=recursive,
        )
        if not quiet:
            if summary is None:
                click.echo("Every cutout is already in the index; nothing added.")
            else:
                click.echo(
                    f"Embedded {summary.n_ok} of {summary.n_total} cutouts "
                    f"({summary.n_failed} failed)"
                )
            _report(search_index.index, out)
        if summary is not None and summary.n_failed:
            sys.exit(EXIT_PARTIAL)
        return

    if len(inputs) != 1:
        raise click.UsageError("give one catalog (or --cutouts with cutout files/folders)")
    if recursive:
        raise click.UsageError("--recursive applies to --cutouts only")
    catalog = inputs[0]
    given = _model_provenance(model) if model else None
    from ..search import (
        add_catalog_rows,
        build_index_from_catalog,
        index_lock,
        open_catalog_columns,
        open_search_index,
        save_search_index,
    )

    with open_catalog_columns(catalog) as cols:
        provenance = _merge(cols.provenance, given)
    if add:
        if not out.is_dir():
            open_search_index(out)  # raises: no index there to add to
        # read, add and save under the folder's lock: a concurrent --add waits its turn
        with index_lock(out):
            existing = open_search_index(out)
            col = embedding_col or existing.embedding_col
            before = len(existing.index)
            added = add_catalog_rows(existing.index, catalog, embedding_col=col)
            save_search_index(
                existing.index, out, embedding_col=col, provenance=provenance, overwrite=True
            )
        if not quiet:
            click.echo(f"Added {len(added)} rows to {before}")
            _report(existing.index, out)
        return
    col = embedding_col or "embedding"
    index = build_index_from_catalog(
        catalog,
        embedding_col=col,
        kind=kind,
        params=params,
        model_name=provenance.model_name,
        weights_sha256=provenance.weights_sha256,
    )
    save_search_index(index, out, embedding_col=col, provenance=provenance, overwrite=overwrite)
    if not quiet:
        _report(index, out)


def _report(index, out) -> None:
    meta = index.metadata
    skipped = (meta["catalog"]["n_rows"] or len(index)) - len(index)
    click.echo(
        f"Indexed {len(index)} rows ({index.kind}, d={index.dim}, model "
        f"{index.model_name or 'not recorded'}) -> {out}"
        + (f"; {skipped} catalog rows without an embedding skipped" if skipped else "")
    )
