"""Bad values in recipes, model specs and annotate options are one-line errors, not tracebacks."""

import json
import shutil

import pytest

from galaxalign_astro.errors import ModelLoadError
from galaxalign_astro.models import load_model
from galaxalign_astro.preprocess import PreprocessConfig
from galaxalign_astro.train import TrainConfig, load_recipe
from galaxalign_astro.utils import type_problem


@pytest.mark.parametrize(
    ("value", "annotation", "expected"),
    [
        (3, int, None),
        (2.5, int, "an integer"),
        (True, int, "an integer"),
        ("many", int, "an integer"),
        (1, float, None),
        (float("nan"), float, "a finite number"),
        ("nan", float, "a finite number"),
        (None, int | None, None),
        ("x", int | None, "an integer or none"),
        ([1.0, 2.0], tuple[float, float], None),
        ([1.0], tuple[float, float], "a list of 2 values"),
        (["a", 3], tuple[str, ...], "a list whose items are each a string"),
        ({"a": 1}, dict, None),
        (3, bool, "true or false"),
    ],
)
def test_type_problem(value, annotation, expected):
    assert type_problem(value, annotation) == expected


def _recipe(tmp_path, text):
    path = tmp_path / "r.toml"
    path.write_text('architecture = "gxa-micro"\n' + text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('device = "tpu:7"\n', "device must be auto, cpu, cuda"),
        ('batch_size = "many"\n', "batch_size must be an integer, got 'many'"),
        ("seed = 1.5\n", "seed must be an integer"),
        ('[[stages]]\nname = "s"\nepochs = 2.5\n', "epochs must be an integer, got 2.5"),
        ('[[stages]]\nname = "s"\nlr = "fast"\n', "lr must be a finite number"),
        ("[preprocess]\nsize = 100000\n", "input size must be 8 to 1024 pixels"),
        ('[preprocess]\nfov_arcsec = "wide"\n', "fov_arcsec must be a finite number or none"),
        ("[data]\nworkers = 1.5\n", "workers must be an integer"),
    ],
)
def test_bad_recipe_values_are_named(tmp_path, text, message):
    with pytest.raises(ValueError, match=message) as error:
        load_recipe(_recipe(tmp_path, text))
    assert "\n" not in str(error.value)


def test_good_values_still_load(tmp_path):
    config = load_recipe(_recipe(tmp_path, 'device = "cuda:1"\ngrad_clip = 0\n'))
    assert config.device == "cuda:1" and isinstance(config, TrainConfig)
    assert PreprocessConfig(size=1024, fov_arcsec=60).size == 1024


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"prototype_alpha": "nan"}, "prototype_alpha must be a finite number"),
        ({"prototype_alpha": 1.5}, r"prototype_alpha must be in \[0, 1\]"),
        ({"preprocess": {"size": 100000}}, "input size must be 8 to 1024"),
        ({"symbol_tower": "both"}, "symbol_tower must be shared or separate"),
        ({"class_names": ["only one"]}, "one name per key"),
    ],
)
def test_bad_model_spec_values_are_named(micro_model, tmp_path, change, message):
    folder = tmp_path / "model"
    shutil.copytree(micro_model, folder)
    spec_path = folder / "galaxalign.json"
    spec = json.loads(spec_path.read_text())
    for key, value in change.items():
        if isinstance(value, dict):
            spec[key].update(value)
        else:
            spec[key] = value
    spec_path.write_text(json.dumps(spec))
    with pytest.raises(ModelLoadError, match=message) as error:
        load_model(folder)
    assert "galaxalign.json" in str(error.value) and "\n" not in str(error.value)


def test_bad_annotate_option_leaves_nothing_behind(micro_model, cutout_dir, tmp_path):
    from astropy.table import Table

    from galaxalign_astro.annotate import annotate_file

    catalog = tmp_path / "cat.fits"
    Table({"file": sorted(str(p) for p in cutout_dir.glob("*.fits"))}).write(catalog)
    output = tmp_path / "out.fits"
    with pytest.raises(ValueError, match="batch_size must be an integer, got 'many'"):
        annotate_file(catalog, output, model=micro_model, path_col="file", batch_size="many")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.fits", cutout_dir.name]
