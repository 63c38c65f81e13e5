"""Latency, memory and recall of the embedding index kinds, measured in one run.

For ``--n`` random unit vectors of each dimension in ``--dims`` prints

* exact: `EmbeddingIndex(kind="exact")`: blocked numpy BLAS + top-k selection
  (with one BLAS thread: faiss's flat kernel for up to 4 queries);
* faiss flat: ``faiss.IndexFlatIP`` on the same normalised vectors;
* exact, BLAS path only (one BLAS thread only): the numpy path forced for single
  queries too;
* ivf: `EmbeddingIndex(kind="ivf")` (IVF + 4-bit PQ fast scan + exact re-ranking),
  whose build tunes ``nprobe`` for ``--target-recall`` on sample rows of the index,
  then a sweep over ``nprobe`` around that choice on the evaluation queries, and
  (with several faiss threads) single-query latency of the tuned index with one
  query's inverted lists split over the threads (what ``search`` does for a lone
  query) against faiss's default of one query per thread, alternating;
* hnsw (``--hnsw``, slow to build at 1e6 rows on few cores): efSearch sweep;
* the saved ivf index re-opened memory-mapped.

Times: build (wall), single-query latency (median over ``--single`` queries, one at a
time) and batched latency (``--batch`` queries in one call, per query); recall@k
against the exact results. Memory: bytes of each structure and the process RSS
(anonymous / file-backed, the latter evictable page cache of memory maps).

``--data uniform`` (default) draws vectors uniformly on the sphere: no cluster
structure, the hardest case for ivf and hnsw recall. ``--data clustered`` draws them
around ``n/1000`` centres, closer to real embeddings. Usage::

    python benchmarks/search_latency.py [--n 1000000] [--dims 256,128] [--k 10]
        [--data uniform|clustered] [--hnsw]

Threads: ``OMP_NUM_THREADS`` in the environment sets both faiss's OpenMP threads and
OpenBLAS's (numpy) threads; by default both use every core.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np

from galaxalign_astro.search import EmbeddingIndex, IndexParams
from galaxalign_astro.search.index import backends as index_backends
from galaxalign_astro.search.index import exact as index_exact


def rss() -> str:
    """RSS of this process: anonymous + file-backed (memory maps), and its peak."""
    fields = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
    return (
        f"RSS anon {fields.get('RssAnon', 0):.0f} MiB + file {fields.get('RssFile', 0):.0f} "
        f"MiB (peak {fields.get('VmHWM', 0):.0f} MiB)"
    )


def unit_rows(rng: np.random.Generator, n: int, d: int, centres: np.ndarray | None) -> np.ndarray:
    out = np.empty((n, d), dtype=np.float32)
    for s in range(0, n, 65536):
        m = min(65536, n - s)
        block = rng.standard_normal((m, d), dtype=np.float32)
        if centres is not None:
            block = centres[rng.integers(len(centres), size=m)] + block * np.float32(
                0.5 / np.sqrt(d)
            )
        out[s : s + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(np.intersect1d(f, t)) for f, t in zip(found, truth, strict=True))
    return hits / truth.size


def latency(search, queries: np.ndarray, args: argparse.Namespace) -> tuple[float, float]:
    """Median ms of one-at-a-time queries, and ms per query of one batched call."""
    times = []
    for q in queries[: args.single]:
        t0 = time.perf_counter()
        search(q[None, :])
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    search(queries[: args.batch])
    batched = (time.perf_counter() - t0) / len(queries[: args.batch])
    return statistics.median(times) * 1e3, batched * 1e3


def blas_search(index: EmbeddingIndex, q: np.ndarray, *, k: int) -> tuple:
    """The exact kind's BLAS path also for few queries (with one BLAS thread it uses
    faiss's kernel there)."""
    saved, index_exact._FAISS_MAX_QUERIES = index_exact._FAISS_MAX_QUERIES, 0
    try:
        return index.search(q, k=k)
    finally:
        index_exact._FAISS_MAX_QUERIES = saved


def interleaved(searches: dict, queries: np.ndarray, args: argparse.Namespace) -> dict:
    """`latency` of several searches, alternating between them query by query so that
    load from other processes hits all alike; batched: best of two calls each on the
    first ``--batch`` queries. Returns ``{name: (single ms, batched ms/query, ids)}``."""
    single: dict[str, list[float]] = {name: [] for name in searches}
    batched: dict[str, list[float]] = {name: [] for name in searches}
    found = {}
    for q in queries[: args.single]:
        for name, search in searches.items():
            t0 = time.perf_counter()
            search(q[None, :])
            single[name].append(time.perf_counter() - t0)
    batch = queries[: args.batch]
    for _ in range(2):
        for name, search in searches.items():
            t0 = time.perf_counter()
            found[name] = search(batch)[1]
            batched[name].append((time.perf_counter() - t0) / len(batch))
    return {
        name: (statistics.median(single[name]) * 1e3, min(batched[name]) * 1e3, found[name])
        for name in searches
    }


def dir_bytes(path: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(path.iterdir())}


def run_dim(d: int, args: argparse.Namespace) -> None:
    n, k = args.n, args.k
    rng = np.random.default_rng(args.seed)
    centres = None
    if args.data == "clustered":
        centres = rng.standard_normal((max(1, n // 1000), d), dtype=np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    t0 = time.perf_counter()
    x = unit_rows(rng, n, d, centres)
    q_eval = unit_rows(rng, args.queries, d, centres)
    print(f"\n=== n={n:,} d={d} data={args.data} k={k} ===")
    print(f"generated in {time.perf_counter() - t0:.1f} s; {rss()}")
    print(f"{'index':<22}{'build s':>9}{'single ms':>11}{'batch ms/q':>12}{'recall':>8}  memory")

    def row(name, build, single, batch, rec, mem):
        print(f"{name:<22}{build:>9.1f}{single:>11.2f}{batch:>12.2f}{rec:>8.3f}  {mem}")

    t0 = time.perf_counter()
    exact = EmbeddingIndex(x, kind="exact")
    build_np = time.perf_counter() - t0
    t0 = time.perf_counter()
    flat = faiss.IndexFlatIP(d)
    flat.add(x)
    build_ff = time.perf_counter() - t0
    _, truth = exact.search(q_eval, k=k)

    contestants = {
        "exact": functools.partial(exact.search, k=k),
        "faiss": functools.partial(flat.search, k=k),
    }
    one_thread = index_exact._blas_threads() == 1
    if one_thread:
        contestants["blas"] = functools.partial(blas_search, exact, k=k)
    times = interleaved(contestants, q_eval, args)
    mem = f"{n * (4 * d + 8) / 2**20:.0f} MiB"
    row("exact (EmbeddingIndex)", build_np, *times["exact"][:2], 1.0, mem)
    mem = f"{n * 4 * d / 2**20:.0f} MiB"
    agree = recall(times["faiss"][2], truth[: args.batch])
    row("faiss IndexFlatIP", build_ff, *times["faiss"][:2], agree, mem)
    if one_thread:
        row("exact, BLAS path only", build_np, *times["blas"][:2], 1.0, "")
    ratio = [times["exact"][i] / times["faiss"][i] for i in (0, 1)]
    print(
        f"exact / faiss flat latency: single {ratio[0]:.2f}, batched {ratio[1]:.2f} "
        "(< 1: exact faster)"
    )
    del exact, flat, contestants  # the partials hold the indexes too

    params = IndexParams(
        nlist=args.nlist, rerank_factor=args.rerank_factor, target_recall=args.target_recall
    )
    t0 = time.perf_counter()
    ivf = EmbeddingIndex(x, kind="ivf", params=params)
    build = time.perf_counter() - t0
    tuning = ivf.metadata["tuning"]
    chosen, nlist = ivf.params.nprobe, ivf.params.nlist
    print(
        f"ivf: nlist={nlist}, {args.rerank_factor}*k candidates re-ranked; build (incl. "
        f"tuning on {tuning['n_queries']} index rows) chose nprobe={chosen}, "
        f"row recall@{tuning['k']} {tuning['recall']:.3f}"
    )
    fractions = (1 / 64, 1 / 16, 1 / 8, 1 / 4, 3 / 8, 1 / 2, 5 / 8, 3 / 4, 7 / 8, 1)
    grid = sorted({max(1, round(nlist * f)) for f in fractions} | {chosen})
    above = [v for v in grid if v > chosen][:1]
    for nprobe in sorted({grid[0], *(v for v in grid if chosen // 4 <= v <= chosen), *above}):
        ivf.params.nprobe = nprobe
        _, found = ivf.search(q_eval, k=k)
        single, batch = latency(functools.partial(ivf.search, k=k), q_eval, args)
        mark = " <- tuned" if nprobe == chosen else ""
        row(f"ivf nprobe={nprobe}{mark}", build, single, batch, recall(found, truth), "")
    ivf.params.nprobe = chosen
    if faiss.omp_get_max_threads() > 1:
        # a lone query with its inverted lists split over the threads against faiss's
        # default of one query per thread, alternating; search picks the split for
        # long scans only (index_backends._SPLIT_MIN_CODES)
        ivf_search = functools.partial(ivf.search, k=k)

        def forced(split: bool) -> Callable[[np.ndarray], tuple]:
            def search(q: np.ndarray) -> tuple:
                saved = index_backends._SPLIT_MIN_CODES, index_backends._IMPLEM_SPLIT_LISTS
                index_backends._SPLIT_MIN_CODES = 0
                if not split:
                    index_backends._IMPLEM_SPLIT_LISTS = index_backends._IMPLEM_DEFAULT
                try:
                    return ivf_search(q)
                finally:
                    index_backends._SPLIT_MIN_CODES, index_backends._IMPLEM_SPLIT_LISTS = saved

            return search

        pair = interleaved({"split": forced(True), "default": forced(False)}, q_eval, args)
        for name, label in (("split", "split"), ("default", "1/thread")):
            found = pair[name][2]
            rec = recall(found, truth[: args.batch])
            row(f"ivf nprobe={chosen}, {label}", build, *pair[name][:2], rec, "")
        codes = chosen * n / nlist
        picked = "split" if codes >= index_backends._SPLIT_MIN_CODES else "1/thread"
        print(
            "single query, lists split over threads / one query per thread: "
            f"{pair['split'][0] / pair['default'][0]:.2f} (< 1: split faster); "
            f"search uses {picked} here ({codes:,.0f} codes scanned)"
        )
        del ivf_search, pair
    print(rss())

    if args.hnsw:
        t0 = time.perf_counter()
        params = IndexParams(hnsw_m=args.hnsw_m, ef_search=128)  # swept below
        hnsw = EmbeddingIndex(x, kind="hnsw", params=params)
        build = time.perf_counter() - t0
        for ef in (64, 128, 256, 512, 1024):
            hnsw.params.ef_search = ef
            _, found = hnsw.search(q_eval, k=k)
            single, batch = latency(functools.partial(hnsw.search, k=k), q_eval, args)
            row(f"hnsw M={args.hnsw_m} ef={ef}", build, single, batch, recall(found, truth), "")
        del hnsw

    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        t0 = time.perf_counter()
        ivf.save(tmp)
        saved = time.perf_counter() - t0
        del ivf
        sizes = dir_bytes(Path(tmp))
        print(
            f"ivf saved in {saved:.1f} s: "
            + ", ".join(f"{name} {size / 2**20:.1f} MiB" for name, size in sizes.items())
        )
        print(f"before load: {rss()}")
        t0 = time.perf_counter()
        mapped = EmbeddingIndex.load(tmp, mmap=True)
        print(f"load(mmap=True) in {time.perf_counter() - t0:.2f} s; {rss()}")
        _, found = mapped.search(q_eval, k=k)
        single, batch = latency(functools.partial(mapped.search, k=k), q_eval, args)
        row(f"ivf mmap nprobe={mapped.params.nprobe}", 0.0, single, batch, recall(found, truth), "")
        print(f"after queries: {rss()}")
        del mapped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="rows in the index")
    parser.add_argument("--dims", default="256,128", help="comma-separated dimensions")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--queries", type=int, default=200, help="evaluation queries")
    parser.add_argument("--single", type=int, default=20, help="one-at-a-time queries timed")
    parser.add_argument("--batch", type=int, default=100, help="queries in a timed batch")
    parser.add_argument("--target-recall", type=float, default=0.95)
    parser.add_argument("--data", choices=("uniform", "clustered"), default="uniform")
    parser.add_argument("--nlist", type=int, default=None, help="ivf cells (default auto)")
    parser.add_argument("--rerank-factor", type=int, default=IndexParams.rerank_factor)
    parser.add_argument("--hnsw", action="store_true", help="also build an hnsw index")
    parser.add_argument("--hnsw-m", type=int, default=IndexParams.hnsw_m)
    parser.add_argument("--tmpdir", default=None, help="where the saved index goes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(
        f"faiss {faiss.__version__} ({faiss.omp_get_max_threads()} threads), numpy "
        f"{np.__version__}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
        f"{os.cpu_count()} CPUs, load average " + " ".join(f"{v:.1f}" for v in os.getloadavg())
    )
    t0 = time.perf_counter()
    for d in (int(v) for v in args.dims.split(",")):
        run_dim(d, args)
    print(
        f"\ntotal {time.perf_counter() - t0:.0f} s; load average now "
        + " ".join(f"{v:.1f}" for v in os.getloadavg())
    )


if __name__ == "__main__":
    main()
