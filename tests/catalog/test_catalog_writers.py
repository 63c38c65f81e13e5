"""Behaviour of the incremental, atomic catalog writers in every output format."""

from __future__ import annotations

import gc
import logging
import os
import re
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.table import MaskedColumn, Table

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None

from galaxalign_astro.catalog import (
    FORMATS,
    ColumnSpec,
    open_writer,
    output_format,
    provenance_meta,
    write_table,
)
from galaxalign_astro.errors import OutputExistsError

SUFFIX = {"fits": ".fits", "hdf5": ".h5", "parquet": ".parquet", "ecsv": ".ecsv", "csv": ".csv"}
CHUNK_SIZES = (7, 0, 50, 1, 23)

COLUMNS = [
    ColumnSpec("objid", "U", width=16, description="object identifier"),
    ColumnSpec("ra", "f8", unit="deg", description="right ascension (ICRS)"),
    ColumnSpec("redshift", "f4", description="spectroscopic redshift; NaN when unknown"),
    ColumnSpec("label", "i2", description="predicted class index"),
    ColumnSpec("good", "b1", description="passed quality cuts"),
    ColumnSpec("probs", "f4", shape=(10,), description="class probabilities"),
    ColumnSpec("embedding", "f4", shape=(32,), description="unit-norm image embedding"),
]


def make_meta():
    return provenance_meta(
        model="galaxalign-vit-b16",
        weights_sha256="0123456789abcdef" * 4,
        stretch="dr2_rgb",
        preprocessing={"bands": "grz", "size": 224, "stretch": {"name": "dr2_rgb", "Q": 20}},
    )


def make_chunk(rng, start, n):
    ids = np.array([f"J{start + i:06d} x,y" for i in range(n)], dtype="U16")
    redshift = rng.uniform(0, 1, n).astype("f4")
    redshift[::3] = np.nan
    probs = rng.dirichlet(np.ones(10), n).astype("f4") if n else np.zeros((0, 10), "f4")
    return {
        "objid": ids,
        "ra": rng.uniform(0, 360, n),
        "redshift": redshift,
        "label": rng.integers(0, 10, n).astype("i2"),
        "good": rng.random(n) > 0.5,
        "probs": probs,
        "embedding": rng.standard_normal((n, 32), dtype="f4"),
    }


def write_chunks(path, fmt=None, *, sizes=CHUNK_SIZES, meta=None, overwrite=False):
    rng = np.random.default_rng(42)
    chunks = []
    start = 0
    with open_writer(
        path, COLUMNS, meta=make_meta() if meta is None else meta, overwrite=overwrite, format=fmt
    ) as writer:
        for n in sizes:
            chunk = make_chunk(rng, start, n)
            writer.write(chunk)
            chunks.append(chunk)
            start += n
        assert writer.rows_written == start
    expected = {name: np.concatenate([c[name] for c in chunks]) for name in chunks[0]}
    return expected, writer


def read(path, fmt):
    return Table.read(path, path="catalog") if fmt == "hdf5" else Table.read(path)


def text(column):
    values = np.asarray(column)
    return np.char.decode(values, "ascii") if values.dtype.kind == "S" else values


def plain(column):
    """Values of a column read back; FITS reading masks NaN and TNULL entries."""
    if isinstance(column, MaskedColumn):
        if column.dtype.kind == "f":
            return column.filled(np.nan)
        assert not column.mask.any()
        return column.data
    return np.asarray(column)


def leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".part")]


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_round_trip_values_units_descriptions_meta(tmp_path, fmt):
    path = tmp_path / f"cat{SUFFIX[fmt]}"
    expected, _ = write_chunks(path)
    table = read(path, fmt)
    assert len(table) == sum(CHUNK_SIZES)
    assert leftovers(tmp_path) == []

    if fmt == "csv":  # plain CSV: vector columns expanded, no metadata
        for name, values in (
            ("probs_3", expected["probs"][:, 3]),
            ("embedding_31", expected["embedding"][:, 31]),
            ("redshift", expected["redshift"]),
        ):
            np.testing.assert_array_equal(table[name].astype("f4"), values)
        np.testing.assert_array_equal(table["ra"], expected["ra"])
        np.testing.assert_array_equal(table["objid"], expected["objid"])
        return

    assert table.colnames == [spec.name for spec in COLUMNS]
    for spec in COLUMNS:
        got = table[spec.name]
        if spec.dtype == "U":
            np.testing.assert_array_equal(text(got), expected[spec.name])
        else:
            np.testing.assert_array_equal(plain(got), expected[spec.name])
            assert got.dtype.kind == np.dtype(spec.dtype).kind
        assert got.description == spec.description
        assert (got.unit.to_string() if got.unit is not None else None) == spec.unit
    assert np.isnan(plain(table["redshift"])).sum() == np.isnan(expected["redshift"]).sum() > 0
    for key, value in make_meta().items():
        if key != "DATE":
            assert table.meta[key] == value, key
    assert isinstance(table.meta["PREPROC"], dict)


# astropy 8.0 cannot read a zero-row ECSV with vector columns, not even one it wrote
@pytest.mark.parametrize("fmt", sorted(set(FORMATS) - {"ecsv"}))
def test_zero_row_catalog_is_readable(tmp_path, fmt):
    path = tmp_path / f"empty{SUFFIX[fmt]}"
    write_chunks(path, sizes=(0,))
    table = read(path, fmt)
    assert len(table) == 0
    assert "objid" in table.colnames


def test_multidimensional_cells_keep_their_shape(tmp_path):
    columns = [ColumnSpec("stamp", "f4", shape=(3, 4), unit="Jy")]
    data = np.arange(2 * 12, dtype="f4").reshape(2, 3, 4)
    for suffix in (".fits", ".h5", ".ecsv"):
        path = tmp_path / f"stamp{suffix}"
        with open_writer(path, columns, meta={}) as writer:
            writer.write({"stamp": data})
        table = Table.read(path, path="catalog") if suffix == ".h5" else Table.read(path)
        np.testing.assert_array_equal(table["stamp"], data)
    assert fits.getheader(tmp_path / "stamp.fits", 1)["TDIM1"] == "(4,3)"


FITSVERIFY = shutil.which("fitsverify")


@pytest.mark.skipif(
    FITSVERIFY is None and not os.environ.get("CI"),
    reason="fitsverify is not installed (CI requires it)",
)
def test_fits_output_passes_fitsverify(tmp_path):
    assert FITSVERIFY is not None, "CI needs fitsverify (Debian package fitsverify)"
    path = tmp_path / "cat.fits"
    meta = make_meta()
    meta["comments"] = ["produced by the galaxalign-astro test suite"]
    write_chunks(path, meta=meta)
    result = subprocess.run(
        [FITSVERIFY, str(path)], capture_output=True, text=True, check=False, timeout=60
    )
    summary = re.search(r"found (\d+) warning\(s\) and (\d+) error\(s\)", result.stdout)
    assert summary is not None, result.stdout
    assert summary.groups() == ("0", "0"), result.stdout


def test_fits_checksums_are_filled_in_without_rewriting(tmp_path):
    path = tmp_path / "cat.fits"
    rng = np.random.default_rng(0)
    with open_writer(path, COLUMNS, meta=make_meta()) as writer:
        writer.write(make_chunk(rng, 0, 50))
        streamed = writer._data_start  # header bytes as written before any row
    with fits.open(path, checksum=True) as hdul:  # verifies both HDUs
        for hdu in hdul:
            assert hdu.verify_checksum() == 1 and hdu.verify_datasum() == 1
            assert hdu.header["CHECKSUM"] != "0" * 16
        assert hdul[1].header["DATASUM"] != "0"
        # the reserved cards were filled in place: headers kept their size
        assert hdul[1]._data_offset == streamed
    # a changed byte in the data is detected
    raw = bytearray(path.read_bytes())
    raw[streamed + 3] ^= 0xFF
    (tmp_path / "bad.fits").write_bytes(bytes(raw))
    with fits.open(tmp_path / "bad.fits") as hdul:
        assert hdul[1].verify_datasum() == 0


def test_fits_header_describes_columns_and_provenance(tmp_path):
    path = tmp_path / "cat.fits"
    write_chunks(path)
    with fits.open(path) as hdul:
        header = hdul["CATALOG"].header
        assert header["NAXIS2"] == sum(CHUNK_SIZES)
        assert header["TFORM6"] == "10E"
        assert header["TFORM7"] == "32E"
        assert header["TUNIT2"] == "deg"
        assert header.comments["TTYPE6"] == "class probabilities"
        assert header["WSHA256"] == "0123456789abcdef" * 4
        assert header["MODEL"] == "galaxalign-vit-b16"
        assert '"size": 224' in header["PREPROC"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", header["DATE"])
    assert os.path.getsize(path) % 2880 == 0


def test_fits_integer_nulls_are_declared_and_masked(tmp_path):
    path = tmp_path / "nulls.fits"
    columns = [ColumnSpec("label", "i2"), ColumnSpec("flux", "f4")]
    with open_writer(path, columns, meta={}) as writer:
        writer.write(
            {
                "label": MaskedColumn([1, 2, 3], mask=[False, True, False]),
                "flux": np.ma.masked_array([1.0, 2.0, 3.0], mask=[True, False, False]),
            }
        )
    table = Table.read(path, mask_invalid=False)
    assert table["label"].mask.tolist() == [False, True, False]
    assert np.isnan(table["flux"][0])
    assert fits.getheader(path, 1)["TNULL1"] == -32768


def test_existing_output_is_refused_before_any_work(tmp_path):
    path = tmp_path / "cat.fits"
    path.write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match=re.escape(str(path))) as info:
        open_writer(path, COLUMNS, meta={})
    assert "\n" not in str(info.value)
    assert path.read_bytes() == b"precious"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("fmt", ["fits", "parquet"])
def test_overwrite_replaces_existing_output(tmp_path, fmt):
    path = tmp_path / f"cat{SUFFIX[fmt]}"
    path.write_bytes(b"old contents")
    write_chunks(path, sizes=(5,), overwrite=True)
    assert len(read(path, fmt)) == 5


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_exception_mid_write_keeps_existing_output(tmp_path, fmt):
    path = tmp_path / f"cat{SUFFIX[fmt]}"
    path.write_bytes(b"previous run")
    rng = np.random.default_rng(0)
    with pytest.raises(RuntimeError, match="model crashed"):
        with open_writer(path, COLUMNS, meta=make_meta(), overwrite=True) as writer:
            writer.write(make_chunk(rng, 0, 20))
            assert len(leftovers(tmp_path)) == 1  # rows go to a hidden temporary file
            assert path.read_bytes() == b"previous run"
            raise RuntimeError("model crashed")
    assert path.read_bytes() == b"previous run"
    assert leftovers(tmp_path) == []


def test_interrupt_leaves_no_output(tmp_path):
    path = tmp_path / "cat.parquet"
    with pytest.raises(KeyboardInterrupt):
        with open_writer(path, COLUMNS, meta={}) as writer:
            writer.write(make_chunk(np.random.default_rng(0), 0, 3))
            raise KeyboardInterrupt
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_abort_and_unclosed_writer_remove_temporary_file(tmp_path, caplog):
    writer = open_writer(tmp_path / "a.ecsv", COLUMNS, meta={})
    writer.write(make_chunk(np.random.default_rng(0), 0, 3))
    writer.abort()
    assert writer.closed
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="aborted"):
        writer.write(make_chunk(np.random.default_rng(0), 0, 3))

    writer = open_writer(tmp_path / "b.csv", COLUMNS, meta={})
    assert len(leftovers(tmp_path)) == 1
    with caplog.at_level(logging.WARNING, logger="galaxalign_astro.catalog"):
        del writer
        gc.collect()
    assert list(tmp_path.iterdir()) == []
    assert "never closed" in caplog.text


def test_temporary_file_of_a_killed_writer_is_removed_by_the_next(tmp_path):
    # a SIGKILLed writer cannot clean up; the next writer of that output removes its
    # temporary file, and leaves those of live processes and of other outputs alone
    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid no longer runs
    killed = tmp_path / f".cat.fits.{dead.pid}.0123abcd.part"
    live = tmp_path / f".cat.fits.{os.getppid()}.89abcdef.part"
    other = tmp_path / f".other.fits.{dead.pid}.0123abcd.part"
    for path in (killed, live, other):
        path.write_bytes(b"half a catalog")
    write_chunks(tmp_path / "cat.fits")
    assert not killed.exists()
    assert live.exists() and other.exists()
    assert len(Table.read(tmp_path / "cat.fits")) == sum(CHUNK_SIZES)


def _hold_flock(path):
    """Open ``path`` and hold an exclusive flock on it, as a live writer elsewhere would."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def _dead_pid():
    dead = subprocess.Popen(["true"])
    dead.wait()
    return dead.pid


@pytest.mark.skipif(fcntl is None, reason="flock is POSIX")
def test_temporary_file_of_a_live_writer_in_another_pid_namespace_is_kept(tmp_path):
    # a writer in another container or on another host has a pid that does not run
    # here; it holds the lock on its temporary file's lock file, so it is left alone
    pid = _dead_pid()
    held = tmp_path / f".cat.fits.{pid}.0123abcd.part"
    held.write_bytes(b"half a catalog")
    fd = _hold_flock(tmp_path / f"{held.name}.lock")
    # a writer of a version without lock files that locks the file itself (HDF5 does)
    self_locked = tmp_path / f".cat.fits.{pid}.456789ab.part"
    self_locked.write_bytes(b"half a catalog")
    fd_self = _hold_flock(self_locked)
    try:
        write_chunks(tmp_path / "cat.fits")
        assert held.exists() and self_locked.exists()
        assert (tmp_path / f"{held.name}.lock").exists()
    finally:
        os.close(fd)
        os.close(fd_self)
    # once its writer is gone (its lock released), the next writer removes both files
    write_chunks(tmp_path / "cat.fits", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.fits"]


@pytest.mark.skipif(fcntl is None, reason="flock is POSIX")
def test_an_unlocked_temporary_file_is_removed_whatever_pid_its_name_holds(tmp_path):
    # the pid in the name says nothing across PID namespaces (and pids are reused):
    # a temporary file with a lock file nobody holds belongs to a writer that is gone
    stale = tmp_path / f".cat.fits.{os.getppid()}.89abcdef.part"
    stale.write_bytes(b"half a catalog")
    (tmp_path / f"{stale.name}.lock").write_bytes(b"")
    # a writer killed between creating its lock file and its temporary file
    orphan = tmp_path / f".cat.fits.{os.getppid()}.fedcba98.part.lock"
    orphan.write_bytes(b"")
    write_chunks(tmp_path / "cat.fits")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.fits"]


@pytest.mark.skipif(fcntl is None, reason="flock is POSIX")
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_a_writer_holds_the_lock_of_its_temporary_file_while_it_writes(tmp_path, fmt):
    path = tmp_path / f"cat{SUFFIX[fmt]}"
    first = open_writer(path, COLUMNS, meta=make_meta(), overwrite=True)
    first.write(make_chunk(np.random.default_rng(0), 0, 5))
    lock = tmp_path / f"{first._tmp.name}.lock"
    with pytest.raises(BlockingIOError):
        os.close(_hold_flock(lock))
    # a second writer of the same output, meanwhile, leaves the first one's file alone
    write_chunks(path, fmt)
    assert first._tmp.exists() and lock.exists()
    first.write(make_chunk(np.random.default_rng(1), 5, 3))
    first.close()
    assert len(read(path, fmt)) == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


_KILLED_WRITER = """
import sys, numpy as np
from galaxalign_astro.catalog import ColumnSpec, open_writer
w = open_writer(sys.argv[1], [ColumnSpec("x", "f8")], meta={})
w.write({"x": np.arange(10.0)})
print(w._tmp, flush=True)
sys.stdin.read()
"""


@pytest.mark.skipif(fcntl is None, reason="flock is POSIX")
def test_a_sigkilled_writer_leaves_files_the_next_writer_removes(tmp_path):
    path = tmp_path / "cat.fits"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        tmp = Path(proc.stdout.readline().strip())
        assert tmp.exists() and Path(f"{tmp}.lock").exists()
        write_chunks(tmp_path / "cat.fits")  # the writer still runs: its files stay
        assert tmp.exists()
    finally:
        proc.kill()
        proc.wait()
        proc.stdin.close()
        proc.stdout.close()
    write_chunks(tmp_path / "cat.fits", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.fits"]


def test_rejected_chunk_leaves_writer_usable(tmp_path):
    path = tmp_path / "cat.h5"
    rng = np.random.default_rng(0)
    with open_writer(path, COLUMNS, meta={}) as writer:
        bad = make_chunk(rng, 0, 4)
        bad["probs"] = bad["probs"][:, :9]
        with pytest.raises(ValueError, match=r"probs.*shape \(10,\)"):
            writer.write(bad)
        missing = make_chunk(rng, 0, 4)
        del missing["ra"]
        with pytest.raises(ValueError, match="missing \\['ra'\\]"):
            writer.write(missing)
        wrong_kind = make_chunk(rng, 0, 4)
        wrong_kind["label"] = wrong_kind["label"] + 0.5
        with pytest.raises(ValueError, match="label"):
            writer.write(wrong_kind)
        writer.write(make_chunk(rng, 0, 4))
    assert len(Table.read(path, path="catalog")) == 4


def test_long_text_is_truncated_with_one_warning(tmp_path, caplog):
    path = tmp_path / "names.ecsv"
    columns = [ColumnSpec("name", "U", width=5)]
    with caplog.at_level(logging.WARNING, logger="galaxalign_astro.catalog"):
        with open_writer(path, columns, meta={}) as writer:
            writer.write({"name": ["NGC1300", "M31"]})
            writer.write({"name": ["UGC12158"]})
    assert Table.read(path)["name"].tolist() == ["NGC13", "M31", "UGC12"]
    assert caplog.text.count("truncated") == 1


def test_non_fits_unit_is_written_with_a_warning(tmp_path, caplog):
    path = tmp_path / "flux.fits"
    with caplog.at_level(logging.WARNING, logger="galaxalign_astro.catalog"):
        with open_writer(path, [ColumnSpec("flux", "f4", unit="nmgy")], meta={}) as writer:
            writer.write({"flux": [1.0]})
    assert fits.getheader(path, 1)["TUNIT1"] == "nmgy"
    assert "not a FITS standard unit" in caplog.text


def test_quantities_are_converted_to_the_column_unit(tmp_path):
    path = tmp_path / "radius.fits"
    columns = [ColumnSpec("radius", "f4", unit="arcsec")]
    with open_writer(path, columns, meta={}) as writer:
        writer.write({"radius": [1.0, 2.0] * u.arcmin})
        with pytest.raises(ValueError, match="radius"):
            writer.write({"radius": [1.0] * u.kg})
    table = Table.read(path)
    np.testing.assert_allclose(table["radius"], [60.0, 120.0])
    assert table["radius"].unit == u.arcsec


def test_write_table_is_one_shot_and_atomic(tmp_path):
    table = Table(
        {
            "name": ["a", "bb", "ccc"],
            "flux": [1.0, np.nan, 3.0] * u.Jy,
            "vec": np.ones((3, 4), dtype="f4"),
        },
        meta={"MODEL": "x"},
    )
    table["flux"].description = "flux density"
    path = tmp_path / "t.parquet"
    write_table(table, path)
    back = Table.read(path)
    assert back["name"].tolist() == ["a", "bb", "ccc"]
    assert back["flux"].unit == u.Jy
    assert back["flux"].description == "flux density"
    assert back.meta == {"MODEL": "x"}
    with pytest.raises(OutputExistsError):
        write_table(table, path)
    write_table(table[:1], path, overwrite=True)
    assert len(Table.read(path)) == 1


def test_output_format_from_suffix():
    assert output_format("a/b.FITS") == "fits"
    assert output_format("b.fit") == "fits"
    assert output_format("b.h5") == output_format("b.hdf5") == "hdf5"
    assert output_format("b.parquet") == "parquet"
    assert output_format("b.ecsv") == "ecsv"
    assert output_format("b.csv") == "csv"
    for name in ("results.txt", "cat.fits.gz", "noext"):
        with pytest.raises(ValueError, match=re.escape(name)):
            output_format(name)


def test_explicit_format_overrides_suffix(tmp_path):
    path = tmp_path / "cat.dat"
    write_chunks(path, "ecsv", sizes=(3,))
    assert len(Table.read(path, format="ascii.ecsv")) == 3
    with pytest.raises(ValueError, match="unknown catalog format"):
        open_writer(tmp_path / "x.dat", COLUMNS, meta={}, format="votable")


@pytest.mark.parametrize("fmt", ["fits", "hdf5", "parquet"])
def test_memory_does_not_grow_with_rows(tmp_path, monkeypatch, fmt):
    # parquet buffers whole row groups (numpy memory, seen by tracemalloc): keep them small
    monkeypatch.setattr("galaxalign_astro.catalog.parquet.ROW_GROUP_BYTES", 4 << 20)
    nrows, chunk_rows, dim = 200_000, 10_000, 64
    columns = [ColumnSpec("index", "i8"), ColumnSpec("embedding", "f4", shape=(dim,))]
    total_bytes = nrows * (8 + 4 * dim)
    rng = np.random.default_rng(1)
    # the first writer imports pyarrow/h5py, whose module objects are not catalog data
    write_chunks(tmp_path / f"warm-up{SUFFIX[fmt]}", sizes=(1,))
    tracemalloc.start()
    try:
        with open_writer(tmp_path / f"big{SUFFIX[fmt]}", columns, meta={}) as writer:
            for start in range(0, nrows, chunk_rows):
                writer.write(
                    {
                        "index": np.arange(start, start + chunk_rows),
                        "embedding": rng.standard_normal((chunk_rows, dim), dtype="f4"),
                    }
                )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert writer.rows_written == nrows
    # a few chunks' worth at most (2.6 MB each), against 53 MB written in 20 chunks
    chunk_bytes = total_bytes * chunk_rows // nrows
    assert peak < 6 * chunk_bytes, f"peak {peak / 1e6:.1f} MB for {total_bytes / 1e6:.0f} MB"


def test_parquet_fields_carry_units_descriptions_and_provenance(tmp_path):
    import json

    import pyarrow.parquet as pq

    path = tmp_path / "cat.parquet"
    with open_writer(path, COLUMNS, meta={"MODEL": "galaxalign-default", "N": 3}) as writer:
        writer.write(make_chunk(np.random.default_rng(0), 0, 3))
    schema = pq.read_schema(path)
    for spec in COLUMNS:
        field = schema.field(spec.name).metadata or {}
        assert field.get(b"unit", b"").decode() == (spec.unit or "")
        assert field.get(b"description", b"").decode() == (spec.description or "")
    provenance = json.loads(schema.metadata[b"galaxalign"])
    assert provenance["MODEL"] == "galaxalign-default" and provenance["N"] == 3
    assert Table.read(path).meta["MODEL"] == "galaxalign-default"  # astropy's YAML still rules
