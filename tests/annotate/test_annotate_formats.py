"""Every input format is read (in chunks where possible); every output format round-trips."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from astropy.table import MaskedColumn, Table

from galaxalign_astro.annotate import annotate_file, open_catalog, write_embeddings_hdf5
from galaxalign_astro.catalog import HDF5_PATH

from .conftest import MISSING, N_ROWS


@pytest.fixture(scope="module")
def reference(micro_predictor, tmp_path_factory):
    """A FITS catalog with cutouts, and its annotation as a table."""
    from tests.cutout_factory import galaxy_cube, write_cube

    from .conftest import catalog_table

    folder = tmp_path_factory.mktemp("formats")
    (folder / "cut").mkdir()
    table = catalog_table()
    for i, name in enumerate(table["name"]):
        if i != MISSING:
            write_cube(folder / "cut" / f"{name}.fits", galaxy_cube(48, seed=i), ra=150 + 0.01 * i)
    path = folder / "catalog.fits"
    table.write(path)
    out = folder / "reference.fits"
    annotate_file(path, out, model=micro_predictor, path_col="file", base_dir=folder)
    return folder, table, Table.read(out, mask_invalid=False)


@pytest.mark.parametrize("suffix", [".fits", ".hdf5", ".parquet", ".ecsv", ".csv"])
def test_output_formats_round_trip(reference, micro_predictor, suffix):
    folder, table, expected = reference
    out = folder / f"out{suffix}"
    annotate_file(
        folder / "catalog.fits",
        out,
        model=micro_predictor,
        path_col="file",
        base_dir=folder,
        overwrite=True,
    )
    kwargs = {"path": HDF5_PATH} if suffix == ".hdf5" else {}
    result = Table.read(out, **kwargs)
    assert len(result) == N_ROWS
    assert list(result["name"]) == list(table["name"])
    assert list(result["gxa_status"]) == list(expected["gxa_status"])
    if suffix == ".csv":  # plain CSV: vector columns become one column per element
        assert "gxa_probs_0" in result.colnames and "flux_vec_2" in result.colnames
        np.testing.assert_allclose(result["gxa_class_prob"], expected["gxa_class_prob"])
        return
    assert result.colnames == expected.colnames
    np.testing.assert_array_equal(result["flux_vec"], table["flux_vec"])
    np.testing.assert_allclose(
        np.asarray(result["gxa_embedding"]), np.asarray(expected["gxa_embedding"])
    )
    assert result["RAJ2000"].unit == "deg"
    assert result["RAJ2000"].description == "Right ascension (J2000)"
    assert result["gxa_sep"].unit == "arcsec"
    assert result.meta["WSHA256"] == micro_predictor.loaded.weights_sha256


@pytest.mark.parametrize(
    ("suffix", "kind"),
    [
        (".parquet", "parquet"),
        (".hdf5", "hdf5"),
        (".ecsv", "ecsv"),
        (".csv", "csv"),
        (".vot", "table"),
    ],
)
def test_input_formats_give_the_same_rows(reference, micro_predictor, suffix, kind):
    folder, table, expected = reference
    source = table.copy()
    if suffix in (".csv", ".vot"):
        del source["flux_vec"]  # plain CSV has no vector cells; keep the VOTable alike
    source["mag"] = MaskedColumn(source["mag"], mask=np.arange(N_ROWS) == 1)
    path = folder / f"input{suffix}"
    write = {"path": "data", "serialize_meta": True} if suffix == ".hdf5" else {}
    if suffix == ".vot":
        write["format"] = "votable"
    source.write(path, overwrite=True, **write)
    with open_catalog(path, format="votable" if suffix == ".vot" else None) as reader:
        assert reader.format == kind and reader.n_rows == N_ROWS
    out = folder / f"from_{kind}.fits"
    annotate_file(
        path,
        out,
        model=micro_predictor,
        path_col="file",
        base_dir=folder,
        input_format="votable" if suffix == ".vot" else None,
        chunk_size=4,
        overwrite=True,
    )
    result = Table.read(out)
    assert result.colnames == source.colnames + expected.colnames[len(table.colnames) :]
    assert list(result["name"]) == list(table["name"])
    assert result["mag"].mask[1] and not result["mag"].mask[2]
    np.testing.assert_allclose(result["mag"][2], table["mag"][2])
    assert list(result["gxa_class_id"].filled(-1)) == list(expected["gxa_class_id"].filled(-1))


def test_embeddings_hdf5_layout(reference, micro_predictor):
    folder, table, expected = reference
    out, h5 = folder / "with_h5.parquet", folder / "emb.h5"
    annotate_file(
        folder / "catalog.fits",
        out,
        model=micro_predictor,
        path_col="file",
        base_dir=folder,
        id_col="name",
        embeddings_hdf5=h5,
        chunk_size=4,
    )
    with h5py.File(h5, "r") as f:
        columns = json.loads(f.attrs["columns"])
        assert columns[:3] == ["row", "name", "gxa_class_id"]
        assert f.attrs["WSHA256"] == micro_predictor.loaded.weights_sha256
        emb = f["gxa_embedding"]
        assert emb.shape == (N_ROWS, micro_predictor.embed_dim) and emb.dtype == np.float32
        assert emb.compression == "gzip" and emb.chunks is not None
        # other chunks, other batches: the last bits of model floats may differ
        np.testing.assert_allclose(emb[:], expected["gxa_embedding"], rtol=1e-5, atol=1e-6)
        assert f["gxa_sep"].attrs["unit"] == "arcsec"
        assert list(f["row"][:]) == list(range(N_ROWS))
        assert f["name"][3].decode() == table["name"][3]
        assert f["gxa_status"][MISSING] == b"error"


def test_write_embeddings_hdf5(tmp_path):
    path = tmp_path / "emb.h5"
    emb = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32)
    probs = np.full((7, 3), 1 / 3)
    write_embeddings_hdf5(
        path, [f"g{i}" for i in range(7)], emb, columns={"probs": probs}, meta={"MODEL": "m"}
    )
    with h5py.File(path, "r") as f:
        assert json.loads(f.attrs["columns"]) == ["id", "embedding", "probs"]
        assert f.attrs["MODEL"] == "m" and "GAVERSN" in f.attrs
        np.testing.assert_array_equal(f["embedding"][:], emb)
        assert f["probs"].shape == (7, 3) and f["id"][6] == b"g6"
    with pytest.raises(FileExistsError):
        write_embeddings_hdf5(path, range(7), emb)
    with pytest.raises(ValueError, match="one row per id"):
        write_embeddings_hdf5(tmp_path / "x.h5", range(6), emb)


BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize("suffix", [".csv", ".ecsv"])
def test_utf8_byte_order_mark_is_read(tmp_path, suffix):
    """Spreadsheet programs start UTF-8 CSV exports with a byte-order mark."""
    table = Table({"RAJ2000": [150.0, 150.5, 151.0], "name": ["a", "b", "c"]})
    plain = tmp_path / f"plain{suffix}"
    table.write(plain)
    marked = tmp_path / f"marked{suffix}"
    marked.write_bytes(BOM + plain.read_bytes())
    with open_catalog(marked) as reader:
        assert list(reader.template.colnames) == ["RAJ2000", "name"]
        rows = Table.read(plain) if suffix == ".ecsv" else table
        (_, chunk), *_ = list(reader.chunks(10))
        assert list(chunk["RAJ2000"]) == list(rows["RAJ2000"])
        assert list(chunk["name"]) == list(rows["name"])
