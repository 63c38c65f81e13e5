"""Rebuild the sample cutouts bundled in ``galaxalign_astro/data/samples``.

* ``hdf_*.png``: galaxies cut from the Hubble Deep Field colour image that
  scikit-image ships (``skimage.data.hubble_deep_field``; NASA/STScI, public
  domain) — real galaxies, already-stretched colour composites;
* ``statmorph_spiral.fits``: the face-on spiral used by statmorph's tests
  (``statmorph/tests/data/slice.fits``, BSD-3-Clause, Vicente Rodriguez-Gomez;
  give its path with ``--statmorph``) — a real single-band image;
* ``sim_<class>.fits``: one simulated Legacy-Survey-like g,r,z cutout per
  Galaxy10 DECaLS class from ``galaxalign_astro.simulate`` (seed 2026, never
  used in training), tile-compressed — simulated, not real.

Run: ``python docs/make_samples.py [--statmorph PATH/slice.fits]``.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from astropy.io import fits
from PIL import Image

OUT = Path(__file__).resolve().parent.parent / "galaxalign_astro" / "data" / "samples"
SAMPLE_SEED = 2026


#: (x, y, half-size) in pixels of galaxies in skimage's Hubble Deep Field image,
#: picked by eye as the largest galaxies of different shapes
HDF_GALAXIES = (
    (123, 400, 32),  # face-on spiral
    (485, 64, 28),  # face-on spiral
    (728, 473, 32),  # round elliptical
    (515, 438, 30),  # elongated, smooth
    (580, 406, 28),  # thin, edge-on-like
    (448, 152, 36),  # close group / interacting
)


def hubble_deep_field_cutouts() -> list[Path]:
    from skimage.data import hubble_deep_field

    rgb = hubble_deep_field()
    paths = []
    for x, y, half in HDF_GALAXIES:
        path = OUT / f"hdf_x{x}_y{y}.png"
        Image.fromarray(rgb[y - half : y + half, x - half : x + half]).save(path)
        paths.append(path)
    return paths


def simulated_cutouts() -> list[Path]:
    from galaxalign_astro.simulate import simulate_cutout
    from galaxalign_astro.taxonomy import GALAXY10_DECALS

    paths = []
    for label, cls in enumerate(GALAXY10_DECALS.classes):
        sim = simulate_cutout(label, seed=SAMPLE_SEED, label=label)
        path = OUT / f"sim_{cls.key}.fits"
        hdu = fits.CompImageHDU(
            sim.cube, header=sim.header, compression_type="RICE_1", quantize_level=16.0
        )
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path, overwrite=True)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statmorph", type=Path, help="statmorph's tests/data/slice.fits")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    written = hubble_deep_field_cutouts() + simulated_cutouts()
    if args.statmorph:
        target = OUT / "statmorph_spiral.fits"
        shutil.copyfile(args.statmorph, target)
        written.append(target)
    for path in written:
        print(path.relative_to(OUT.parent.parent.parent))


if __name__ == "__main__":
    main()
