"""An LSDB plugin: morphology columns for every partition of a HATS catalog.

`annotate_partition` is a function for LSDB's ``Catalog.map_partitions``: it gets one
partition (a pandas/nested-pandas frame of rows in one HEALPix pixel) and returns it
with the model's columns appended, computed with `~galaxalign_astro.annotate.annotate`
(so the values are those of a single-process ``annotate`` of the same rows).
`annotation_meta` gives the empty frame LSDB needs as ``meta=``, so LSDB never calls
the function on an empty frame to guess the output::

    import lsdb
    from galaxalign_astro.scale import annotate_partition, annotation_meta

    catalog = lsdb.open_catalog("gals_hats")
    annotated = catalog.map_partitions(
        annotate_partition,
        include_pixel=True,
        meta=annotation_meta(catalog.meta, model="default"),
        model="default",
        path_col="cutout_file",
    )
    annotated.write_catalog("gals_gxa_hats")

The cutouts of a partition come from a column of image arrays (``images=``), a
column of file paths (``path_col=``), a directory of files named from an ID column
(``cutouts_dir=``), or a survey queried on the fly (``fetch=``). The model is loaded
once per worker process (`~galaxalign_astro.scale.worker_predictor`), not per
partition. Added columns are Arrow-typed: vectors (``probs``, ``embedding``, per-band
measurements) are fixed-size lists; integer measurements of failed rows are null.
"""

from __future__ import annotations

import logging
import string
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..annotate import AnnotateOptions, CutoutSpec
from ..annotate.columns import DEFAULT_PREFIX
from ..annotate.params import settings_from_keywords
from ..errors import CutoutError

__all__ = ["annotate_partition", "annotation_meta", "annotation_specs"]

log = logging.getLogger(__name__)

#: the keyword arguments annotate_partition takes beside ``source`` and ``options``
_PARTITION_KEYWORDS = frozenset(
    (
        "model images bands path_col base_dir cutouts_dir id_col pattern fetch fetch_options "
        "fetch_dir ra_col dec_col prefix embeddings batch_size device classes"
    ).split()
)


def annotation_specs(
    model: Any = "default",
    *,
    prefix: str = DEFAULT_PREFIX,
    embeddings: bool = True,
    device: str = "cpu",
    classes: Any = None,
) -> list[Any]:
    """The `~galaxalign_astro.catalog.ColumnSpec` of each column a partition gains.

    Loads the model once in this process (see
    `~galaxalign_astro.scale.worker_predictor`).
    """
    from ..annotate.columns import annotation_columns
    from .workers import worker_predictor

    predictor = worker_predictor(model, device=device, classes=classes)
    config = predictor.config
    return annotation_columns(
        predictor.class_names,
        embed_dim=predictor.embed_dim,
        embeddings=embeddings,
        n_bands=len(config.bands) if config.sources is not None else None,
        prefix=prefix,
    )


def _arrow_type(spec: Any) -> Any:
    import pyarrow as pa

    kind = pa.string() if spec.dtype == "U" else pa.from_numpy_dtype(spec.numpy_dtype)
    for n in reversed(spec.shape):
        kind = pa.list_(kind, n)
    return kind


def _arrow_array(values: Any, spec: Any) -> Any:
    """One added column as an Arrow array (masked entries become nulls)."""
    import pyarrow as pa

    data = np.ma.getdata(values)
    mask = cast(np.ndarray, np.ma.getmaskarray(values).reshape(len(data), -1).any(axis=1))
    if spec.dtype == "U":
        return pa.array([str(v) for v in data], type=pa.string(), mask=mask)
    flat = pa.array(np.ascontiguousarray(data, dtype=spec.numpy_dtype).reshape(-1))
    for n in reversed(spec.shape):
        flat = pa.FixedSizeListArray.from_arrays(flat, n)
    if mask.any():
        # rebuild with a validity bitmap (FixedSizeListArray.from_arrays has no mask)
        flat = pa.array(
            [None if m else v for v, m in zip(flat.to_pylist(), mask.tolist(), strict=True)],
            type=_arrow_type(spec),
        )
    return flat


def annotation_meta(
    meta: Any,
    *,
    model: Any = "default",
    prefix: str = DEFAULT_PREFIX,
    embeddings: bool = True,
    device: str = "cpu",
    classes: Any = None,
) -> Any:
    """The empty output frame of `annotate_partition`: ``meta`` plus the added columns.

    Parameters
    ----------
    meta : `pandas.DataFrame`
        The input catalog's empty frame (``catalog.meta`` in LSDB).
    model, prefix, embeddings, device, classes :
        As for `annotate_partition`.

    Returns
    -------
    `pandas.DataFrame`
        The same class as ``meta``, with the added columns as Arrow-typed columns.

    Raises
    ------
    ValueError
        ``meta`` already has a column of an added name.
    """
    import pandas as pd

    specs = annotation_specs(
        model, prefix=prefix, embeddings=embeddings, device=device, classes=classes
    )
    _check_clash(meta.columns, specs)
    out = meta.copy()
    for spec in specs:
        out[spec.name] = pd.Series(
            pd.array([], dtype=pd.ArrowDtype(_arrow_type(spec))), index=meta.index
        )
    return out


def _check_clash(columns: Sequence[str], specs: Sequence[Any]) -> None:
    clash = [spec.name for spec in specs if spec.name in set(columns)]
    if clash:
        msg = f"catalog already has column(s) {', '.join(clash)}; choose another prefix"
        raise ValueError(msg)


def _astropy_column(series: Any) -> Any:
    """A pandas column as an astropy column (missing values masked)."""
    import pandas as pd
    from astropy.table import MaskedColumn

    missing = np.asarray(series.isna(), dtype=bool)
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        data = series.to_numpy(dtype=bool, na_value=False)
    elif pd.api.types.is_integer_dtype(dtype):
        data = series.to_numpy(dtype=np.int64, na_value=0)
    elif pd.api.types.is_float_dtype(dtype):
        data = series.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        cells = series.to_numpy(dtype=object, na_value=None)
        data = np.array(["" if v is None else str(v) for v in cells], dtype=str)
    return MaskedColumn(data, mask=missing) if missing.any() else data


def _images(series: Any, shape: Sequence[int] | None) -> Any:
    """The cells of a column of image arrays: an (n, ...) array, or a list of arrays.

    Arrow list columns of one shape are unpacked without Python loops (ours: a
    256x256x3 cutout is 200 000 numbers); other columns cell by cell. ``shape``
    reshapes flat cells, e.g. ``(3, 64, 64)``.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(series)
    try:
        arr = pa.array(series)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        arr = None
    if arr is not None and arr.null_count == 0:
        dims = [n]
        while (
            pa.types.is_list(arr.type)
            or pa.types.is_large_list(arr.type)
            or (pa.types.is_fixed_size_list(arr.type))
        ):
            lengths = pc.unique(pc.list_value_length(arr)) if len(arr) else pa.array([0])
            if len(lengths) != 1 or arr.null_count:
                break
            dims.append(int(lengths[0].as_py()))
            arr = arr.flatten()
        else:
            if pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type):
                stack = arr.to_numpy(zero_copy_only=False).reshape(dims)
                return stack.reshape(n, *shape) if shape is not None else stack
    cells = series.to_numpy(dtype=object, na_value=None)
    out: list[np.ndarray | None] = []
    for cell in cells:
        if cell is None:
            out.append(None)
            continue
        image = np.asarray(_nested(cell), dtype=np.float32)
        out.append(image.reshape(shape) if shape is not None else image)
    return out


def _nested(cell: Any) -> Any:
    """Nested object arrays (pandas' view of list columns) as nested lists."""
    if isinstance(cell, np.ndarray) and cell.dtype == object:
        return [_nested(c) for c in cell]
    return cell


class _Images(Sequence):
    """Image cells for `~galaxalign_astro.inference.dataset.ArrayCutouts`; None: no image."""

    def __init__(self, cells: Any) -> None:
        self.cells = cells

    def __len__(self) -> int:
        return len(self.cells)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return _Images(self.cells[index])
        cell = self.cells[index]
        if cell is None:  # read inside the dataset, which makes this a failed row
            msg = "no image (empty cell)"
            raise CutoutError(msg)
        return cell


def _pixel_dir(pixel: Any) -> str:
    if pixel is None:
        return "unknown-pixel"
    return f"Norder={int(pixel.order)}/Npix={int(pixel.pixel)}"


def annotate_partition(
    partition: Any,
    pixel: Any = None,
    source: CutoutSpec | None = None,
    options: AnnotateOptions | None = None,
    *,
    image_shape: Sequence[int] | None = None,
    weights_sha256: str | None = None,
    **keywords: Any,
) -> Any:
    """Return one catalog partition with the model's columns appended.

    For ``catalog.map_partitions(annotate_partition, include_pixel=True, meta=...,
    **options)`` in LSDB; it also works on any pandas DataFrame. The rows, their
    order, the index (``_healpix_29``) and every input column are kept.

    Parameters
    ----------
    partition : `pandas.DataFrame`
        The rows of one partition.
    pixel : `hats.pixel_math.HealpixPixel`, optional
        The partition's pixel (LSDB passes it with ``include_pixel=True``); fetched
        cutouts of the partition go to ``fetch_dir/Norder=K/Npix=N``.
    source : `~galaxalign_astro.annotate.CutoutSpec`
        Where the cutouts come from (``images`` is then a column name).
    options : `~galaxalign_astro.annotate.AnnotateOptions`, optional
        The model and the added columns; of them, this uses ``model``,
        ``classes``, ``ra_col``, ``dec_col``, ``prefix``, ``embeddings``,
        ``batch_size`` and ``device``.
    image_shape : sequence of int, optional
        Shape of one image when ``images`` holds flat lists.
    weights_sha256 : str, optional
        Expected weights checksum; a worker that loads other weights fails.
    **keywords
        The fields of ``source`` and ``options`` as keyword arguments, as this
        function took them before (they build the two values, or replace those
        fields of the values given):
    model : str or path-like
        Bundled model name or model directory (on a cluster: a directory every
        worker sees). Each worker process loads it once.
    images : str, optional
        Column of image arrays (bands, H, W) in fluxes: Arrow nested lists, or flat
        lists with ``image_shape``; ``bands`` names their bands.
    bands : str or sequence of str, optional
        Band names of the ``images`` planes.
    path_col, base_dir, cutouts_dir, id_col, pattern, fetch, fetch_options :
        Where the cutouts come from, as for `~galaxalign_astro.annotate.annotate`;
        give exactly one of ``images``, ``path_col``, ``cutouts_dir`` and ``fetch``
        (a survey name). In ``pattern`` only ``{id}`` is allowed: a row number means
        nothing in a partitioned catalog.
    fetch_dir : path-like, optional
        Keep fetched cutouts here (per pixel); default a temporary directory per
        partition.
    ra_col, dec_col : str, optional
        Coordinate columns (LSDB's ``catalog.hc_structure.catalog_info.ra_column``).
    prefix, embeddings, batch_size, device :
        As for `~galaxalign_astro.annotate.annotate`.
    classes : `~galaxalign_astro.inference.zeroshot.ClassHead`, optional
        Zero-shot classes instead of the model's own (a class file path works too,
        when every worker can read it and its drawings).

    Returns
    -------
    `pandas.DataFrame`
        The same class and index as ``partition``.
    """
    import pandas as pd
    from astropy.table import Table

    from ..annotate import annotate
    from .workers import worker_predictor

    spec, opts = settings_from_keywords(
        "annotate_partition", source, options, keywords, allowed=_PARTITION_KEYWORDS
    )
    fields = {f for _, f, _, _ in string.Formatter().parse(spec.pattern) if f is not None}
    if spec.cutouts_dir is not None and "row" in fields:
        msg = (
            f"cutout file pattern {spec.pattern!r}: {{row}} is not available in a "
            "partitioned catalog"
        )
        raise ValueError(msg)
    predictor = worker_predictor(
        opts.model, device=opts.device, weights_sha256=weights_sha256, classes=opts.classes
    )
    specs = annotation_specs(
        predictor, prefix=opts.prefix, embeddings=opts.embeddings, device=opts.device
    )
    _check_clash(partition.columns, specs)
    needed = [spec.path_col, spec.id_col, opts.ra_col, opts.dec_col]
    table = Table()
    for name in dict.fromkeys(n for n in needed if n is not None):
        if name not in partition.columns:
            msg = f"catalog has no column {name!r}"
            raise ValueError(msg)
        table[name] = _astropy_column(partition[name])
    if not len(table.colnames):
        table["_row"] = np.arange(len(partition))  # a table needs a column to have rows
    arrays = None
    if spec.images is not None:
        if spec.images not in partition.columns:
            msg = f"catalog has no column {spec.images!r} of images"
            raise ValueError(msg)
        arrays = _Images(_images(partition[spec.images], image_shape))
    with tempfile.TemporaryDirectory(prefix="galaxalign-partition-") as tmp:
        where = Path(spec.fetch_dir) / _pixel_dir(pixel) if spec.fetch_dir is not None else None
        result = annotate(
            table,
            spec.replace(
                images=arrays, fetch_dir=(where or Path(tmp)) if spec.fetch is not None else None
            ),
            AnnotateOptions(
                model=predictor,
                ra_col=opts.ra_col,
                dec_col=opts.dec_col,
                prefix=opts.prefix,
                embeddings=opts.embeddings,
                batch_size=opts.batch_size,
                device=opts.device,
                workers=0,  # Dask workers are the parallelism; their processes may not fork
            ),
        )
    out = partition.copy()
    for spec in specs:
        out[spec.name] = pd.Series(
            pd.arrays.ArrowExtensionArray(_arrow_array(result[spec.name], spec)),
            index=partition.index,
        )
    return out
