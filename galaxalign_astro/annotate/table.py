"""Adding morphology columns to an astropy table in memory.

`annotate` is the one Table-in, Table-out function: it returns a new table with the
model's columns appended and leaves its input unchanged, or, with ``inplace=True``,
appends them to the input table itself and returns it. Cutouts come from a column
of file paths (``path_col``), a directory (``cutouts_dir``), a survey (``fetch``, at
each row's position: RA/Dec columns, a `~astropy.coordinates.SkyCoord` column or
``coords=``), or images in memory (``images``): see `~galaxalign_astro.annotate.CutoutSpec`.
"""

from __future__ import annotations

import copy
import logging
import os
from functools import partial
from typing import Any

import numpy as np

from . import engine
from .params import AnnotateOptions, CutoutSpec, settings_from_keywords

__all__ = ["annotate"]

log = logging.getLogger(__name__)

#: the keyword arguments annotate takes beside ``source`` and ``options``
_TABLE_KEYWORDS = frozenset(
    (
        "model classes images bands path_col base_dir cutouts_dir id_col pattern fetch "
        "fetch_options fetch_dir ra_col dec_col prefix embeddings chunk_size batch_size "
        "device workers progress"
    ).split()
)


def _row_name(first: int, index: int) -> str:
    return f"row {first + index}"


def annotate(
    table: Any,
    source: CutoutSpec | None = None,
    options: AnnotateOptions | None = None,
    *,
    coords: Any = None,
    inplace: bool = False,
    **keywords: Any,
) -> Any:
    """Return ``table`` with the model's columns appended: a copy, or the table itself.

    By default the input table is not modified: the result is a new table of the
    same class whose columns (mixins included), row order and metadata are those of
    ``table``. With ``inplace=True`` the columns are added to ``table`` itself,
    which is returned. Either way the provenance goes into ``meta['galaxalign']``.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The catalog, in memory.
    source : `~galaxalign_astro.annotate.CutoutSpec`, optional
        Where the cutouts come from (or give its fields as keywords, below).
    options : `~galaxalign_astro.annotate.AnnotateOptions`, optional
        The model and the added columns (or give its fields as keywords, below).
    coords : `~astropy.coordinates.SkyCoord`, optional
        The position of each row, for fetching cutouts and the separation column,
        instead of RA/Dec columns. A `~astropy.coordinates.SkyCoord` column of
        ``table`` works too: named by ``ra_col``, or found when no RA/Dec columns
        are.
    inplace : bool, optional
        Add the columns to ``table`` itself instead of to a copy.
    **keywords
        Fields of ``source`` and ``options``, as for
        `~galaxalign_astro.annotate.annotate_file`: ``model``, ``classes``,
        ``path_col``, ``base_dir``, ``cutouts_dir``, ``id_col``, ``pattern``,
        ``fetch``, ``fetch_options``, ``fetch_dir`` (fetched files go to a temporary
        directory unless it is given), ``ra_col``, ``dec_col``, ``prefix``,
        ``embeddings``, ``chunk_size``, ``batch_size``, ``device``, ``workers``,
        ``progress``; and ``images``, cutouts in memory (the name of a column of
        image arrays, or an array of shape (n_rows, bands, H, W), or a sequence of
        (bands, H, W) arrays, of fluxes with band names ``bands``). Give exactly one
        of ``images``, ``path_col``, ``cutouts_dir`` and ``fetch``.

    Returns
    -------
    `~astropy.table.Table`
        The same class as ``table`` (``table`` itself with ``inplace=True``).
        Failed rows have ``status='error'``, the reason in ``message``, NaN floats
        and ``class_id=-1``; integer source measurements of failed rows are masked.
        A warning is logged when rows fail.

    Raises
    ------
    TypeError
        ``table`` is not an astropy table, ``images`` holds file paths (use
        ``path_col``), ``coords`` is not a SkyCoord, or an unknown keyword.
    ValueError
        Not exactly one source of cutouts, an option out of range, a missing column,
        or a column the model would add is already in ``table``.

    Examples
    --------
    >>> from astropy.table import Table
    >>> from galaxalign_astro.annotate import annotate
    >>> cat = Table.read("catalogs/bright_galaxies.ecsv")  # doctest: +SKIP
    >>> out = annotate(cat, fetch="legacysurvey")  # doctest: +SKIP
    >>> out["name", "gxa_class_name", "gxa_class_prob"]  # doctest: +SKIP
    """
    import tempfile

    from astropy.table import Column, MaskedColumn, Table

    from ..inference.dataset import ArrayCutouts

    if not isinstance(table, Table):
        hint = (
            "; for a catalog file use annotate_file(path, output, ...)"
            if isinstance(table, str | os.PathLike)
            else "; convert it first, e.g. astropy.table.Table.from_pandas(df)"
        )
        msg = f"annotate takes an astropy Table, not {type(table).__name__}{hint}"
        raise TypeError(msg)
    if not isinstance(inplace, bool):
        msg = f"annotate: inplace must be True or False, not {inplace!r}"
        raise TypeError(msg)
    spec, opts = settings_from_keywords(
        "annotate", source, options, keywords, allowed=_TABLE_KEYWORDS
    )
    images = spec.images
    _check_images(table, images)
    positions, opts = _positions(table, opts, coords)
    predictor = engine.predictor_for(opts.model, opts.device, opts.classes)
    found = engine.coord_columns(
        positions, opts.ra_col, opts.dec_col, required=spec.fetch is not None
    )
    with tempfile.TemporaryDirectory(prefix="galaxalign-annotate-") as tmp:
        cutouts = engine.cutout_source(
            spec.replace(fetch_dir=spec.fetch_dir or tmp) if spec.fetch is not None else spec,
            coords=found,
            preprocess=predictor.config,
        )
        if cutouts is not None:
            cutouts.check(positions)
        workers = opts.workers
        if spec.fetch is not None and workers is None:
            workers = 0
        annotator = engine.Annotator(
            predictor,
            prefix=opts.prefix,
            embeddings=opts.embeddings,
            batch_size=opts.batch_size,
            workers=workers,
        )
        clash = [spec.name for spec in annotator.columns if spec.name in table.colnames]
        if clash:
            msg = f"table already has column(s) {', '.join(clash)}; choose another prefix"
            raise ValueError(msg)
        arrays = None
        if images is not None:
            arrays = table[images] if isinstance(images, str) else images
            if len(arrays) != len(table):
                msg = f"{len(arrays)} images for {len(table)} rows"
                raise ValueError(msg)

        parts = []
        chunk_size = opts.chunk_size
        with engine.progress_bar(len(table), 0, opts.progress) as bar:
            for start in range(0, len(table), chunk_size):
                block = positions[start : start + chunk_size]
                radec = engine.catalog_radec(block, found)
                if arrays is None:
                    assert cutouts is not None
                    paths, errors = cutouts.resolve(block, start)
                    parts.append(annotator.block(paths, errors, radec, bar))
                    continue
                out = annotator.blank(len(block), [""] * len(block))
                dataset = ArrayCutouts(
                    arrays[start : start + chunk_size],
                    predictor.config,
                    bands=tuple(spec.bands) if spec.bands is not None else None,
                    names=partial(_row_name, start),
                    measurements=annotator.n_bands is not None,
                )
                annotator.fill(dataset, np.arange(len(block)), out, radec, bar)
                parts.append(out)

    if inplace:
        result = table
    else:
        result = table.__class__(table, copy=False)
        result.meta = copy.deepcopy(table.meta)
    for key, column_spec in annotator.specs.items():
        if parts:
            values = np.concatenate([p[key] for p in parts])
        else:
            values = np.zeros((0, *column_spec.shape), dtype=column_spec.numpy_dtype)
        null = column_spec.null
        if column_spec.dtype[0] in "iu" and key != "class_id" and (values == null).any():
            col = MaskedColumn(values, mask=values == null, fill_value=null)
        else:
            col = Column(values)
        col.unit = column_spec.unit
        col.description = column_spec.description
        result[column_spec.name] = col
    settings = {
        **(cutouts.settings() if cutouts is not None else {"images": True}),
        "ra_col": found[0] if found else None,
        "dec_col": found[1] if found else None,
        "prefix": opts.prefix,
        "embeddings": opts.embeddings,
    }
    result.meta["galaxalign"] = annotator.provenance(settings).record()
    prefix = opts.prefix
    status = np.asarray(result[prefix + "status"])
    failed = np.flatnonzero(status != "ok")
    if len(failed):
        first = str(result[prefix + "message"][failed[0]])
        log.warning(
            "annotate: %d of %d rows failed (status=error in %sstatus); row %d: %s",
            len(failed),
            len(result),
            prefix,
            failed[0],
            first,
        )
    return result


def _positions(table: Any, opts: AnnotateOptions, coords: Any) -> tuple[Any, AnnotateOptions]:
    """``table`` (or a shallow copy with RA/Dec columns from a SkyCoord), and the options.

    A SkyCoord, given as ``coords`` or as a column of ``table``, becomes two float
    columns in degrees (ICRS), ``<name>.ra`` and ``<name>.dec``, of a shallow copy
    of ``table`` that only the cutout source and the separation read.
    """
    from astropy.coordinates import SkyCoord

    if coords is None:
        ra_col, dec_col = opts.ra_col, opts.dec_col
        sky = [n for n in table.colnames if isinstance(table[n], SkyCoord)]
        if ra_col is not None and ra_col in sky:
            if dec_col is not None:
                msg = f"annotate: column {ra_col!r} is a SkyCoord; give no dec_col with it"
                raise ValueError(msg)
            name = ra_col
        elif ra_col is None and dec_col is None and sky and not _has_radec(table):
            name = sky[0]
        else:
            return table, opts
        coords = table[name]
    else:
        if not isinstance(coords, SkyCoord):
            msg = f"annotate: coords must be an astropy SkyCoord, not {type(coords).__name__}"
            raise TypeError(msg)
        if opts.ra_col is not None or opts.dec_col is not None:
            msg = "annotate: give coords or ra_col/dec_col, not both"
            raise ValueError(msg)
        if coords.isscalar or len(coords) != len(table):
            n = 1 if coords.isscalar else len(coords)
            msg = f"annotate: coords holds {n} positions for {len(table)} rows"
            raise ValueError(msg)
        name = "coords"
    icrs = coords.icrs
    ra_col, dec_col = f"{name}.ra", f"{name}.dec"
    for column in (ra_col, dec_col):
        if column in table.colnames:
            msg = f"annotate: table already has a column {column!r}"
            raise ValueError(msg)
    positions = table.__class__(table, copy=False)
    positions[ra_col] = np.asarray(icrs.ra.deg, dtype=np.float64)
    positions[dec_col] = np.asarray(icrs.dec.deg, dtype=np.float64)
    return positions, opts.replace(ra_col=ra_col, dec_col=dec_col)


def _has_radec(table: Any) -> bool:
    from ..fetch import find_coord_columns

    try:
        find_coord_columns(table)
    except ValueError:
        return False
    return True


def _check_images(table: Any, images: Any) -> None:
    """``images=`` holds image arrays; file paths there are a ``TypeError`` naming ``path_col``."""
    if images is None:
        return
    if isinstance(images, str):
        if images not in table.colnames:
            msg = f"table has no column {images!r} of images"
            raise ValueError(msg)
        column = table[images]
        paths = column.dtype.kind in "US" or (
            column.dtype == object and len(column) and isinstance(column[0], str | os.PathLike)
        )
    else:
        first = next(iter(images), None) if not isinstance(images, np.ndarray) else None
        paths = (isinstance(images, np.ndarray) and images.dtype.kind in "US") or isinstance(
            first, str | os.PathLike
        )
    if paths:
        name = images if isinstance(images, str) else "..."
        msg = (
            f"images= takes image arrays (bands, H, W), not file paths; for a column of cutout "
            f"files use path_col={name!r}"
        )
        raise TypeError(msg)
