"""Subtraction of the sky background (photutils ``Background2D``) with sources masked."""

from __future__ import annotations

import logging
import math

import numpy as np
from scipy import ndimage

from .cleanup import _Filler
from .config import _BKG_MASK_DILATE, SourceConfig
from .detection import _detection_image, _smooth
from .sky import _border, _border_plane, _clipped_stats, _mesh_to_image, _valid_sigma

log = logging.getLogger(__name__)


def _subtract_background(
    work: np.ndarray,
    bad: np.ndarray,
    filler: _Filler,
    det_idx: list[int],
    config: SourceConfig,
) -> tuple[np.ndarray, bool]:
    """Subtract ``Background2D`` in place from the bands that need it.

    Updates ``filler`` (for subtracted bands: sky level 0, the noise sigma re-measured
    on the border, and the ``Background2D`` objects for local noise). Returns the median
    of the background subtracted from each band (0 for bands left alone) and whether
    any band was subtracted.
    """
    from astropy.stats import SigmaClip
    from photutils.background import Background2D

    n_bands, height, width = work.shape
    level, sigma = filler.level, filler.sigma
    ok = _valid_sigma(sigma)
    if config.background == "always":
        todo = np.isfinite(level)
    else:
        todo = ok & (np.abs(level) > config.background_auto_threshold * np.where(ok, sigma, 1))
    levels = np.zeros(n_bands)
    if not todo.any():
        return levels, False

    # Quick source mask so galaxies do not bias the mesh (Background2D interpolates over
    # boxes mostly covered by it). The sky is first approximated by a plane fitted to
    # the border, so a gradient is not mistaken for a source.
    flat = np.zeros_like(work)
    for i in det_idx:
        flat[i] = work[i] - _border_plane(work[i], bad[i], sigma_clip=config.background_sigma)
    det, _ = _detection_image(flat, bad, np.zeros(n_bands), sigma, det_idx)
    src = _smooth(det, config.smoothing_fwhm) > config.nsigma
    src = ndimage.maximum_filter(src, size=2 * _BKG_MASK_DILATE + 1)
    box = int(min(config.background_box_size, height, width))
    clip = SigmaClip(sigma=config.background_sigma, maxiters=5)
    for b in np.flatnonzero(todo):
        mask = bad[b] | src
        if mask.mean() > 0.9:
            mask = bad[b]
        try:
            bkg = Background2D(
                work[b],
                box,
                mask=mask,
                filter_size=config.background_filter_size,
                sigma_clip=clip,
            )
            sky = _mesh_to_image(bkg.background_mesh, bkg.box_size, (height, width))
            rms = float(bkg.background_rms_median)
        except ValueError as exc:
            # Too few unmasked pixels for a mesh: fall back to the clipped border level.
            log.debug("Background2D failed on band %d (%s); subtracting a constant", b, exc)
            sky = np.full((height, width), level[b], dtype=np.float32)
            rms = sigma[b]
        else:
            filler.backgrounds[int(b)] = bkg
        work[b] -= sky
        work[b][bad[b]] = 0.0
        levels[b] = float(np.median(sky))
        level[b] = 0.0
        # The border noise after subtraction; the mesh rms also holds the sky's
        # variation within a box.
        _, border_sigma = _clipped_stats(work[b][_border(work.shape[1:]) & ~bad[b]],
                                         config.background_sigma)  # fmt: skip
        if math.isfinite(border_sigma) and border_sigma > 0:
            sigma[b] = border_sigma
        elif math.isfinite(rms) and rms > 0:
            sigma[b] = rms
    return levels, True
