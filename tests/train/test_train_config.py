"""Recipes, overrides and stage configuration (no training, no downloads)."""

from __future__ import annotations

from pathlib import Path

import pytest

from galaxalign_astro.models.factory import list_architectures
from galaxalign_astro.train import StageConfig, TrainConfig, check_config, load_recipe
from galaxalign_astro.train.config import parse_override, recipe_meta

#: training recipes are the pipelines named train_*.toml
PIPELINES = sorted((Path(__file__).resolve().parents[2] / "pipelines").glob("train_*.toml"))


def test_pipelines_folder_has_the_four_recipes():
    names = {p.stem for p in PIPELINES}
    assert {
        "train_galaxy10_vit_b16",
        "train_galaxy10_convnext",
        "train_galaxy_mnist_vit_b16",
        "train_cpu_tiny_simulated",
    } <= names


@pytest.mark.parametrize("recipe", PIPELINES, ids=lambda p: p.stem)
def test_every_recipe_loads_and_validates(recipe):
    config = load_recipe(recipe)
    check_config(config)  # architecture in open_clip's registry, size, pretrained tag
    assert config.architecture in list_architectures()
    assert config.data.spec, "a recipe must say which data it trains on"
    assert recipe_meta(recipe).get("output"), "one command: the recipe names its output"
    towers = [s.symbol_tower for s in config.stages]
    if config.init_from is not None and Path(config.init_from).is_absolute():
        # continues a model another recipe trained: stages after the paper's two
        assert towers and set(towers) == {"separate"}
    else:
        assert towers == ["shared", "separate"]
    assert all(s.epochs > 0 for s in config.stages)
    # the recipe survives the round trip a checkpoint makes
    assert TrainConfig.from_dict(config.to_dict()).to_dict() == config.to_dict()


def test_paper_scale_recipe_is_the_papers_setup():
    config = load_recipe(next(p for p in PIPELINES if p.stem == "train_galaxy10_vit_b16"))
    assert config.architecture == "ViT-B-16"
    assert config.pretrained in ("openai", "laion2b_s34b_b88k")
    assert config.batch_size == 256
    assert config.precision == "auto"
    assert config.taxonomy == "galaxy10_decals"


@pytest.mark.parametrize(
    ("item", "key", "value"),
    [
        ("batch_size=32", ["batch_size"], 32),
        ("stages.stage2.lr=1e-4", ["stages", "stage2", "lr"], 1e-4),
        ("augment=false", ["augment"], False),
        ("data.spec=data/x.h5", ["data", "spec"], "data/x.h5"),
        ('name="a b"', ["name"], "a b"),
        ("stages.0.train=['image']", ["stages", "0", "train"], ["image"]),
    ],
)
def test_parse_override_reads_toml_values_and_falls_back_to_text(item, key, value):
    assert parse_override(item) == (key, value)


def test_overrides_reach_stages_by_name_and_index():
    config = load_recipe(
        None,
        [
            "stages.stage1.epochs=3",
            "stages.1.learn_temperature=false",
            "stages.stage2.loss_weights.image_symbol=0.5",
            "accumulate=2",
            "data.spec=simulated:20:1",
        ],
    )
    assert config.stages[0].epochs == 3
    assert config.stages[1].learn_temperature is False
    assert config.stages[1].loss_weights.image_symbol == 0.5
    assert config.accumulate == 2
    assert config.data.spec == "simulated:20:1"


def test_preprocess_size_follows_the_architecture_unless_given(tmp_path):
    config = load_recipe(None, ["architecture=gxa-micro"])
    assert config.preprocess.size == 32
    recipe = tmp_path / "r.toml"
    recipe.write_text('architecture = "gxa-micro"\n[preprocess]\nsize = 48\n')
    assert load_recipe(recipe).preprocess.size == 48
    with pytest.raises(ValueError, match="takes 32 px"):
        check_config(load_recipe(recipe))


@pytest.mark.parametrize(
    ("item", "match"),
    [
        ("nonsense=1", "unknown training settings: nonsense"),
        ("stages.stage9.lr=1", "no entry named 'stage9'"),
        ("stages.stage1.speed=2", "unknown settings speed"),
        ("batch_size", "key=value"),
        ("precision=fp8", "precision must be one of"),
        (
            'stages=[{name="a", symbol_tower="separate"}, {name="b"}]',
            "stage 'b': cannot share the symbol tower again",
        ),
        ("augment=fancy", "unknown augmentation preset"),
    ],
)
def test_bad_overrides_are_one_line_errors_naming_the_setting(item, match):
    with pytest.raises(ValueError, match=match):
        load_recipe(None, [item])


def test_settings_after_a_table_header_are_caught(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[meta]\ndescription = "x"\narchitecture = "gxa-micro"\n')
    with pytest.raises(ValueError, match=r"unknown \[meta\] keys \['architecture'\]"):
        load_recipe(recipe)


def test_legacy_train_table_layout_still_loads(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        '[train]\narchitecture = "gxa-micro"\nbatch_size = 8\n'
        '[[train.stages]]\nname = "only"\nepochs = 2\n'
        '[data]\nspec = "simulated:30:2"\n'
    )
    config = load_recipe(recipe)
    assert (config.batch_size, [s.name for s in config.stages]) == (8, ["only"])
    assert config.data.spec == "simulated:30:2"


def test_check_config_rejects_unknown_pretrained_tags_without_downloading():
    config = load_recipe(None, ["architecture=ViT-B-16", "pretrained=not-a-tag"])
    with pytest.raises(ValueError, match="neither an open_clip tag"):
        check_config(config)


def test_stage_validation():
    with pytest.raises(ValueError, match="unknown towers"):
        StageConfig("s", train=("image", "audio"))
    with pytest.raises(ValueError, match="not all 0"):
        StageConfig("s", loss_weights={"image_text": 0, "symbol_text": 0, "image_symbol": 0})
    with pytest.raises(ValueError, match="unknown loss weights"):
        StageConfig("s", loss_weights={"image_txt": 1})
    assert not StageConfig("s", loss_weights={"symbol_text": 0, "image_symbol": 0}).uses_symbols
