"""The ``galaxalign-astro`` command group.

Sub-commands live one per module in this package and are imported only when
invoked, so ``--help`` and ``--version`` never import torch.
"""

from __future__ import annotations

import importlib

import click

from .._version import __version__

__all__ = ["cli"]

# command name -> module under galaxalign_astro.cli holding a click command ``command``
COMMANDS = {
    "ablate": "ablate",
    "annotate": "annotate",
    "annotate-hats": "annotate_hats",
    "classify": "classify",
    "evaluate": "evaluate",
    "fetch": "fetch",
    "index": "index",
    "plot": "plot",
    "search": "search",
    "simulate": "simulate",
    "symbols": "symbols",
    "train": "train",
}


class LazyGroup(click.Group):
    """A group whose sub-commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(f"galaxalign_astro.cli.{COMMANDS[cmd_name]}")
        return module.command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="galaxalign-astro")
def cli() -> None:
    """Galaxy morphology with GalaxAlign: classify, search and train on survey cutouts."""
