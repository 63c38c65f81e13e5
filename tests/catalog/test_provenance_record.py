"""The one provenance record: built from a model's record, written by every catalog
format, read back from each of them."""

from __future__ import annotations

import json
import shutil
import subprocess

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.table import Table

from galaxalign_astro import __version__
from galaxalign_astro.catalog import ColumnSpec, Provenance, open_writer

MODEL_RECORD = {
    "package_version": "0.0.9",  # the model's own record; the run's version wins
    "model_name": "gxa-test",
    "model_path": "/models/gxa-test",
    "architecture": "gxa-tiny",
    "weights_sha256": "AB" * 32,
    "preprocess": {"bands": ["g", "r", "z"], "stretch": "dr2_rgb", "size": 96},
    "prototype_alpha": 0.25,
    "engine": "onnx",
    "class_names": ["Round", "Spiral"],
}


class _Loaded:
    def provenance(self):
        return dict(MODEL_RECORD)


def _provenance():
    return Provenance.from_model(
        _Loaded(),
        step="annotate",
        command="galaxalign-astro annotate in.fits",
        input="in.fits",
        settings={"batch_size": 32},
        date="2026-01-02T03:04:05",
    )


def test_from_model_takes_the_model_record_and_the_run():
    prov = _provenance()
    assert prov.package_version == __version__
    assert prov.weights_sha256 == "ab" * 32  # one spelling of a hash
    assert prov.class_names == ["Round", "Spiral"]
    record = prov.record()
    assert record["annotate"] == {"batch_size": 32}
    assert record["date"] == "2026-01-02T03:04:05"
    header = prov.header()
    assert header["MODEL"] == "gxa-test"
    assert header["BANDS"] == "grz" and header["STRETCH"] == "dr2_rgb"
    assert header["CREATOR"] == f"galaxalign-astro {__version__}"
    assert header["DATE"] == "2026-01-02T03:04:05"


def test_fits_cards_are_standard_length(tmp_path):
    _write(tmp_path / "c.fits")
    header = fits.getheader(tmp_path / "c.fits", 1)
    keys = set(header)
    assert {"GAVERSN", "CREATOR", "DATE", "MODEL", "WSHA256", "PREPROC", "ENGINE"} <= keys
    assert all(len(k) <= 8 for k in keys)
    assert not any(k.startswith("HIERARCH") for k in keys)


SPECS = [
    ColumnSpec("flux", "f4", unit="nJy", description="Total flux"),
    ColumnSpec("name", "U", width=6, description="Galaxy name"),
]


def _write(path):
    prov = _provenance()
    with open_writer(path, SPECS, meta=prov.to_meta()) as writer:
        writer.write({"flux": np.array([1.0, 2.0], "f4"), "name": np.array(["a", "bb"])})
    return prov


@pytest.mark.parametrize("suffix", [".fits", ".h5", ".parquet", ".ecsv"])
def test_every_format_reads_back_the_same_provenance(tmp_path, suffix):
    path = tmp_path / f"cat{suffix}"
    written = _write(path)
    back = Provenance.from_meta(Table.read(path).meta)
    assert back == written


def test_each_format_holds_it_in_its_native_place(tmp_path):
    written = _write(tmp_path / "c.fits")
    header = fits.getheader(tmp_path / "c.fits", 1)
    assert Provenance.from_meta(dict(header)).weights_sha256 == written.weights_sha256
    assert header["TCOMM1"] == "Total flux" and header["TCOMM2"] == "Galaxy name"

    _write(tmp_path / "c.h5")
    with h5py.File(tmp_path / "c.h5") as f:
        attrs = dict(f[next(iter(f))].attrs)
    assert attrs["MODEL"] == "gxa-test"
    assert Provenance.from_meta(attrs) == written

    _write(tmp_path / "c.parquet")
    schema = pq.read_schema(tmp_path / "c.parquet")
    assert Provenance.from_meta(schema.metadata) == written
    assert schema.field("flux").metadata == {b"unit": b"nJy", b"description": b"Total flux"}
    assert json.loads(schema.metadata[b"galaxalign"])["MODEL"] == "gxa-test"


def test_missing_metadata_gives_empty_fields():
    prov = Provenance.from_meta({"EXTNAME": "CATALOG"})
    assert prov.model_name is None and prov.weights_sha256 is None and prov.preprocess is None


@pytest.mark.skipif(shutil.which("fitsverify") is None, reason="fitsverify is not installed")
def test_fitsverify_accepts_the_header(tmp_path):
    _write(tmp_path / "c.fits")
    run = subprocess.run(
        ["fitsverify", "-q", str(tmp_path / "c.fits")], capture_output=True, text=True, check=False
    )
    assert "verification OK" in run.stdout, run.stdout
