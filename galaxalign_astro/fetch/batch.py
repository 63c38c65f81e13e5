"""Fetching many cutouts: a streaming iterator and a table-returning wrapper."""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table

from .._version import __version__
from .client import CutoutRequest, SurveyClient
from .registry import get_client

__all__ = [
    "DEC_NAMES",
    "RA_NAMES",
    "FetchResult",
    "fetch_cutouts",
    "find_coord_columns",
    "iter_fetch",
    "read_targets",
]

log = logging.getLogger(__name__)

#: column names recognised as right ascension / declination (case-insensitive, in order)
RA_NAMES = (
    "ra",
    "ra_deg",
    "radeg",
    "raj2000",
    "_raj2000",
    "ra_icrs",
    "ra_j2000",
    "alpha_j2000",
    "target_ra",
    "ra_targ",
    "ra2000",
)
DEC_NAMES = (
    "dec",
    "dec_deg",
    "decdeg",
    "dej2000",
    "_dej2000",
    "decj2000",
    "de_icrs",
    "dec_icrs",
    "dec_j2000",
    "delta_j2000",
    "target_dec",
    "dec_targ",
    "de2000",
    "dec2000",
)

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


@dataclass
class FetchResult:
    """The outcome of one target of a batch.

    Attributes
    ----------
    index : int
        Position of the target in the input.
    id : str
        Target identifier (the ``id_col`` value, else the zero-padded index).
    ra, dec : float
        Position in degrees (NaN if unreadable).
    status : str
        ``'ok'`` or ``'error'``.
    path : `~pathlib.Path` or None
        Written file (when an output directory was given).
    source : str
        ``'network'``, ``'cache'`` or ``'exists'`` (file kept); empty on error.
    error : str
        Why the target failed; empty when ok.
    hdul : `~astropy.io.fits.HDUList` or None
        The cutout, when no output directory was given.
    """

    index: int
    id: str
    ra: float
    dec: float
    status: str
    path: Path | None = None
    source: str = ""
    error: str = ""
    hdul: fits.HDUList | None = None

    @property
    def ok(self) -> bool:
        """Whether the cutout was obtained."""
        return self.status == "ok"


def find_coord_columns(
    table: Table, *, ra_col: str | None = None, dec_col: str | None = None
) -> tuple[str, str]:
    """Return the names of the RA and Dec columns of ``table``.

    Parameters
    ----------
    table : `~astropy.table.Table`
        Catalogue.
    ra_col, dec_col : str, optional
        Explicit names; otherwise the first column whose name matches
        `RA_NAMES` / `DEC_NAMES` (case-insensitive) is used.

    Raises
    ------
    ValueError
        If a column is missing or cannot be guessed.
    """
    lower = {name.lower(): name for name in reversed(table.colnames)}
    found = []
    for given, names, what, option in (
        (ra_col, RA_NAMES, "right ascension", "ra_col"),
        (dec_col, DEC_NAMES, "declination", "dec_col"),
    ):
        if given is not None:
            if given not in table.colnames:
                msg = f"column {given!r} ({what}) not in the table; columns: {table.colnames}"
                raise ValueError(msg)
            found.append(given)
            continue
        match = next((lower[n] for n in names if n in lower), None)
        if match is None:
            msg = (
                f"no {what} column found among {table.colnames}; name it with {option} "
                f"(recognised: {', '.join(names)})"
            )
            raise ValueError(msg)
        found.append(match)
    return found[0], found[1]


def _degrees(column: Any, *, default: u.Unit) -> np.ndarray:
    unit = getattr(column, "unit", None)
    if getattr(column, "dtype", np.dtype(float)).kind in "USO":
        return np.asarray(column)
    values: np.ndarray = np.ma.filled(np.ma.asanyarray(column, dtype=float), np.nan)
    if unit is not None and unit != u.dimensionless_unscaled:
        return np.asarray(u.Quantity(values, unit).to_value(u.deg))
    return np.asarray(u.Quantity(values, default).to_value(u.deg))


def read_targets(
    targets: Table | SkyCoord,
    *,
    id_col: str | None = None,
    ra_col: str | None = None,
    dec_col: str | None = None,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Return ``(ids, ra_deg, dec_deg)`` of the targets of a batch.

    Parameters
    ----------
    targets : `~astropy.table.Table` or `~astropy.coordinates.SkyCoord`
        Catalogue with RA/Dec columns (degrees unless the column has a unit;
        sexagesimal strings are read as hours and degrees), or positions.
    id_col : str, optional
        Column of identifiers (file names); default the zero-padded row index.
    ra_col, dec_col : str, optional
        Coordinate column names (see `find_coord_columns`).

    Returns
    -------
    ids : list of str
        Identifiers safe as file names (unique).
    ra, dec : ndarray
        Degrees; NaN where a row has no usable position.

    Raises
    ------
    ValueError
        Missing columns or duplicate identifiers.
    """
    if isinstance(targets, SkyCoord):
        coords = targets.reshape(-1) if not targets.isscalar else targets.reshape(1)
        icrs = coords.icrs
        ra, dec = np.asarray(icrs.ra.deg, float), np.asarray(icrs.dec.deg, float)
        if id_col is not None:
            msg = "id_col needs a table; a SkyCoord has no columns"
            raise ValueError(msg)
        raw_ids: Sequence[Any] | None = None
    else:
        table = targets if isinstance(targets, Table) else Table(targets)
        ra_name, dec_name = find_coord_columns(table, ra_col=ra_col, dec_col=dec_col)
        ra_values = _degrees(table[ra_name], default=u.deg)
        dec_values = _degrees(table[dec_name], default=u.deg)
        if ra_values.dtype.kind in "USO" or dec_values.dtype.kind in "USO":
            coords = SkyCoord(ra_values, dec_values, unit=(u.hourangle, u.deg), frame="icrs")
            ra_values, dec_values = coords.ra.deg, coords.dec.deg
        ra, dec = np.asarray(ra_values, float), np.asarray(dec_values, float)
        raw_ids = None
        if id_col is not None:
            if id_col not in table.colnames:
                msg = f"id column {id_col!r} not in the table; columns: {table.colnames}"
                raise ValueError(msg)
            raw_ids = list(table[id_col])
    n = len(ra)
    if raw_ids is None:
        width = max(6, len(str(max(n - 1, 0))))
        ids = [f"{i:0{width}d}" for i in range(n)]
    else:
        ids = [_UNSAFE.sub("_", str(v).strip()) or f"row{i}" for i, v in enumerate(raw_ids)]
        dupes = sorted(name for name, count in Counter(ids).items() if count > 1)
        if dupes:
            msg = f"id column {id_col!r} has duplicate values (as file names): {dupes[:5]}"
            raise ValueError(msg)
    return ids, ra, dec


def _work(
    client: SurveyClient,
    index: int,
    ident: str,
    ra: float,
    dec: float,
    *,
    out_dir: Path | None,
    size: int | None,
    pixscale: Any,
    bands: str | None,
    overwrite: bool,
) -> FetchResult:
    result = FetchResult(index=index, id=ident, ra=float(ra), dec=float(dec), status="error")
    try:
        if not (np.isfinite(ra) and np.isfinite(dec)) or not -90.0 <= dec <= 90.0:
            msg = f"invalid position RA={ra}, Dec={dec}"
            raise ValueError(msg)
        coord = SkyCoord(ra * u.deg, dec * u.deg, frame="icrs")
        request: CutoutRequest = client.make_request(
            coord, size=size, pixscale=pixscale, bands=bands
        )
        if out_dir is None:
            result.hdul, result.source = client._obtain(request, client._plan(request))
        else:
            result.path, result.source = client._fetch_file(
                request, out_dir / f"{ident}.fits", overwrite=overwrite
            )
        result.status = "ok"
    except Exception as exc:  # one failed target never stops a batch
        result.error = f"{type(exc).__name__}: {exc}"
        log.debug("target %s failed", ident, exc_info=True)
    return result


def iter_fetch(
    targets: Table | SkyCoord,
    *,
    survey: str = "legacysurvey",
    client: SurveyClient | None = None,
    out_dir: str | Path | None = None,
    id_col: str | None = None,
    ra_col: str | None = None,
    dec_col: str | None = None,
    size: int | None = None,
    pixscale: u.Quantity | float | None = None,
    bands: str | None = None,
    max_workers: int | None = None,
    rate_limit: float | None = None,
    overwrite: bool = False,
    **client_options: Any,
) -> Iterator[FetchResult]:
    """Fetch cutouts for many targets in parallel, yielding each result as it completes.

    Results come in completion order (use `FetchResult.index` to map them
    back); a failed target is a result with ``status='error'``, never an
    exception. Closing the iterator early cancels the targets not yet
    started. Without ``out_dir`` the cutouts are returned in memory
    (`FetchResult.hdul`), so inference can start on the first cutouts
    while later ones download.

    Parameters
    ----------
    targets : `~astropy.table.Table` or `~astropy.coordinates.SkyCoord`
        Positions (see `read_targets`).
    survey : str
        Survey name for `get_client` (ignored when ``client`` is given).
    client : `~galaxalign_astro.fetch.client.SurveyClient`, optional
        A ready client.
    out_dir : str or `~pathlib.Path`, optional
        Write ``<id>.fits`` files there.
    id_col, ra_col, dec_col : str, optional
        Column names (see `read_targets`).
    size, pixscale, bands : optional
        Cutout geometry (survey defaults).
    max_workers : int, optional
        Parallel threads (and most requests open at once).
    rate_limit : float, optional
        Most requests per second.
    overwrite : bool
        Re-fetch targets whose file exists; otherwise such files are kept
        (``source='exists'``), which makes an interrupted batch resumable.
    **client_options
        More `get_client` options (``layer``, ``cache_dir``...).

    Yields
    ------
    result : `FetchResult`
    """
    batch = _prepare(
        targets,
        survey=survey,
        client=client,
        out_dir=out_dir,
        id_col=id_col,
        ra_col=ra_col,
        dec_col=dec_col,
        size=size,
        pixscale=pixscale,
        bands=bands,
        max_workers=max_workers,
        rate_limit=rate_limit,
        overwrite=overwrite,
        client_options=client_options,
    )
    return _run(batch)


@dataclass
class _Batch:
    client: SurveyClient
    geometry: CutoutRequest
    ids: list[str]
    ra: np.ndarray
    dec: np.ndarray
    work: Callable[..., FetchResult]
    workers: int


def _prepare(
    targets: Table | SkyCoord,
    *,
    survey: str,
    client: SurveyClient | None,
    out_dir: str | Path | None,
    id_col: str | None,
    ra_col: str | None,
    dec_col: str | None,
    size: int | None,
    pixscale: u.Quantity | float | None,
    bands: str | None,
    max_workers: int | None,
    rate_limit: float | None,
    overwrite: bool,
    client_options: dict[str, Any],
) -> _Batch:
    """Check everything that is the caller's error before any target is started."""
    ids, ra, dec = read_targets(targets, id_col=id_col, ra_col=ra_col, dec_col=dec_col)
    client = _client_for(survey, client, max_workers, rate_limit, client_options)
    geometry = client.make_request(
        SkyCoord(0 * u.deg, 0 * u.deg), size=size, pixscale=pixscale, bands=bands
    )
    workers = int(max_workers if max_workers is not None else client.max_workers)
    if workers < 1:
        msg = f"max_workers must be >= 1, got {workers}"
        raise ValueError(msg)
    out_path = Path(out_dir) if out_dir is not None else None
    if out_path is not None:
        out_path.mkdir(parents=True, exist_ok=True)
    work = partial(
        _work,
        client,
        out_dir=out_path,
        size=size,
        pixscale=pixscale,
        bands=bands,
        overwrite=overwrite,
    )
    return _Batch(client, geometry, ids, ra, dec, work, workers)


def _client_for(
    survey: str,
    client: SurveyClient | None,
    max_workers: int | None,
    rate_limit: float | None,
    client_options: dict[str, Any],
) -> SurveyClient:
    if client is not None:
        if client_options or rate_limit is not None:
            given = sorted([*client_options, *(["rate_limit"] if rate_limit is not None else [])])
            msg = (
                f"options {given} configure a new client: give them to get_client, not with client="
            )
            raise ValueError(msg)
        return client
    options = dict(client_options)
    if max_workers is not None:
        options["max_workers"] = max_workers
    if rate_limit is not None:
        options["rate_limit"] = rate_limit
    return get_client(survey, **options)


def _run(batch: _Batch) -> Iterator[FetchResult]:
    pending = iter(range(len(batch.ids)))
    executor = ThreadPoolExecutor(max_workers=batch.workers, thread_name_prefix="galaxalign-fetch")
    running: set[Future[FetchResult]] = set()

    def submit_next() -> bool:
        i = next(pending, None)
        if i is None:
            return False
        running.add(executor.submit(batch.work, i, batch.ids[i], batch.ra[i], batch.dec[i]))
        return True

    try:
        # a bounded window of submitted work keeps huge catalogues cheap and cancellable
        for _ in range(2 * batch.workers):
            if not submit_next():
                break
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                running.discard(future)
                submit_next()
                yield future.result()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def fetch_cutouts(
    targets: Table | SkyCoord,
    *,
    survey: str = "legacysurvey",
    out_dir: str | Path,
    client: SurveyClient | None = None,
    id_col: str | None = None,
    ra_col: str | None = None,
    dec_col: str | None = None,
    size: int | None = None,
    pixscale: u.Quantity | float | None = None,
    bands: str | None = None,
    max_workers: int | None = None,
    rate_limit: float | None = None,
    overwrite: bool = False,
    progress: bool = True,
    **client_options: Any,
) -> Table:
    """Fetch one cutout file per target into ``out_dir`` and report each row.

    Parameters are those of `iter_fetch`; ``progress`` shows a tqdm bar on
    stderr (only when stderr is a terminal).

    Returns
    -------
    table : `~astropy.table.Table`
        One row per input, in input order: ``id``, ``ra``, ``dec``,
        ``path``, ``status`` (``'ok'``/``'error'``), ``source`` (``'network'``,
        ``'cache'``, ``'exists'``) and ``error``; ``meta`` holds the survey,
        layer, geometry, counts, package version and date. A failed row
        never raises.
    """
    from tqdm.auto import tqdm

    batch = _prepare(
        targets,
        survey=survey,
        client=client,
        out_dir=out_dir,
        id_col=id_col,
        ra_col=ra_col,
        dec_col=dec_col,
        size=size,
        pixscale=pixscale,
        bands=bands,
        max_workers=max_workers,
        rate_limit=rate_limit,
        overwrite=overwrite,
        client_options=client_options,
    )
    results: list[FetchResult] = []
    bar = tqdm(
        total=len(batch.ids),
        disable=None if progress else True,
        unit="cutout",
        desc=batch.client.survey,
        leave=False,
    )
    n_err = 0
    try:
        for result in _run(batch):
            results.append(result)
            n_err += not result.ok
            bar.update(1)
            if n_err:
                bar.set_postfix(failed=n_err, refresh=False)
    finally:
        bar.close()
    results.sort(key=lambda r: r.index)
    table = Table(
        {
            "id": np.array([r.id for r in results], dtype=str),
            "ra": np.array([r.ra for r in results], dtype=float),
            "dec": np.array([r.dec for r in results], dtype=float),
            "path": np.array([str(r.path) if r.path else "" for r in results], dtype=str),
            "status": np.array([r.status for r in results], dtype=str),
            "source": np.array([r.source for r in results], dtype=str),
            "error": np.array([r.error for r in results], dtype=str),
        }
    )
    table["ra"].unit = u.deg
    table["dec"].unit = u.deg
    geometry = batch.geometry
    table.meta.update(
        {
            "survey": batch.client.survey,
            "layer": batch.client.layer,
            "base_url": batch.client.base_url,
            "size": geometry.size,
            "pixscale": geometry.pixscale,
            "bands": geometry.bands,
            "n_ok": sum(r.ok for r in results),
            "n_error": sum(not r.ok for r in results),
            "version": __version__,
            "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        }
    )
    return table
