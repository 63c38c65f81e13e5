"""The declared pipeline in pipelines/ runs end to end (against the local fake survey)."""

from __future__ import annotations

from pathlib import Path

import pytest
from astropy.table import Table
from click.testing import CliRunner

from galaxalign_astro.annotate import load_recipe, run_recipe
from galaxalign_astro.cli.annotate import command

RECIPE = Path(__file__).resolve().parents[2] / "pipelines" / "annotate_legacysurvey.toml"


def test_shipped_recipe_declares_the_four_steps():
    recipe = load_recipe(RECIPE)
    kwargs = recipe.kwargs
    assert Path(kwargs["input"]).is_file() and kwargs["input"].endswith("bright_galaxies.ecsv")
    assert kwargs["fetch"] == "legacysurvey" and kwargs["fetch_options"]["bands"] == "grz"
    assert recipe.check == "error" and kwargs["output"].endswith(".fits")
    assert len(Table.read(kwargs["input"])) >= 20


def test_recipe_classes_file_is_relative_to_the_recipe(tmp_path):
    (tmp_path / "jobs").mkdir()
    recipe = tmp_path / "jobs" / "rings.toml"
    recipe.write_text(
        '[input]\ncatalog = "cat.fits"\n[cutouts]\ndir = "cut"\n'
        '[classify]\nclasses = "rings.yaml"\n[write]\noutput = "o.fits"\n'
    )
    assert load_recipe(recipe).kwargs["classes"] == str(tmp_path / "jobs" / "rings.yaml")


def test_recipe_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[input]\ncatalog = "x.fits"\n[write]\noutput = "o.fits"\n[fetch]\nsurvy = 1\n')
    with pytest.raises(ValueError, match=r"bad\.toml.*survy"):
        load_recipe(bad)
    bad.write_text('[input]\ncatalog = "x.fits"\n')
    with pytest.raises(ValueError, match="needs output"):
        load_recipe(bad)


def test_recipe_check_stops_a_geometry_the_model_was_not_trained_on(
    micro_predictor, fetch_options, tmp_path
):
    with pytest.raises(ValueError, match="cover"):
        run_recipe(
            RECIPE,
            overrides={
                "model": micro_predictor.loaded,
                "output": str(tmp_path / "o.fits"),
                "fetch_options": fetch_options,  # 48-pixel cutouts: 12.6" of 67"
            },
        )
    assert not (tmp_path / "o.fits.partial").exists()


def test_cli_runs_the_shipped_recipe(micro_model, survey_server, fetch_options, tmp_path):
    out = tmp_path / "bright.parquet"
    args = [
        "--recipe",
        str(RECIPE),
        "-o",
        str(out),
        "--model",
        str(micro_model),
        "--base-url",
        survey_server.url,
        "--cache-dir",
        fetch_options["cache_dir"],
        "--rate-limit",
        "0",
    ]
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 0, result.output
    table = Table.read(out)
    catalog = Table.read(load_recipe(RECIPE).kwargs["input"])
    assert list(table["name"]) == list(catalog["name"])
    assert (table["gxa_status"] == "ok").all()
    assert table.meta["SURVEY"] == "legacysurvey" and table.meta["INPUT"] == "bright_galaxies.ecsv"
    assert table["ra"].unit == "deg"
    assert survey_server.count("legacy") == len(catalog)
    request = survey_server.requests[0].params
    assert request["layer"] == "ls-dr10" and request["bands"] == "grz"
    assert request["size"] == "256"  # the model's 67" field at 0.262"/pixel
