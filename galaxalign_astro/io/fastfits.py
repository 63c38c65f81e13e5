"""The hot path of ``read_cutout`` for the commonest FITS layout: one plain image HDU.

A Legacy Survey ``fits-cutout`` file, and most cutouts users write themselves, is a
single primary HDU holding a (bands, H, W) cube or an (H, W) image of floats, with a
plain TAN WCS. For that layout astropy's general machinery (card verification,
configuration lookups for every card, the header re-serialised for wcslib) costs
more than the rest of classify's decoding together. Here such a file is read with
one header parse and one ``numpy.fromfile``, and its celestial WCS is built straight
from the keywords through astropy's ``Wcsprm`` (the same wcslib transformations).

Anything else (extensions, compression, gzip, scaled integers, ``CONTINUE`` cards,
distortions, other projections, a card this parser does not read exactly as astropy
does) makes :func:`read_plain_fits` return None and the caller takes the astropy
path. ``tests/io/test_fastfits.py`` checks both paths give identical cutouts on the
layouts the tests cover.
"""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np

__all__ = ["PlainFits", "plain_tan_wcs", "read_plain_fits"]

BLOCK = 2880
CARD = 80
#: header blocks read before giving up on finding END (a plain cutout header is 1-3)
MAX_HEADER_BLOCKS = 36
_DTYPES = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([EeDd][+-]?\d+)?$")
#: keywords whose presence means the data or the WCS need astropy's full treatment
_SCALING = ("BSCALE", "BZERO", "BLANK", "GROUPS", "ZIMAGE", "XTENSION")
_WCS_EXTRAS = re.compile(
    r"^(PV\d|PS\d|CROTA|A_|B_|AP_|BP_|DP\d|DQ\d|D2IM|CPDIS|CQDIS|LONPOLE|LATPOLE|WCSAXES|"
    r"CD\d_\d|PC\d_\d|CDELT|CUNIT|CTYPE|CRPIX|CRVAL)"
)


class PlainFits:
    """A plain single-HDU FITS image: its header values and its pixels.

    Attributes
    ----------
    cards : dict
        Keyword -> value (str, int, float, bool or None) of the first card of each
        keyword, the way astropy's ``Header.__getitem__`` reads them.
    repeated : frozenset of str
        Keywords with more than one card (wcslib takes the last one, astropy's
        header the first: a repeated WCS keyword is left to astropy).
    data : ndarray
        The pixels in file order (NAXISn, ..., NAXIS1), as stored (big-endian).
    header_bytes : bytes
        The raw header, for the astropy WCS when the keyword WCS does not apply.
    """

    __slots__ = ("cards", "data", "header_bytes", "repeated")

    def __init__(
        self,
        cards: dict[str, Any],
        repeated: frozenset[str],
        data: np.ndarray,
        header_bytes: bytes,
    ) -> None:
        self.cards = cards
        self.repeated = repeated
        self.data = data
        self.header_bytes = header_bytes


def read_plain_fits(path: str, *, max_bytes: int | None = None) -> PlainFits | None:
    """Read ``path`` if it is one plain image HDU and nothing else; None otherwise.

    Also None when its pixels as float32 would exceed ``max_bytes``: the general
    reader then reads the section it needs, or refuses the file.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(BLOCK)
            if not head.startswith(b"SIMPLE  =") or len(head) < BLOCK:
                return None
            blocks = [head]
            end = _end_card(head)
            while end is None:
                if len(blocks) >= MAX_HEADER_BLOCKS:
                    return None
                block = fh.read(BLOCK)
                if len(block) < BLOCK:
                    return None
                blocks.append(block)
                end = _end_card(block)
            raw = b"".join(blocks)
            parsed = _parse_cards(raw[: (len(blocks) - 1) * BLOCK + end])
            if parsed is None:
                return None
            cards, repeated = parsed
            shape = _plain_shape(cards)
            if shape is None:
                return None
            dtype = np.dtype(_DTYPES[cards["BITPIX"]])
            count = int(np.prod(shape))
            if max_bytes is not None and count * 4 > max_bytes:
                return None
            padded = -(-count * dtype.itemsize // BLOCK) * BLOCK
            if os.fstat(fh.fileno()).st_size != len(raw) + padded:
                return None  # extensions follow, or the file is truncated: astropy decides
            data = np.fromfile(fh, dtype=dtype, count=count)
    except OSError:
        return None
    if data.size != count:
        return None
    return PlainFits(cards, repeated, data.reshape(shape), raw)


def _end_card(block: bytes) -> int | None:
    for start in range(0, BLOCK, CARD):
        if block[start : start + 8] == b"END     ":
            return start
    return None


def _parse_cards(raw: bytes) -> tuple[dict[str, Any], frozenset[str]] | None:
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    cards: dict[str, Any] = {}
    repeated: set[str] = set()
    for start in range(0, len(text), CARD):
        card = text[start : start + CARD]
        key = card[:8].rstrip()
        if key in ("", "COMMENT", "HISTORY"):
            continue
        if key in ("CONTINUE", "HIERARCH") or card[8:10] != "= ":
            return None
        if key != key.upper() or not re.fullmatch(r"[A-Z0-9_-]+", key):
            return None
        value = _parse_value(card[10:])
        if value is _UNREADABLE:
            return None
        if key in cards:
            repeated.add(key)
        else:
            cards[key] = value
    return cards, frozenset(repeated)


_UNREADABLE = object()


def _parse_value(field: str) -> Any:
    body = field.lstrip()
    if body.startswith("'"):
        out, i = [], 1
        while i < len(body):
            if body[i] == "'":
                if body[i + 1 : i + 2] == "'":
                    out.append("'")
                    i += 2
                    continue
                rest = body[i + 1 :].strip()
                if rest and not rest.startswith("/"):
                    return _UNREADABLE
                return "".join(out).rstrip()
            out.append(body[i])
            i += 1
        return _UNREADABLE
    value = body.split("/", 1)[0].strip()
    if value == "":
        return None
    if value in ("T", "F"):
        return value == "T"
    if _INT.match(value):
        return int(value)
    if _FLOAT.match(value):
        return float(value.replace("D", "E").replace("d", "e"))
    return _UNREADABLE


def _plain_shape(cards: dict[str, Any]) -> tuple[int, ...] | None:
    if cards.get("SIMPLE") is not True or any(k in cards for k in _SCALING):
        return None
    bitpix, naxis = cards.get("BITPIX"), cards.get("NAXIS")
    if bitpix not in _DTYPES or not isinstance(naxis, int) or not 2 <= naxis <= 4:
        return None
    sizes = [cards.get(f"NAXIS{i}") for i in range(1, naxis + 1)]
    if not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in sizes):
        return None
    shape = tuple(reversed(sizes))
    if naxis == 4 and shape[0] != 1:
        return None
    return shape


def plain_tan_wcs(plain: PlainFits):
    """The celestial WCS of a plain TAN header, built from its keywords; None otherwise.

    Plain means: ``RA---TAN``/``DEC--TAN`` axes 1 and 2, CRPIX/CRVAL, and either a CD
    matrix or CDELT with an optional PC matrix, in degrees; no distortion, rotation
    (``CROTA``), projection parameter, pole keyword or third WCS axis. Everything
    else is left to ``astropy.wcs.WCS(header)``.
    """
    from astropy.wcs import WCS

    cards = plain.cards
    if cards.get("CTYPE1") != "RA---TAN" or cards.get("CTYPE2") != "DEC--TAN":
        return None
    allowed = {
        "CTYPE1", "CTYPE2", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2",
        "CDELT1", "CDELT2", "CUNIT1", "CUNIT2",
        "CD1_1", "CD1_2", "CD2_1", "CD2_2", "PC1_1", "PC1_2", "PC2_1", "PC2_2",
    }  # fmt: skip
    if any(_WCS_EXTRAS.match(k) and k not in allowed for k in cards) or plain.repeated & {
        *allowed,
        "RADESYS",
        "EQUINOX",
    }:
        return None
    if any(cards.get(f"CUNIT{i}", "deg") != "deg" for i in (1, 2)):
        return None
    numbers = {k: cards[k] for k in allowed if k in cards and not k.startswith(("CTYPE", "CUNIT"))}
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers.values()):
        return None
    has_cd = any(k.startswith("CD") and not k.startswith("CDELT") for k in numbers)
    has_pc = any(k.startswith("PC") for k in numbers)
    if has_cd and (has_pc or "CDELT1" in numbers or "CDELT2" in numbers):
        return None  # wcslib's precedence rules for mixed forms: astropy decides
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crpix = [numbers.get("CRPIX1", 0.0), numbers.get("CRPIX2", 0.0)]
    wcs.wcs.crval = [numbers.get("CRVAL1", 0.0), numbers.get("CRVAL2", 0.0)]
    if has_cd:
        wcs.wcs.cd = [
            [numbers.get("CD1_1", 0.0), numbers.get("CD1_2", 0.0)],
            [numbers.get("CD2_1", 0.0), numbers.get("CD2_2", 0.0)],
        ]
    else:
        wcs.wcs.cdelt = [numbers.get("CDELT1", 1.0), numbers.get("CDELT2", 1.0)]
        wcs.wcs.pc = [
            [numbers.get("PC1_1", 1.0), numbers.get("PC1_2", 0.0)],
            [numbers.get("PC2_1", 0.0), numbers.get("PC2_2", 1.0)],
        ]
    if isinstance(cards.get("RADESYS"), str):
        wcs.wcs.radesys = cards["RADESYS"]
    if isinstance(cards.get("EQUINOX"), int | float) and not isinstance(cards["EQUINOX"], bool):
        wcs.wcs.equinox = cards["EQUINOX"]
    try:
        wcs.wcs.set()
    except Exception:  # a singular matrix and the like: astropy reports it its way
        return None
    return wcs
