"""``galaxalign-astro search INDEX (--image F | --row N | --text T | --symbol S) -k K``."""

from __future__ import annotations

import logging

import click

from .options import base_dirs_option, common_options, overwrite_option

__all__ = ["command"]

log = logging.getLogger(__name__)


def _query_model(model, search_index):
    """The model to encode the query with: --model, else the one the index records."""
    from pathlib import Path

    from ..errors import ModelLoadError
    from ..models.checkpoint import resolve_model_path

    if model:
        return model
    for candidate in (search_index.model_path, search_index.index.model_name):
        if not candidate:
            continue
        if Path(candidate).is_dir():
            return candidate
        try:
            return str(resolve_model_path(candidate))
        except ModelLoadError:
            continue
    recorded = search_index.index.model_name or "none"
    msg = (
        f"the index's model ({recorded}) is neither a bundled model nor an existing folder; "
        "pass --model"
    )
    raise click.UsageError(msg)


@click.command("search")
@click.argument("index", type=click.Path(exists=True, file_okay=False))
@click.option("--image", type=click.Path(exists=True, dir_okay=False), help="Query cutout file.")
@click.option("--row", type=click.IntRange(0), help="Query by the catalog row's own embedding.")
@click.option("--text", help='Query description, e.g. "a spiral galaxy with a strong bar".')
@click.option(
    "--symbol",
    help="Query sketch: a drawing (PNG/JPEG, any size, dark-on-light or light-on-dark) or a "
    "built-in symbol family (round_smooth, barred_spiral, edge_on_bulge, merging, ...).",
)
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(1), help="Neighbours.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Results table (rank, row, score, source, ra, dec, class_name); format from the "
    "suffix: .fits .hdf5 .ecsv .parquet .csv. Printed to stdout when not given (also with "
    "--quiet).",
)
@click.option(
    "--model",
    default=None,
    help="Model to encode the query [default: the one recorded in the index]; must be the "
    "model that made the index's embeddings.",
)
@click.option(
    "--montage",
    type=click.Path(dir_okay=False),
    help="Also draw the query and its neighbours as a labelled image grid (PNG).",
)
@click.option(
    "--catalog",
    type=click.Path(exists=True, dir_okay=False),
    help="The index's catalog, when it has moved since the index was built.",
)
@base_dirs_option
@click.option(
    "--device", default="cpu", show_default=True, help="torch device (cpu, cuda, cuda:1)."
)
@overwrite_option
@common_options
def command(
    index,
    image,
    row,
    text,
    symbol,
    k,
    output,
    model,
    montage,
    catalog,
    base_dirs,
    device,
    overwrite,
):
    """Find the K catalog rows most similar to an image, a row, a text or a sketch.

    Image queries compare image embeddings; text and sketch queries compare the
    text or symbol embedding with the image embeddings (cosine similarity).
    Exit status: 0 done, 1 error (e.g. a model other than the index's), 2 usage error.
    """
    from pathlib import Path

    from ..catalog import output_format
    from ..catalog.base import check_output_path
    from ..search import Query, index_vectors, open_search_index, search_by_embedding

    given = [
        n
        for n, v in (("--image", image), ("--row", row), ("--text", text), ("--symbol", symbol))
        if v is not None
    ]
    if len(given) != 1:
        got = ", ".join(given) or "none"
        raise click.UsageError(f"give exactly one of --image, --row, --text, --symbol (got {got})")
    for path in (output, montage):
        if path is not None:
            check_output_path(path, overwrite=overwrite)
    if output is not None:
        output_format(output)
    search_index = open_search_index(index)
    if catalog is None:
        try:
            catalog = search_index.catalog_file()
        except FileNotFoundError as exc:
            log.warning("%s; results without catalog columns", exc)
    preprocess = search_index.preprocess
    if row is not None:
        query = Query("row", str(row), index_vectors(search_index.index, [row])[0])
    else:
        from ..models.checkpoint import load_model
        from ..search import check_model, make_query

        loaded = load_model(_query_model(model, search_index), device=device)
        check_model(search_index.index, loaded)
        query = make_query(loaded, image=image, text=text, symbol=symbol)
        preprocess = loaded.spec.preprocess
    results = search_by_embedding(
        search_index.index,
        query.embedding,
        k=k,
        catalog=catalog,
        embedding_col=search_index.embedding_col,
        query=query,
    )
    quiet = click.get_current_context().meta.get("galaxalign.quiet", False)
    if output is not None:
        from ..catalog import write_table

        write_table(results, output, overwrite=overwrite)
    if montage is not None:
        from ..search import search_montage

        search_montage(
            results,
            montage,
            query=query,
            preprocess=preprocess,
            base_dirs=[*base_dirs, *([Path(catalog).parent] if catalog is not None else [])],
            title=f"{query.kind} query: {query.value}"[:90],
            overwrite=overwrite,
        )
    if output is None:
        # the results themselves, not a report: printed with --quiet too, or they are lost
        shown = results.copy(copy_data=False)
        for name in shown.colnames:
            if shown[name].dtype.kind == "f":
                shown[name].info.format = ".4f" if name == "score" else ".5f"
        click.echo("\n".join(shown.pformat(max_lines=-1, max_width=-1)))
    elif not quiet:
        click.echo(f"Wrote {len(results)} neighbours of the {query.kind} query to {output}")
    if montage is not None and not quiet:
        click.echo(f"Montage -> {montage}")
