"""Tests of the embedding similarity index (exact, ivf and hnsw kinds)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from galaxalign_astro.errors import GalaxAlignError, GalaxAlignWarning, OutputExistsError
from galaxalign_astro.search import (
    DuplicateIdError,
    EmbeddingIndex,
    EmptyIndexError,
    IndexFileError,
    IndexMismatchError,
    IndexParams,
)

SHA = "ab" * 32


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _brute_force(x, q, k):
    scores = _unit(q) @ _unit(x).T
    order = np.argsort(-scores, axis=1)[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


def _clustered(n, d, n_clusters, *, seed, spread=0.3):
    """Vectors around random cluster centres, like embeddings of a few morphologies."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.standard_normal((n_clusters, d)))
    labels = rng.integers(n_clusters, size=n)
    noise = rng.standard_normal((n, d)) * spread / np.sqrt(d)
    return (centres[labels] + noise).astype(np.float32), centres


def _recall(found, truth):
    return np.mean([len(np.intersect1d(f, t)) / len(t) for f, t in zip(found, truth, strict=True)])


@pytest.fixture(autouse=True, scope="module")
def _one_faiss_thread():
    """faiss's OpenMP threads spin-wait; on a busy shared CI machine one thread is ~10x
    faster for these small indexes, and results do not depend on the thread count."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


@pytest.fixture(scope="module")
def random_data():
    rng = np.random.default_rng(1)
    return rng.standard_normal((3000, 24)).astype(np.float32), rng.standard_normal((20, 24))


@pytest.fixture(scope="module")
def clustered_data():
    x, centres = _clustered(20_000, 48, 200, seed=2)
    rng = np.random.default_rng(3)
    pick = rng.integers(len(centres), size=100)
    q = centres[pick] + rng.standard_normal((100, 48)) * 0.3 / np.sqrt(48)
    return x, q


@pytest.mark.parametrize("blas_threads", [1, 2])
def test_exact_equals_brute_force(random_data, monkeypatch, blas_threads):
    from galaxalign_astro.search.index import exact as index_module

    # few queries take faiss's kernel with one BLAS thread, numpy BLAS otherwise
    monkeypatch.setattr(index_module, "_blas_threads", lambda: blas_threads)
    x, q = random_data
    ids = np.arange(len(x), dtype=np.int64) * 7 + 3
    index = EmbeddingIndex(x[:2000], ids=ids[:2000], kind="exact")
    index.add(x[2000:], ids=ids[2000:])  # a second block of rows
    want_scores, want_pos = _brute_force(x, q, 15)
    for queries in (q, q[:3]):
        scores, found = index.search(queries, k=15)
        assert scores.dtype == np.float32 and found.dtype == np.int64
        assert scores.shape == found.shape == (len(queries), 15)
        np.testing.assert_array_equal(found, ids[want_pos[: len(queries)]])
        np.testing.assert_allclose(scores, want_scores[: len(queries)], atol=1e-5)
    # a single query as a 1-d vector gives 1-d results, scale does not matter
    s1, f1 = index.search(5.0 * q[0], k=15)
    assert s1.shape == f1.shape == (15,)
    np.testing.assert_array_equal(f1, ids[want_pos[0]])


def test_exact_search_over_many_blocks_and_query_chunks(monkeypatch):
    from galaxalign_astro.search.index import exact as index_module

    # small temporary-array budget: the store is scanned in 4096-row blocks
    monkeypatch.setattr(index_module, "_TEMP_ELEMENTS", 1 << 12)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((10_000, 8)).astype(np.float32)
    q = rng.standard_normal((1100, 8))
    _, found = EmbeddingIndex(x, kind="exact").search(q, k=5)
    np.testing.assert_array_equal(found, _brute_force(x, q, 5)[1])


@pytest.mark.parametrize("kind", ["exact", "ivf", "hnsw"])
def test_k_larger_than_n_is_padded(kind):
    x = np.random.default_rng(5).standard_normal((40, 8)).astype(np.float32)
    params = IndexParams(nlist=2, nprobe=2)
    index = EmbeddingIndex(x, kind=kind, params=params)
    scores, found = index.search(x[:3], k=60)
    assert found.shape == (3, 60)
    assert (found[:, 40:] == -1).all() and np.isneginf(scores[:, 40:]).all()
    assert sorted(found[0, :40]) == list(range(40))
    assert (np.diff(scores[:, :40], axis=1) <= 0).all()


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_recall_on_clustered_data(clustered_data, kind):
    x, q = clustered_data
    if kind == "hnsw":
        x = x[:5000]
    params = IndexParams(nlist=32, nprobe=4, hnsw_m=16, ef_search=64)
    index = EmbeddingIndex(x, kind=kind, params=params)
    scores, found = index.search(q, k=10)
    assert _recall(found, _brute_force(x, q, 10)[1]) >= 0.9
    # returned scores are exact cosines of the returned rows
    cosines = np.sum(_unit(x)[found] * _unit(q)[:, None], axis=2)
    np.testing.assert_allclose(scores, cosines, atol=1e-5)


def test_single_queries_match_batch_with_several_faiss_threads(random_data, monkeypatch):
    # a lone query is scanned with its inverted lists split over faiss's threads (here
    # even for this short scan), a batch one query per thread: both must give the same
    # neighbours and scores
    import faiss

    from galaxalign_astro.search.index import backends as index_module

    monkeypatch.setattr(index_module, "_SPLIT_MIN_CODES", 0)
    x, q = random_data
    index = EmbeddingIndex(x, kind="ivf", params=IndexParams(nlist=32, nprobe=24))
    faiss.omp_set_num_threads(2)
    try:
        batch_scores, batch_found = index.search(q, k=10)
        for i, query in enumerate(q):
            scores, found = index.search(query, k=10)  # one query: 1-d results
            np.testing.assert_array_equal(found, batch_found[i])
            np.testing.assert_allclose(scores, batch_scores[i], rtol=1e-6)
    finally:
        faiss.omp_set_num_threads(1)


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_build_tunes_search_parameter_for_target_recall(random_data, kind):
    x, q = random_data
    index = EmbeddingIndex(x, kind=kind, params=IndexParams(nlist=32, hnsw_m=4))
    name = "nprobe" if kind == "ivf" else "ef_search"
    assert getattr(index.params, name) > (1 if kind == "ivf" else 16)
    tuning = index.metadata["tuning"]
    assert tuning[name] == getattr(index.params, name) and tuning["recall"] >= 0.95
    # tuned on rows of the index, it carries over to other queries
    assert _recall(index.search(q, k=10)[1], _brute_force(x, q, 10)[1]) >= 0.9


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_tune_reaches_recall_target(random_data, kind):
    # unclustered data: one cell or a short candidate list is not enough
    x, q = random_data
    params = IndexParams(nlist=32, nprobe=1, hnsw_m=4, ef_search=1)
    index = EmbeddingIndex(x, kind=kind, params=params)
    name = "nprobe" if kind == "ivf" else "ef_search"
    records = index.tune(q, k=10, target_recall=0.95)
    assert len(records) > 1 and records[0]["recall"] < 0.95 <= records[-1]["recall"]
    assert getattr(index.params, name) == records[-1][name]
    assert _recall(index.search(q, k=10)[1], _brute_force(x, q, 10)[1]) >= 0.95


@pytest.mark.parametrize("kind", ["exact", "ivf", "hnsw"])
def test_save_load_round_trip_memory_mapped(tmp_path, random_data, monkeypatch, kind):
    from galaxalign_astro.search.index import exact as index_module

    # single exact queries then run faiss's kernel on the memory map (batches: BLAS)
    monkeypatch.setattr(index_module, "_blas_threads", lambda: 1)
    x, q = random_data
    ids = np.arange(len(x), dtype=np.int64)[::-1].copy()
    index = EmbeddingIndex(
        x,
        ids=ids,
        kind=kind,
        params=IndexParams(nlist=16, nprobe=16),
        model_name="galaxalign-vit-b16",
        weights_sha256=SHA.upper(),
        catalog_path="galaxies.fits",
        catalog_rows=5000,
    )
    want = index.search(q, k=10)
    index.save(tmp_path / "idx")
    loaded = EmbeddingIndex.load(tmp_path / "idx", mmap=True)
    assert isinstance(loaded._store.blocks[0], np.memmap)
    assert isinstance(loaded._ids, np.memmap)
    got = loaded.search(q, k=10)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(loaded.search(q[3], k=10)[1], want[1][3])
    np.testing.assert_allclose(got[0], want[0], atol=1e-6)
    assert (loaded.kind, len(loaded), loaded.dim) == (kind, len(x), 24)
    assert loaded.params == index.params

    meta = json.loads((tmp_path / "idx" / "index.json").read_text())
    assert meta["model_name"] == "galaxalign-vit-b16"
    assert meta["weights_sha256"] == SHA
    assert (meta["embedding_dim"], meta["metric"], meta["kind"]) == (24, "cosine", kind)
    assert meta["n_rows"] == len(x)
    assert meta["catalog"]["path"] == "galaxies.fits"
    assert meta["catalog"]["n_rows"] == 5000
    assert len(meta["catalog"]["ids_sha256"]) == 64
    assert meta["package_version"] and meta["created"] and meta["saved"]

    in_memory = EmbeddingIndex.load(tmp_path / "idx", mmap=False)
    assert not isinstance(in_memory._store.blocks[0], np.memmap)
    np.testing.assert_array_equal(in_memory.search(q, k=10)[1], want[1])


@pytest.mark.parametrize("kind", ["exact", "ivf", "hnsw"])
def test_add_then_search_finds_new_rows_and_save_keeps_them(tmp_path, random_data, kind):
    x, _ = random_data
    rng = np.random.default_rng(6)
    params = IndexParams(nlist=16, nprobe=16)
    EmbeddingIndex(x, kind=kind, params=params).save(tmp_path / "idx")
    index = EmbeddingIndex.load(tmp_path / "idx")  # memory-mapped, then grown
    new = rng.standard_normal((30, 24)).astype(np.float32)
    new_ids = index.add(new[:20], ids=np.arange(10_000, 10_020))
    auto_ids = index.add(new[20:])
    np.testing.assert_array_equal(auto_ids, np.arange(10_020, 10_030))
    assert len(index) == len(x) + 30
    scores, found = index.search(new, k=1)
    np.testing.assert_array_equal(found[:, 0], np.concatenate([new_ids, auto_ids]))
    assert index.search(new[25], k=1)[1][0] == auto_ids[5]
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)

    index.save(tmp_path / "idx", overwrite=True)
    again = EmbeddingIndex.load(tmp_path / "idx")
    assert len(again) == len(x) + 30
    np.testing.assert_array_equal(again.search(new, k=1)[1], found)
    # the original rows are still found too
    np.testing.assert_array_equal(again.search(x[:5], k=1)[1][:, 0], np.arange(5))


def test_empty_index_errors_until_rows_are_added():
    index = EmbeddingIndex(np.zeros((0, 4), dtype=np.float32))
    assert index.kind == "exact" and len(index) == 0
    with pytest.raises(EmptyIndexError, match="empty"):
        index.search(np.ones(4), k=3)
    index.add(np.eye(4))
    scores, found = index.search(np.array([0.0, 2.0, 0.0, 0.0]), k=3)
    assert found[0] == 1 and scores[0] == pytest.approx(1.0)


def test_empty_index_round_trip(tmp_path):
    EmbeddingIndex(np.zeros((0, 4), dtype=np.float32)).save(tmp_path)
    loaded = EmbeddingIndex.load(tmp_path)
    assert len(loaded) == 0
    loaded.add(np.eye(4))
    assert loaded.search(np.eye(4)[2], k=1)[1][0] == 2


def test_query_dimension_mismatch(random_data):
    x, _ = random_data
    index = EmbeddingIndex(x)
    with pytest.raises(IndexMismatchError, match=r"\(m, 24\)"):
        index.search(np.ones((2, 16)), k=3)
    with pytest.raises(IndexMismatchError):
        index.add(np.ones((2, 16)))
    assert issubclass(IndexMismatchError, GalaxAlignError)


def test_check_compatible(random_data):
    x, _ = random_data
    index = EmbeddingIndex(x, model_name="model-a", weights_sha256=SHA, catalog_rows=3000)
    index.check_compatible(model_name="model-a", weights_sha256=SHA.upper(), embedding_dim=24)
    with pytest.raises(IndexMismatchError, match="model-b"):
        index.check_compatible(model_name="model-b")
    with pytest.raises(IndexMismatchError, match="weights_sha256"):
        index.check_compatible(weights_sha256="cd" * 32)
    with pytest.raises(IndexMismatchError, match="embedding_dim"):
        index.check_compatible(embedding_dim=512)
    with pytest.raises(IndexMismatchError, match="catalog_rows"):
        index.check_compatible(catalog_rows=2999)
    unrecorded = EmbeddingIndex(x)
    with pytest.warns(GalaxAlignWarning, match="records no model_name"):
        unrecorded.check_compatible(model_name="model-a")


def test_ids_outside_catalog_rejected(random_data):
    x, _ = random_data
    with pytest.raises(IndexMismatchError, match="outside the catalog"):
        EmbeddingIndex(x, catalog_rows=100)


def test_auto_kind_switches_at_threshold():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1001, 16)).astype(np.float32)
    assert EmbeddingIndex(x[:1000], exact_max_rows=1000).kind == "exact"
    assert EmbeddingIndex(x, exact_max_rows=1000).kind == "ivf"
    assert EmbeddingIndex(x, exact_max_rows=1000, kind="hnsw").kind == "hnsw"
    assert EmbeddingIndex(x, exact_max_rows=10, kind="exact").kind == "exact"


def test_duplicate_ids_rejected(random_data):
    x, _ = random_data
    ids = np.arange(len(x))
    ids[5] = 6
    with pytest.raises(DuplicateIdError, match=r"\[6\]"):
        EmbeddingIndex(x, ids=ids)
    index = EmbeddingIndex(x[:10])
    with pytest.raises(DuplicateIdError, match="already in the index"):
        index.add(x[:2], ids=[20, 3])
    with pytest.raises(DuplicateIdError, match="not unique"):
        index.add(x[:2], ids=[20, 20])
    assert len(index) == 10  # failed adds change nothing


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        (np.zeros((3, 4)), "row 0 has zero length"),
        (np.array([[1.0, 0, 0, 0], [np.nan, 1, 0, 0]]), "row 1"),
        (np.ones(4), "2-d"),
    ],
)
def test_bad_embeddings_rejected(rows, match):
    with pytest.raises(ValueError, match=match):
        EmbeddingIndex(rows)


def test_bad_ids_and_k_rejected(random_data):
    x, _ = random_data
    with pytest.raises(ValueError, match=">= 0"):
        EmbeddingIndex(x[:3], ids=[0, -1, 2])
    with pytest.raises(ValueError, match="integers"):
        EmbeddingIndex(x[:3], ids=[0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="k must be"):
        EmbeddingIndex(x[:3]).search(x[0], k=0)
    with pytest.raises(ValueError, match="training rows"):
        EmbeddingIndex(x[:10], kind="ivf", params=IndexParams(nlist=64))


def test_save_refuses_to_overwrite(tmp_path, random_data):
    x, _ = random_data
    EmbeddingIndex(x[:50]).save(tmp_path)
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        EmbeddingIndex(x[:60]).save(tmp_path)
    EmbeddingIndex(x[:60]).save(tmp_path, overwrite=True)
    assert len(EmbeddingIndex.load(tmp_path)) == 60


def test_load_detects_inconsistent_files(tmp_path, random_data):
    x, _ = random_data
    EmbeddingIndex(x[:50], ids=np.arange(50) + 100).save(tmp_path)
    np.save(tmp_path / "ids.npy", np.arange(50, dtype=np.int64))
    with pytest.raises(IndexFileError, match="ids checksum"):
        EmbeddingIndex.load(tmp_path)
    np.save(tmp_path / "ids.npy", np.arange(49, dtype=np.int64))
    with pytest.raises(IndexFileError, match="sidecar promises"):
        EmbeddingIndex.load(tmp_path)
    with pytest.raises(IndexFileError, match="not a saved embedding index"):
        EmbeddingIndex.load(tmp_path / "nowhere")


def test_failed_save_leaves_no_partial_files(tmp_path, random_data, monkeypatch):
    x, _ = random_data

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(np.lib.format, "write_array", disk_full)
    with pytest.raises(OSError, match="No space"):
        EmbeddingIndex(x[:50]).save(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_load_rejects_other_format_versions(tmp_path, random_data):
    x, _ = random_data
    EmbeddingIndex(x[:50]).save(tmp_path)
    meta = json.loads((tmp_path / "index.json").read_text())
    meta["format_version"] = 99
    (tmp_path / "index.json").write_text(json.dumps(meta))
    with pytest.raises(IndexFileError, match="version 99"):
        EmbeddingIndex.load(tmp_path)
