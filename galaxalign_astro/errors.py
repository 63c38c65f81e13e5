"""Exception and warning classes of galaxalign-astro."""

from __future__ import annotations

from astropy.utils.exceptions import AstropyUserWarning

__all__ = [
    "CutoutError",
    "GalaxAlignError",
    "GalaxAlignWarning",
    "ModelLoadError",
    "OutputExistsError",
    "OutputLockedError",
    "UnsupportedFormatError",
]


class GalaxAlignError(Exception):
    """Base class of the errors this package raises on purpose; the CLI prints them as one line."""


class CutoutError(GalaxAlignError):
    """A cutout file cannot be turned into a model input (unreadable, wrong shape, no signal)."""


class ModelLoadError(GalaxAlignError):
    """A model or checkpoint cannot be found or loaded."""


class OutputExistsError(GalaxAlignError, FileExistsError):
    """An output exists and overwriting was not asked for."""


class OutputLockedError(GalaxAlignError):
    """Another process is writing the same output (it holds the output's writer lock)."""


class UnsupportedFormatError(GalaxAlignError, ValueError):
    """A file name's suffix (or a format name) is not a format this package writes.

    The CLI treats it as a usage error (exit status 2): the user typed the name.
    """


class GalaxAlignWarning(AstropyUserWarning):
    """Warnings from galaxalign-astro."""
