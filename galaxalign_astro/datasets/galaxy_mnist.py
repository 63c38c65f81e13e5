"""GalaxyMNIST: 10,000 DECaLS composites in four classes, 64 px (or 224 px, "Highrez").

Published as ``train_dataset.hdf5`` (8,000 images) and ``test_dataset.hdf5``
(2,000), each with ``images`` (uint8, N x H x W x 3) and ``labels``. Those two
files *are* the canonical split: the authors drew it once (seeded 80/20,
random_state 42) from a table that is not distributed, so it cannot be redrawn
from the images. A single file holding all images is split by this project's
stratified hash split (ours; 80/20, seed 42), which is not the canonical one.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..taxonomy import GALAXY_MNIST
from .hdf5 import HDF5ImageSet

__all__ = ["GalaxyMNIST"]

_ROLE = re.compile(r"^(train|test)(?=[_.\-])", re.IGNORECASE)


class GalaxyMNIST(HDF5ImageSet):
    """Reader of a GalaxyMNIST HDF5 file (either half of the canonical split, or all of it)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path, labels_key="labels", taxonomy=GALAXY_MNIST)

    @property
    def role(self) -> str | None:
        """``'train'`` or ``'test'`` from the file name (``train_dataset.hdf5``...), else None."""
        match = _ROLE.match(Path(self.path).name)
        return match.group(1).lower() if match else None

    def sibling(self, role: str) -> Path | None:
        """The other half of the canonical split beside this file, if present."""
        own = self.role
        if own is None:
            return None
        if own == role:
            return Path(self.path)
        name = Path(self.path).name
        candidate = Path(self.path).with_name(role + name[len(own) :])
        return candidate if candidate.exists() else None
