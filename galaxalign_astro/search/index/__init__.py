"""Cosine-similarity index over embedding vectors keyed by catalog row.

An `EmbeddingIndex` holds L2-normalised float32 embeddings, one per catalog row,
and answers k-nearest-neighbour queries by inner product (= cosine similarity).
Three kinds share one interface:

``"exact"``
    Blocked BLAS matrix products plus top-k selection over the stored vectors;
    exact results, no slower than faiss ``IndexFlatIP``. Works on a memory-mapped
    store, so it scales past RAM.
``"ivf"``
    faiss inverted file (``nlist`` k-means cells) with 4-bit product-quantised
    fast-scan codes (one 4-bit code per two dimensions); the ``rerank_factor * k``
    best candidates are re-scored exactly against the stored vectors, so returned
    scores are exact cosines (ours). Fewer queries than faiss has threads (a single
    interactive query) that scan many codes are scanned with the inverted lists
    split across the threads; batches and short scans one query per thread.
``"hnsw"``
    faiss HNSW graph over the full vectors (``IndexHNSWFlat``); scores are exact.

When left unset, ``nprobe`` (ivf) and ``efSearch`` (hnsw) are tuned at build time
for a recall target with sample rows of the index as queries (ours).

``kind="auto"`` picks ``"exact"`` up to `EXACT_MAX_ROWS` rows and ``"ivf"`` above
(ours; see ``docs/search_index.md`` for the measurements behind the threshold).

An index is saved as a directory: ``vectors.npy`` (normalised float32, always
present; the ground truth every kind re-ranks from or can be rebuilt from),
``ids.npy`` (int64 catalog ids), ``index.faiss`` (ivf and hnsw only) and the JSON
sidecar ``index.json`` recording the model, weights sha256, dimension, metric,
kind, parameters, catalog and provenance. `EmbeddingIndex.load` memory-maps the
files so an index larger than RAM can be queried.

The subpackage has one module per concern: `~.store` (the normalised vectors and
ids), `~.exact` (exact search), `~.backends` (the faiss kinds and `IndexParams`),
`~.tuning` (build-time tuning), `~.persist` (the directory's files, its writer
lock and stale-file removal) and `~.core` (`EmbeddingIndex`, which delegates to
them).
"""

from __future__ import annotations

from .backends import INDEX_KINDS, IndexParams
from .core import EXACT_MAX_ROWS, EmbeddingIndex
from .errors import DuplicateIdError, EmptyIndexError, IndexFileError, IndexMismatchError
from .persist import INDEX_LOCK as INDEX_LOCK
from .persist import _new_partial as _new_partial  # used by search.build
from .persist import index_lock, remove_stale_files

__all__ = [
    "EXACT_MAX_ROWS",
    "INDEX_KINDS",
    "DuplicateIdError",
    "EmbeddingIndex",
    "EmptyIndexError",
    "IndexFileError",
    "IndexMismatchError",
    "IndexParams",
    "index_lock",
    "remove_stale_files",
]
