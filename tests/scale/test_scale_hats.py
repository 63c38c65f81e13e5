"""The LSDB plugin and annotate-hats give, row for row, the single-process annotate."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from galaxalign_astro.annotate import annotate
from galaxalign_astro.errors import OutputExistsError
from galaxalign_astro.scale import (
    annotate_hats,
    annotate_partition,
    annotation_meta,
    cached_models,
    clear_predictors,
    index_from_hats,
)
from galaxalign_astro.scale import plugin as plugin_module
from galaxalign_astro.scale.hats import _import_lsdb
from galaxalign_astro.search import build_index, open_search_index

from .conftest import MISSING, N_ROWS, cutout_cube

lsdb = _import_lsdb()

ADDED = (
    "gxa_class_id",
    "gxa_class_name",
    "gxa_class_prob",
    "gxa_probs",
    "gxa_embedding",
    "gxa_sep",
    "gxa_status",
    "gxa_message",
)


def by_objid(frame) -> dict[int, int]:
    return {int(v): i for i, v in enumerate(frame["objid"].to_numpy())}


def assert_rows_match(frame, reference: Table) -> None:
    """Every row of the LSDB result has the reference row's added values (by objid)."""
    assert len(frame) == len(reference)
    rows = by_objid(frame)
    order = [rows[int(v)] for v in reference["objid"]]
    for name in ADDED:
        got = frame[name].to_numpy()[order]
        want = np.ma.getdata(reference[name])
        if want.dtype.kind in "US":
            np.testing.assert_array_equal(np.asarray(got, dtype=str), want, err_msg=name)
        else:
            got = np.stack(got) if want.ndim == 2 else np.asarray(got, dtype=want.dtype)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=name)


@pytest.fixture(scope="module")
def image_reference(sky_catalog, scale_predictor):
    _, table = sky_catalog
    cubes = np.stack([cutout_cube(i) for i in range(len(table))])
    return annotate(table, model=scale_predictor, images=cubes, bands="grz", batch_size=8)


ZERO_SHOT = """classes:
  - name: Disk
    descriptions: [a thin edge-on disk galaxy]
    symbols: [edge_on_no_bulge]
  - name: Ball
    descriptions: [a smooth round ball of old red stars]
"""


@pytest.mark.parametrize("zero_shot", [False, True], ids=["model-classes", "zero-shot"])
def test_annotate_hats_on_a_cluster_matches_annotate(
    zero_shot, hats_input, image_reference, sky_catalog, scale_predictor, micro_model,
    thread_client, tmp_path
):  # fmt: skip
    classes, reference = None, image_reference
    if zero_shot:  # the class file is read once here; its prototypes travel to the workers
        classes = tmp_path / "classes.yaml"
        classes.write_text(ZERO_SHOT)
        cubes = np.stack([cutout_cube(i) for i in range(N_ROWS)])
        reference = annotate(
            sky_catalog[1], model=scale_predictor, classes=classes, images=cubes, bands="grz",
            batch_size=8,
        )  # fmt: skip
    clear_predictors()
    out = tmp_path / "gxa"
    summary = annotate_hats(
        hats_input,
        out,
        model=micro_model,
        classes=classes,
        images="image",
        bands="grz",
        batch_size=8,
        scheduler=thread_client,
    )
    assert (summary.n_rows, summary.n_ok, summary.n_partitions) == (N_ROWS, N_ROWS, 13)
    names = {"Disk", "Ball"} if zero_shot else set(scale_predictor.class_names)
    assert set(summary.class_counts) <= names
    result = lsdb.open_catalog(out).compute()
    # every input column kept, the model's appended after them
    assert list(result.columns) == ["objid", "ra", "dec", "mag", "file", "image", "flat", *ADDED]
    assert_rows_match(result, reference)
    assert np.stack(result["gxa_probs"].to_numpy()).shape == (N_ROWS, len(names))
    # 13 partitions on two in-process workers and the driver: one model load in all
    assert len(cached_models()) == 1


def test_path_column_in_one_process(
    hats_input, sky_catalog, scale_predictor, micro_model, tmp_path
):
    folder, table = sky_catalog
    reference = annotate(table, model=scale_predictor, path_col="file", base_dir=folder)
    out = tmp_path / "gxa"
    summary = annotate_hats(hats_input, out, model=micro_model, path_col="file", base_dir=folder)
    assert (summary.n_ok, summary.n_failed) == (N_ROWS - 1, 1)
    result = lsdb.open_catalog(out).compute()
    assert_rows_match(result, reference)
    failed = result[result["objid"] == 1000 + MISSING]
    assert failed["gxa_status"].iloc[0] == "error"
    assert np.isnan(failed["gxa_class_prob"].iloc[0])
    # separations come from the cutout WCS: near zero for the good rows
    good = result["gxa_status"] == "ok"
    assert float(result["gxa_sep"][good].max()) < 1.0


def test_the_plugin_in_map_partitions(hats_input, image_reference, micro_model):
    catalog = lsdb.open_catalog(hats_input, columns="all")
    annotated = catalog.map_partitions(
        annotate_partition,
        include_pixel=True,
        meta=annotation_meta(catalog.meta, model=micro_model),
        model=micro_model,
        images="flat",
        image_shape=(3, 40, 40),
        bands="grz",
        batch_size=8,
    )
    assert_rows_match(annotated.compute(), image_reference)


class _Crash(Exception):
    pass


def test_a_killed_run_resumes_skipping_finished_partitions(
    hats_input, image_reference, micro_model, tmp_path, monkeypatch
):
    real = plugin_module.annotate_partition
    calls = []

    def crash_on_third(partition, pixel=None, **kwargs):
        if len(calls) == 2:
            raise _Crash
        calls.append(pixel)
        return real(partition, pixel, **kwargs)

    monkeypatch.setattr(plugin_module, "annotate_partition", crash_on_third)
    out = tmp_path / "gxa"
    options = {"model": micro_model, "images": "image", "bands": "grz", "batch_size": 8}
    with pytest.raises(RuntimeError) as crashed:  # lsdb names the partition that failed
        annotate_hats(hats_input, out, **options)
    assert isinstance(crashed.value.__cause__, _Crash)
    with pytest.raises(OutputExistsError, match="resume"):
        annotate_hats(hats_input, out, **options)
    with pytest.raises(ValueError, match="prefix"):
        annotate_hats(hats_input, out, resume=True, prefix="x_", **options)

    def count(partition, pixel=None, **kwargs):
        calls.append(pixel)
        return real(partition, pixel, **kwargs)

    calls.clear()
    monkeypatch.setattr(plugin_module, "annotate_partition", count)
    summary = annotate_hats(hats_input, out, resume=True, **options)
    assert summary.partitions_resumed == 2
    assert len(calls) == 13 - 2
    assert_rows_match(lsdb.open_catalog(out).compute(), image_reference)
    with pytest.raises(OutputExistsError, match="finished"):
        annotate_hats(hats_input, out, resume=True, **options)


@pytest.fixture(scope="module")
def annotated_hats(hats_input, micro_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("annotated") / "gxa"
    annotate_hats(hats_input, out, model=micro_model, images="image", bands="grz")
    return out


def test_index_from_hats_keys_rows_of_the_catalog(annotated_hats, tmp_path):
    frame = lsdb.open_catalog(annotated_hats).compute()
    saved = tmp_path / "index"
    index = index_from_hats(annotated_hats, saved)
    assert len(index) == N_ROWS and index.model_name == "micro-test"
    # ids are row numbers of the computed catalog: the same index as from the whole table
    table = Table({"gxa_embedding": np.stack(frame["gxa_embedding"].to_numpy())})
    whole = build_index(table, embedding_col="gxa_embedding")
    np.testing.assert_array_equal(index.ids, whole.ids)
    query = np.stack(frame["gxa_embedding"].to_numpy())[[5, 40]]
    _, found = index.search(query, k=3)
    np.testing.assert_array_equal(found[:, 0], [5, 40])
    np.testing.assert_array_equal(found, whole.search(query, k=3)[1])
    loaded = open_search_index(saved)
    assert loaded.embedding_col == "gxa_embedding" and len(loaded.index) == N_ROWS


def test_index_from_hats_with_an_id_column_and_ivf(annotated_hats):
    frame = lsdb.open_catalog(annotated_hats).compute()
    index = index_from_hats(annotated_hats, id_col="objid", kind="hnsw")
    assert sorted(index.ids.tolist()) == sorted(frame["objid"].tolist())
    query = np.stack(frame["gxa_embedding"].to_numpy())[:1]
    _, found = index.search(query, k=1)
    assert found[0, 0] == frame["objid"].iloc[0]


def test_the_plugin_on_a_dataframe_with_source_measurements(sky_catalog, sources_model):
    """Vector and masked integer measurement columns survive the Arrow conversion."""
    folder, table = sky_catalog
    rows = table[:10]
    reference = annotate(rows, model=sources_model, path_col="file", base_dir=folder)
    frame = rows.to_pandas()
    result = annotate_partition(
        frame, model=sources_model, path_col="file", base_dir=folder, ra_col="ra", dec_col="dec"
    )
    assert list(result.index) == list(frame.index)
    measured = [n for n in reference.colnames if n.startswith("gxa_") and n not in ADDED]
    assert measured and list(result.columns) == [*frame.columns, *reference.colnames[5:]]
    masked = 0
    for name in measured:
        want = reference[name]
        got = result[name].to_numpy()
        missing = np.ma.getmaskarray(want).reshape(len(want), -1).any(axis=1)
        masked += int(missing.sum())
        np.testing.assert_array_equal(result[name].isna().to_numpy(), missing, err_msg=name)
        for i in np.flatnonzero(~missing):
            np.testing.assert_allclose(
                np.asarray(got[i], dtype=np.float64),
                np.ma.getdata(want[i]),
                rtol=1e-5,
                err_msg=name,
            )
    assert masked  # integer measurements of the failed row are nulls
    assert result["gxa_status"].iloc[MISSING] == "error"


def test_resume_refuses_an_input_whose_content_changed(
    hats_input, micro_model, tmp_path, monkeypatch
):
    import os
    import shutil

    source = tmp_path / "input"
    shutil.copytree(hats_input, source)
    real = plugin_module.annotate_partition
    calls = []

    def crash_on_second(partition, pixel=None, **kwargs):
        if calls:
            raise _Crash
        calls.append(pixel)
        return real(partition, pixel, **kwargs)

    monkeypatch.setattr(plugin_module, "annotate_partition", crash_on_second)
    out = tmp_path / "gxa"
    options = {"model": micro_model, "images": "image", "bands": "grz", "batch_size": 8}
    with pytest.raises(RuntimeError):
        annotate_hats(source, out, **options)
    # one byte of a partition's Parquet footer changes; size and mtime are restored
    data = sorted(source.rglob("Npix=*.parquet"))[0]
    stat = data.stat()
    raw = bytearray(data.read_bytes())
    raw[-100] ^= 0xFF
    data.write_bytes(bytes(raw))
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(ValueError, match="content changed"):
        annotate_hats(source, out, resume=True, **options)


def test_a_second_run_on_the_same_output_is_refused(hats_input, micro_model, tmp_path):
    from galaxalign_astro.catalog.locks import exclusive_lock
    from galaxalign_astro.errors import OutputLockedError

    out = tmp_path / "gxa"
    with exclusive_lock(tmp_path / ".gxa.galaxalign.lock", what="another run"):
        with pytest.raises(OutputLockedError, match="being written by another writer"):
            annotate_hats(hats_input, out, model=micro_model, images="image", bands="grz")
    assert not out.exists()
