"""The open_clip factory: what it reports about the weights a model starts from."""

from __future__ import annotations

import logging

import pytest

from galaxalign_astro.models.checkpoint import load_model
from galaxalign_astro.models.factory import create_clip, create_model

RANDOM = "random initialisation (no pretrained weights)"


def test_loading_a_trained_model_does_not_report_random_initialisation(caplog):
    caplog.set_level(logging.INFO, logger="galaxalign_astro")
    loaded = load_model("default")
    assert loaded.spec.name
    assert RANDOM not in caplog.text


def test_a_model_left_random_is_reported(caplog):
    caplog.set_level(logging.INFO, logger="galaxalign_astro")
    create_clip("gxa-micro")
    assert f"gxa-micro: {RANDOM}" in caplog.text


def test_pretrained_tag_fails_fast_when_the_hub_cannot_be_reached(monkeypatch):
    import time

    from galaxalign_astro.errors import ModelLoadError
    from galaxalign_astro.models import factory

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("GALAXALIGN_ASTRO_OFFLINE", raising=False)
    monkeypatch.setattr(factory, "HUB_HOST", "127.0.0.1")  # nothing listens on 443 here
    monkeypatch.setattr(factory, "_in_hub_cache", lambda repo: False)
    t0 = time.perf_counter()
    with pytest.raises(ModelLoadError, match="cannot reach") as error:
        factory.create_clip("ViT-B-16", pretrained="openai")
    assert time.perf_counter() - t0 < factory.PROBE_SECONDS + 2
    message = str(error.value)
    assert "--pretrained" in message and "\n" not in message


def test_hub_probe_is_bounded_by_its_timeout():
    import time

    from galaxalign_astro.models.factory import hub_reachable

    t0 = time.perf_counter()
    assert hub_reachable("127.0.0.1", timeout=0.5) is False  # refused at once
    assert time.perf_counter() - t0 < 1.5


def test_hub_probe_gives_up_on_a_resolver_that_hangs(monkeypatch):
    import socket
    import threading
    import time

    from galaxalign_astro.models.factory import hub_reachable

    release = threading.Event()

    def hanging(*args, **kwargs):
        release.wait(10)
        raise OSError("resolver gave up")

    monkeypatch.setattr(socket, "create_connection", hanging)
    t0 = time.perf_counter()
    assert hub_reachable("huggingface.co", timeout=0.5) is False
    assert time.perf_counter() - t0 < 1.5
    release.set()


def test_warm_start_interpolates_position_embeddings_to_a_new_input_size():
    import copy

    import torch

    from galaxalign_astro.models.factory import architecture_config, warm_start_state

    small = architecture_config("gxa-micro")
    large = copy.deepcopy(small)
    large["vision_cfg"]["image_size"] = 48  # a 6 x 6 patch grid instead of 4 x 4
    torch.manual_seed(0)
    source = create_model("gxa-micro", config=small)
    target = create_model("gxa-micro", config=large)
    state = source.clip.state_dict()
    moved = warm_start_state(small, state, target)
    assert moved["visual.positional_embedding"].shape == (1 + 36, 64)
    assert state["visual.positional_embedding"].shape == (1 + 16, 64)  # the source is kept
    target.clip.load_state_dict(moved)
    # every other weight is carried over as it is
    same = [k for k in state if k != "visual.positional_embedding"]
    assert all(torch.equal(target.clip.state_dict()[k], state[k]) for k in same)
    # the class token's embedding is kept, the grid interpolated (a constant grid stays)
    assert torch.equal(
        moved["visual.positional_embedding"][0], state["visual.positional_embedding"][0]
    )
    flat = {**state, "visual.positional_embedding": torch.ones(17, 64)}
    assert torch.allclose(
        warm_start_state(small, flat, target)["visual.positional_embedding"],
        torch.ones(37, 64),
        atol=1e-5,
    )
    images = torch.zeros(2, 3, 48, 48)
    assert target.clip.encode_image(images).shape == (2, 32)


def test_warm_start_refuses_a_different_architecture():
    import copy

    from galaxalign_astro.models.factory import architecture_config, warm_start_state

    small = architecture_config("gxa-micro")
    wider = copy.deepcopy(small)
    wider["vision_cfg"]["layers"] = 2
    source = create_model("gxa-micro", config=small)
    target = create_model("gxa-micro", config=wider)
    with pytest.raises(ValueError, match="more than the image size"):
        warm_start_state(small, source.clip.state_dict(), target)


def test_a_stored_architecture_does_not_redefine_the_registered_one():
    """Loading a model saved at another input size leaves ``gxa-micro`` as registered."""
    import copy

    from galaxalign_astro.models.factory import architecture_config, get_tokenizer

    registered = architecture_config("gxa-micro")
    stored = copy.deepcopy(registered)
    stored["vision_cfg"]["image_size"] = 48
    stored["text_cfg"]["context_length"] = 16
    assert create_model("gxa-micro", config=stored).image_size == 48
    assert architecture_config("gxa-micro") == registered
    assert create_model("gxa-micro").image_size == registered["vision_cfg"]["image_size"]
    # the tokenizer follows the stored config's context length, the registry's otherwise
    assert get_tokenizer("gxa-micro", config=stored)(["a spiral"]).shape[1] == 16
    assert get_tokenizer("gxa-micro")(["a spiral"]).shape[1] == 32
    # an architecture known only from a saved model's config
    assert get_tokenizer("gxa-only-stored", config=stored)(["x"]).shape[1] == 16
    assert create_model("gxa-only-stored", config=stored).image_size == 48
