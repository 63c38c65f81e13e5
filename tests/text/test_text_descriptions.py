"""Class descriptions and prompt templates."""

from __future__ import annotations

import itertools
import json

import pytest

from galaxalign_astro.taxonomy import GALAXY10_DECALS, GALAXY_MNIST
from galaxalign_astro.text import DESCRIPTIONS, TEMPLATES, TextConfig, class_texts


def test_every_class_and_coarse_group_has_six_to_ten_descriptions():
    assert set(DESCRIPTIONS) == set(GALAXY10_DECALS.node_keys)
    assert set(GALAXY_MNIST.keys) <= set(DESCRIPTIONS)
    for key, descs in DESCRIPTIONS.items():
        assert 6 <= len(descs) <= 10, key


def test_descriptions_are_plain_noun_phrases_without_duplicates():
    everything = [d for descs in DESCRIPTIONS.values() for d in descs]
    assert len(everything) == len(set(everything))
    assert len({d.lower() for d in everything}) == len(everything)
    for d in everything:
        assert d == d.strip() and "  " not in d
        assert not d.endswith("."), d
        assert d.split()[0] in {"a", "an", "two", "colliding", "interacting"}, d


# words that must appear in every description of a class, and words that must not
_MUST = {
    "barred_spiral": ("bar",),
    "unbarred_tight_spiral": ("tight", "coil", "close"),
    "unbarred_loose_spiral": ("loose", "open", "unwinding"),
    "edge_on_no_bulge": ("edge-on", "side"),
    "edge_on_bulge": ("bulge",),
    "merging": ("merg", "two", "pair", "colliding", "interacting"),
    "cigar_smooth": ("cigar", "elongated", "long", "stretched", "thin"),
    "round_smooth": ("round", "circle", "circular"),
}


@pytest.mark.parametrize(("key", "words"), sorted(_MUST.items()))
def test_descriptions_name_the_deciding_feature(key, words):
    for d in DESCRIPTIONS[key]:
        assert any(w in d for w in words), d


def test_unbarred_and_no_bulge_descriptions_never_claim_the_feature():
    for key in ("unbarred_tight_spiral", "unbarred_loose_spiral"):
        for d in DESCRIPTIONS[key]:
            assert "bar" not in d or "no bar" in d or "without a bar" in d or "unbarred" in d, d
    for d in DESCRIPTIONS["edge_on_no_bulge"]:
        assert "bulge" not in d or "no bulge" in d or "without a central bulge" in d, d


def test_templates_have_one_placeholder_and_format():
    assert len(TEMPLATES) == len(set(TEMPLATES))
    assert "{}" in TEMPLATES
    for t in TEMPLATES:
        assert t.count("{}") == 1
        text = t.format("a round galaxy")
        assert "a round galaxy" in text and "{" not in text


def test_class_texts_order_and_count():
    key = "edge_on_bulge"
    texts = class_texts(key)
    assert len(texts) == len(DESCRIPTIONS[key]) * len(TEMPLATES)
    assert len(set(texts)) == len(texts)
    assert texts == class_texts(key)
    # description-major: all templates of the first description come first
    first = DESCRIPTIONS[key][0]
    assert texts[: len(TEMPLATES)] == [t.format(first) for t in TEMPLATES]
    assert class_texts(key, templates=["{}"]) == list(DESCRIPTIONS[key])


def test_texts_of_different_classes_never_coincide():
    per_class = {k: set(class_texts(k)) for k in DESCRIPTIONS}
    for a, b in itertools.combinations(per_class, 2):
        assert not per_class[a] & per_class[b], (a, b)


def test_texts_fit_the_clip_context(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from open_clip.tokenizer import SimpleTokenizer

    tokenizer = SimpleTokenizer()
    longest = max(len(tokenizer.encode(t)) for k in DESCRIPTIONS for t in class_texts(k))
    assert longest + 2 <= 77  # start and end tokens; open_clip truncates beyond 77


def test_bad_templates_and_unknown_keys_raise():
    with pytest.raises(ValueError, match=r"known: .*barred_spiral"):
        class_texts("lenticular")
    for bad in ("no placeholder", "{} and {}", "{0}", "{name}", "a {} with {braces"):
        with pytest.raises(ValueError, match="placeholder"):
            class_texts("round_smooth", templates=[bad])
    with pytest.raises(ValueError, match="empty"):
        class_texts("round_smooth", templates=[])


def test_text_config_overrides_and_round_trip():
    config = TextConfig(
        templates=("a sketch of {}.",),
        descriptions={"ring": ("a galaxy with a bright ring",), "round_smooth": ("a ball",)},
    )
    assert config.class_texts("ring") == ["a sketch of a galaxy with a bright ring."]
    assert config.class_texts("round_smooth") == ["a sketch of a ball."]
    assert config.class_texts("merging")[0] == f"a sketch of {DESCRIPTIONS['merging'][0]}."
    assert "ring" in config.keys and "merging" in config.keys
    back = TextConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert back == config
    assert back.class_texts("ring") == config.class_texts("ring")
    with pytest.raises(ValueError, match=r"known: .*ring"):
        config.class_texts("lenticular")


def test_stored_config_keeps_the_training_texts():
    keys = GALAXY10_DECALS.keys
    stored = TextConfig().to_dict(keys=keys)
    assert set(stored["descriptions"]) == set(keys)
    restored = TextConfig.from_dict(stored)
    for key in keys:
        assert restored.class_texts(key) == class_texts(key)


def test_text_config_validation():
    with pytest.raises(ValueError, match="placeholder"):
        TextConfig(templates=("no placeholder",))
    with pytest.raises(ValueError, match="'ring'"):
        TextConfig(descriptions={"ring": "a single string"})
    with pytest.raises(ValueError, match="'ring'"):
        TextConfig(descriptions={"ring": ()})
    with pytest.raises(ValueError, match="unknown TextConfig keys"):
        TextConfig.from_dict({"prompts": []})
