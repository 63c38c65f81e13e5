"""Measurements of the target: centroid, shape, Kron and Petrosian radii."""

from __future__ import annotations

import math
import warnings

import numpy as np

from .config import _KRON_PARAMS, _PETROSIAN_ETA


def _measure(det: np.ndarray, labels: np.ndarray, det_bad: np.ndarray, label: int, segm):
    """photutils ``SourceCatalog`` shape measurements of the target on the unsmoothed image."""
    from astropy.utils.exceptions import AstropyUserWarning
    from photutils.segmentation import SourceCatalog

    with warnings.catch_warnings():
        # Degenerate shapes (e.g. a one-pixel-wide segment) give NaN and a warning;
        # NaN is what the measurements report for "not measurable".
        warnings.simplefilter("ignore", AstropyUserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        cat = SourceCatalog(
            det, segm, mask=det_bad if det_bad.any() else None, kron_params=_KRON_PARAMS
        )
        src = cat.select_label(label)
        values = {
            "x": src.x_centroid,
            "y": src.y_centroid,
            "area": src.area,
            "flux": src.segment_flux,
            "kron_radius": src.kron_radius,
            "semimajor_sigma": src.semimajor_axis,
            "semiminor_sigma": src.semiminor_axis,
            "ellipticity": src.ellipticity,
            "orientation": src.orientation,
        }
    out = {k: float(getattr(v, "value", v)) for k, v in values.items()}
    flux = out.pop("flux")
    out["snr"] = flux / math.sqrt(out["area"]) if out["area"] > 0 else math.nan
    if math.isfinite(out["orientation"]):
        out["orientation"] = (out["orientation"] + 90.0) % 180.0 - 90.0
    return out


def _petrosian_radius(
    det: np.ndarray, labels: np.ndarray, det_bad: np.ndarray, label: int, cx: float, cy: float
) -> float:
    """Circular Petrosian radius (eta = 0.2) around (cx, cy), other sources excluded.

    eta(r) is the mean surface brightness in the annulus 0.8 r - 1.25 r over the mean
    within r (the SDSS definition); the radius is the first crossing of 0.2,
    interpolated linearly. NaN when eta never crosses inside the cutout.
    """
    if not (math.isfinite(cx) and math.isfinite(cy)):
        return math.nan
    use = ~det_bad & ((labels == 0) | (labels == label))
    yy, xx = np.nonzero(use)
    r = np.hypot(xx - cx, yy - cy)
    step = 0.5
    n_bins = int(r.max() / step) + 2 if r.size else 0
    if n_bins < 8:
        return math.nan
    idx = np.minimum((r / step).astype(np.int64), n_bins - 1)
    flux = np.concatenate([[0.0], np.cumsum(np.bincount(idx, weights=det[use], minlength=n_bins))])
    area = np.concatenate([[0.0], np.cumsum(np.bincount(idx, minlength=n_bins))]).astype(float)
    edges = np.arange(n_bins + 1) * step

    radii = np.arange(1.0, edges[-1] / 1.25, step)
    if radii.size < 2:
        return math.nan
    f_in, a_in = np.interp(radii, edges, flux), np.interp(radii, edges, area)
    f_lo, a_lo = np.interp(0.8 * radii, edges, flux), np.interp(0.8 * radii, edges, area)
    f_hi, a_hi = np.interp(1.25 * radii, edges, flux), np.interp(1.25 * radii, edges, area)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_in = f_in / a_in
        eta = ((f_hi - f_lo) / (a_hi - a_lo)) / mean_in
    valid = np.isfinite(eta) & (mean_in > 0)
    below = np.flatnonzero(valid & (eta < _PETROSIAN_ETA))
    if below.size == 0 or below[0] == 0 or not valid[below[0] - 1]:
        return math.nan
    i = below[0]
    e0, e1 = eta[i - 1], eta[i]
    frac = (e0 - _PETROSIAN_ETA) / (e0 - e1) if e0 != e1 else 0.0
    return float(radii[i - 1] + frac * (radii[i] - radii[i - 1]))
