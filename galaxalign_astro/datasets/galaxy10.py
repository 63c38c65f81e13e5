"""Galaxy10 DECaLS (``Galaxy10_DECals.h5``) and this project's fixed split of it.

The file holds ``images`` (17,736 RGB composites of 256 x 256), ``ans`` (class
index, names in :data:`~galaxalign_astro.taxonomy.GALAXY10_DECALS`), ``ra``,
``dec``, ``redshift`` and ``pxscale`` (arcsec/pixel, per image). Dtypes are
read from the file.

The data set has no official split. Ours is a stratified 90/10 split with seed
42 (:func:`~galaxalign_astro.datasets.splits.galaxy10_split`); since it is
defined on the file's label order it is computed from ``ans`` on first use and
its test indices are written next to the data file, with their SHA-256, so a
run can be checked against another.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import GalaxAlignWarning
from ..taxonomy import GALAXY10_DECALS
from .hdf5 import DatasetError, HDF5ImageSet
from .splits import (
    galaxy10_split,
    indices_sha256,
    labels_sha256,
    read_index_file,
    shipped_split_spec,
    write_index_file,
)

__all__ = ["GALAXY10_SHA256", "Galaxy10DECaLS", "verify_sha256"]

log = logging.getLogger(__name__)

#: SHA-256 of the published ``Galaxy10_DECals.h5``
GALAXY10_SHA256 = "19AEFC477C41BB7F77FF07599A6B82A038DC042F889A111B0D4D98BB755C1571"


def verify_sha256(path: str | os.PathLike[str], expected: str) -> str:
    """Stream ``path`` through SHA-256 (1 MB at a time); raise :class:`DatasetError` on mismatch.

    Returns the digest (lower-case hex).
    """
    from ..utils import file_sha256

    digest = file_sha256(path)
    if digest.lower() != expected.lower():
        msg = f"{path}: SHA-256 {digest} does not match the expected {expected.lower()}"
        raise DatasetError(msg)
    return digest


class Galaxy10DECaLS(HDF5ImageSet):
    """Reader of ``Galaxy10_DECals.h5``.

    Parameters
    ----------
    path : path-like
    verify : bool
        Check the file's SHA-256 against :data:`GALAXY10_SHA256` first (reads
        the whole 2.5 GB file once).
    """

    def __init__(self, path: str | os.PathLike[str], *, verify: bool = False) -> None:
        if verify:
            verify_sha256(path, GALAXY10_SHA256)
        super().__init__(path, labels_key="ans", taxonomy=GALAXY10_DECALS)
        self.verified = verify

    def index_file(self, seed: int = 42) -> Path:
        """Where the test indices of the split with ``seed`` are written: beside the data file."""
        data = Path(self.path)
        return data.with_name(f"{data.stem}.test_indices.seed{seed}.txt")

    def split(self, *, seed: int = 42, write: bool = True) -> tuple[np.ndarray, np.ndarray, dict]:
        """(train, test) rows of this project's split, and a record of it.

        The split is recomputed from ``ans`` every time (it takes milliseconds).
        On first use the test indices are written to :meth:`index_file` (when the
        folder is writable); an existing index file that disagrees with the
        recomputed split is reported with a :class:`GalaxAlignWarning`, and the
        recomputed split is used.
        """
        labels = self.labels
        train, test = galaxy10_split(labels, seed=seed)
        record: dict[str, Any] = {
            "name": "galaxy10_decals",
            "algorithm": "stratified hash split (galaxalign_astro.datasets.splits)",
            "test_fraction": 0.1,
            "seed": seed,
            "n_rows": len(labels),
            "labels_sha256": labels_sha256(labels),
            "test_indices_sha256": indices_sha256(test),
        }
        self._check_reference(labels, record, seed)
        path = self.index_file(seed)
        if path.exists():
            stored, header = read_index_file(path)
            if not np.array_equal(stored, test):
                warnings.warn(
                    f"{path}: test indices differ from the split recomputed from {self.path} "
                    f"(written for labels {header.get('labels_sha256')!s:.12}...); using the "
                    "recomputed split",
                    GalaxAlignWarning,
                    stacklevel=2,
                )
            record["index_file"] = str(path)
        elif write:
            header = {**record, "data_file": Path(self.path).name, "package_version": __version__}
            try:
                write_index_file(path, test, header=header)
                log.info("wrote the Galaxy10 test indices to %s", path)
                record["index_file"] = str(path)
            except OSError as exc:
                log.warning("could not write the test indices next to the data (%s)", exc)
        return train, test, record

    def _check_reference(self, labels: np.ndarray, record: dict, seed: int) -> None:
        spec = shipped_split_spec("galaxy10_decals")
        if len(labels) != spec["n_images"]:
            n_pub = spec["n_images"]
            log.info("%s has %d images, not the published %d", self.path, len(labels), n_pub)
            return
        counts = np.bincount(labels, minlength=len(spec["class_counts"])).tolist()
        problems = []
        if counts != spec["class_counts"]:
            problems.append(f"class counts {counts} differ from the published ones")
        elif spec.get("labels_sha256") and record["labels_sha256"] != spec["labels_sha256"]:
            problems.append("label order differs from the reference file")
        elif (
            seed == spec["seed"]
            and spec.get("test_indices_sha256")
            and record["test_indices_sha256"] != spec["test_indices_sha256"]
        ):
            problems.append("test indices differ from the shipped reference")
        if problems:
            warnings.warn(
                f"{self.path}: {'; '.join(problems)}: results are not comparable with the "
                "shipped split",
                GalaxAlignWarning,
                stacklevel=3,
            )
