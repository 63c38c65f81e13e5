"""Annotating user catalogs: every row keeps its columns and gains the model's columns.

`annotate` adds the columns to an astropy table in memory (a new table, or the
same one with ``inplace=True``); `annotate_file` streams a catalog file of any size
chunk by chunk, is resumable after a crash, and writes any catalog format (see
``docs/annotate.md``). Both take a `CutoutSpec` (where the cutouts come from) and
`AnnotateOptions` (everything else), or their fields as keyword arguments.
`run_recipe` runs a declared end-to-end job from ``pipelines/`` (fetch, preprocess,
classify, write).
"""

from __future__ import annotations

from .columns import (
    DEFAULT_PREFIX,
    annotation_columns,
    annotation_reference_markdown,
    measurement_columns,
)
from .cutouts import CutoutsDirectory, CutoutSource, FetchedCutouts, PathColumn, fetch_geometry
from .engine import Annotator
from .hdf5 import ColumnsHdf5Writer, write_embeddings_hdf5
from .params import DEFAULT_CHUNK_SIZE, AnnotateOptions, CutoutSpec
from .reader import CatalogReader, InputSchema, open_catalog
from .recipe import load_recipe, run_recipe
from .stream import (
    AnnotateSummary,
    ClusterRunner,
    annotate_file,
    register_cluster_runner,
    registered_cluster_runner,
)
from .table import annotate
from .workdir import WorkDir

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_PREFIX",
    "AnnotateOptions",
    "AnnotateSummary",
    "Annotator",
    "CatalogReader",
    "ClusterRunner",
    "ColumnsHdf5Writer",
    "CutoutSource",
    "CutoutSpec",
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
    "register_cluster_runner",
    "registered_cluster_runner",
    "run_recipe",
    "write_embeddings_hdf5",
]
