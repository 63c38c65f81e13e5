"""The one module that talks to open_clip: architectures, weights, tokenizers.

Architectures are open_clip JSON configs. Our own small ones live in
``models/configs`` and are registered with open_clip's registry on import, so
``create_model("gxa-tiny")`` and ``create_model("ViT-B-16", pretrained="openai")``
go through the same open_clip factory. An upgrade of open_clip touches this file.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError

__all__ = [
    "CONFIG_DIR",
    "architecture_config",
    "create_clip",
    "create_model",
    "get_tokenizer",
    "list_architectures",
    "pretrained_tags",
    "warm_start_state",
]

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).parent / "configs"
_registered = False


def _open_clip():
    global _registered
    import open_clip

    if not _registered:
        open_clip.add_model_config(CONFIG_DIR)
        _registered = True
    return open_clip


def list_architectures() -> list[str]:
    """Names of every open_clip architecture, ours included."""
    return list(_open_clip().list_models())


def pretrained_tags(name: str) -> list[str]:
    """The pretrained weight tags open_clip knows for architecture ``name``."""
    return list(_open_clip().list_pretrained_tags_by_model(name))


def architecture_config(name: str) -> dict[str, Any]:
    """The JSON architecture config registered as ``name``."""
    config = _open_clip().get_model_config(name)
    if config is None:
        msg = f"unknown architecture {name!r}; see galaxalign_astro.models.list_architectures()"
        raise ModelLoadError(msg)
    return config


#: where open_clip's pretrained weights come from
HUB_HOST = "huggingface.co"
#: seconds the reachability probe of the hub may take
PROBE_SECONDS = 3.0


def hub_reachable(host: str = HUB_HOST, *, timeout: float = PROBE_SECONDS) -> bool:
    """Whether a TCP connection to ``host`` port 443 opens within ``timeout`` seconds.

    Name resolution is included in the bound (it runs in a thread that is given up
    on), so a compute node without a resolver answers in ``timeout`` too.
    """
    import socket
    import threading

    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, 443), timeout=timeout):
                result.append(True)
        except Exception:  # unreachable, refused, unresolvable, or blocked
            result.append(False)

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(result and result[0])


def _in_hub_cache(repo: str) -> bool:
    """Whether the Hugging Face cache holds a snapshot of ``repo`` (``org/name/``)."""
    if not repo:
        return False
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    folder = Path(constants.HF_HUB_CACHE) / ("models--" + repo.strip("/").replace("/", "--"))
    return (folder / "snapshots").is_dir()


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") or os.environ.get(
        "GALAXALIGN_ASTRO_OFFLINE", ""
    ) not in ("", "0")


def create_clip(
    name: str,
    *,
    pretrained: str | os.PathLike[str] | None = None,
    config: dict[str, Any] | None = None,
    cache_dir: str | None = None,
    weights_follow: bool = False,
):
    """Build an open_clip ``CLIP`` model.

    Parameters
    ----------
    name : str
        open_clip architecture name (``ViT-B-16``, ``convnext_base``, ``gxa-tiny``...).
    pretrained : str or path, optional
        An open_clip pretrained tag (downloaded by open_clip on machines with
        internet), or a local checkpoint file. None: random initialisation.
    config : dict, optional
        An explicit architecture config (as stored in our checkpoints); the model
        is built from it under ``name`` so a checkpoint does not depend on the
        installed registry, and the registry is left as it was.
    cache_dir : str, optional
        Where open_clip keeps downloaded weights.
    weights_follow : bool
        The caller loads trained weights into the model right after (a saved
        model): the random initialisation is then not reported, as it is not
        what the model will hold.
    """
    open_clip = _open_clip()
    if config is None and open_clip.get_model_config(name) is None:
        msg = f"unknown architecture {name!r}; see galaxalign_astro.models.list_architectures()"
        raise ModelLoadError(msg)
    pretrained_arg = None if pretrained is None else str(pretrained)
    if pretrained_arg is not None and not os.path.isfile(pretrained_arg):
        tags = open_clip.list_pretrained_tags_by_model(name)
        if pretrained_arg not in tags:
            msg = (
                f"{name}: no pretrained weights {pretrained_arg!r} "
                f"(not a file; open_clip tags: {', '.join(tags) or 'none'})"
            )
            raise ModelLoadError(msg)
        how = (
            "download the weights on a machine with internet (open_clip.create_model("
            f"{name!r}, pretrained={pretrained_arg!r}) fills the Hugging Face cache, which "
            "can be copied over) or pass the checkpoint file itself as --pretrained / "
            "pretrained="
        )
        if _offline():
            msg = (
                f"{name}: pretrained tag {pretrained_arg!r} needs a download and this run is "
                f"offline (HF_HUB_OFFLINE); {how}"
            )
            raise ModelLoadError(msg)
        hub = (open_clip.get_pretrained_cfg(name, pretrained_arg) or {}).get("hf_hub") or ""
        if not _in_hub_cache(hub) and not hub_reachable():
            msg = (
                f"{name}: pretrained tag {pretrained_arg!r} needs a download from "
                f"{HUB_HOST}, which this machine cannot reach; {how}"
            )
            raise ModelLoadError(msg)
    previous = logging.getLogger().level
    try:
        # open_clip warns on the root logger about random init; we log it ourselves
        logging.getLogger().setLevel(max(previous, logging.ERROR))
        with _registered_as(open_clip, name, config):
            model = open_clip.create_model(
                name, pretrained=pretrained_arg, cache_dir=cache_dir, weights_only=True
            )
    except Exception as exc:
        msg = f"{name}: cannot load pretrained weights {pretrained_arg!r}: {exc}"
        raise ModelLoadError(msg.splitlines()[0]) from exc
    finally:
        logging.getLogger().setLevel(previous)
    if pretrained_arg is None and not weights_follow:
        log.info("%s: random initialisation (no pretrained weights)", name)
    return model


@contextlib.contextmanager
def _registered_as(open_clip: Any, name: str, config: dict[str, Any] | None) -> Iterator[None]:
    """open_clip builds ``name`` from ``config`` inside the block; the registry is restored.

    A saved model's stored architecture must not replace what ``name`` means for
    later models built by name (a checkpoint at another input size, say).
    """
    if config is None:
        yield
        return
    registry = open_clip.factory._MODEL_CONFIGS
    previous = registry.get(name)
    registry[name] = config
    try:
        yield
    finally:
        if previous is None:
            registry.pop(name, None)
        else:
            registry[name] = previous


def get_tokenizer(
    name: str, *, config: dict[str, Any] | None = None, context_length: int | None = None
):
    """open_clip tokenizer of architecture ``name`` (works offline for CLIP BPE).

    ``config`` (a saved model's stored architecture) is used in place of the
    registry's, so a model whose architecture is not registered gets its own
    context length.
    """
    open_clip = _open_clip()
    with _registered_as(open_clip, name, config):
        return open_clip.get_tokenizer(name, context_length=context_length)


def create_model(
    name: str,
    *,
    pretrained: str | os.PathLike[str] | None = None,
    symbol_tower: str = "shared",
    config: dict[str, Any] | None = None,
    cache_dir: str | None = None,
    weights_follow: bool = False,
):
    """Build a :class:`~galaxalign_astro.models.trimodal.GalaxAlignModel`: the one factory.

    The trainer, checkpoint loading and the tests all build models here.

    Parameters
    ----------
    name : str
        Any open_clip architecture.
    pretrained : str or path, optional
        open_clip pretrained tag or local checkpoint file.
    symbol_tower : {'shared', 'separate'}
        Symbols go through the image tower (stage 1) or through their own copy
        of it (stage 2).
    config : dict, optional
        The architecture config, as a checkpoint stores it; default the registry's.
    cache_dir, weights_follow
        As for :func:`create_clip`.
    """
    from .trimodal import GalaxAlignModel

    if symbol_tower not in ("shared", "separate"):
        msg = f"symbol_tower must be 'shared' or 'separate', got {symbol_tower!r}"
        raise ValueError(msg)
    clip = create_clip(
        name,
        pretrained=pretrained,
        config=config,
        cache_dir=cache_dir,
        weights_follow=weights_follow,
    )
    model = GalaxAlignModel(
        clip, architecture=name, config=config if config is not None else architecture_config(name)
    )
    if symbol_tower == "separate":
        model.split_symbol_tower()
    return model


def _without_image_size(config: dict[str, Any]) -> dict[str, Any]:
    vision = {k: v for k, v in config.get("vision_cfg", {}).items() if k != "image_size"}
    return {**config, "vision_cfg": vision}


def warm_start_state(
    source_config: dict[str, Any], state: dict[str, Any], target: Any
) -> dict[str, Any]:
    """The open_clip ``state`` of one model made loadable into the ``target`` model.

    The two architectures must be the same but for the image size (ours: a model
    trained at one input size continues at another). The ViT position embeddings
    are then interpolated to the target's patch grid with open_clip's
    ``resize_pos_embed`` (bicubic), the way open_clip loads a checkpoint at a new
    resolution.

    Parameters
    ----------
    source_config : dict
        Architecture config of the model ``state`` comes from.
    state : dict
        Its ``clip.state_dict()``; not changed.
    target : GalaxAlignModel
        The model to load into (its ``config`` and ``clip``).

    Returns
    -------
    dict
        The state to pass to ``target.clip.load_state_dict``.

    Raises
    ------
    ValueError
        When the architectures differ in anything but the image size.
    """
    if _without_image_size(source_config) != _without_image_size(target.config):
        msg = "the architectures differ in more than the image size; a warm start cannot map them"
        raise ValueError(msg)
    from open_clip.model import resize_pos_embed

    state = dict(state)
    resize_pos_embed(state, target.clip)
    return state
