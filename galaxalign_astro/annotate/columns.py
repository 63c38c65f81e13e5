"""The columns ``annotate`` adds to a catalog: names, types, units and descriptions.

The model columns are those of ``classify``
(:func:`galaxalign_astro.inference.columns.model_columns`), with a prefix; ``annotate``
adds the separation between the catalog position and the cutout centre and, for
models whose preprocessing runs the photutils source steps, the source measurements
(:data:`galaxalign_astro.preprocess.sources.MEASUREMENT_COLUMNS`).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..catalog import ColumnSpec, column_reference_markdown
from ..inference.columns import model_columns

__all__ = [
    "DEFAULT_PREFIX",
    "annotation_columns",
    "annotation_reference_markdown",
    "measurement_columns",
]

#: prefix of the added column names (ours: short, and unlikely in survey catalogs)
DEFAULT_PREFIX = "gxa_"

_DTYPES = {"float32": "f4", "float64": "f8", "int16": "i2", "int32": "i4", "int64": "i8"}


def measurement_columns(*, n_bands: int, prefix: str = DEFAULT_PREFIX) -> list[ColumnSpec]:
    """Columns of the photutils source measurements, in their documented order.

    Per-band values are vectors of ``n_bands`` elements in the model's band order.
    Fluxes are in the cutout's own unit (nanomaggies for Legacy Survey cutouts), so
    those columns carry no unit.
    """
    from ..preprocess.sources import MEASUREMENT_COLUMNS

    specs = []
    for column in MEASUREMENT_COLUMNS:
        length = n_bands if column.length == 0 else column.length
        unit: str | None = column.unit or None
        description = column.description
        if unit == "flux":
            unit = None
            description += " (in the cutout's flux unit)"
        specs.append(
            ColumnSpec(
                f"{prefix}{column.name}",
                _DTYPES[column.dtype],
                shape=(length,) if length != 1 else (),
                unit=unit,
                description=f"Source step: {description}",
            )
        )
    return specs


def annotation_columns(
    class_names: Sequence[str],
    *,
    embed_dim: int,
    embeddings: bool = True,
    n_bands: int | None = None,
    prefix: str = DEFAULT_PREFIX,
) -> list[ColumnSpec]:
    """Every column ``annotate`` appends after the input columns, in order.

    Parameters
    ----------
    class_names : sequence of str
        The model's classes, in index order.
    embed_dim : int
        Length of the image embedding.
    embeddings : bool, optional
        Include the embedding column.
    n_bands : int or None, optional
        Number of model bands when the model runs the photutils source steps (its
        measurements become columns); `None` for models without them.
    prefix : str, optional
        Prepended to every added name.

    Returns
    -------
    list of `~galaxalign_astro.catalog.ColumnSpec`
        ``class_id``, ``class_name``, ``class_prob``, ``probs``, ``embedding``, ``sep``,
        the measurements, ``status``, ``message`` (each with ``prefix``).
    """
    cols = model_columns(class_names, embed_dim=embed_dim, embeddings=embeddings, prefix=prefix)
    *head, status, message = cols
    extra = [
        ColumnSpec(
            f"{prefix}sep",
            "f4",
            unit="arcsec",
            description=(
                "Separation between the catalog position and the cutout centre "
                "(NaN without RA/Dec columns or a cutout WCS)"
            ),
        )
    ]
    if n_bands is not None:
        extra += measurement_columns(n_bands=n_bands, prefix=prefix)
    return [*head, *extra, status, message]


def annotation_reference_markdown(
    class_names: Sequence[str],
    *,
    embed_dim: int,
    n_bands: int | None = None,
    prefix: str = DEFAULT_PREFIX,
) -> str:
    """Markdown table of the added columns (for the documentation)."""
    return column_reference_markdown(
        annotation_columns(class_names, embed_dim=embed_dim, n_bands=n_bands, prefix=prefix)
    )
