"""Reading FITS tables: memory-mapped, a slice of rows or of one column at a time."""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

import numpy as np
from astropy.table import Table

from ..fits import _YAML_BEGIN, _YAML_END
from .base import CatalogReader, plain_values
from .schema import plain_table

__all__ = ["FitsReader", "fits_yaml_meta"]

log = logging.getLogger(__name__)


class FitsReader(CatalogReader):
    """Memory-mapped FITS table, converted chunk by chunk with astropy's reader.

    Rows come as astropy's own FITS table reader gives them (units, descriptions,
    ``TNULL`` masks and the astropy metadata block); columns are slices of the
    memory-mapped table. `meta` holds the header cards and the metadata block.

    Parameters
    ----------
    path : str or path-like
    hdu : int or str, optional
        Table HDU (default: the first table).
    """

    format = "fits"

    def __init__(self, path: str | os.PathLike[str], *, hdu: int | str | None = None) -> None:
        from astropy.io import fits

        super().__init__(path)
        self._hdul = fits.open(self.path, memmap=True)
        try:
            self._hdu: Any = self._table_hdu(hdu)
            header = self._hdu.header
            self.n_rows = int(header.get("NAXIS2", 0))
            self.colnames = list(self._hdu.columns.names)
            self.meta = {k: v for k, v in header.items() if k and k not in ("COMMENT", "HISTORY")}
            self.meta.update(fits_yaml_meta(header))
        except BaseException:
            self._hdul.close()
            raise

    def _table_hdu(self, hdu: int | str | None) -> Any:
        from astropy.io import fits

        if hdu is not None:
            try:
                found = self._hdul[hdu]
            except (KeyError, IndexError):
                msg = f"{self.path}: no HDU {hdu!r}"
                raise ValueError(msg) from None
            if not isinstance(found, fits.BinTableHDU | fits.TableHDU):
                msg = f"{self.path}: HDU {hdu!r} is not a table"
                raise ValueError(msg)
            return found
        for candidate in self._hdul:
            if isinstance(candidate, fits.BinTableHDU | fits.TableHDU):
                return candidate
        msg = f"catalog {self.path} has no table HDU"
        raise ValueError(msg)

    def _read(self, start: int, stop: int) -> Table:
        from astropy.io import fits

        rows = self._hdu.data[start:stop]
        with warnings.catch_warnings():
            # the header's NAXIS2 describes the whole table, not this slice
            warnings.simplefilter("ignore", fits.verify.VerifyWarning)
            part = type(self._hdu)(data=rows, header=self._hdu.header)
            return plain_table(Table.read(part))

    def read_column(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        return plain_values(self._hdu.data.field(name)[start:stop])

    def take_column(self, name: str, rows: np.ndarray) -> np.ndarray:
        return plain_values(self._hdu.data.field(name)[rows])

    def close(self) -> None:
        self._hdul.close()


def fits_yaml_meta(header: Any) -> dict[str, Any]:
    """Table metadata from astropy's serialized-columns block of COMMENT cards.

    Parameters
    ----------
    header : `~astropy.io.fits.Header`
        Header of a table HDU.

    Returns
    -------
    dict
        The block's ``meta`` (empty when there is no block or it cannot be parsed).
    """
    from astropy.table import meta as table_meta

    comments = [str(c) for c in header.get("COMMENT", [])]
    try:
        i0, i1 = comments.index(_YAML_BEGIN), comments.index(_YAML_END)
    except ValueError:
        return {}
    # lines longer than 70 characters continue on the next card after a backslash
    lines: list[str] = []
    continued = False
    for line in comments[i0 + 1 : i1]:
        if continued:
            lines[-1] += line[:70]
        else:
            lines.append(line[:70])
        continued = len(line) == 71
    try:
        return dict(table_meta.get_header_from_yaml(lines).get("meta", {}))
    except Exception:  # a damaged block only loses the provenance
        log.warning("cannot parse the astropy metadata block of a FITS header; ignored")
        return {}
