"""Files written by write_simulated: FITS, labels.ecsv, Galaxy10 and GalaxyMNIST HDF5."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from galaxalign_astro.errors import OutputExistsError
from galaxalign_astro.simulate import (
    GALAXY10_TO_MNIST,
    cutout_filename,
    preview_montage,
    simulate_cutout,
    write_simulated,
)
from galaxalign_astro.taxonomy import GALAXY10_DECALS


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    table = write_simulated(
        out,
        20,
        seed=4,
        size=64,
        workers=1,
        galaxy10_h5=out / "g10.h5",
        mnist_h5=out / "mnist.h5",
    )
    return out, table


def test_fits_files_and_catalogue(written):
    out, table = written
    assert len(table) == 20
    for name in (
        "path",
        "label",
        "class_name",
        "ra",
        "dec",
        "mag_r",
        "half_light_radius",
        "axis_ratio",
        "position_angle",
        "psf_fwhm_r",
    ):
        assert name in table.colnames
    assert table["ra"].unit == "deg"
    assert sorted(np.bincount(table["label"], minlength=10)) == [2] * 10
    read = Table.read(out / "labels.ecsv")
    assert list(read["path"]) == [cutout_filename(4, i) for i in range(20)]
    assert list(read["class_name"]) == [GALAXY10_DECALS.names[k] for k in read["label"]]
    with fits.open(out / read["path"][7]) as hdul:
        assert len(hdul) == 1
        data, header = hdul[0].data, hdul[0].header
    assert data.shape == (3, 64, 64) and data.dtype == np.dtype(">f4")
    np.testing.assert_array_equal(data, simulate_cutout(7, seed=4, size=64).cube)
    assert header["LABEL"] == read["label"][7]
    assert header["CRVAL1"] == pytest.approx(read["ra"][7])
    assert not list(out.glob(".*.tmp"))


def test_galaxy10_h5_format(written):
    out, table = written
    with h5py.File(out / "g10.h5") as f:
        assert f["images"].shape == (20, 64, 64, 3) and f["images"].dtype == np.uint8
        assert f["ans"].dtype == np.uint8
        np.testing.assert_array_equal(f["ans"][:], table["label"])
        np.testing.assert_allclose(f["ra"][:], table["ra"])
        np.testing.assert_allclose(f["dec"][:], table["dec"])
        np.testing.assert_allclose(f["pxscale"][:], table["pixel_scale"])
        assert np.isnan(f["redshift"][:]).all()
        assert f["images"][:].max() > 100


def test_mnist_h5_format(written):
    out, table = written
    keys = [GALAXY10_DECALS.keys[k] for k in table["label"]]
    expected = [GALAXY10_TO_MNIST[k] for k in keys if k in GALAXY10_TO_MNIST]
    with h5py.File(out / "mnist.h5") as f:
        assert f["images"].shape == (len(expected), 64, 64, 3)
        assert f["images"].dtype == np.uint8
        assert list(f["labels"][:]) == expected
        assert set(expected) == {0, 1, 2, 3}


def test_refuses_to_overwrite(written, tmp_path):
    out, _ = written
    with pytest.raises(OutputExistsError, match="already exist"):
        write_simulated(out, 3, seed=4, size=64, workers=1)
    # nothing written when refusing, even for files that did not exist yet
    with pytest.raises(OutputExistsError):
        write_simulated(out, 25, seed=4, size=64, workers=1)
    assert not (out / cutout_filename(4, 24)).exists()
    table = write_simulated(tmp_path, 2, seed=1, size=32, workers=1)
    first = fits.getdata(tmp_path / table["path"][0])
    again = write_simulated(tmp_path, 2, seed=1, size=32, workers=1, overwrite=True)
    np.testing.assert_array_equal(fits.getdata(tmp_path / again["path"][0]), first)


def test_parallel_write_matches_serial(tmp_path):
    serial = write_simulated(tmp_path / "a", 6, seed=2, size=32, workers=1)
    parallel = write_simulated(tmp_path / "b", 6, seed=2, size=32, workers=2)
    assert list(serial["label"]) == list(parallel["label"])
    for name in serial["path"]:
        np.testing.assert_array_equal(
            fits.getdata(tmp_path / "a" / name), fits.getdata(tmp_path / "b" / name)
        )


def test_preview_montage(tmp_path):
    from PIL import Image

    path = preview_montage(tmp_path / "m.png", seed=1, per_class=1, size=48)
    with Image.open(path) as img:
        width, height = img.size
    assert height > width > 100
