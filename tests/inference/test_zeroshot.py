import numpy as np
import pytest
from PIL import Image

from galaxalign_astro.inference import classify
from galaxalign_astro.inference.zeroshot import load_class_set
from galaxalign_astro.symbols import render_symbol


def _write_drawing(path, key, *, invert):
    img = render_symbol(key, size=100)
    Image.fromarray(255 - img if invert else img).save(path)
    return path.name


def test_zero_shot_classes_from_yaml(micro_model, cutout_dir, tmp_path):
    drawing = _write_drawing(tmp_path / "edge.png", "edge_on_no_bulge", invert=True)
    (tmp_path / "classes.yaml").write_text(
        "classes:\n"
        "  - name: Thin disk\n"
        f"    symbols: [{drawing}]\n"
        "  - name: Ball\n"
        "    descriptions: [a smooth round ball of old red stars]\n"
        "  - name: Spiral\n"
        "    descriptions: [a spiral galaxy]\n"
        "    symbols: [unbarred_loose_spiral]\n"
    )
    table = classify([cutout_dir], model=micro_model, classes=tmp_path / "classes.yaml", workers=0)
    assert set(table["class_name"]) <= {"Thin disk", "Ball", "Spiral"}
    assert table["probs"].shape == (5, 3)
    np.testing.assert_allclose(np.asarray(table["probs"]).sum(1), 1, rtol=1e-5)
    assert table.meta["galaxalign"]["class_names"] == ["Thin disk", "Ball", "Spiral"]


def test_toml_class_file_and_errors(tmp_path):
    good = tmp_path / "c.toml"
    good.write_text('alpha = 0.3\n[[classes]]\nname = "Ring"\ndescriptions = ["a ring galaxy"]\n')
    cs = load_class_set(good)
    assert cs.names == ["Ring"] and cs.alpha == 0.3
    bad = tmp_path / "bad.yaml"
    bad.write_text("classes:\n  - name: Empty\n")
    with pytest.raises(ValueError, match="at least one description or symbol"):
        load_class_set(bad)
    dup = tmp_path / "dup.yaml"
    dup.write_text("classes:\n  - {name: A, descriptions: [x]}\n  - {name: A, descriptions: [y]}\n")
    with pytest.raises(ValueError, match="unique"):
        load_class_set(dup)


def test_class_head_travels_to_other_processes(micro_model, tmp_path):
    # a Dask worker process gets the head pickled: names, prototypes and identity survive
    import pickle

    from galaxalign_astro.inference import Predictor

    (tmp_path / "c.toml").write_text(
        '[[classes]]\nname = "Ring"\ndescriptions = ["a ring galaxy"]\n'
        '[[classes]]\nname = "Disk"\nsymbols = ["edge_on_no_bulge"]\n'
    )
    predictor = Predictor(micro_model, classes=tmp_path / "c.toml")
    head = pickle.loads(pickle.dumps(predictor.head))
    assert head.names == ("Ring", "Disk") and head.zero_shot
    assert head.sha256 == predictor.head.sha256
    other = Predictor(micro_model).with_classes(head)
    assert other.class_names == ["Ring", "Disk"]
    np.testing.assert_array_equal(other.prototypes.numpy(), predictor.prototypes.numpy())
    with pytest.raises(ValueError, match="do not match"):
        type(head)(("a",), head.prototypes)
