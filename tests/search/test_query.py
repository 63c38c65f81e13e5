"""Similarity search API: building from catalogs, queries by row/image/text/symbol, montage."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from PIL import Image

import galaxalign_astro
from galaxalign_astro.catalog import write_table
from galaxalign_astro.inference import classify_to_file
from galaxalign_astro.search import (
    EmbeddingIndex,
    IndexMismatchError,
    add_catalog_rows,
    approximate_recall,
    build_index,
    build_index_from_catalog,
    index_vectors,
    make_query,
    open_catalog_columns,
    query_embedding,
    search_by_image,
    search_by_row,
    search_by_symbol,
    search_by_text,
    search_montage,
)
from galaxalign_astro.search.montage import montage_size

SAMPLES = Path(galaxalign_astro.__file__).parent / "data" / "samples"


@pytest.fixture(scope="module")
def catalog(micro_model, tmp_path_factory):
    """The ten simulated sample galaxies classified by the micro model (distinct images:
    the 5 faint blobs of ``cutout_dir`` give embeddings equal to 1e-7, too close to rank)."""
    folder = tmp_path_factory.mktemp("samples")
    for path in sorted(SAMPLES.glob("sim_*.fits")):
        shutil.copy(path, folder)
    out = folder / "catalog.fits"
    classify_to_file([folder], out, model=micro_model, workers=0)
    return out


def _read(path) -> Table:
    table = Table.read(path, mask_invalid=False)
    # astropy leaves the HDU name in meta, and catalog writers refuse structural keys
    table.meta.pop("EXTNAME", None)
    return table


@pytest.fixture(scope="module")
def loaded(micro_model):
    from galaxalign_astro.models.checkpoint import load_model

    return load_model(micro_model)


@pytest.fixture(scope="module")
def index(catalog):
    return build_index(Table.read(catalog), catalog_path=catalog)


def test_build_index_keys_rows_records_model_and_skips_failed(catalog, loaded):
    table = _read(catalog)
    table["embedding"][3] = np.nan  # what classify writes for a failed cutout
    index = build_index(table)
    assert len(index) == len(table) - 1
    assert 3 not in index.ids and set(index.ids) == set(range(len(table))) - {3}
    assert index.model_name == "micro-test"
    assert index.weights_sha256 == loaded.weights_sha256
    assert index.metadata["catalog"]["n_rows"] == len(table)


@pytest.mark.parametrize("suffix", [".fits", ".parquet", ".hdf5", ".ecsv"])
def test_build_from_file_in_chunks_matches_table(catalog, loaded, tmp_path, suffix):
    table = _read(catalog)
    path = catalog if suffix == ".fits" else tmp_path / f"cat{suffix}"
    if suffix != ".fits":
        write_table(table, path)
    index = build_index_from_catalog(path, chunk_rows=3)
    assert index.weights_sha256 == loaded.weights_sha256
    assert list(index.ids) == list(range(len(table)))
    expected = np.asarray(table["embedding"], dtype=np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(index_vectors(index, index.ids), expected, atol=1e-6)
    with open_catalog_columns(path) as cols:
        rows = cols.read_rows([7, 2], ["source", "ra"])
    assert rows["source"][0] == table["source"][7] and rows["ra"][1] == table["ra"][2]


def test_csv_catalog_with_byte_order_mark_keeps_its_first_column_name(tmp_path):
    table = Table({"source": ["a.fits", "b.fits"], "ra": [1.0, 2.0]})
    path = tmp_path / "cat.csv"
    table.write(path)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    with open_catalog_columns(path) as cols:
        rows = cols.read_rows([1], ["source", "ra"])
    assert rows["source"][0] == "b.fits" and rows["ra"][0] == 2.0


def test_missing_embedding_column_is_named(catalog):
    with pytest.raises(ValueError, match="columns here: embedding"):
        build_index_from_catalog(catalog, embedding_col="gxa_embedding")


def test_query_by_row_returns_the_row_first(index, catalog):
    for row in (0, 4, 9):
        result = search_by_row(index, row, k=4, catalog=catalog)
        assert result["row"][0] == row
        assert result["score"][0] == pytest.approx(1.0, abs=1e-5)
        assert list(result["rank"]) == [1, 2, 3, 4]
        assert np.all(np.diff(result["score"]) <= 0)
        assert {"source", "ra", "dec", "class_name"} <= set(result.colnames)
    with pytest.raises(ValueError, match="row 42 is not in the index"):
        search_by_row(index, 42)


def test_query_by_image_of_a_member_returns_it_first(index, loaded, catalog):
    table = Table.read(catalog)
    for row in (1, 5, 8):
        result = search_by_image(index, loaded, table["source"][row], k=3, catalog=catalog)
        assert result["row"][0] == row
        assert result["source"][0] == table["source"][row]
        assert result["score"][0] == pytest.approx(1.0, abs=1e-4)


def _drawing(path: Path, *, dark_on_light: bool) -> Path:
    """A bar with two arms, drawn as a user would (thick strokes on a plain background)."""
    from PIL import ImageDraw

    img = Image.new("L", (300, 200), 255 if dark_on_light else 0)
    pen = ImageDraw.Draw(img)
    ink = 0 if dark_on_light else 255
    pen.line([(100, 100), (200, 100)], fill=ink, width=12)
    pen.arc([60, 40, 160, 160], 180, 300, fill=ink, width=8)
    pen.arc([140, 40, 240, 160], 0, 120, fill=ink, width=8)
    img.save(path)
    return path


def test_query_by_text_and_symbol_return_k_sorted_rows(index, loaded, tmp_path):
    drawing = _drawing(tmp_path / "sketch.png", dark_on_light=True)
    results = [
        search_by_text(index, loaded, "a smooth round galaxy", k=5),
        search_by_symbol(index, loaded, "barred_spiral", k=5),
        search_by_symbol(index, loaded, drawing, k=5),
    ]
    for result, kind in zip(results, ["text", "symbol", "symbol"], strict=True):
        assert len(result) == 5 and len(set(result["row"])) == 5
        assert np.all(np.diff(result["score"]) <= 0)
        assert result.meta["galaxalign"]["search"]["query_kind"] == kind
    # a dark-on-light drawing and its light-on-dark twin are the same sketch
    inverse = _drawing(tmp_path / "inverse.png", dark_on_light=False)
    a = query_embedding(loaded, symbol=drawing)
    b = query_embedding(loaded, symbol=inverse)
    assert a.shape == (loaded.model.embed_dim,) and a.dtype == np.float32
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)
    assert float(a @ b) > 0.99


def test_query_needs_exactly_one_input(loaded):
    with pytest.raises(ValueError, match="exactly one"):
        make_query(loaded)
    with pytest.raises(ValueError, match="exactly one"):
        make_query(loaded, text="a spiral", symbol="barred_spiral")
    with pytest.raises(ValueError, match="neither a built-in symbol family"):
        make_query(loaded, symbol="no_such_family")


def test_mismatched_model_is_refused(catalog, loaded):
    table = Table.read(catalog)
    table.meta["galaxalign"]["weights_sha256"] = "f" * 64
    other = build_index(table)
    with pytest.raises(IndexMismatchError, match="weights sha256 ffffffffffff"):
        search_by_text(other, loaded, "a spiral galaxy", k=3)
    # the row query needs no model
    assert len(search_by_row(other, 0, k=2)) == 2


def test_add_appends_new_rows_and_refuses_other_catalogs(catalog, tmp_path):
    table = _read(catalog)
    grown = tmp_path / "grown.fits"
    write_table(table[:6], grown)
    index = build_index_from_catalog(grown)
    assert len(index) == 6
    write_table(table, grown, overwrite=True)
    added = add_catalog_rows(index, grown)
    assert list(added) == [6, 7, 8, 9] and len(index) == 10
    assert search_by_row(index, 8, k=1)["row"][0] == 8
    assert len(add_catalog_rows(index, grown)) == 0

    shuffled = tmp_path / "shuffled.fits"
    write_table(table[::-1], shuffled)
    with pytest.raises(IndexMismatchError, match="rebuild the index"):
        add_catalog_rows(index, shuffled)
    other = table.copy()
    other.meta["galaxalign"]["weights_sha256"] = "0" * 64
    write_table(other, tmp_path / "other.fits")
    with pytest.raises(IndexMismatchError, match="build a separate index"):
        add_catalog_rows(index, tmp_path / "other.fits")


def test_approximate_recall():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(20, 16))
    data = centres[rng.integers(0, 20, 2000)] + 0.3 * rng.normal(size=(2000, 16))
    queries = centres[rng.integers(0, 20, 50)] + 0.3 * rng.normal(size=(50, 16))
    exact = EmbeddingIndex(data, kind="exact")
    assert approximate_recall(exact, exact, queries, k=10) == 1.0
    hnsw = EmbeddingIndex(data, kind="hnsw")
    hnsw.params.ef_search = 10
    recall = approximate_recall(exact, hnsw, queries, k=10)
    assert 0.5 < recall <= 1.0
    # a different index over other rows misses the true neighbours
    unrelated = EmbeddingIndex(data[:1000], kind="exact")
    assert approximate_recall(exact, unrelated, queries, k=10) < 0.8


def test_montage_has_the_documented_size_and_shows_thumbnails(index, loaded, catalog, tmp_path):
    query = make_query(loaded, text="a spiral galaxy with two arms and a long central bar")
    result = search_by_text(index, loaded, query.value, k=7, catalog=catalog)
    out = search_montage(
        result,
        tmp_path / "m.png",
        query=query,
        preprocess=loaded.spec.preprocess,
        ncols=4,
        panel_px=96,
        title="test",
    )
    with Image.open(out) as png:
        img = np.asarray(png.convert("RGB"))
    width, height = montage_size(8, ncols=4, panel_px=96, title=True)
    assert img.shape[:2] == (height, width)
    # second panel (first neighbour) holds a galaxy image, not a flat placeholder
    panel = img[26 + 10 : 26 + 86, 96 + 10 : 96 + 86]
    assert panel.std() > 5
    with pytest.raises(FileExistsError):
        search_montage(result, out, query=query)
