"""Annotating user catalogs: every row keeps its columns and gains the model's columns.

`annotate` adds the columns to an astropy table in memory; `annotate_file` streams a
catalog file of any size chunk by chunk, is resumable after a crash, and writes any
catalog format (see ``docs/annotate.md``). `run_recipe` runs a declared end-to-end
job from ``pipelines/`` (fetch, preprocess, classify, write).
"""

from __future__ import annotations

from .columns import (
    DEFAULT_PREFIX,
    annotation_columns,
    annotation_reference_markdown,
    measurement_columns,
)
from .cutouts import CutoutsDirectory, CutoutSource, FetchedCutouts, PathColumn, fetch_geometry
from .hdf5 import ColumnsHdf5Writer, write_embeddings_hdf5
from .reader import CatalogReader, InputSchema, open_catalog
from .recipe import load_recipe, run_recipe
from .run import DEFAULT_CHUNK_SIZE, AnnotateSummary, annotate, annotate_file
from .workdir import WorkDir

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_PREFIX",
    "AnnotateSummary",
    "CatalogReader",
    "ColumnsHdf5Writer",
    "CutoutSource",
    "CutoutsDirectory",
    "FetchedCutouts",
    "InputSchema",
    "PathColumn",
    "WorkDir",
    "annotate",
    "annotate_file",
    "annotation_columns",
    "annotation_reference_markdown",
    "fetch_geometry",
    "load_recipe",
    "measurement_columns",
    "open_catalog",
    "run_recipe",
    "write_embeddings_hdf5",
]
