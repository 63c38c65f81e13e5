"""evaluate_model and the report files, with an untrained micro model (metrics need no skill)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from galaxalign_astro.datasets import load_dataset
from galaxalign_astro.errors import OutputExistsError
from galaxalign_astro.evaluate import REPORT_FILES, evaluate_model, evaluate_to_dir, write_report
from galaxalign_astro.inference import Predictor
from galaxalign_astro.models.checkpoint import load_model
from tests.datasets.h5_factory import write_galaxy10, write_mnist_pair
from tests.evaluate.model_factory import save_untrained_model


@pytest.fixture(scope="module")
def micro_model(tmp_path_factory):
    return save_untrained_model(tmp_path_factory.mktemp("models") / "micro")


@pytest.fixture(scope="module")
def loaded(micro_model):
    return load_model(micro_model)


@pytest.fixture(scope="module")
def galaxy10_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("g10") / "Galaxy10_DECals.h5"
    write_galaxy10(path, n=60, size=64)
    return path


@pytest.fixture(scope="module")
def splits(loaded, galaxy10_file):
    pre = loaded.spec.preprocess
    return (
        load_dataset(galaxy10_file, pre, split="test"),
        load_dataset(galaxy10_file, pre, split="train"),
    )


@pytest.fixture(scope="module")
def result(loaded, splits):
    test, train = splits
    return evaluate_model(loaded, test, train=train)


def test_every_head_and_metric_is_reported(result, loaded):
    cls = result["classification"]
    assert set(cls) == {"text", "symbol", "mix", "probe"}
    for head in cls.values():
        for key in ("accuracy", "macro_f1", "top2_accuracy", "ece"):
            assert 0.0 <= head[key] <= 1.0
        assert head["accuracy"] <= head["top2_accuracy"]
        assert len(head["confusion_matrix"]) == 10
        assert sum(map(sum, head["confusion_matrix"])) == 10
        assert sum(c["support"] for c in head["per_class"].values()) == 10
    assert cls["mix"]["alpha"] == loaded.spec.prototype_alpha
    assert cls["probe"]["n_train"] == 50
    ret = result["retrieval"]
    assert ret["n_queries"] == 0  # one test image per class: no query has a relevant candidate
    assert result["class_names"] == loaded.spec.class_names
    assert result["data"]["split"] == "test" and result["data"]["n_images"] == 10
    assert result["model"]["weights_sha256"] == loaded.weights_sha256
    json.dumps(result)  # JSON-ready


def test_mix_head_agrees_with_classify(result, loaded, splits):
    """Evaluation scores the very predictions `classify` makes."""
    test, _ = splits
    probs, _ = Predictor(loaded).predict(torch.from_numpy(test.images).float() / 255.0)
    cm = np.zeros((10, 10), dtype=int)
    np.add.at(cm, (test.labels, probs.argmax(1)), 1)
    assert cm.tolist() == result["classification"]["mix"]["confusion_matrix"]


def test_retrieval_and_probe_on_the_train_split(loaded, splits):
    _, train = splits
    out = evaluate_model(loaded, train)
    assert "probe" not in out["classification"] and out["train_data"] is None
    assert out["retrieval"]["n_queries"] == 50
    assert 0 < out["retrieval"]["map"] <= 1
    assert set(out["retrieval"]["per_class_ap"]) == set(loaded.spec.class_names)


def test_narrower_data_classes_are_matched_by_key(loaded, tmp_path):
    folder = write_mnist_pair(tmp_path / "mnist")
    data = load_dataset(folder, loaded.spec.preprocess, split="test")
    out = evaluate_model(loaded, data)
    assert out["class_names"] == ["smooth_round", "smooth_cigar", "edge_on_disk", "unbarred_spiral"]
    assert out["class_mapping"]["smooth_round"] == "Round Smooth"
    assert len(out["classification"]["mix"]["confusion_matrix"]) == 4


def test_report_files_and_overwrite(result, tmp_path):
    paths = write_report(result, tmp_path / "report")
    assert sorted(p.name for p in paths.values()) == sorted(REPORT_FILES)
    stored = json.loads(paths["json"].read_text())  # strict JSON: NaN is written as null
    assert stored["retrieval"]["map"] is None and stored["retrieval"]["n_queries"] == 0
    assert stored["classification"] == result["classification"]
    text = paths["markdown"].read_text()
    assert "| mixed prototypes (alpha" in text and "Edge-on with Bulge" in text
    for name in ("confusion", "reliability"):
        with Image.open(paths[name]) as image:
            assert image.format == "PNG" and image.size[0] > 300
    with pytest.raises(OutputExistsError, match=r"report\.json"):
        write_report(result, tmp_path / "report")
    write_report(result, tmp_path / "report", overwrite=True)


def test_evaluate_to_dir_uses_the_train_split_for_the_probe(micro_model, galaxy10_file, tmp_path):
    out = evaluate_to_dir(micro_model, galaxy10_file, tmp_path / "r", label_fraction=0.1)
    assert out["train_data"]["split"] == "train"
    assert out["classification"]["probe"]["n_train"] == 10  # one per class
    assert all((tmp_path / "r" / name).exists() for name in REPORT_FILES)
    with pytest.raises(OutputExistsError):
        evaluate_to_dir(micro_model, galaxy10_file, tmp_path / "r")
