"""Provenance of output catalogs: one record, and its form in each format.

`Provenance` is the one value every entry point (``classify``, ``annotate``,
``annotate-hats``, ``index``/``search``, ``evaluate``) builds: from the loaded
model's record, the command and its inputs. `Provenance.to_meta` gives the table
metadata every catalog writer stores in its format's native place, and
`Provenance.from_meta` reads it back from any of them. The writers own each
format's form of metadata (the same for an input catalog's own metadata):

- FITS: standard 8-character header cards (``GAVERSN``, ``CREATOR``, ``DATE``,
  ``MODEL``, ``WSHA256``, ``ENGINE``, ``PREPROC``...; `fits_header_cards`), and
  astropy's serialized-columns block with the full record;
- HDF5: attributes of the table dataset (the record as JSON text under
  ``galaxalign``), and astropy's YAML header;
- Parquet/Arrow: schema metadata ``galaxalign`` (the whole metadata as JSON),
  beside astropy's ``table_meta_yaml``;
- ECSV: the YAML ``meta`` of the header.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy.io import fits

from .._version import __version__

__all__ = [
    "PROVENANCE_KEYS",
    "Provenance",
    "ascii_text",
    "fits_header_cards",
    "fitting_card",
    "json_text",
    "provenance_meta",
]

log = logging.getLogger(__name__)

#: long names accepted by `provenance_meta`, their header keys and header comments
PROVENANCE_KEYS: dict[str, tuple[str, str]] = {
    "version": ("GAVERSN", "galaxalign-astro version"),
    "creator": ("CREATOR", "software that created this file"),
    "date": ("DATE", "UTC date and time of the run"),
    "model": ("MODEL", "model name"),
    "weights_sha256": ("WSHA256", "SHA-256 of the model weights file"),
    "engine": ("ENGINE", "image-tower inference engine (torch or onnx)"),
    "preprocessing": ("PREPROC", "preprocessing parameters (JSON)"),
    "stretch": ("STRETCH", "image stretch"),
    "bands": ("BANDS", "bands of the input images"),
    "survey": ("SURVEY", "survey the images came from"),
    "input": ("INPUT", "input catalog"),
    "command": ("COMMAND", "command that produced the catalog"),
}
_COMMENTS = dict(PROVENANCE_KEYS.values())
_KEY_RE = re.compile(r"[A-Z0-9_-]{1,8}")
#: keywords the table structure owns; metadata may not set them
_RESERVED_RE = re.compile(
    r"(SIMPLE|XTENSION|BITPIX|NAXIS\d*|PCOUNT|GCOUNT|TFIELDS|THEAP|EXTEND|EXTNAME|END"
    r"|CONTINUE|LONGSTRN|CHECKSUM|DATASUM"
    r"|(TTYPE|TFORM|TUNIT|TNULL|TSCAL|TZERO|TDISP|TBCOL|TDIM|TCOMM)\d+)"
)


def provenance_meta(**items: Any) -> dict[str, Any]:
    """Provenance metadata for an output catalog, keyed by short FITS-style keys.

    The package version (``GAVERSN``) and the current UTC time (``DATE``, FITS format
    ``YYYY-MM-DDThh:mm:ss``) are always included; ``items`` may override them.

    Parameters
    ----------
    **items
        Provenance entries. The long names in `PROVENANCE_KEYS` (``model``,
        ``weights_sha256``, ``preprocessing``, ``stretch``...) map to their short keys
        (``MODEL``, ``WSHA256``, ``PREPROC``, ``STRETCH``...); any other name is
        upper-cased and must then be a valid FITS keyword of at most 8 characters.
        Values may be strings, numbers, booleans or JSON-serialisable dicts and
        lists (kept as they are here; JSON text in FITS headers). `None` values are
        left out.

    Returns
    -------
    dict
        Ordered ``{KEY: value}``, ready to pass as ``meta`` to `open_writer`.
    """
    meta: dict[str, Any] = {
        "GAVERSN": __version__,
        "CREATOR": f"galaxalign-astro {__version__}",
        "DATE": utc_now(),
    }
    for name, value in items.items():
        key = PROVENANCE_KEYS[name][0] if name in PROVENANCE_KEYS else name.upper()
        if not _KEY_RE.fullmatch(key) or _RESERVED_RE.fullmatch(key):
            msg = (
                f"provenance item {name!r} has no valid header key: use one of "
                f"{', '.join(PROVENANCE_KEYS)} or a name of at most 8 letters, digits, _ or -"
            )
            raise ValueError(msg)
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    return meta


def utc_now() -> str:
    """The current UTC time in the FITS ``DATE`` format ``YYYY-MM-DDThh:mm:ss``."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic | np.ndarray):
        return obj.tolist()
    return str(obj)


def json_text(value: Any) -> str:
    """Compact ASCII JSON of a metadata value (numpy values as lists, others as text)."""
    return json.dumps(value, default=_json_default, allow_nan=False, ensure_ascii=True)


def _header_value(value: Any) -> Any:
    """Value as a FITS header can hold it, or `None` when it cannot."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return ascii_text(value if isinstance(value, str) else json_text(value))


def ascii_text(text: str) -> str:
    """``text`` with accents stripped and other non-printable-ASCII characters as ``?``.

    FITS headers hold printable ASCII only; the astropy metadata block of the FITS
    writer keeps the exact text.
    """
    text = "".join(
        ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch)
    )
    return "".join(ch if " " <= ch <= "~" else "?" for ch in text)


def fitting_card(key: str, value: Any, comment: str = "") -> fits.Card:
    """A header card whose comment is shortened so the card needs no truncation."""
    comment = ascii_text(comment)
    card = fits.Card(key, value)
    # fixed-format values end at column 30 at least; a long string's comment goes on
    # its last CONTINUE card
    used = len(card.image[-80:].rstrip())
    room = 80 - max(used, 30 if len(card.image) == 80 else 0) - 3
    if len(comment) > room:  # a few characters of a comment would only confuse
        comment = comment[:room].rstrip() if room >= 12 else ""
    return fits.Card(key, value, comment) if comment else card


def fits_header_cards(meta: Mapping[str, Any]) -> list[fits.Card]:
    """Convert catalog metadata to FITS header cards.

    Keys that already are standard FITS keywords (at most 8 upper-case letters,
    digits, ``_`` or ``-``) become cards; dicts and lists are written as JSON text,
    strings longer than one card use the ``CONTINUE`` long-string convention, and
    the keys of `PROVENANCE_KEYS` get their comments. ``meta['comments']`` and
    ``meta['HISTORY']`` (a string or a list of strings) become ``COMMENT`` and
    ``HISTORY`` cards. Other keys (lower case, longer names) and values a header
    cannot hold (NaN, `None`) are left out here: the writers keep them in the
    astropy metadata block, so `~astropy.table.Table.read` still returns them.

    Parameters
    ----------
    meta : mapping
        Table metadata, e.g. from `provenance_meta`.

    Returns
    -------
    list of `~astropy.io.fits.Card`

    Keys the table structure owns (``NAXIS2``, ``TFORM1``, ``EXTNAME``...) are left
    out: in the metadata of a table read from a FITS file they describe that file.
    """
    cards: list[fits.Card] = []
    for key, value in meta.items():
        if key in ("comments", "COMMENT", "HISTORY"):
            kind = "HISTORY" if key == "HISTORY" else "COMMENT"
            lines = [value] if isinstance(value, str) else list(value)
            for line in lines:
                text = _header_value(str(line))
                cards.extend(fits.Card(kind, text[i : i + 72]) for i in range(0, len(text), 72))
            continue
        if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
            log.debug("meta key %r is not a FITS keyword; kept in the astropy block only", key)
            continue
        if _RESERVED_RE.fullmatch(key):
            # the writer owns the table's structure; such keys come from the file a
            # table was read from (astropy keeps EXTNAME in meta) and describe that file
            log.debug("meta key %r is a FITS structural keyword; left out", key)
            continue
        header_value = _header_value(value)
        if header_value is None:
            log.debug("meta value of %r cannot go into a FITS header; left out", key)
            continue
        cards.append(fitting_card(key, header_value, _COMMENTS.get(key, "")))
    return cards


#: keys of the model record (`LoadedModel.provenance`, `Predictor.provenance`) kept as fields
_MODEL_FIELDS = (
    "model_name",
    "model_path",
    "architecture",
    "weights_sha256",
    "preprocess",
    "prototype_alpha",
    "engine",
    "class_names",
    "zero_shot_classes",
    "zero_shot_classes_sha256",
)
_SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")


def _loads(value: Any) -> Any:
    """``value`` parsed when it is JSON text (or bytes), else as it is; None if unparsable."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _text(value: Any) -> str | None:
    """A provenance value as stripped text (a sha256 in lower case), or None."""
    if value is None:
        return None
    text = str(value).strip()
    if _SHA256_RE.fullmatch(text):
        return text.lower()
    return text or None


@dataclass(frozen=True)
class Provenance:
    """What produced a catalog: package, model, preprocessing, command and inputs.

    Built once per run (`from_model`), written by every catalog format through
    `to_meta`, and read back from any of them by `from_meta`.

    Attributes
    ----------
    package_version, date : str
        galaxalign-astro version and the UTC time of the run (FITS ``DATE`` format).
    model_name, model_path, architecture, weights_sha256 : str or None
        The model: its name, the directory it was loaded from, its open_clip
        architecture and the SHA-256 of its weights file.
    preprocess : dict or None
        Its `~galaxalign_astro.preprocess.PreprocessConfig` as a dict: what turned
        the cutouts into model inputs.
    prototype_alpha : float or None
        Mix of text and symbol class prototypes.
    engine : str or None
        Image-tower inference engine (``torch`` or ``onnx``).
    class_names : list of str or None
        Classes in the order of the probability columns.
    zero_shot_classes, zero_shot_classes_sha256 : str or None
        The class list of a zero-shot head, when one replaced the model's classes.
    command : str or None
        The command line (or API call) that produced the catalog.
    step : str or None
        Which step wrote it (``classify``, ``annotate``, ``annotate-hats``,
        ``search``, ``evaluate``); its ``settings`` are stored under this name.
    settings : dict
        The step's parameters (annotate options, the search query...).
    input : str or None
        The input catalog or folder.
    survey : str or None
        The survey cutouts were fetched from.
    extra : dict
        Other entries of the record (kept on a round trip).
    """

    package_version: str = __version__
    date: str = field(default_factory=utc_now)
    model_name: str | None = None
    model_path: str | None = None
    architecture: str | None = None
    weights_sha256: str | None = None
    preprocess: dict[str, Any] | None = None
    prototype_alpha: float | None = None
    engine: str | None = None
    class_names: list[str] | None = None
    zero_shot_classes: str | None = None
    zero_shot_classes_sha256: str | None = None
    command: str | None = None
    step: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    input: str | None = None
    survey: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.weights_sha256 is not None:  # one spelling of a hash
            object.__setattr__(self, "weights_sha256", _text(self.weights_sha256))

    @classmethod
    def from_model(
        cls,
        model: Any,
        *,
        step: str | None = None,
        command: str | None = None,
        input: str | None = None,
        survey: str | None = None,
        settings: Mapping[str, Any] | None = None,
        date: str | None = None,
        **extra: Any,
    ) -> Provenance:
        """The provenance of a run of ``model``.

        Parameters
        ----------
        model : object with a ``provenance()`` method, or mapping
            The loaded model or predictor (its ``provenance()`` record: name, path,
            architecture, weights hash, preprocessing, engine, classes), or that
            record itself.
        step, command, input, survey, settings
            See the class attributes.
        date : str, optional
            The run's start (a resumed run keeps its first start); default now.
        **extra
            Further entries of the record (e.g. ``renamed_columns``).
        """
        record = dict(model.provenance() if hasattr(model, "provenance") else model)
        fields = {name: record.pop(name) for name in _MODEL_FIELDS if name in record}
        record.pop("package_version", None)
        record.pop("date", None)
        if fields.get("class_names") is not None:
            fields["class_names"] = [str(n) for n in fields["class_names"]]
        return cls(
            date=date or utc_now(),
            step=step,
            command=command,
            input=input,
            survey=survey,
            settings=dict(settings or {}),
            extra={**record, **extra},
            **fields,
        )

    def replace(self, **changes: Any) -> Provenance:
        """A copy with ``changes`` applied (`dataclasses.replace`)."""
        return dataclasses.replace(self, **changes)

    # -- writing --------------------------------------------------------------------

    def record(self) -> dict[str, Any]:
        """The full record, as JSON-ready values (``meta['galaxalign']`` of a catalog)."""
        out: dict[str, Any] = {"package_version": self.package_version}
        for name in _MODEL_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        out["date"] = self.date
        for name in ("command", "input", "survey"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.step is not None and self.settings:
            out[self.step] = dict(self.settings)
        out.update(self.extra)
        return out

    def header(self) -> dict[str, Any]:
        """The standard header keys (``GAVERSN``, ``CREATOR``, ``DATE``, ``MODEL``...)."""
        preprocess = self.preprocess or {}
        bands = preprocess.get("bands")
        return provenance_meta(
            version=self.package_version,
            creator=f"galaxalign-astro {self.package_version}",
            date=self.date,
            model=self.model_name,
            weights_sha256=self.weights_sha256,
            engine=self.engine,
            preprocessing=self.preprocess,
            stretch=preprocess.get("stretch"),
            bands="".join(bands) if bands else None,
            survey=self.survey,
            input=self.input,
            command=self.command,
        )

    def to_meta(self, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Table metadata holding this provenance: ``base`` (e.g. an input catalog's
        metadata), then the header keys, then the record under ``galaxalign``.

        This is what `~galaxalign_astro.catalog.open_writer` and astropy's writers
        take; each format stores it in its native place (see the module docstring).
        """
        meta = dict(base or {})
        meta.update(self.header())
        meta["galaxalign"] = self.record()
        return meta

    # -- reading --------------------------------------------------------------------

    @classmethod
    def from_meta(cls, meta: Mapping[Any, Any] | None) -> Provenance:
        """Read the provenance back from a catalog's metadata, in any format's form.

        Parameters
        ----------
        meta : mapping or None
            ``table.meta`` of a catalog read by astropy (FITS, HDF5, Parquet, ECSV),
            a FITS header, HDF5 attributes, a Parquet schema's metadata (bytes keys),
            or a bare record.

        Returns
        -------
        Provenance
            Fields the metadata does not hold are None (or empty).
        """
        meta = {
            (k.decode() if isinstance(k, bytes) else str(k)): v for k, v in (meta or {}).items()
        }
        info = _loads(meta.get("galaxalign"))
        info = dict(info) if isinstance(info, Mapping) else {}
        if isinstance(info.get("galaxalign"), Mapping):  # the Arrow form: the whole meta
            meta = {**meta, **info}
            info = dict(info["galaxalign"])
        if not info and "model_name" in meta:  # a bare record
            info = dict(meta)
        upper = {k.upper(): v for k, v in meta.items()}
        preprocess = _loads(info.get("preprocess", upper.get("PREPROC")))
        names = info.get("class_names")
        alpha = info.get("prototype_alpha")
        fields: dict[str, Any] = {
            "model_name": _text(info.get("model_name", upper.get("MODEL"))),
            "model_path": _text(info.get("model_path")),
            "architecture": _text(info.get("architecture")),
            "weights_sha256": _text(info.get("weights_sha256", upper.get("WSHA256"))),
            "preprocess": dict(preprocess) if isinstance(preprocess, Mapping) else None,
            "prototype_alpha": float(alpha) if isinstance(alpha, int | float) else None,
            "engine": _text(info.get("engine", upper.get("ENGINE"))),
            "class_names": [str(n) for n in names] if isinstance(names, list | tuple) else None,
            "zero_shot_classes": _text(info.get("zero_shot_classes")),
            "zero_shot_classes_sha256": _text(info.get("zero_shot_classes_sha256")),
            "command": _text(info.get("command", upper.get("COMMAND"))),
            "input": _text(info.get("input", upper.get("INPUT"))),
            "survey": _text(info.get("survey", upper.get("SURVEY"))),
        }
        version = _text(info.get("package_version", upper.get("GAVERSN")))
        date = _text(info.get("date", upper.get("DATE")))
        known = set(fields) | {"package_version", "date"}
        step = next(
            (k for k in _STEPS if isinstance(info.get(k), Mapping)),
            None,
        )
        if step is not None:
            known.add(step)
        return cls(
            package_version=version or "",
            date=date or "",
            step=step,
            settings=dict(info[step]) if step is not None else {},
            extra={k: v for k, v in info.items() if k not in known},
            **fields,
        )


#: steps whose settings a record keeps under their name
_STEPS = ("classify", "annotate", "annotate-hats", "search", "index", "evaluate")
