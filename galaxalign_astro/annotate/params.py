"""The parameters of an annotation run, as validated values.

`CutoutSpec` says where each row's cutout comes from (a column of file paths, a
directory of files named from an ID column, a survey service, or images in memory)
and `AnnotateOptions` holds everything else: the model, the added columns, the
chunking and the run's switches. Both are frozen dataclasses checked once, when they
are made, so `~galaxalign_astro.annotate.annotate`,
`~galaxalign_astro.annotate.annotate_file`, the LSDB plugin and the command line
share one set of rules (the "exactly one source of cutouts" rule lives only in
`CutoutSpec`)::

    from galaxalign_astro.annotate import AnnotateOptions, CutoutSpec, annotate_file

    source = CutoutSpec.from_survey("legacysurvey", {"layer": "ls-dr10"}, id_col="name")
    options = AnnotateOptions(model="default", chunk_size=1024, resume=True)
    annotate_file("targets.fits", "targets_gxa.fits", source, options)

The keyword arguments the functions took before (``path_col=...``, ``chunk_size=...``)
still work: `settings_from_keywords` turns them into these two values.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..utils import check_value
from .columns import DEFAULT_PREFIX

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "AnnotateOptions",
    "CutoutSpec",
    "check_options",
    "settings_from_keywords",
]

#: rows per chunk (ours: a few seconds of CPU inference; bounded memory)
DEFAULT_CHUNK_SIZE = 4096

#: the four sources of cutouts, as (field, command-line option) in the order named
_SOURCES = (
    ("images", None),
    ("path_col", "--path-col"),
    ("cutouts_dir", "--cutouts"),
    ("fetch", "--fetch"),
)


@dataclass(frozen=True)
class CutoutSpec:
    """Where the cutout of each catalog row comes from: exactly one source.

    Parameters
    ----------
    path_col : str, optional
        Column of cutout file paths; relative paths start at ``base_dir`` (default
        the current directory).
    base_dir : path-like, optional
        Directory relative paths of ``path_col`` start from.
    cutouts_dir : path-like, optional
        Directory of cutouts named by ``pattern`` (fields ``{id}``: the value of
        ``id_col``; ``{row}``: the zero-based row number).
    id_col : str, optional
        ID column: ``{id}`` of ``pattern``; when fetching, part of the file names.
    pattern : str, optional
        File name in ``cutouts_dir`` (default ``'{id}.fits'``).
    fetch : str or `~galaxalign_astro.fetch.SurveyClient`, optional
        Survey to fetch cutouts from (``'legacysurvey'``, ``'sdss'``, ``'hips'``).
    fetch_options : mapping, optional
        Geometry (``size``, ``pixscale``, ``bands``), ``max_workers`` and client
        options of ``fetch`` (see `~galaxalign_astro.annotate.annotate_file`).
    fetch_dir : path-like, optional
        Keep fetched files here (default: a directory the run removes at the end).
    images : str or array-like, optional
        Cutouts in memory: the name of a column of image arrays, or an array of
        shape (n_rows, bands, H, W) (or a sequence of (bands, H, W) arrays) of
        fluxes. Only for tables in memory and catalog partitions.
    bands : str or sequence of str, optional
        Band names of the ``images`` planes.

    Raises
    ------
    ValueError
        Not exactly one of ``images``, ``path_col``, ``cutouts_dir`` and ``fetch``
        is given, or ``fetch_options`` without ``fetch``.
    """

    path_col: str | None = None
    base_dir: str | os.PathLike[str] | None = None
    cutouts_dir: str | os.PathLike[str] | None = None
    id_col: str | None = None
    pattern: str = "{id}.fits"
    fetch: Any = None
    fetch_options: Mapping[str, Any] | None = None
    fetch_dir: str | os.PathLike[str] | None = None
    images: Any = None
    bands: Sequence[str] | str | None = None

    def __post_init__(self) -> None:
        given = [name for name, _ in _SOURCES if getattr(self, name) is not None]
        if len(given) != 1:
            what = f"got {', '.join(given)}" if given else "got none"
            named = ", ".join(f"{n} ({o})" if o else n for n, o in _SOURCES[:-1])
            msg = f"give exactly one source of cutouts: {named} or fetch (--fetch); {what}"
            raise ValueError(msg)
        if self.fetch_options and self.fetch is None:
            msg = "fetch_options apply only with fetch"
            raise ValueError(msg)

    @property
    def kind(self) -> str:
        """The source given: ``'images'``, ``'path_col'``, ``'cutouts_dir'`` or ``'fetch'``."""
        return next(name for name, _ in _SOURCES if getattr(self, name) is not None)

    @classmethod
    def from_path_column(
        cls, path_col: str, base_dir: str | os.PathLike[str] | None = None
    ) -> CutoutSpec:
        """Cutout files named by the column ``path_col`` (relative to ``base_dir``)."""
        return cls(path_col=path_col, base_dir=base_dir)

    @classmethod
    def from_directory(
        cls,
        cutouts_dir: str | os.PathLike[str],
        id_col: str | None = None,
        pattern: str = "{id}.fits",
    ) -> CutoutSpec:
        """Cutout files in ``cutouts_dir`` named by ``pattern``."""
        return cls(cutouts_dir=cutouts_dir, id_col=id_col, pattern=pattern)

    @classmethod
    def from_survey(
        cls,
        fetch: Any,
        fetch_options: Mapping[str, Any] | None = None,
        *,
        fetch_dir: str | os.PathLike[str] | None = None,
        id_col: str | None = None,
    ) -> CutoutSpec:
        """Cutouts fetched from the survey ``fetch`` at each row's position."""
        return cls(fetch=fetch, fetch_options=fetch_options, fetch_dir=fetch_dir, id_col=id_col)

    @classmethod
    def from_images(cls, images: Any, bands: Sequence[str] | str | None = None) -> CutoutSpec:
        """Cutouts in memory: a column name or an array of (bands, H, W) images."""
        return cls(images=images, bands=bands)

    def replace(self, **changes: Any) -> CutoutSpec:
        """A copy with ``changes`` (checked again)."""
        return dataclasses.replace(self, **changes)

    def keywords(self) -> dict[str, Any]:
        """The fields of a file-based source as keyword arguments (no ``images``, ``bands``)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("images", "bands")
        }


#: types and smallest values of annotate's numeric and switch options
_OPTION_TYPES: dict[str, tuple[Any, int | None]] = {
    "chunk_size": (int, 1),
    "batch_size": (int, 1),
    "workers": (int | None, 0),
    "dask_workers": (int | None, 1),
    "prefix": (str, None),
    "embeddings": (bool, None),
    "resume": (bool, None),
    "restart": (bool, None),
    "overwrite": (bool, None),
}


def check_options(**options: Any) -> None:
    """One-line ``ValueError`` for an option of the wrong type or range, before any output."""
    for name, value in options.items():
        annotation, least = _OPTION_TYPES[name]
        check_value(value, annotation, name=name, where="annotate")
        if least is not None and value is not None and value < least:
            msg = f"annotate: {name} must be >= {least}, got {value}"
            raise ValueError(msg)


@dataclass(frozen=True)
class AnnotateOptions:
    """Everything about an annotation run but its cutouts, checked once.

    Parameters
    ----------
    model : str, path-like, `~galaxalign_astro.models.LoadedModel` or `Predictor`
        Bundled model name or model directory (or a loaded model, or a
        `~galaxalign_astro.inference.Predictor` to reuse).
    classes : path-like, ``ClassSet`` or ``ClassHead``, optional
        Zero-shot classes to classify into instead of the model's own.
    ra_col, dec_col : str, optional
        Coordinate columns; found by name (``ra``, ``RAJ2000``, ...) by default.
    prefix : str, optional
        Prepended to the added column names (default ``'gxa_'``).
    embeddings : bool, optional
        Add the embedding column.
    chunk_size : int, optional
        Rows classified (and, for files, read and stored) at a time.
    batch_size, device, workers : optional
        Inference settings (``workers``: cutout-reading processes; default
        automatic, and 0 when fetching).
    progress : bool, optional
        Show a progress bar on stderr.
    input_format, hdf5_path, resume, restart, overwrite, embeddings_hdf5, command,
    scheduler, dask_workers :
        Settings of catalog files and runs (see
        `~galaxalign_astro.annotate.annotate_file`); tables in memory ignore them.

    Raises
    ------
    ValueError
        An option of the wrong type or out of range (a one-line message naming it).
    """

    model: Any = "default"
    classes: Any = None
    ra_col: str | None = None
    dec_col: str | None = None
    prefix: str = DEFAULT_PREFIX
    embeddings: bool = True
    chunk_size: int = DEFAULT_CHUNK_SIZE
    batch_size: int = 64
    device: str = "cpu"
    workers: int | None = None
    progress: bool = False
    input_format: str | None = None
    hdf5_path: str | None = None
    resume: bool = False
    restart: bool = False
    overwrite: bool = False
    embeddings_hdf5: str | os.PathLike[str] | None = None
    command: str | None = None
    scheduler: Any = None
    dask_workers: int | None = None

    def __post_init__(self) -> None:
        check_options(**{name: getattr(self, name) for name in _OPTION_TYPES})

    @property
    def on_cluster(self) -> bool:
        """Whether a Dask cluster classifies the chunks (``scheduler`` or ``dask_workers``)."""
        return self.scheduler is not None or self.dask_workers is not None

    def replace(self, **changes: Any) -> AnnotateOptions:
        """A copy with ``changes`` (checked again)."""
        return dataclasses.replace(self, **changes)


_SOURCE_FIELDS = frozenset(f.name for f in dataclasses.fields(CutoutSpec))
_OPTION_FIELDS = frozenset(f.name for f in dataclasses.fields(AnnotateOptions))


def settings_from_keywords(
    where: str,
    source: CutoutSpec | None,
    options: AnnotateOptions | None,
    keywords: Mapping[str, Any],
    *,
    allowed: frozenset[str] | None = None,
) -> tuple[CutoutSpec, AnnotateOptions]:
    """The `CutoutSpec` and `AnnotateOptions` of a call given (some) keyword arguments.

    Keywords naming fields of either dataclass build it, or replace those fields of
    the ``source`` and ``options`` given.

    Parameters
    ----------
    where : str
        The function called, for error messages.
    source, options : optional
        Values given by the caller.
    keywords : mapping
        The other keyword arguments of the call.
    allowed : set of str, optional
        The keyword arguments ``where`` takes (default: every field).

    Raises
    ------
    TypeError
        A keyword that is no such field (or not one of ``allowed``), or ``source``
        and ``options`` of the wrong type.
    ValueError
        As for `CutoutSpec` and `AnnotateOptions`.
    """
    names = allowed if allowed is not None else _SOURCE_FIELDS | _OPTION_FIELDS
    unknown = sorted(set(keywords) - (names & (_SOURCE_FIELDS | _OPTION_FIELDS)))
    if unknown:
        msg = f"{where}() got an unexpected keyword argument {unknown[0]!r}"
        raise TypeError(msg)
    if source is not None and not isinstance(source, CutoutSpec):
        msg = f"{where}: source must be a CutoutSpec, not {type(source).__name__}"
        raise TypeError(msg)
    if options is not None and not isinstance(options, AnnotateOptions):
        msg = f"{where}: options must be AnnotateOptions, not {type(options).__name__}"
        raise TypeError(msg)
    opt = {k: v for k, v in keywords.items() if k in _OPTION_FIELDS}
    src = {k: v for k, v in keywords.items() if k in _SOURCE_FIELDS}
    options = options.replace(**opt) if options is not None else AnnotateOptions(**opt)
    source = source.replace(**src) if source is not None else CutoutSpec(**src)
    return source, options
