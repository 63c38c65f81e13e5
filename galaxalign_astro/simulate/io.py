"""Write simulated cutouts to disk: FITS files, a label catalogue and HDF5 data sets.

Layout of ``out_dir`` written by :func:`write_simulated`::

    sim_s{seed}_{index:06d}.fits   one (3, N, N) float32 g,r,z cube per cutout
    labels.ecsv                    one row per cutout (path relative to out_dir)

plus, optionally, a Galaxy10-DECaLS-format and a GalaxyMNIST-format HDF5 file.
Every file is written to a temporary name in its final directory and moved into
place with :func:`os.replace`, so an interrupted run never leaves a truncated file
under a final name.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from .._version import __version__
from ..errors import OutputExistsError
from ..taxonomy import GALAXY10_DECALS, GALAXY_MNIST
from .config import BANDS, DEFAULT_CONFIG, ZERO_POINT, SimulationConfig
from .cutout import (
    TRUTH_COLUMNS,
    SimulatedCutout,
    chunked,
    default_workers,
    simulate_cutout,
    truth_table,
)
from .memory import tune_allocator
from .montage import to_rgb

__all__ = [
    "GALAXY10_TO_MNIST",
    "LABELS_FILE",
    "MNIST_SIZE",
    "cutout_filename",
    "to_mnist_image",
    "to_uint8_rgb",
    "write_cutout_fits",
    "write_simulated",
]

logger = logging.getLogger(__name__)

#: name of the label catalogue inside ``out_dir``
LABELS_FILE = "labels.ecsv"

#: side of GalaxyMNIST images
MNIST_SIZE = 64

#: Galaxy10 class key -> GalaxyMNIST label; classes not listed are left out (ours:
#: both edge-on classes are ``edge_on_disk``, both unbarred spirals ``unbarred_spiral``)
GALAXY10_TO_MNIST = {
    "round_smooth": GALAXY_MNIST.keys.index("round_smooth"),
    "cigar_smooth": GALAXY_MNIST.keys.index("cigar_smooth"),
    "edge_on_no_bulge": GALAXY_MNIST.keys.index("edge_on_no_bulge"),
    "edge_on_bulge": GALAXY_MNIST.keys.index("edge_on_no_bulge"),
    "unbarred_tight_spiral": GALAXY_MNIST.keys.index("unbarred_loose_spiral"),
    "unbarred_loose_spiral": GALAXY_MNIST.keys.index("unbarred_loose_spiral"),
}

# most cutouts one worker task handles (bounds the RGB arrays sent back)
_CHUNK = 64

_MNIST_OF_LABEL = {
    GALAXY10_DECALS.keys.index(key): value for key, value in GALAXY10_TO_MNIST.items()
}


def cutout_filename(seed: int, index: int) -> str:
    """File name of cutout ``index`` of the run with ``seed``."""
    return f"sim_s{seed}_{index:06d}.fits"


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_cutout_fits(cutout: SimulatedCutout, path: str | os.PathLike) -> Path:
    """Write one cutout as a single-HDU FITS file, atomically (temp file then rename)."""
    path = Path(path)
    tmp = _temp_path(path)
    try:
        fits.PrimaryHDU(data=cutout.cube, header=cutout.header).writeto(tmp, overwrite=True)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def to_uint8_rgb(cube: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB (``dr2_rgb``, north up) of a g,r,z cube, as in Galaxy10."""
    return np.rint(to_rgb(cube) * 255.0).astype(np.uint8)


def to_mnist_image(rgb: np.ndarray, *, size: int = MNIST_SIZE) -> np.ndarray:
    """Area-average an ``(H, W, 3)`` uint8 image down to ``(size, size, 3)`` uint8."""
    height = rgb.shape[0]
    if height % size == 0 and rgb.shape[1] == height:
        k = height // size
        small = rgb.reshape(size, k, size, k, 3).mean(axis=(1, 3))
    else:
        from skimage.transform import resize

        small = resize(
            rgb.astype(np.float64), (size, size, 3), anti_aliasing=True, preserve_range=True
        )
    return np.clip(np.rint(small), 0, 255).astype(np.uint8)


def _write_chunk(
    indices: Sequence[int],
    out_dir: Path,
    seed: int,
    size: int,
    pixel_scale: float,
    config: SimulationConfig,
    want_rgb: bool,
    want_mnist: bool,
) -> tuple[list[dict], np.ndarray | None, np.ndarray | None, list[int]]:
    rows = []
    rgbs = []
    mnist_images = []
    mnist_rows = []
    for k, index in enumerate(indices):
        cut = simulate_cutout(
            int(index), seed=seed, size=size, pixel_scale=pixel_scale, config=config
        )
        name = cutout_filename(seed, int(index))
        write_cutout_fits(cut, out_dir / name)
        rows.append(
            {
                "path": name,
                "index": int(index),
                "label": cut.label,
                "class_name": cut.class_name,
                "ra": cut.ra,
                "dec": cut.dec,
                **cut.truth,
            }
        )
        if want_rgb or (want_mnist and cut.label in _MNIST_OF_LABEL):
            rgb = to_uint8_rgb(cut.cube)
            if want_rgb:
                rgbs.append(rgb)
            if want_mnist and cut.label in _MNIST_OF_LABEL:
                mnist_images.append(to_mnist_image(rgb))
                mnist_rows.append(k)
    return (
        rows,
        np.stack(rgbs) if rgbs else None,
        np.stack(mnist_images) if mnist_images else None,
        mnist_rows,
    )


def _run_chunks(
    chunks: list[Sequence[int]], workers: int, args: tuple
) -> Iterator[tuple[list[dict], np.ndarray | None, np.ndarray | None, list[int]]]:
    if workers == 1:
        for chunk in chunks:
            yield _write_chunk(chunk, *args)
        return
    # a bounded window of pending chunks keeps memory flat however long the run
    with ProcessPoolExecutor(max_workers=workers, initializer=tune_allocator) as pool:
        pending: deque = deque()
        for chunk in chunks:
            pending.append(pool.submit(_write_chunk, chunk, *args))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


class _Appender:
    """A growing HDF5 data set per name, in a temporary file renamed on :meth:`commit`."""

    def __init__(self, path: Path, specs: dict[str, tuple[tuple[int, ...], str]], attrs: dict):
        import h5py

        self.path = path
        self.tmp = _temp_path(path)
        self.file = h5py.File(self.tmp, "w")
        for key, value in attrs.items():
            self.file.attrs[key] = value
        self.sets = {}
        for name, (shape, dtype) in specs.items():
            chunks = (1, *shape) if shape else None
            self.sets[name] = self.file.create_dataset(
                name,
                shape=(0, *shape),
                maxshape=(None, *shape),
                dtype=dtype,
                chunks=chunks if chunks else True,
                compression="gzip" if shape else None,
                compression_opts=1 if shape else None,
            )

    def append(self, **arrays: np.ndarray) -> None:
        for name, values in arrays.items():
            dset = self.sets[name]
            n = dset.shape[0]
            dset.resize(n + len(values), axis=0)
            dset[n:] = values

    def commit(self) -> None:
        self.file.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        try:
            self.file.close()
        finally:
            self.tmp.unlink(missing_ok=True)


def write_simulated(
    out_dir: str | os.PathLike,
    n: int,
    *,
    seed: int,
    size: int = 256,
    workers: int | None = None,
    galaxy10_h5: str | os.PathLike | None = None,
    mnist_h5: str | os.PathLike | None = None,
    overwrite: bool = False,
    pixel_scale: float = 0.262,
    config: SimulationConfig = DEFAULT_CONFIG,
) -> Table:
    """Simulate cutouts ``0 .. n-1`` of the run ``seed`` and write them to ``out_dir``.

    Parameters
    ----------
    out_dir : path-like
        Directory for the FITS files and ``labels.ecsv`` (created if missing).
    n : int
        Number of cutouts.
    seed : int
        Run seed.
    size : int
        Cutout side in pixels (Galaxy10 images are 256).
    workers : int, optional
        Processes; default all CPU cores available to this process.
    galaxy10_h5 : path-like, optional
        Also write a Galaxy10-DECaLS-format HDF5 file: ``images`` uint8
        ``(n, size, size, 3)`` ``dr2_rgb`` RGB with north up, ``ans`` uint8,
        ``ra``, ``dec``, ``redshift`` (NaN: the simulation has no distances)
        and ``pxscale`` float64.
    mnist_h5 : path-like, optional
        Also write a GalaxyMNIST-format HDF5 file with the cutouts of the four
        GalaxyMNIST classes: ``images`` uint8 ``(m, 64, 64, 3)`` and ``labels``
        uint8 (see :data:`GALAXY10_TO_MNIST`).
    overwrite : bool
        Replace existing outputs; otherwise refuse before writing anything.
    pixel_scale : float
        Nominal pixel scale (arcsec/pixel).
    config : SimulationConfig
        Randomisation ranges.

    Returns
    -------
    `~astropy.table.Table`
        The label catalogue, also written to ``out_dir/labels.ecsv``.

    Raises
    ------
    OutputExistsError
        If an output exists and ``overwrite`` is false.
    """
    if int(n) < 1:
        msg = f"n must be at least 1, got {n}"
        raise ValueError(msg)
    n = int(n)
    out_dir = Path(out_dir)
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        msg = f"workers must be >= 1, got {workers}"
        raise ValueError(msg)
    g10_path = Path(galaxy10_h5) if galaxy10_h5 is not None else None
    mnist_path = Path(mnist_h5) if mnist_h5 is not None else None
    targets = [out_dir / cutout_filename(seed, i) for i in range(n)]
    targets.append(out_dir / LABELS_FILE)
    targets += [p for p in (g10_path, mnist_path) if p is not None]
    if not overwrite:
        existing = [p for p in targets if p.exists()]
        if existing:
            msg = (
                f"{len(existing)} output file(s) already exist, e.g. {existing[0]}; "
                "use overwrite to replace them"
            )
            raise OutputExistsError(msg)
    out_dir.mkdir(parents=True, exist_ok=True)
    for p in (g10_path, mnist_path):
        if p is not None:
            p.parent.mkdir(parents=True, exist_ok=True)

    attrs = {
        "simulated": True,
        "seed": seed,
        "generator": f"galaxalign-astro {__version__}",
        "bands": "".join(BANDS),
        "stretch": "dr2_rgb",
    }
    g10 = mnist = None
    try:
        if g10_path is not None:
            g10 = _Appender(
                g10_path,
                {
                    "images": ((size, size, 3), "uint8"),
                    "ans": ((), "uint8"),
                    "ra": ((), "float64"),
                    "dec": ((), "float64"),
                    "redshift": ((), "float64"),
                    "pxscale": ((), "float64"),
                },
                {**attrs, "class_names": list(GALAXY10_DECALS.names)},
            )
        if mnist_path is not None:
            mnist = _Appender(
                mnist_path,
                {"images": ((MNIST_SIZE, MNIST_SIZE, 3), "uint8"), "labels": ((), "uint8")},
                {**attrs, "class_names": list(GALAXY_MNIST.names)},
            )
        n_chunks = max(workers * 4 if workers > 1 else 1, -(-n // _CHUNK))
        chunks = chunked(list(range(n)), n_chunks)
        args = (out_dir, seed, size, pixel_scale, config, g10 is not None, mnist is not None)
        rows: list[dict] = []
        for chunk_rows, rgb, small, mnist_rows in _run_chunks(chunks, workers, args):
            rows += chunk_rows
            if g10 is not None and rgb is not None:
                g10.append(
                    images=rgb,
                    ans=np.array([r["label"] for r in chunk_rows], dtype=np.uint8),
                    ra=np.array([r["ra"] for r in chunk_rows]),
                    dec=np.array([r["dec"] for r in chunk_rows]),
                    redshift=np.full(len(chunk_rows), np.nan),
                    pxscale=np.array([r["pixel_scale"] for r in chunk_rows]),
                )
            if mnist is not None and small is not None:
                mnist.append(
                    images=small,
                    labels=np.array(
                        [_MNIST_OF_LABEL[chunk_rows[k]["label"]] for k in mnist_rows],
                        dtype=np.uint8,
                    ),
                )
            logger.info("simulated %d/%d cutouts", len(rows), n)
        table = _label_table(rows, seed=seed, size=size, pixel_scale=pixel_scale, config=config)
        labels_path = out_dir / LABELS_FILE
        tmp = _temp_path(labels_path)
        try:
            table.write(tmp, format="ascii.ecsv", overwrite=True)
            os.replace(tmp, labels_path)
        finally:
            tmp.unlink(missing_ok=True)
        for appender in (g10, mnist):
            if appender is not None:
                appender.commit()
    except BaseException:
        for appender in (g10, mnist):
            if appender is not None:
                appender.abort()
        raise
    return table


def _label_table(
    rows: list[dict], *, seed: int, size: int, pixel_scale: float, config: SimulationConfig
) -> Table:
    table = Table()
    table["path"] = [r["path"] for r in rows]
    table["path"].description = "FITS file, relative to this catalogue"
    table["index"] = np.array([r["index"] for r in rows], dtype=np.int64)
    table["label"] = np.array([r["label"] for r in rows], dtype=np.int16)
    table["label"].description = "Galaxy10 DECaLS class index"
    table["class_name"] = [r["class_name"] for r in rows]
    table["ra"] = np.array([r["ra"] for r in rows])
    table["ra"].unit = "deg"
    table["dec"] = np.array([r["dec"] for r in rows])
    table["dec"].unit = "deg"
    truth = truth_table(rows)
    for name in TRUTH_COLUMNS:
        table[name] = truth[name]
    table.meta.update(
        {
            "simulated": True,
            "generator": f"galaxalign-astro {__version__}",
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "seed": seed,
            "n": len(rows),
            "size": size,
            "nominal_pixel_scale": pixel_scale,
            "bands": "".join(BANDS),
            "zero_point": ZERO_POINT,
            "unit": "nanomaggy",
            "taxonomy": GALAXY10_DECALS.name,
            "class_names": list(GALAXY10_DECALS.names),
            "survey": config.survey,
            "version": config.version,
        }
    )
    return table
