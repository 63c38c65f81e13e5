"""A 2-D map of a catalog's embeddings, coloured by class, with a few thumbnails.

The projection is UMAP when ``umap-learn`` is installed and PCA otherwise (the
two leading principal components, from a numpy SVD of the centred embeddings);
the title says which was used. Large catalogs are subsampled to ``max_points``
rows (uniformly at random, ours) while the embedding column is read in chunks.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .build import EMBEDDING_COL, open_catalog_columns, valid_embedding_rows
from .montage import load_thumbnail, save_figure, warn_missing_cutouts

__all__ = ["MAP_METHODS", "embedding_map", "project_embeddings"]

log = logging.getLogger(__name__)

#: projection methods; "auto" is UMAP when importable, else PCA
MAP_METHODS = ("auto", "umap", "pca")


def _umap_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("umap") is not None


def _import_umap() -> Any:
    # umap-learn warns at import that its optional TensorFlow part is unavailable;
    # that part is not used here
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImportWarning)
        import umap
    return umap


def project_embeddings(
    embeddings: Any, *, method: str = "auto", seed: int = 0
) -> tuple[np.ndarray, str]:
    """Project (n, d) embeddings to 2-D.

    Parameters
    ----------
    embeddings : array_like, shape (n, d)
        Embeddings (L2-normalised here, as the search compares them).
    method : {"auto", "umap", "pca"}
        ``"auto"`` uses UMAP (cosine metric) when ``umap-learn`` is installed, else PCA.
    seed : int
        Random state of UMAP.

    Returns
    -------
    coords : ndarray, shape (n, 2)
    description : str
        The method used, e.g. ``"UMAP (cosine)"`` or ``"PCA (PC1+PC2: 41% of variance)"``.
    """
    if method not in MAP_METHODS:
        msg = f"method must be one of {MAP_METHODS}, got {method!r}"
        raise ValueError(msg)
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or len(x) < 3:
        msg = f"need at least 3 embeddings of shape (n, d) to draw a map, got {x.shape}"
        raise ValueError(msg)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    if method == "umap" or (method == "auto" and _umap_available()):
        if not _umap_available():
            msg = "method 'umap' needs the umap-learn package (pip install umap-learn)"
            raise ValueError(msg)
        umap = _import_umap()
        reducer = umap.UMAP(
            n_components=2,
            metric="cosine",
            random_state=seed,  # reproducible maps; UMAP then runs on one thread
            n_jobs=1,
            n_neighbors=min(15, len(x) - 1),
        )
        return np.asarray(reducer.fit_transform(x)), "UMAP (cosine)"
    centred = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    coords = centred @ vt[:2].T
    var = s**2
    share = var[:2].sum() / var.sum() if var.sum() > 0 else 0.0
    return coords, f"PCA (PC1+PC2: {100 * share:.0f}% of variance)"


def _read_sample(
    cols: Any, name: str, max_points: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Valid embeddings of at most ``max_points`` random rows, and the row numbers."""
    keep_p = min(1.0, 1.5 * max_points / max(cols.n_rows, 1))
    rows, blocks = [], []
    for start, block in cols.iter_column(name):
        if block.ndim != 2:
            msg = f"column {name!r} of {cols.path} is not a vector column (shape {block.shape})"
            raise ValueError(msg)
        ok = valid_embedding_rows(block)
        if keep_p < 1.0:
            ok &= rng.random(len(block)) < keep_p
        idx = np.flatnonzero(ok)
        rows.append(start + idx)
        blocks.append(np.asarray(block[idx], dtype=np.float32))
    all_rows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    emb = np.concatenate(blocks) if blocks else np.zeros((0, 0), np.float32)
    if len(all_rows) > max_points:
        pick = np.sort(rng.choice(len(all_rows), size=max_points, replace=False))
        all_rows, emb = all_rows[pick], emb[pick]
    return emb, all_rows


def _spread_points(coords: np.ndarray, candidates: np.ndarray) -> list[int]:
    """Order ``candidates`` (indices into coords) by farthest-point sampling from the centre."""
    if not len(candidates):
        return []
    pts = coords[candidates]
    span = np.ptp(pts, axis=0)
    pts = pts / np.where(span > 0, span, 1.0)
    order = [int(np.argmin(np.linalg.norm(pts - pts.mean(axis=0), axis=1)))]
    dist = np.linalg.norm(pts - pts[order[0]], axis=1)
    for _ in range(min(len(pts), 200) - 1):
        nxt = int(np.argmax(dist))
        if dist[nxt] <= 0:
            break
        order.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(pts - pts[nxt], axis=1))
    return [int(candidates[i]) for i in order]


def embedding_map(
    catalog: Any,
    output: str | os.PathLike[str],
    *,
    embedding_col: str = EMBEDDING_COL,
    class_col: str | None = None,
    source_col: str | None = None,
    method: str = "auto",
    n_thumbnails: int = 12,
    max_points: int = 20000,
    preprocess: Any = None,
    seed: int = 0,
    title: str | None = None,
    size_px: tuple[int, int] = (1100, 800),
    overwrite: bool = False,
    base_dirs: Sequence[str | os.PathLike[str]] = (),
) -> Path:
    """Draw a 2-D map of a catalog's embeddings to an image file.

    Parameters
    ----------
    catalog : str, path-like or `~astropy.table.Table`
        A catalog with an embedding column (``classify`` / ``annotate`` output).
    output : str or path-like
        Image file (PNG; format from the suffix).
    embedding_col : str
        The (n, d) embedding column.
    class_col : str, optional
        Column coloured by; default ``<prefix>class_name`` when present (prefix of
        the embedding column, e.g. ``gxa_``).
    source_col : str, optional
        Cutout paths for the thumbnails; default ``source`` when present.
    method : {"auto", "umap", "pca"}
        Projection; see `project_embeddings`.
    n_thumbnails : int
        Cutouts drawn at their points, chosen spread over the map (farthest-point
        sampling, ours); 0 for none.
    max_points : int
        Rows drawn at most (a uniform random subsample above it).
    preprocess : `~galaxalign_astro.preprocess.PreprocessConfig` or dict, optional
        Preprocessing of the thumbnails; default the one the catalog's provenance
        records (the model's), else the package default.
    seed : int
        Subsampling and UMAP seed.
    title : str, optional
        Title; default names the catalog, the number of points and the method.
    size_px : (int, int)
        Image width and height in pixels.
    overwrite : bool
        Replace an existing ``output``.
    base_dirs : sequence of path-like
        Folders the catalog's relative cutout paths are tried under, after the
        current folder and before the catalog's own folder.

    Returns
    -------
    `~pathlib.Path`
        The image written.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    rng = np.random.default_rng(seed)
    prefix = embedding_col[: -len(EMBEDDING_COL)] if embedding_col.endswith(EMBEDDING_COL) else ""
    with open_catalog_columns(catalog) as cols:
        cols.require(embedding_col)
        emb, rows = _read_sample(cols, embedding_col, max_points, rng)
        if class_col is None:
            class_col = next(
                (c for c in (prefix + "class_name", "class_name") if c in cols.colnames), None
            )
        if source_col is None:
            source_col = next(
                (c for c in (prefix + "source", "source") if c in cols.colnames), None
            )
        wanted = [c for c in (class_col, source_col) if c is not None]
        extra = cols.read_rows(rows, wanted) if wanted else {}
        prov = cols.provenance
        name = cols.path.name
        own = [cols.path.parent] if cols.path.name != "<table>" else []
        folders = [*base_dirs, *own]
    coords, described = project_embeddings(emb, method=method, seed=seed)
    labels = np.asarray(extra[class_col]).astype(str) if class_col else np.full(len(rows), "")
    present = set(labels.tolist())
    order = [c for c in (prov.class_names or []) if c in present]
    order += sorted(present - set(order))
    cmap = colormaps["tab10" if len(order) <= 10 else "tab20"]
    colour = {c: cmap(i % cmap.N) for i, c in enumerate(order)}

    width, height = size_px
    fig = Figure(figsize=(width / 100, height / 100), dpi=100, facecolor="white")
    ax = fig.add_axes((0.08, 0.07, 0.64, 0.85))
    point = 10 if len(rows) < 2000 else 3
    for cls in order:
        sel = labels == cls
        ax.scatter(
            coords[sel, 0],
            coords[sel, 1],
            s=point,
            color=colour[cls],
            alpha=0.85,
            edgecolors="white",
            linewidths=0.3,
            label=f"{cls or 'no class'} ({int(sel.sum())})",
            zorder=3,
        )
    # room for the thumbnails of the outermost points
    ax.margins(0.12)
    ax.set_xlabel("map x")
    ax.set_ylabel("map y")
    ax.legend(
        loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, markerscale=2, frameon=False
    )
    if title is None:
        title = f"Embeddings of {len(rows)} galaxies in {name}: {described}"
    ax.set_title(title, fontsize=10)

    if n_thumbnails > 0 and source_col is not None:
        config = preprocess if preprocess is not None else prov.preprocess
        sources = np.asarray(extra[source_col]).astype(str)
        placed = missing = 0
        for i in _spread_points(coords, np.flatnonzero(sources != "")):
            if placed >= n_thumbnails:
                break
            thumb = load_thumbnail(sources[i], config, base_dirs=folders)
            if thumb is None:
                missing += 1
                continue
            box = OffsetImage(thumb, zoom=48 / thumb.shape[0], interpolation="bilinear")
            ax.add_artist(
                AnnotationBbox(
                    box,
                    (coords[i, 0], coords[i, 1]),
                    frameon=True,
                    pad=0.15,
                    bboxprops={"edgecolor": colour.get(labels[i], "black"), "linewidth": 2},
                    zorder=2,
                )
            )
            placed += 1
        log.info("placed %d thumbnails", placed)
        warn_missing_cutouts(output, missing, placed + missing, folders)
    log.info("embedding map of %d rows: %s", len(rows), described)
    return save_figure(fig, output, overwrite=overwrite)
