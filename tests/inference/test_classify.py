import numpy as np
import pytest
from astropy.table import Table

from galaxalign_astro.errors import OutputExistsError
from galaxalign_astro.inference import add_morphology_columns, classify, classify_to_file
from galaxalign_astro.models import load_model
from tests.cutout_factory import galaxy_cube


def test_classify_table(micro_model, cutout_dir):
    (cutout_dir / "broken.fits").write_bytes(b"not fits at all")
    table = classify([cutout_dir], model=micro_model, batch_size=2, workers=0)
    assert len(table) == 6
    ok = table["status"] == "ok"
    assert ok.sum() == 5
    bad = table[~ok][0]
    assert "broken.fits" in bad["message"] and bad["class_id"] == -1
    probs = np.asarray(table["probs"][ok])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert (np.asarray(table["class_prob"][ok]) == probs.max(axis=1)).all()
    names = load_model(micro_model).spec.class_names
    assert [names[i] for i in table["class_id"][ok]] == list(table["class_name"][ok])
    emb = np.asarray(table["embedding"][ok])
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    assert table["ra"].unit == "deg"
    assert table["ra"][ok][0] == pytest.approx(150.0)
    prov = table.meta["galaxalign"]
    assert prov["weights_sha256"] == load_model(micro_model).weights_sha256
    assert prov["preprocess"]["size"] == 32


def test_workers_give_same_result(micro_model, cutout_dir):
    a = classify([cutout_dir], model=micro_model, batch_size=2, workers=0)
    b = classify([cutout_dir], model=micro_model, batch_size=3, workers=2)
    np.testing.assert_allclose(np.asarray(a["probs"]), np.asarray(b["probs"]), rtol=1e-5)
    assert list(a["source"]) == list(b["source"])


@pytest.mark.parametrize("suffix", [".fits", ".hdf5", ".ecsv", ".parquet", ".csv"])
def test_classify_to_file_formats(micro_model, cutout_dir, tmp_path, suffix):
    out = tmp_path / f"cat{suffix}"
    summary = classify_to_file([cutout_dir], out, model=micro_model, workers=0)
    assert summary.n_ok == 5 and summary.n_failed == 0
    kwargs = {"path": "catalog"} if suffix == ".hdf5" else {}
    table = Table.read(out, **kwargs)
    assert len(table) == 5
    assert set(table["status"]) == {"ok"}


def test_refuses_to_overwrite(micro_model, cutout_dir, tmp_path):
    out = tmp_path / "cat.fits"
    out.write_bytes(b"precious")
    with pytest.raises(OutputExistsError):
        classify_to_file([cutout_dir], out, model=micro_model)
    assert out.read_bytes() == b"precious"
    classify_to_file([cutout_dir], out, model=micro_model, overwrite=True, workers=0)
    assert len(Table.read(out)) == 5


def test_embeddings_optional(micro_model, cutout_dir):
    table = classify([cutout_dir], model=micro_model, embeddings=False, workers=0)
    assert "embedding" not in table.colnames


def test_add_columns_from_paths_and_arrays(micro_model, cutout_dir):
    paths = sorted(p.name for p in cutout_dir.iterdir())
    t = Table({"id": np.arange(len(paths)), "file": paths})
    with pytest.warns(DeprecationWarning, match="annotate"):
        add_morphology_columns(t, path_col="file", model=micro_model, base_dir=cutout_dir)
    assert {"class_id", "probs", "embedding", "status"} <= set(t.colnames)
    assert list(t["id"]) == list(range(len(paths)))
    with pytest.raises(ValueError, match="prefix"), pytest.warns(DeprecationWarning):
        add_morphology_columns(t, path_col="file", model=micro_model, base_dir=cutout_dir)
    cubes = np.stack([galaxy_cube(64, seed=i) for i in range(3)])
    t2 = Table({"cube": cubes})
    with pytest.warns(DeprecationWarning):
        add_morphology_columns(t2, images="cube", model=micro_model, bands="grz", prefix="gxa_")
    assert (t2["gxa_status"] == "ok").all()


def test_add_columns_images_of_paths_is_a_deprecated_path_col(micro_model, cutout_dir):
    paths = sorted(p.name for p in cutout_dir.iterdir())
    t = Table({"file": paths})
    with pytest.warns(DeprecationWarning) as record:
        add_morphology_columns(t, images="file", model=micro_model, base_dir=cutout_dir)
    assert any("use path_col='file'" in str(w.message) for w in record)
    assert (t["status"] == "ok").all()
    with pytest.raises(TypeError, match="one of path_col"), pytest.warns(DeprecationWarning):
        add_morphology_columns(t, model=micro_model)


def test_classify_fits_catalog_carries_the_provenance_header_cards(
    micro_model, cutout_dir, tmp_path
):
    """The standard cards annotate writes: model, weights hash, version, date, preprocessing."""
    import json

    from astropy.io import fits

    from galaxalign_astro import __version__

    out = tmp_path / "cat.fits"
    classify_to_file(sorted(cutout_dir.glob("*.fits")), out, model=micro_model)
    loaded = load_model(micro_model)
    header = fits.getheader(out, 1)
    assert header["MODEL"] == loaded.spec.name
    assert header["WSHA256"] == loaded.weights_sha256
    assert header["GAVERSN"] == __version__
    assert header["DATE"].startswith("20")
    assert json.loads(header["PREPROC"]) == loaded.spec.preprocess.to_dict()
    assert header["STRETCH"] == loaded.spec.preprocess.stretch


def test_a_missing_output_folder_is_created(micro_model, cutout_dir, tmp_path):
    """The README's `classify ... -o out/samples.fits` works in a fresh checkout."""
    out = tmp_path / "new" / "sub" / "cat.fits"
    classify_to_file(sorted(cutout_dir.glob("*.fits"))[:2], out, model=micro_model)
    assert len(Table.read(out)) == 2
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is not a folder"):
        classify_to_file(sorted(cutout_dir.glob("*.fits"))[:1], tmp_path / "file" / "c.fits")
