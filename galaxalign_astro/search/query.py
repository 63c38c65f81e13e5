"""Similarity search by image, text, symbol (sketch) or catalog row.

PAPER.md, "Similarity search": the catalog holds image embeddings ``f_I``; a query
image is compared through ``f_I`` too, a text through the text tower ``f_T`` and
a sketch through the symbol tower ``f_S``, all by cosine similarity in the one
shared space. A query by catalog row uses that row's stored embedding.

Queries are encoded the way the model was trained (ours, as for class
prototypes in `~galaxalign_astro.inference.prototypes`):

* an image goes through the model's own preprocessing (bands, stretch, size);
* a text is put through every prompt template of the model and the normalised
  text embeddings are averaged (then normalised again);
* a built-in symbol family is rendered with the model's symbol settings and its
  variants' embeddings are averaged; a user's drawing (PNG/JPEG, any size,
  dark-on-light or light-on-dark) is converted by
  `~galaxalign_astro.symbols.load_drawing` first.

Every ``search_by_*`` returns an astropy Table with ``rank``, ``row`` (catalog
row), ``score`` (cosine similarity, best first) and, when the catalog is given,
its ``source``, ``ra``, ``dec`` and ``class_name`` columns (with the embedding
column's prefix, e.g. ``gxa_class_name``, for ``annotate`` catalogs).
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._version import __version__
from ..catalog import Provenance
from ..errors import GalaxAlignWarning
from .build import EMBEDDING_COL, CatalogColumns, index_vectors, open_catalog_columns
from .index import EmbeddingIndex, IndexMismatchError

__all__ = [
    "QUERY_KINDS",
    "Query",
    "approximate_recall",
    "check_model",
    "make_query",
    "query_embedding",
    "search_by_embedding",
    "search_by_image",
    "search_by_row",
    "search_by_symbol",
    "search_by_text",
]

log = logging.getLogger(__name__)

#: the kinds of query
QUERY_KINDS = ("image", "text", "symbol", "row", "embedding")
#: catalog columns copied into results when present (after the embedding column's prefix)
_CATALOG_COLUMNS = ("source", "ra", "dec", "class_name")


@dataclass
class Query:
    """An encoded query.

    Attributes
    ----------
    kind : str
        One of `QUERY_KINDS`.
    value : str
        What was asked: the image file, the text, the symbol family or drawing file,
        the row number.
    embedding : ndarray
        Normalised float32 (d,) query embedding.
    display : ndarray or None
        (H, W, 3) float image in [0, 1] showing the query (the prepared image, the
        symbol), None for a text or a row.
    """

    kind: str
    value: str
    embedding: np.ndarray
    display: np.ndarray | None = None


def _loaded(model: Any, device: str = "cpu") -> Any:
    from ..models.checkpoint import LoadedModel, load_model

    return model if isinstance(model, LoadedModel) else load_model(model, device=device)


def _device(loaded: Any) -> Any:
    return next(loaded.model.parameters()).device


def _finish(embedding: Any) -> np.ndarray:
    import torch

    vec = torch.nn.functional.normalize(embedding.float().reshape(-1), dim=0)
    return vec.cpu().numpy().astype(np.float32)


def _image_planes(loaded: Any, image: Any) -> np.ndarray:
    """The (3, S, S) float32 model input of a file, a Cutout or an array."""
    from ..io import Cutout, read_cutout
    from ..preprocess import prepare, resize_planes

    config = loaded.spec.preprocess
    if isinstance(image, str | os.PathLike):
        return prepare(read_cutout(image, fov_arcsec=config.fov_arcsec), config).image
    if isinstance(image, Cutout):
        return prepare(image, config).image
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[0] != 3 and arr.shape[-1] == 3:
        arr = np.moveaxis(arr, -1, 0)
    if arr.ndim != 3 or arr.shape[0] != 3:
        msg = (
            "an image array must be a prepared (3, H, W) or (H, W, 3) colour image "
            f"in [0, 1], got shape {np.shape(image)}; pass a file path or a Cutout otherwise"
        )
        raise ValueError(msg)
    if arr.dtype == np.uint8:
        arr = arr / 255.0
    arr = np.clip(np.nan_to_num(arr.astype(np.float32)), 0.0, 1.0)
    return resize_planes(arr, config.size)


def _image_query(loaded: Any, image: Any) -> Query:
    import torch

    planes = _image_planes(loaded, image)
    with torch.inference_mode():
        emb = loaded.model.encode_image(torch.from_numpy(planes[None]).to(_device(loaded)))
    value = os.fspath(image) if isinstance(image, str | os.PathLike) else "<array>"
    return Query("image", value, _finish(emb[0]), np.moveaxis(planes, 0, -1))


def _text_query(loaded: Any, text: str) -> Query:
    import torch

    from ..models.factory import get_tokenizer
    from ..models.prototypes import encode_texts
    from ..text import TextConfig

    text = str(text).strip()
    if not text:
        msg = "the query text is empty"
        raise ValueError(msg)
    templates = TextConfig.from_dict(loaded.spec.text or {}).templates
    tokenizer = get_tokenizer(loaded.spec.architecture, config=loaded.model.config)
    with torch.inference_mode():
        emb = encode_texts(loaded.model, tokenizer, [t.format(text) for t in templates])
        # the mean of the normalised per-template embeddings, as for class prototypes
        mean = torch.nn.functional.normalize(emb, dim=-1).mean(0)
    return Query("text", text, _finish(mean))


def symbol_images(loaded: Any, symbol: Any) -> tuple[np.ndarray, str]:
    """uint8 (n, S, S, 3) symbols of a family name, a drawing file or a drawing array.

    A built-in family gives the model's symbol-bank variants (its own
    `~galaxalign_astro.symbols.SymbolConfig`); a drawing gives one symbol.
    """
    from ..symbols import SYMBOL_FAMILIES, SymbolConfig, load_drawing, symbol_bank

    size = loaded.model.image_size
    if isinstance(symbol, str) and symbol in SYMBOL_FAMILIES:
        config = SymbolConfig.from_dict(loaded.spec.symbols or {})
        return symbol_bank([symbol], size=size, config=config)[0], symbol
    if isinstance(symbol, str | os.PathLike):
        if not os.path.exists(symbol):
            msg = (
                f"symbol {os.fspath(symbol)!r} is neither a built-in symbol family "
                f"({', '.join(sorted(SYMBOL_FAMILIES))}) nor an existing image file"
            )
            raise ValueError(msg)
        return load_drawing(symbol, size=size)[None], os.fspath(symbol)
    return load_drawing(np.asarray(symbol), size=size)[None], "<array>"


def _symbol_query(loaded: Any, symbol: Any) -> Query:
    import torch

    from ..models.prototypes import encode_symbol_images

    images, value = symbol_images(loaded, symbol)
    with torch.inference_mode():
        emb = encode_symbol_images(loaded.model, images)
        mean = torch.nn.functional.normalize(emb, dim=-1).mean(0)
    return Query("symbol", value, _finish(mean), images[0].astype(np.float32) / 255.0)


def make_query(
    model: Any, *, image: Any = None, text: str | None = None, symbol: Any = None
) -> Query:
    """Encode one query (exactly one of ``image``, ``text``, ``symbol``).

    Parameters
    ----------
    model : `~galaxalign_astro.models.checkpoint.LoadedModel`, str or path
        A loaded model, a bundled model name or a model directory.
    image : str, path-like, `~galaxalign_astro.io.Cutout` or ndarray
        A cutout file (FITS, PNG, JPEG) or Cutout, prepared with the model's
        preprocessing; or an already prepared colour image, (3, H, W) or (H, W, 3)
        in [0, 1] (uint8 0-255 also accepted), resized to the model's input size.
    text : str
        A description, e.g. ``"a spiral galaxy with a bar"``.
    symbol : str, path-like or ndarray
        A built-in symbol family key (``"barred_spiral"``...) or a drawing (file or
        array).

    Returns
    -------
    Query
    """
    given = [
        name for name, v in (("image", image), ("text", text), ("symbol", symbol)) if v is not None
    ]
    if len(given) != 1:
        msg = f"give exactly one of image, text, symbol (got {', '.join(given) or 'none'})"
        raise ValueError(msg)
    loaded = _loaded(model)
    if image is not None:
        return _image_query(loaded, image)
    if text is not None:
        return _text_query(loaded, text)
    return _symbol_query(loaded, symbol)


def query_embedding(
    model: Any, *, image: Any = None, text: str | None = None, symbol: Any = None
) -> np.ndarray:
    """The normalised float32 (d,) embedding of one query; see `make_query`."""
    return make_query(model, image=image, text=text, symbol=symbol).embedding


def check_model(index: EmbeddingIndex, model: Any) -> None:
    """Refuse (`IndexMismatchError`) a model other than the one the index was built with.

    The weights sha256 is compared when the index records one, else the model name;
    an index recording neither gives a `~galaxalign_astro.errors.GalaxAlignWarning`.
    The embedding dimension is always compared.
    """
    loaded = _loaded(model)
    if index.weights_sha256:
        if index.weights_sha256 != loaded.weights_sha256.lower():
            msg = (
                f"the index holds embeddings of model {index.model_name!r} (weights sha256 "
                f"{index.weights_sha256[:12]}...) but model {loaded.name!r} "
                f"({loaded.weights_sha256[:12]}..., {loaded.path}) was given; query with that "
                "model or rebuild the index"
            )
            raise IndexMismatchError(msg)
    elif index.model_name:
        if index.model_name != loaded.name:
            msg = (
                f"the index holds embeddings of model {index.model_name!r} but model "
                f"{loaded.name!r} was given; query with that model or rebuild the index"
            )
            raise IndexMismatchError(msg)
    else:
        warnings.warn(
            "the index records no model; cannot check that the query model made its embeddings",
            GalaxAlignWarning,
            stacklevel=2,
        )
    index.check_compatible(embedding_dim=loaded.model.embed_dim)


def _result_columns(cols: CatalogColumns, prefix: str) -> list[str]:
    lower = {c.lower(): c for c in cols.colnames}
    found = []
    for base in _CATALOG_COLUMNS:
        for name in (prefix + base, base):
            if name in cols.colnames:
                found.append(name)
                break
            if name.lower() in lower:
                found.append(lower[name.lower()])
                break
    return found


def _prefix(embedding_col: str) -> str:
    return embedding_col[: -len(EMBEDDING_COL)] if embedding_col.endswith(EMBEDDING_COL) else ""


def search_by_embedding(
    index: EmbeddingIndex,
    embedding: Any,
    *,
    k: int = 10,
    catalog: Any = None,
    embedding_col: str = EMBEDDING_COL,
    query: Query | None = None,
) -> Any:
    """The ``k`` catalog rows nearest to a query embedding, as an astropy Table.

    Parameters
    ----------
    index : `~galaxalign_astro.search.EmbeddingIndex`
    embedding : array_like, shape (d,)
        Query embedding (normalised here).
    k : int
        Number of neighbours; fewer come back when the index has fewer rows.
    catalog : `~astropy.table.Table`, str or path-like, optional
        The catalog the index was built from; its ``source``, ``ra``, ``dec`` and
        ``class_name`` columns are added to the results when present.
    embedding_col : str
        The catalog's embedding column; its prefix (``gxa_`` for ``gxa_embedding``)
        is tried first when looking up the catalog columns.
    query : Query, optional
        Recorded in the results' metadata.

    Returns
    -------
    `~astropy.table.Table`
        ``rank`` (1 = best), ``row`` (catalog row), ``score`` (cosine similarity),
        then the catalog columns. ``meta['galaxalign']['search']`` records the query,
        k, the index kind and its model.

    Raises
    ------
    IndexMismatchError
        The catalog's row count differs from the one the index was built for.
    """
    from astropy.table import Table

    scores, ids = index.search(np.asarray(embedding, dtype=np.float32).reshape(-1), k=k)
    keep = ids >= 0
    ids, scores = ids[keep], scores[keep]
    table = Table()
    table["rank"] = np.arange(1, len(ids) + 1, dtype=np.int32)
    table["rank"].description = "Rank of the neighbour (1 = most similar)"
    table["row"] = ids.astype(np.int64)
    table["row"].description = "Row number (0-based) of the neighbour in the catalog"
    table["score"] = scores.astype(np.float32)
    table["score"].description = "Cosine similarity of the neighbour's embedding to the query"
    if catalog is not None:
        with open_catalog_columns(catalog) as cols:
            recorded = index.metadata["catalog"]["n_rows"]
            if recorded is not None and cols.n_rows != recorded:
                msg = (
                    f"catalog {cols.path} has {cols.n_rows} rows but the index was built for a "
                    f"catalog of {recorded}; use the index's own catalog, or add the new rows "
                    "(index --add) / rebuild the index"
                )
                raise IndexMismatchError(msg)
            names = _result_columns(cols, _prefix(embedding_col))
            values = cols.read_rows(ids, names)
        for name in names:
            table[name] = values[name]
        for name in names:
            if name.lower().endswith(("ra", "dec")) and table[name].dtype.kind == "f":
                table[name].unit = "deg"
    info: dict[str, Any] = {
        "k": int(k),
        "index_kind": index.kind,
        "index_rows": len(index),
        "model_name": index.model_name,
        "weights_sha256": index.weights_sha256,
        "catalog": index.metadata["catalog"]["path"],
        "package_version": __version__,
    }
    if query is not None:
        info["query_kind"] = query.kind
        info["query"] = query.value
    provenance = Provenance(
        model_name=index.model_name,
        weights_sha256=index.weights_sha256,
        step="search",
        settings=info,
        input=index.metadata["catalog"]["path"],
    )
    table.meta.update(provenance.to_meta())
    return table


def _search_by_query(
    index: EmbeddingIndex,
    model: Any,
    *,
    k: int,
    catalog: Any,
    embedding_col: str,
    **query: Any,
) -> Any:
    """Embed one query with the index's own model and search with it."""
    loaded = _loaded(model)
    check_model(index, loaded)
    made = make_query(loaded, **query)
    return search_by_embedding(
        index, made.embedding, k=k, catalog=catalog, embedding_col=embedding_col, query=made
    )


def search_by_image(
    index: EmbeddingIndex,
    model: Any,
    image: Any,
    *,
    k: int = 10,
    catalog: Any = None,
    embedding_col: str = EMBEDDING_COL,
) -> Any:
    """Rows whose images are most similar to ``image`` (``f_I`` against ``f_I``).

    ``image`` is a cutout file, a `~galaxalign_astro.io.Cutout` or a prepared image
    array (see `make_query`); ``model`` must be the index's (`check_model`). Other
    parameters and the result are those of `search_by_embedding`.
    """
    return _search_by_query(
        index, model, k=k, catalog=catalog, embedding_col=embedding_col, image=image
    )


def search_by_text(
    index: EmbeddingIndex,
    model: Any,
    text: str,
    *,
    k: int = 10,
    catalog: Any = None,
    embedding_col: str = EMBEDDING_COL,
) -> Any:
    """Rows whose images best match a description (``f_T`` against ``f_I``).

    The text goes through every prompt template of the model and the embeddings are
    averaged. Other parameters and the result are those of `search_by_embedding`.
    """
    return _search_by_query(
        index, model, k=k, catalog=catalog, embedding_col=embedding_col, text=text
    )


def search_by_symbol(
    index: EmbeddingIndex,
    model: Any,
    symbol: Any,
    *,
    k: int = 10,
    catalog: Any = None,
    embedding_col: str = EMBEDDING_COL,
) -> Any:
    """Rows whose images best match a sketch (``f_S`` against ``f_I``).

    ``symbol`` is a built-in family key (its symbol-bank variants are averaged) or a
    drawing file / array (any size, dark-on-light or light-on-dark). Other
    parameters and the result are those of `search_by_embedding`.
    """
    return _search_by_query(
        index, model, k=k, catalog=catalog, embedding_col=embedding_col, symbol=symbol
    )


def search_by_row(
    index: EmbeddingIndex,
    row: int,
    *,
    k: int = 10,
    catalog: Any = None,
    embedding_col: str = EMBEDDING_COL,
) -> Any:
    """Rows most similar to catalog row ``row``, using its stored embedding.

    No model is needed. The row itself comes first (score 1) unless another row has
    an identical embedding. Other parameters and the result are those of
    `search_by_embedding`.

    Raises
    ------
    ValueError
        ``row`` is not in the index.
    """
    if int(row) != row or row < 0:
        msg = f"row must be a non-negative integer, got {row!r}"
        raise ValueError(msg)
    vector = index_vectors(index, [int(row)])[0]
    query = Query("row", str(int(row)), vector)
    return search_by_embedding(
        index, vector, k=k, catalog=catalog, embedding_col=embedding_col, query=query
    )


def approximate_recall(
    index_exact: EmbeddingIndex, index_approx: EmbeddingIndex, queries: Any, k: int = 10
) -> float:
    """Recall@k of an approximate index against an exact one.

    For each query, the fraction of the exact index's ``k`` nearest rows that the
    approximate index also returns among its ``k``; the mean over queries (missing
    places, id -1, do not count). Both indexes should hold the same rows.

    Parameters
    ----------
    index_exact, index_approx : `~galaxalign_astro.search.EmbeddingIndex`
        Ground truth (normally ``kind="exact"``) and the index to assess.
    queries : array_like, shape (m, d) or (d,)
        Query embeddings; real queries (held-out images, texts) rather than rows of
        the index, which find themselves too easily.
    k : int
        Neighbours per query.

    Returns
    -------
    float
        Mean recall@k in [0, 1] (1.0 when the exact index returns nothing).
    """
    q = np.asarray(queries, dtype=np.float32)
    if q.ndim == 1:
        q = q[None, :]
    _, truth = index_exact.search(q, k=k)
    _, found = index_approx.search(q, k=k)
    hits, total = 0, 0
    for t, f in zip(truth, found, strict=True):
        t = t[t >= 0]
        hits += len(np.intersect1d(t, f[f >= 0]))
        total += len(t)
    return hits / total if total else 1.0
