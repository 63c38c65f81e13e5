"""A local stand-in for the survey services, with fault injection.

`serve_fake_surveys` (used by the `survey_server` fixtures) runs an HTTP server on
127.0.0.1 (ephemeral port) in a thread. Under the path prefix ``/mirror`` it answers like

- the Legacy Surveys viewer: ``/viewer/fits-cutout`` -> a (bands, N, N)
  cube with a TAN WCS centred on the requested position;
- SDSS SkyServer: ``/dr17/en/tools/search/x_results.aspx`` -> the CSV of a
  nearest-object query, and the SAS: ``/sas/dr17/eboss/photoObj/frames/...``
  -> a bzip2-compressed calibrated frame, rotated, with a small per-band
  shift of the WCS as in real frames;
- CDS hips2fits: ``/hips-image-services/hips2fits`` -> a 2-D TAN image.

Every image shows a galaxy-like blob at the requested sky position,
rendered through each image's own WCS, so aligned bands have it at the
same pixel. Positions with Dec > 80 are outside the footprint of every
fake survey. Faults are queued per service with ``server.inject(kind, ...)``.
"""

from __future__ import annotations

import bz2
import contextlib
import io
import json
import os
import re
import threading
import time
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

DATA = Path(__file__).parent / "data"
PREFIX = "/mirror"
FOOTPRINT_MAX_DEC = 80.0
# small frames keep the tests fast; real ones are 2048 x 1489
FRAME_SHAPE = (180, 220)
FRAME_SHIFTS = {
    "u": (2.1, -1.3),
    "g": (1.6, -0.8),
    "r": (0.0, 0.0),
    "i": (-1.1, 0.7),
    "z": (0.9, 1.9),
}

LEGACY_PATH = "/viewer/fits-cutout"
SQL_PATH = "/dr17/en/tools/search/x_results.aspx"
FRAME_PATH = re.compile(
    r"^/sas/dr17/eboss/photoObj/frames/(?P<rerun>\d+)/(?P<run>\d+)/(?P<camcol>\d)/"
    r"frame-(?P<band>[ugriz])-(?P<run6>\d{6})-(?P<camcol2>\d)-(?P<field>\d{4})\.fits\.bz2$"
)
HIPS_PATH = "/hips-image-services/hips2fits"
NEARBY = re.compile(r"fGetNearbyObjEq\(\s*([-0-9.]+)\s*,\s*([-0-9.]+)\s*,\s*([-0-9.e]+)\s*\)")


def galaxy(
    wcs: WCS, shape: tuple[int, int], ra: float, dec: float, *, flux: float = 50.0, seed: int = 0
) -> np.ndarray:
    """Render an exponential disk (scale 2") at (ra, dec) through ``wcs``, plus faint noise."""
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    wra, wdec = wcs.celestial.pixel_to_world_values(xx, yy)
    dx = (wra - ra) * np.cos(np.deg2rad(dec)) * 3600.0
    dy = (wdec - dec) * 3600.0
    r = np.hypot(dx, dy)
    scale = 2.0
    pixarea = abs(np.linalg.det(wcs.celestial.pixel_scale_matrix)) * 3600.0**2
    image = flux / (2 * np.pi * scale**2) * np.exp(-r / scale) * pixarea
    rng = np.random.default_rng(seed)
    return (image + rng.normal(0.0, 1e-3, shape)).astype(np.float32)


def _tan_header(template: str, *, ra: float, dec: float, size: int, pixscale: float) -> fits.Header:
    header = fits.Header.fromtextfile(DATA / template)
    header["NAXIS1"] = size
    header["NAXIS2"] = size
    header["CRVAL1"] = ra
    header["CRVAL2"] = dec
    header["CRPIX1"] = (size + 1) / 2.0
    header["CRPIX2"] = (size + 1) / 2.0
    return header


def legacy_cube(
    ra: float, dec: float, *, size: int, pixscale: float, bands: str, zeros: bool = False
) -> bytes:
    header = _tan_header(
        "legacysurvey_fits_cutout_header.txt", ra=ra, dec=dec, size=size, pixscale=pixscale
    )
    header["NAXIS3"] = len(bands)
    header["CD1_1"] = -pixscale / 3600.0
    header["CD2_2"] = pixscale / 3600.0
    header["IMAGEW"] = float(size)
    header["IMAGEH"] = float(size)
    header["BANDS"] = bands
    for i in range(6):
        header.remove(f"BAND{i}", ignore_missing=True)
    for i, band in enumerate(bands):
        header.insert("CTYPE1", (f"BAND{i}", band))
    wcs = WCS(header, naxis=2)
    data = np.stack(
        [galaxy(wcs, (size, size), ra, dec, flux=20.0 + 10 * i, seed=i) for i in range(len(bands))]
    )
    if zeros:
        data[:] = 0.0
    buf = io.BytesIO()
    fits.PrimaryHDU(data=data, header=header).writeto(buf)
    return buf.getvalue()


def frame_wcs(ra: float, dec: float, band: str) -> WCS:
    """A rotated SDSS-like frame WCS with the target off-centre, shifted per band."""
    header = fits.Header.fromtextfile(DATA / "sdss_frame_header.txt")
    ny, nx = FRAME_SHAPE
    shift = FRAME_SHIFTS[band]
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = [header["CTYPE1"], header["CTYPE2"]]
    wcs.wcs.crval = [ra + 0.004, dec - 0.003]
    wcs.wcs.crpix = [nx / 2 + shift[0], ny / 2 + shift[1]]
    angle = np.deg2rad(30.0)
    scale = 0.396 / 3600.0
    wcs.wcs.cd = scale * np.array([[-np.cos(angle), np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return wcs


def sdss_frame(ra: float, dec: float, band: str, *, run: int, camcol: int, field_: int) -> bytes:
    header = fits.Header.fromtextfile(DATA / "sdss_frame_header.txt")
    wcs = frame_wcs(ra, dec, band)
    ny, nx = FRAME_SHAPE
    header["NAXIS1"], header["NAXIS2"] = nx, ny
    for key in ("CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2"):
        header[key] = float(wcs.to_header()[key])
    for i in (1, 2):
        for j in (1, 2):
            header[f"CD{i}_{j}"] = float(wcs.wcs.cd[i - 1, j - 1])
    header["FILTER"] = band
    header["RUN"], header["CAMCOL"], header["FRAME"] = run, camcol, field_
    data = galaxy(wcs, FRAME_SHAPE, ra, dec, flux=40.0, seed=ord(band))
    calib = fits.ImageHDU(np.full(nx, 0.005, dtype=np.float32), name="CALIB")
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(data=data, header=header), calib]).writeto(buf)
    return bz2.compress(buf.getvalue(), compresslevel=1)


def hips_image(params: dict[str, str], *, empty: bool = False) -> bytes:
    size = int(params["width"])
    fov = float(params["fov"])
    ra, dec = float(params["ra"]), float(params["dec"])
    header = _tan_header(
        "hips2fits_cutout_header.txt", ra=ra, dec=dec, size=size, pixscale=fov * 3600.0 / size
    )
    header["CDELT1"] = -fov / size
    header["CDELT2"] = fov / size
    header.add_comment(f"From HiPS {params['hips']}")
    wcs = WCS(header)
    data = galaxy(wcs, (size, size), ra, dec, flux=30.0, seed=size)
    if empty or dec > FOOTPRINT_MAX_DEC:
        data[:] = np.nan
    buf = io.BytesIO()
    fits.PrimaryHDU(data=data, header=header).writeto(buf)
    return buf.getvalue()


@dataclass
class Recorded:
    kind: str
    path: str
    params: dict[str, str]


@dataclass
class FakeSurveyServer:
    """State of the local server: recorded requests, queued faults, concurrency."""

    httpd: ThreadingHTTPServer | None = None
    requests: list[Recorded] = field(default_factory=list)
    faults: dict[str, deque[Any]] = field(default_factory=dict)
    active: int = 0
    max_active: int = 0
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self.httpd is not None
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}{PREFIX}"

    def inject(self, kind: str, *faults: Any) -> None:
        """Queue faults for the next requests to ``kind`` ('legacy', 'sql', 'frame', 'hips')."""
        with self.lock:
            self.faults.setdefault(kind, deque()).extend(faults)

    def count(self, kind: str | None = None) -> int:
        return sum(1 for r in self.requests if kind is None or r.kind == kind)

    def next_fault(self, kind: str) -> Any:
        with self.lock:
            queue = self.faults.get(kind)
            return queue.popleft() if queue else None


class Handler(BaseHTTPRequestHandler):
    server_state: FakeSurveyServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(
        self,
        status: int,
        body: bytes,
        ctype: str,
        headers: dict[str, str] | None = None,
        length: int | None = None,
    ) -> None:
        self._leave()  # before the reply: a client that has it may send its next request
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if length is not False:
            self.send_header("Content-Length", str(len(body) if length is None else length))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _leave(self) -> None:
        """This request stops counting as active (once), before its reply is sent.

        Counting until after the write would race with a client that has read the
        whole reply and already sent its next request (seen under CPU load).
        """
        if getattr(self, "_active", False):
            self._active = False
            with self.server_state.lock:
                self.server_state.active -= 1

    def do_GET(self) -> None:
        state = self.server_state
        with state.lock:
            state.active += 1
            state.max_active = max(state.max_active, state.active)
        self._active = True
        try:
            self._answer(state)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)
        finally:
            self._leave()

    def _answer(self, state: FakeSurveyServer) -> None:
        parts = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if not parts.path.startswith(PREFIX + "/"):
            self._send(404, b"not found (missing path prefix)", "text/plain")
            return
        path = parts.path[len(PREFIX) :]
        if path == LEGACY_PATH:
            kind = "legacy"
        elif path == SQL_PATH:
            kind = "sql"
        elif FRAME_PATH.match(path):
            kind = "frame"
        elif path == HIPS_PATH:
            kind = "hips"
        else:
            self._send(404, b"<html><title>Not Found</title></html>", "text/html")
            return
        with state.lock:
            state.requests.append(Recorded(kind, path, params))
        if state.delay:
            time.sleep(state.delay)
        fault = state.next_fault(kind)
        name = fault[0] if isinstance(fault, tuple) else fault
        if name == "status":
            body = b"" if len(fault) < 3 else fault[2]
            self._send(fault[1], body or b"error", "text/plain")
            return
        if name == "retry_after":
            self._send(429, b"slow down", "text/plain", {"Retry-After": str(fault[1])})
            return
        if name == "slow":
            time.sleep(fault[1])
        if name == "html":
            # ("html", page) sends that page instead of the recorded one
            page = fault[1] if isinstance(fault, tuple) else None
            page = page or (DATA / "legacysurvey_error.html").read_bytes()
            self._send(200, page, "text/html")
            return
        if name == "json_error":
            self._send(400, (DATA / "hips2fits_error.json").read_bytes(), "application/json")
            return
        body, ctype = self._body(kind, path, params, empty=name == "zeros")
        if name == "truncated":
            # announce the full length, send half, hang up
            self._send(200, body[: len(body) // 2], ctype, length=len(body))
            self.close_connection = True
            return
        if name == "truncated_nolength":
            self._send(200, body[: len(body) // 2 + 17], ctype, length=False)
            self.close_connection = True
            return
        self._send(200, body, ctype)

    def _body(
        self, kind: str, path: str, params: dict[str, str], *, empty: bool
    ) -> tuple[bytes, str]:
        if kind == "legacy":
            ra, dec = float(params["ra"]), float(params["dec"])
            zeros = empty or dec > FOOTPRINT_MAX_DEC
            body = legacy_cube(
                ra,
                dec,
                size=int(params["size"]),
                pixscale=float(params["pixscale"]),
                bands=params["bands"],
                zeros=zeros,
            )
            return body, "image/fits"
        if kind == "sql":
            match = NEARBY.search(params["cmd"])
            assert match, params["cmd"]
            ra, dec = float(match.group(1)), float(match.group(2))
            if dec > FOOTPRINT_MAX_DEC or empty:
                return (DATA / "sdss_x_results_empty.csv").read_bytes(), "text/plain"
            field_ = sdss_field(ra, dec)
            text = (DATA / "sdss_x_results_frame.csv").read_text()
            text = text.format(run=1904, camcol=3, field=field_)
            return text.encode(), "text/plain"
        if kind == "frame":
            match = FRAME_PATH.match(path)
            assert match
            ra, dec = SDSS_FIELDS[int(match["field"])]
            body = sdss_frame(
                ra,
                dec,
                match["band"],
                run=int(match["run"]),
                camcol=int(match["camcol"]),
                field_=int(match["field"]),
            )
            return body, "application/x-bzip2"
        return hips_image(params, empty=empty), "image/fits"


# field number -> (ra, dec) of the target the fake field was made for
SDSS_FIELDS: dict[int, tuple[float, float]] = {}


def sdss_field(ra: float, dec: float) -> int:
    """A stable fake field number for a position (nearby targets share it)."""
    number = zlib.crc32(f"{ra:.2f},{dec:.2f}".encode()) % 9000 + 11
    SDSS_FIELDS.setdefault(number, (ra, dec))
    return number


def json_error() -> dict[str, str]:
    return json.loads((DATA / "hips2fits_error.json").read_text())


@contextlib.contextmanager
def serve_fake_surveys() -> Iterator[FakeSurveyServer]:
    """Run the fake services on 127.0.0.1 in a thread; yield their state."""
    state = FakeSurveyServer()
    handler = type("BoundHandler", (Handler,), {"server_state": state})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    state.httpd = httpd
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def hermetic_fetch(cache_dir: str | os.PathLike[str], monkeypatch: Any) -> Iterator[None]:
    """No service URL from the environment, no proxy for 127.0.0.1, and the default
    download cache in ``cache_dir`` instead of the home directory."""
    from galaxalign_astro.fetch import conf

    for name in (
        "GALAXALIGN_ASTRO_LEGACYSURVEY_URL",
        "GALAXALIGN_ASTRO_SDSS_URL",
        "GALAXALIGN_ASTRO_HIPS2FITS_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with conf.set_temp("cache_dir", str(cache_dir)):
        yield
