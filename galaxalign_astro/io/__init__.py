"""Reading cutouts as users have them: FITS in its many layouts, and PNG/JPEG composites."""

from .cutouts import IMAGE_SUFFIXES, Cutout, expand_inputs, normalise_band, read_cutout

__all__ = ["IMAGE_SUFFIXES", "Cutout", "expand_inputs", "normalise_band", "read_cutout"]
