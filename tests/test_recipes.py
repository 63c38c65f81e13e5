"""The TOML recipe loader that training and annotate recipes share."""

from __future__ import annotations

from pathlib import Path

import pytest

from galaxalign_astro.recipes import apply_overrides, merge, read_recipe, read_toml

TABLES = {"input": ("catalog", "format"), "classify": ("model", "classes", "batch_size")}


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_relative_paths_are_taken_from_the_recipe_folder(tmp_path):
    recipe = _write(
        tmp_path / "jobs" / "r.toml",
        '[input]\ncatalog = "data/cat.fits"\n'
        '[classify]\nmodel = "./models/mine"\nclasses = "/abs/rings.yaml"\n',
    )
    read = read_recipe(
        recipe,
        tables=TABLES,
        paths=("input.catalog", "classify.classes", "write.output"),
        names_or_paths=("classify.model",),
    )
    jobs = tmp_path / "jobs"
    assert read.folder == jobs.resolve()
    assert read.data["input"]["catalog"] == str(jobs.resolve() / "data" / "cat.fits")
    assert read.data["classify"]["model"] == str(jobs.resolve() / "models" / "mine")
    assert read.data["classify"]["classes"] == "/abs/rings.yaml"
    # a bundled model's name is not a path
    recipe.write_text('[classify]\nmodel = "default"\n')
    read = read_recipe(recipe, tables=TABLES, names_or_paths=("classify.model",))
    assert read.data["classify"]["model"] == "default"


def test_overrides_are_toml_values_on_dotted_keys_over_the_defaults(tmp_path):
    recipe = _write(tmp_path / "r.toml", '[input]\ncatalog = "cat.fits"\n')
    read = read_recipe(
        recipe,
        ["classify.batch_size=32", "input.format='fits'", "input.catalog=other.fits"],
        defaults={"classify": {"batch_size": 8, "model": "default"}},
        tables=TABLES,
        paths=("input.catalog",),
    )
    assert read.data["classify"] == {"batch_size": 32, "model": "default"}
    assert read.data["input"] == {"catalog": "other.fits", "format": "fits"}
    # what the file itself says is kept apart, with its paths resolved
    assert read.settings == {"input": {"catalog": str(tmp_path.resolve() / "cat.fits")}}


def test_overrides_without_a_file_and_entries_by_name():
    read = read_recipe(
        None,
        ["stages.second.lr=0.5", "stages.0.epochs=3"],
        defaults={"stages": [{"name": "first", "epochs": 1}, {"name": "second", "lr": 1.0}]},
    )
    assert read.path is None and read.meta == {}
    assert read.data["stages"] == [{"name": "first", "epochs": 3}, {"name": "second", "lr": 0.5}]
    with pytest.raises(ValueError, match="no entry named 'third'"):
        apply_overrides({"stages": [{"name": "first"}]}, ["stages.third.lr=1"])


@pytest.mark.parametrize(
    ("text", "overrides", "match"),
    [
        ('[input]\ncatalog = "c"\n[output]\nx = 1\n', [], r"unknown table\(s\) \['output'\]"),
        (
            '[input]\ncatalog = "c"\nformats = "x"\n',
            [],
            r"unknown key\(s\) \['formats'\] in \[input\]",
        ),
        ('[input]\ncatalog = "c"\n', ["classify.batchsize=2"], r"\['batchsize'\] in \[classify\]"),
        ("input = 3\n", [], r"\[input\] must be a table"),
        ('[input]\ncatalog = "c"\n', ["input"], "not of the form key=value"),
    ],
)
def test_unknown_tables_and_keys_are_one_line_errors_naming_the_file(
    tmp_path, text, overrides, match
):
    recipe = _write(tmp_path / "job.toml", text)
    with pytest.raises(ValueError, match=match) as error:
        read_recipe(recipe, overrides, tables=TABLES, prefix="recipe ")
    message = str(error.value)
    assert message.startswith(f"recipe {recipe}: ") and "\n" not in message


def test_bad_toml_and_unreadable_files_name_the_file(tmp_path):
    bad = _write(tmp_path / "broken.toml", "[input\ncatalog = 1\n")
    with pytest.raises(ValueError, match=r"broken\.toml: not valid TOML") as error:
        read_recipe(bad)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match=r"missing\.toml: cannot be read"):
        read_toml(tmp_path / "missing.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match=r"binary\.toml: not valid TOML"):
        read_toml(binary)


def test_meta_is_taken_out_and_its_keys_checked(tmp_path):
    recipe = _write(tmp_path / "r.toml", 'lr = 1\n[meta]\ndescription = "x"\noutput = "out"\n')
    read = read_recipe(recipe, ["lr=2"], meta_keys=("description", "output"))
    assert read.meta == {"description": "x", "output": "out"}
    assert read.data == {"lr": 2}
    recipe.write_text('[meta]\ndescription = "x"\nlr = 1\n')
    with pytest.raises(ValueError, match=r"unknown \[meta\] keys \['lr'\].*before the first one"):
        read_recipe(recipe, meta_keys=("description", "output"))
    # another name for the table, in a recipe of tables only
    recipe.write_text('[recipe]\nname = "job"\n[input]\ncatalog = "c"\n')
    read = read_recipe(recipe, tables=TABLES, meta="recipe", meta_keys=("name",))
    assert read.meta == {"name": "job"} and "recipe" not in read.data
    recipe.write_text("meta = 3\n")
    with pytest.raises(ValueError, match="'meta' must be a table"):
        read_recipe(recipe)


def test_layout_turns_the_file_into_the_callers_settings(tmp_path):
    recipe = _write(tmp_path / "r.toml", "[old]\nlr = 1\n")

    def layout(settings, where):
        assert where == f"{recipe}: "
        return dict(settings.pop("old"))

    assert read_recipe(recipe, layout=layout).data == {"lr": 1}


def test_merge_joins_tables_and_replaces_the_rest():
    base = {"a": {"x": 1, "y": 2}, "b": [1, 2]}
    top = {"a": {"y": 3}, "b": [3]}
    assert merge(base, top) == {"a": {"x": 1, "y": 3}, "b": [3]}
    assert base == {"a": {"x": 1, "y": 2}, "b": [1, 2]}
