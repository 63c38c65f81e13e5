"""Provenance metadata of output catalogs and its FITS header form."""

from __future__ import annotations

import datetime
import json
import logging
import math
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

import numpy as np
from astropy.io import fits

from .._version import __version__

__all__ = [
    "PROVENANCE_KEYS",
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
        "DATE": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
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
