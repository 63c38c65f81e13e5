from click.testing import CliRunner

from galaxalign_astro.cli.ablate import command
from galaxalign_astro.models.loss import LossWeights
from galaxalign_astro.train.ablation import VARIANTS, variant_config
from galaxalign_astro.train.config import TrainConfig, default_stages


def test_variants_are_configurations_of_the_base():
    base = TrainConfig(architecture="gxa-micro", stages=default_stages(2, 3))
    clip, frac = variant_config(base, "clip_image_text")
    assert frac == 1.0 and len(clip.stages) == 1 and clip.stages[0].epochs == 5
    assert clip.stages[0].loss_weights == LossWeights(1.0, 0.0, 0.0)
    one, _ = variant_config(base, "stage1_only")
    assert [s.symbol_tower for s in one.stages] == ["shared"]
    full, _ = variant_config(base, "two_stage")
    assert [s.symbol_tower for s in full.stages] == ["shared", "separate"]
    shared, _ = variant_config(base, "two_stage_shared")
    assert [s.symbol_tower for s in shared.stages] == ["shared", "shared"]
    fixed, _ = variant_config(base, "fixed_temperature")
    assert not any(s.learn_temperature for s in fixed.stages)
    assert variant_config(base, "label_1pct")[1] == 0.01
    assert set(VARIANTS) >= {"clip_image_text", "two_stage", "label_10pct"}


def test_ablate_command_writes_table(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        'architecture = "gxa-micro"\nbatch_size = 16\ndevice = "cpu"\nsymbols = {variants = 2}\n'
        '[data]\nspec = "simulated:60:1"\nsplit = "all"\n'
        '[[stages]]\nname = "stage1"\nepochs = 1\n'
        '[[stages]]\nname = "stage2"\nsymbol_tower = "separate"\nepochs = 1\n'
    )
    res = CliRunner().invoke(
        command,
        [
            str(recipe),
            "-o",
            str(tmp_path / "abl"),
            "--test-data",
            "simulated:20:99",
            "--variants",
            "clip_image_text,two_stage",
            "-q",
        ],
    )
    assert res.exit_code == 0, res.output
    table = (tmp_path / "abl" / "ablation.md").read_text()
    assert "| clip_image_text |" in table and "| two_stage |" in table
    assert (tmp_path / "abl" / "two_stage" / "galaxalign.json").exists()


def test_cpu_ablation_recipe_is_valid():
    from pathlib import Path

    from galaxalign_astro.train.config import check_config, load_recipe

    recipe = Path(__file__).resolve().parents[2] / "pipelines" / "ablation_cpu.toml"
    config = load_recipe(recipe)
    check_config(config)
    assert config.data.spec.startswith("simulated:")
    assert [s.symbol_tower for s in config.stages] == ["shared", "separate"]
