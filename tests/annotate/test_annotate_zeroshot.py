"""Zero-shot classes in annotate: the user's classes replace the model's, end to end."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table
from click.testing import CliRunner

from galaxalign_astro.annotate import WorkDir, annotate, annotate_file
from galaxalign_astro.cli.main import cli
from galaxalign_astro.inference import Predictor, classify

CLASSES = """
[[classes]]
name = "Disk"
descriptions = ["a thin edge-on disk galaxy"]
symbols = ["edge_on_no_bulge"]

[[classes]]
name = "Ball"
descriptions = ["a smooth round ball of old red stars"]
"""


@pytest.fixture
def class_file(tmp_path):
    path = tmp_path / "classes.toml"
    path.write_text(CLASSES)
    return path


def _run(path, out, model, tmp_path, **kwargs):
    return annotate_file(
        path, out, model=model, path_col="file", base_dir=tmp_path, batch_size=4, **kwargs
    )


def test_annotate_file_classifies_into_the_given_classes(
    catalog, micro_predictor, class_file, tmp_path
):
    path, table = catalog
    out = tmp_path / "zs.fits"
    summary = _run(path, out, micro_predictor, tmp_path, classes=class_file)
    result = Table.read(out, mask_invalid=False)
    ok = result["gxa_status"] == "ok"
    assert summary.n_ok == ok.sum() > 0
    assert result["gxa_probs"].shape == (len(table), 2)
    assert set(result["gxa_class_name"][ok]) <= {"Disk", "Ball"}
    np.testing.assert_allclose(result["gxa_probs"][ok].sum(axis=1), 1, rtol=1e-5)
    info = result.meta["galaxalign"]
    assert info["class_names"] == ["Disk", "Ball"]
    assert info["zero_shot_classes"] == str(class_file)
    head = Predictor(micro_predictor.loaded, classes=class_file).head
    assert info["zero_shot_classes_sha256"] == head.sha256
    assert info["annotate"]["classes_sha256"] == head.sha256

    # the same rows through classify --classes and the in-memory API agree
    files = [str(tmp_path / f) for f in table["file"][ok]]
    direct = classify(files, model=micro_predictor.loaded, classes=class_file, workers=0)
    np.testing.assert_allclose(direct["probs"], result["gxa_probs"][ok], rtol=1e-4, atol=1e-6)
    in_memory = annotate(
        table, model=micro_predictor, classes=class_file, path_col="file", base_dir=tmp_path
    )
    np.testing.assert_allclose(in_memory["gxa_probs"], result["gxa_probs"], rtol=1e-4, atol=1e-6)
    # the predictor passed in keeps its own classes
    assert micro_predictor.class_names == list(micro_predictor.loaded.spec.class_names)


class _Crash(Exception):
    pass


def test_resume_refuses_other_classes(catalog, micro_predictor, class_file, tmp_path, monkeypatch):
    path, _ = catalog
    out = tmp_path / "out.fits"
    monkeypatch.setattr(WorkDir, "write_part", lambda *a: (_ for _ in ()).throw(_Crash()))
    with pytest.raises(_Crash):
        _run(path, out, micro_predictor, tmp_path, chunk_size=4, classes=class_file)
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"settings differ.*classes_sha256"):
        _run(path, out, micro_predictor, tmp_path, chunk_size=4, resume=True)
    class_file.write_text(CLASSES.replace("old red stars", "young blue stars"))
    with pytest.raises(ValueError, match=r"settings differ.*classes_sha256"):
        _run(path, out, micro_predictor, tmp_path, chunk_size=4, resume=True, classes=class_file)
    class_file.write_text(CLASSES)
    summary = _run(
        path, out, micro_predictor, tmp_path, chunk_size=4, resume=True, classes=class_file
    )
    assert summary.n_rows == len(Table.read(out))


def test_annotate_command_takes_classes(catalog, micro_model, class_file, tmp_path):
    path, _ = catalog
    out = tmp_path / "cli.parquet"
    result = CliRunner().invoke(
        cli,
        [
            "annotate", str(path), "-o", str(out), "--path-col", "file",
            "--base-dir", str(tmp_path), "--model", str(micro_model),
            "--classes", str(class_file), "--workers", "0",
        ],
    )  # fmt: skip
    assert result.exit_code in (0, 3), result.output
    written = Table.read(out)
    assert set(written["gxa_class_name"][written["gxa_status"] == "ok"]) <= {"Disk", "Ball"}
    assert written["gxa_probs"].shape[1] == 2
