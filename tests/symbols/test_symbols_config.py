"""SymbolConfig: validation and the JSON round trip used when a model is saved."""

from __future__ import annotations

import json

import pytest

from galaxalign_astro.symbols import SymbolConfig


def test_json_round_trip():
    config = SymbolConfig(variants=5, seed=9, arm_counts=(2, 3), scale_range=(0.9, 1.0))
    data = json.loads(json.dumps(config.to_dict()))
    back = SymbolConfig.from_dict(data)
    assert back == config
    assert isinstance(back.scale_range, tuple)
    assert hash(back) == hash(config)
    assert SymbolConfig.from_dict(json.loads(config.to_json())) == config


def test_missing_keys_take_defaults():
    assert SymbolConfig.from_dict({"seed": 3}) == SymbolConfig(seed=3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"variants": 0}, "variants"),
        ({"supersample": 0}, "supersample"),
        ({"scale_range": (1.0, 0.5)}, "scale_range"),
        ({"scale_range": (0.5, 1.5)}, "scale_range"),
        ({"arm_counts": ()}, "arm_counts"),
        ({"arm_counts": (0, 2)}, "arm_counts"),
        ({"offset": 0.5}, "offset"),
        ({"jitter": -0.1}, "jitter"),
    ],
)
def test_invalid_values_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SymbolConfig(**kwargs)


def test_unknown_key_raises():
    with pytest.raises(ValueError, match=r"unknown SymbolConfig keys \['colour'\]"):
        SymbolConfig.from_dict({"colour": "red"})
