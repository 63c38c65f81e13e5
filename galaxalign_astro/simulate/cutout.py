"""Simulated Legacy-Surveys-like g,r,z cutouts: one cutout, or a batch in parallel.

Cutout ``i`` of a run with seed ``S`` depends on ``(S, i)`` only: its random stream
is seeded from ``numpy.random.SeedSequence([S, i])`` and its label, when not given,
from a shuffle of the block of ten indices holding ``i``, so every block of ten
consecutive indices holds each Galaxy10 class once. Worker count and batch split
therefore never change a cutout.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from astropy.io import fits
from astropy.table import Table

from .._version import __version__
from ..taxonomy import GALAXY10_DECALS
from .components import DrawContext
from .config import BANDS, DEFAULT_CONFIG, ZERO_POINT, SimulationConfig
from .field import add_field
from .memory import tune_allocator
from .morphology import RECIPES
from .observe import draw_conditions, observe
from .render import Canvas

__all__ = [
    "TRUTH_COLUMNS",
    "SimulatedBatch",
    "SimulatedCutout",
    "balanced_label",
    "chunked",
    "cutout_header",
    "cutout_rng",
    "default_workers",
    "simulate_batch",
    "simulate_cutout",
    "truth_table",
]

logger = logging.getLogger(__name__)

#: truth column -> (dtype, unit, description); NaN or 0 where a class lacks the parameter
TRUTH_COLUMNS: dict[str, tuple[str, str, str]] = {
    "mag_g": ("f4", "mag", "g magnitude of the target (system for mergers) as drawn"),
    "mag_r": ("f4", "mag", "total r magnitude of the target"),
    "mag_z": ("f4", "mag", "total z magnitude of the target"),
    "half_light_radius": ("f4", "arcsec", "circular r-band half-light radius before the PSF"),
    "axis_ratio": ("f4", "", "model axis ratio b/a (edge-on: vertical/radial scale)"),
    "position_angle": ("f4", "deg", "major-axis position angle, east of north"),
    "sersic_n": ("f4", "", "Sersic index of the elliptical or bulge"),
    "bulge_fraction": ("f4", "", "bulge (or spheroid) share of the r flux"),
    "inclination": ("f4", "deg", "disk inclination (0 face-on)"),
    "n_arms": ("i2", "", "number of spiral arms"),
    "pitch_angle": ("f4", "deg", "spiral-arm pitch angle"),
    "bar_fraction": ("f4", "", "bar share of the r flux"),
    "clump_fraction": ("f4", "", "star-forming clump share of the r flux"),
    "flocculence": ("f4", "", "0 grand-design ... 1 flocculent arms"),
    "dust_tau": ("f4", "", "r-band optical depth of an edge-on dust lane"),
    "n_galaxies": ("i2", "", "galaxies in the target system"),
    "tidal_fraction": ("f4", "", "tidal tails, bridges, shells and envelope share of r flux"),
    "lopsidedness": ("f4", "", "offset-component share of the r flux"),
    "psf_fwhm_g": ("f4", "arcsec", "g-band Moffat FWHM"),
    "psf_fwhm_r": ("f4", "arcsec", "r-band Moffat FWHM"),
    "psf_fwhm_z": ("f4", "arcsec", "z-band Moffat FWHM"),
    "psf_beta": ("f4", "", "Moffat beta"),
    "depth_g": ("f4", "mag", "g 5-sigma point-source depth"),
    "depth_r": ("f4", "mag", "r 5-sigma point-source depth"),
    "depth_z": ("f4", "mag", "z 5-sigma point-source depth"),
    "sky_sigma_g": ("f4", "nanomaggy", "g sky noise per pixel"),
    "sky_sigma_r": ("f4", "nanomaggy", "r sky noise per pixel"),
    "sky_sigma_z": ("f4", "nanomaggy", "z sky noise per pixel"),
    "calibration_g": ("f4", "", "g multiplicative calibration error applied"),
    "calibration_r": ("f4", "", "r multiplicative calibration error applied"),
    "calibration_z": ("f4", "", "z multiplicative calibration error applied"),
    "pixel_scale": ("f8", "arcsec / pix", "true pixel scale"),
    "offset_x": ("f4", "pix", "target centre minus cutout centre, x"),
    "offset_y": ("f4", "pix", "target centre minus cutout centre, y"),
    "n_stars": ("i2", "", "stars in the padded field"),
    "n_bright_stars": ("i2", "", "saturated stars"),
    "n_background": ("i2", "", "background galaxies"),
    "n_neighbours": ("i2", "", "bright non-interacting neighbours"),
}

_INT_DEFAULTS = {"n_arms": 0, "n_galaxies": 1}


def cutout_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of cutout ``index`` of run ``seed`` (SFC64, ours: fastest normals)."""
    return np.random.Generator(np.random.SFC64(np.random.SeedSequence([seed, index])))


@functools.lru_cache(maxsize=1024)
def _block_permutation(seed: int, block: int) -> tuple[int, ...]:
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, block, 0x1ABE1])))
    return tuple(int(k) for k in rng.permutation(len(GALAXY10_DECALS)))


def balanced_label(seed: int, index: int) -> int:
    """Galaxy10 label of cutout ``index``: each block of ten indices holds every class once."""
    n = len(GALAXY10_DECALS)
    return _block_permutation(seed, index // n)[index % n]


def cutout_header(
    *,
    ra: float,
    dec: float,
    size: int,
    pixel_scale: float,
    label: int,
    seed: int | None = None,
    index: int | None = None,
    truth: dict | None = None,
    config: SimulationConfig = DEFAULT_CONFIG,
) -> fits.Header:
    """Header of a Legacy Surveys ``fits-cutout`` (bands, survey, TAN WCS) plus simulation keys."""
    cd = pixel_scale / 3600.0
    cards = [
        ("SURVEY", config.survey, "survey mimicked (simulated data)"),
        ("VERSION", config.version, "data release mimicked"),
        ("IMAGETYP", "image", ""),
        ("BANDS", "".join(BANDS), ""),
        *((f"BAND{i}", b, "") for i, b in enumerate(BANDS)),
        ("CTYPE1", "RA---TAN", "TANgent plane"),
        ("CTYPE2", "DEC--TAN", "TANgent plane"),
        ("CRVAL1", float(ra), "Reference RA"),
        ("CRVAL2", float(dec), "Reference Dec"),
        ("CRPIX1", (size + 1) / 2.0, "Reference x"),
        ("CRPIX2", (size + 1) / 2.0, "Reference y"),
        ("CD1_1", -cd, "CD matrix"),
        ("CD1_2", 0.0, "CD matrix"),
        ("CD2_1", 0.0, "CD matrix"),
        ("CD2_2", cd, "CD matrix"),
        ("IMAGEW", float(size), "Image width"),
        ("IMAGEH", float(size), "Image height"),
        ("BUNIT", "nanomaggy", f"AB zero point {ZERO_POINT}"),
        ("SIMULATD", True, "simulated by galaxalign-astro"),
        ("SIMVERS", __version__, "galaxalign-astro version"),
        ("TAXONOMY", GALAXY10_DECALS.name, "label set"),
        ("LABEL", int(label), "Galaxy10 DECaLS class index"),
        ("CLASSKEY", GALAXY10_DECALS.keys[label], "class key"),
        ("CLASSNAM", GALAXY10_DECALS.names[label], "class name"),
    ]
    if seed is not None:
        cards.append(("SIMSEED", int(seed), "run seed"))
    if index is not None:
        cards.append(("SIMINDEX", int(index), "cutout index in the run"))
    if truth is not None:
        for band in BANDS:
            cards.append(
                (
                    f"PSFFWHM{band.upper()}",
                    round(float(truth[f"psf_fwhm_{band}"]), 4),
                    f"[arcsec] {band} PSF FWHM",
                )
            )
        cards.append(("MAG_R", round(float(truth["mag_r"]), 4), "[mag] target r magnitude"))
    return fits.Header(cards)


@dataclass
class SimulatedCutout:
    """One simulated cutout.

    Attributes
    ----------
    cube : `~numpy.ndarray`
        ``(3, size, size)`` float32 g, r, z image in nanomaggies (22.5 zero point),
        sky-subtracted, row 0 at the south edge (FITS order).
    label : int
        Galaxy10 DECaLS class index.
    ra, dec : float
        Sky position (deg) of the cutout centre, the catalogue position of the target.
    truth : dict
        Truth parameters (the keys of :data:`TRUTH_COLUMNS`).
    seed, index : int
        Run seed and cutout index that reproduce it.
    """

    cube: np.ndarray
    label: int
    ra: float
    dec: float
    truth: dict
    seed: int = 0
    index: int = 0
    config: SimulationConfig = field(default=DEFAULT_CONFIG, repr=False)

    @property
    def class_name(self) -> str:
        return GALAXY10_DECALS.names[self.label]

    @functools.cached_property
    def header(self) -> fits.Header:
        """FITS header with the TAN WCS and Legacy Surveys cutout keywords (built on first use)."""
        return cutout_header(
            ra=self.ra,
            dec=self.dec,
            size=self.cube.shape[-1],
            pixel_scale=float(self.truth["pixel_scale"]),
            label=self.label,
            seed=self.seed,
            index=self.index,
            truth=self.truth,
            config=self.config,
        )


@dataclass
class SimulatedBatch:
    """Several simulated cutouts stacked: ``cubes`` is ``(n, 3, size, size)`` float32."""

    cubes: np.ndarray
    labels: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    truth: Table
    indices: np.ndarray
    seed: int

    def __len__(self) -> int:
        return len(self.labels)


def _check_args(size: int, pixel_scale: float) -> None:
    if not isinstance(size, (int, np.integer)) or size < 16:
        msg = f"size must be an integer >= 16 pixels, got {size!r}"
        raise ValueError(msg)
    if not (0.05 <= pixel_scale <= 2.0):
        msg = f"pixel_scale must be between 0.05 and 2 arcsec/pixel, got {pixel_scale!r}"
        raise ValueError(msg)


def simulate_cutout(
    index: int,
    *,
    seed: int,
    label: int | None = None,
    size: int = 256,
    pixel_scale: float = 0.262,
    config: SimulationConfig = DEFAULT_CONFIG,
) -> SimulatedCutout:
    """Simulate cutout ``index`` of the run with ``seed``.

    Parameters
    ----------
    index : int
        Cutout index (>= 0); with ``seed`` it fixes every random choice.
    seed : int
        Run seed (>= 0).
    label : int, optional
        Galaxy10 DECaLS class index to draw; by default balanced over the classes
        (see :func:`balanced_label`).
    size : int
        Cutout side in pixels.
    pixel_scale : float
        Nominal pixel scale (arcsec/pixel); the true one is jittered by
        ``config.pixel_scale_jitter`` and recorded in the truth and header.
    config : SimulationConfig
        Randomisation ranges.

    Returns
    -------
    SimulatedCutout
    """
    if index < 0 or seed < 0:
        msg = f"index and seed must be non-negative, got index={index}, seed={seed}"
        raise ValueError(msg)
    _check_args(size, pixel_scale)
    if label is None:
        label = balanced_label(seed, index)
    if not 0 <= label < len(GALAXY10_DECALS):
        msg = f"label must be a Galaxy10 DECaLS class index 0-9, got {label!r}"
        raise ValueError(msg)
    rng = cutout_rng(seed, index)
    ra = float(rng.uniform(0.0, 360.0))
    s0, s1 = (math.sin(math.radians(d)) for d in config.dec_range)
    dec = float(math.degrees(math.asin(rng.uniform(s0, s1))))
    scale = pixel_scale * (1.0 + float(rng.uniform(-1, 1)) * config.pixel_scale_jitter)

    canvas = Canvas.empty(size)
    dx, dy = rng.normal(0.0, config.centre_offset_sigma, 2)
    ctx = DrawContext(rng, canvas, scale, canvas.centre + dx, canvas.centre + dy)
    params = RECIPES[GALAXY10_DECALS.keys[label]](ctx)
    # the target's magnitudes are what was drawn: after internal dust, inside the canvas
    y0, y1, x0, x1 = canvas.extent
    fluxes = canvas.data[:, y0:y1, x0:x1].sum(axis=(1, 2), dtype=np.float64)
    half_light = _half_light_radius(canvas, ctx.x0, ctx.y0)
    conditions = draw_conditions(rng, config, scale=scale, length=canvas.length)
    field_truth = add_field(ctx, config, main_radius=3.0 * half_light, main_mag=_mag(fluxes[1]))
    cube = observe(
        canvas,
        rng,
        conditions,
        bright_stars=field_truth.bright_stars,
        sky_residual_sigma=config.sky_residual_sigma,
    )

    truth = {
        name: (_INT_DEFAULTS.get(name, 0) if dt.startswith("i") else math.nan)
        for name, (dt, _, _) in TRUTH_COLUMNS.items()
    }
    angle = params.pop("angle")
    truth.update({k: v for k, v in params.items() if k in truth})
    truth.update(
        mag_g=_mag(fluxes[0]),
        mag_r=_mag(fluxes[1]),
        mag_z=_mag(fluxes[2]),
        half_light_radius=half_light * scale,
        position_angle=(math.degrees(angle) - 90.0) % 180.0,
        pixel_scale=scale,
        offset_x=float(dx),
        offset_y=float(dy),
        psf_beta=conditions.psf_beta,
        n_stars=field_truth.n_stars,
        n_bright_stars=len(field_truth.bright_stars),
        n_background=field_truth.n_background,
        n_neighbours=field_truth.n_neighbours,
    )
    if "inclination_deg" in params:
        truth["inclination"] = params["inclination_deg"]
    if "pitch_deg" in params:
        truth["pitch_angle"] = params["pitch_deg"]
    for b, band in enumerate(BANDS):
        truth[f"psf_fwhm_{band}"] = float(conditions.psf_fwhm[b])
        truth[f"depth_{band}"] = float(conditions.depth[b])
        truth[f"sky_sigma_{band}"] = float(conditions.sky_sigma[b])
        truth[f"calibration_{band}"] = float(conditions.calibration[b])
    return SimulatedCutout(
        cube=cube,
        label=int(label),
        ra=ra,
        dec=dec,
        truth=truth,
        seed=seed,
        index=index,
        config=config,
    )


def _mag(flux: float) -> float:
    return ZERO_POINT - 2.5 * math.log10(max(float(flux), 1e-30))


def _half_light_radius(canvas: Canvas, x0: float, y0: float) -> float:
    """Circular half-light radius (pixels) of the r-band light drawn since the extent reset."""
    y_lo, y_hi, x_lo, x_hi = canvas.extent
    if y_hi <= y_lo or x_hi <= x_lo:
        return math.nan
    px = np.arange(x_lo, x_hi, dtype=np.float32) - np.float32(x0)
    py = np.arange(y_lo, y_hi, dtype=np.float32) - np.float32(y0)
    r = np.sqrt(px[None, :] ** 2 + py[:, None] ** 2)
    bins = r.astype(np.int32).ravel()
    profile = np.bincount(bins, weights=canvas.data[1, y_lo:y_hi, x_lo:x_hi].ravel())
    cumulative = np.cumsum(profile)
    total = cumulative[-1]
    if total <= 0:
        return math.nan
    k = int(np.searchsorted(cumulative, 0.5 * total))
    below = cumulative[k - 1] if k > 0 else 0.0
    frac = (0.5 * total - below) / max(profile[k], 1e-30)
    return float(k + frac)


def truth_table(rows: Sequence[dict]) -> Table:
    """Truth dicts as a table with the dtypes and units of :data:`TRUTH_COLUMNS`."""
    table = Table()
    for name, (dtype, unit, description) in TRUTH_COLUMNS.items():
        table[name] = np.array([row[name] for row in rows], dtype=dtype)
        if unit:
            table[name].unit = unit
        table[name].description = description
    return table


def _simulate_chunk(
    cubes: np.ndarray | tuple[str, tuple[int, ...]],
    offset: int,
    indices: Sequence[int],
    seed: int,
    labels: Sequence[int | None],
    size: int,
    pixel_scale: float,
    config: SimulationConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
    """Simulate ``indices`` into ``cubes[offset:]``; ``cubes`` may name a memory-mapped file."""
    if isinstance(cubes, tuple):
        path, shape = cubes
        cubes = np.memmap(path, dtype=np.float32, mode="r+", shape=shape)
    out_labels = np.empty(len(indices), dtype=np.int64)
    ra = np.empty(len(indices))
    dec = np.empty(len(indices))
    truths = []
    for k, (index, label) in enumerate(zip(indices, labels, strict=True)):
        cut = simulate_cutout(
            int(index), seed=seed, label=label, size=size, pixel_scale=pixel_scale, config=config
        )
        cubes[offset + k] = cut.cube
        out_labels[k] = cut.label
        ra[k], dec[k] = cut.ra, cut.dec
        truths.append(cut.truth)
    if isinstance(cubes, np.memmap):
        cubes.flush()
    return out_labels, ra, dec, truths


def default_workers() -> int:
    """Number of CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def chunked(items: Sequence, n_chunks: int) -> list[Sequence]:
    """Split ``items`` into at most ``n_chunks`` contiguous, near-equal pieces."""
    n_chunks = max(1, min(n_chunks, len(items)))
    bounds = np.linspace(0, len(items), n_chunks + 1).astype(int)
    return [items[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def _parallel_batch(
    shape: tuple[int, ...],
    indices: list[int],
    seed: int,
    labels: list[int | None],
    size: int,
    pixel_scale: float,
    config: SimulationConfig,
    workers: int,
) -> tuple[np.ndarray, list]:
    """Run chunks in a process pool; workers write cubes into one memory-mapped file.

    Sending each cube back through a pipe (pickling) costs more than simulating
    it; a file in ``/dev/shm`` (RAM) shared by all workers does not, and the
    returned array is that mapping (its name is removed at once), not a copy (ours).
    """
    n_chunks = workers * 4
    starts = [0]
    idx_chunks = chunked(indices, n_chunks)
    for chunk in idx_chunks[:-1]:
        starts.append(starts[-1] + len(chunk))
    lab_chunks = [labels[a : a + len(c)] for a, c in zip(starts, idx_chunks, strict=True)]
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    fd, path = tempfile.mkstemp(dir=shm, prefix="galaxalign-sim-", suffix=".f32")
    os.close(fd)
    try:
        mapped = np.memmap(path, dtype=np.float32, mode="w+", shape=shape)
        with ProcessPoolExecutor(max_workers=workers, initializer=tune_allocator) as pool:
            futures = [
                pool.submit(
                    _simulate_chunk,
                    (path, shape),
                    start,
                    chunk,
                    seed,
                    lab,
                    size,
                    pixel_scale,
                    config,
                )
                for start, chunk, lab in zip(starts, idx_chunks, lab_chunks, strict=True)
            ]
            parts = [f.result() for f in futures]
    finally:
        # the mapping outlives the name: the memory is freed with the last reference
        os.unlink(path)
    cubes = mapped.view(np.ndarray)
    return cubes, parts


def simulate_batch(
    indices: Sequence[int],
    *,
    seed: int,
    size: int = 256,
    pixel_scale: float = 0.262,
    workers: int = 1,
    labels: Sequence[int] | None = None,
    config: SimulationConfig = DEFAULT_CONFIG,
) -> SimulatedBatch:
    """Simulate several cutouts, in parallel over ``workers`` processes.

    The result is identical for any ``workers`` (see the module docstring).

    Parameters
    ----------
    indices : sequence of int
        Cutout indices.
    seed : int
        Run seed.
    size, pixel_scale, config
        As in :func:`simulate_cutout`.
    workers : int
        Processes to use (1: this process).
    labels : sequence of int, optional
        Class of each cutout; by default balanced.
    """
    indices = [int(i) for i in indices]
    _check_args(size, pixel_scale)
    if labels is None:
        label_list: list[int | None] = [None] * len(indices)
    else:
        label_list = [int(x) for x in labels]
        if len(label_list) != len(indices):
            msg = f"labels has {len(label_list)} entries but indices has {len(indices)}"
            raise ValueError(msg)
    if workers < 1:
        msg = f"workers must be >= 1, got {workers}"
        raise ValueError(msg)
    workers = min(workers, max(len(indices), 1))
    shape = (len(indices), 3, size, size)
    if workers == 1:
        cubes = np.empty(shape, dtype=np.float32)
        parts = [_simulate_chunk(cubes, 0, indices, seed, label_list, size, pixel_scale, config)]
    else:
        cubes, parts = _parallel_batch(
            shape, indices, seed, label_list, size, pixel_scale, config, workers
        )
    truth = truth_table([t for p in parts for t in p[3]])
    truth.meta.update(seed=seed, size=size, nominal_pixel_scale=pixel_scale, version=__version__)
    return SimulatedBatch(
        cubes=cubes,
        labels=np.concatenate([p[0] for p in parts]),
        ra=np.concatenate([p[1] for p in parts]),
        dec=np.concatenate([p[2] for p in parts]),
        truth=truth,
        indices=np.asarray(indices, dtype=np.int64),
        seed=seed,
    )
