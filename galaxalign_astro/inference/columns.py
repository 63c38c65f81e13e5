"""The output column schema of ``classify`` and of the columns added to user catalogs.

This module owns the names, types, units and descriptions; the docs' column
reference is generated from it (``docs/columns.md``).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..catalog import ColumnSpec

__all__ = ["MESSAGE_WIDTH", "fit_message", "input_columns", "model_columns", "output_columns"]

#: characters kept of an error message in catalogs
MESSAGE_WIDTH = 240
#: characters kept of a long message's start (the file or URL) by `fit_message`
_MESSAGE_HEAD = 80


def fit_message(text: str, width: int = MESSAGE_WIDTH) -> str:
    """``text`` within ``width`` characters, keeping its start and its end.

    A message starts with what failed (file, URL) and ends with the root cause
    (the last error of a chain); a long one loses its middle, marked ``...``.
    """
    if len(text) <= width:
        return text
    head = min(_MESSAGE_HEAD, width // 3)
    return f"{text[:head]} ... {text[len(text) - (width - head - 5) :]}"


def input_columns(*, path_width: int) -> list[ColumnSpec]:
    """Columns describing each input cutout."""
    return [
        ColumnSpec("source", "U", width=max(1, path_width), description="Input cutout file"),
        ColumnSpec(
            "ra", "f8", unit="deg", description="Right ascension of the cutout centre (WCS)"
        ),
        ColumnSpec("dec", "f8", unit="deg", description="Declination of the cutout centre (WCS)"),
    ]


def model_columns(
    class_names: Sequence[str], *, embed_dim: int, embeddings: bool = True, prefix: str = ""
) -> list[ColumnSpec]:
    """Columns the model adds: class, probabilities, embedding, status."""
    width = max(len(n) for n in class_names)
    order = "; ".join(f"{i}={n}" for i, n in enumerate(class_names))
    cols = [
        ColumnSpec(
            f"{prefix}class_id",
            "i2",
            null=-1,
            description="Most probable morphology class index (-1 when failed)",
        ),
        ColumnSpec(f"{prefix}class_name", "U", width=width, description="Most probable class"),
        ColumnSpec(
            f"{prefix}class_prob", "f4", description="Probability of the most probable class"
        ),
        ColumnSpec(
            f"{prefix}probs",
            "f4",
            shape=(len(class_names),),
            description=f"Class probabilities in class order ({order})",
        ),
    ]
    if embeddings:
        cols.append(
            ColumnSpec(
                f"{prefix}embedding",
                "f4",
                shape=(embed_dim,),
                description="L2-normalised image embedding (GalaxAlign image tower)",
            )
        )
    cols += [
        ColumnSpec(f"{prefix}status", "U", width=5, description="ok, or error when the row failed"),
        ColumnSpec(
            f"{prefix}message",
            "U",
            width=MESSAGE_WIDTH,
            description="Why the row failed (empty when ok)",
        ),
    ]
    return cols


def output_columns(
    class_names: Sequence[str], *, embed_dim: int, embeddings: bool, path_width: int
) -> list[ColumnSpec]:
    """Every column of a ``classify`` output catalog, in order."""
    return input_columns(path_width=path_width) + model_columns(
        class_names, embed_dim=embed_dim, embeddings=embeddings
    )
