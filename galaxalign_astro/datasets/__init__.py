"""Data sets: benchmarks, label catalogs, fixed splits, augmentations and prepared images."""

from .augment import AUGMENT_PRESETS, AugmentConfig, augment
from .catalog import LabelCatalog, read_label_catalog
from .galaxy10 import GALAXY10_SHA256, Galaxy10DECaLS, verify_sha256
from .galaxy_mnist import GalaxyMNIST
from .hdf5 import DatasetError, HDF5ImageSet
from .load import SPLITS, DatasetImages, concat_datasets, identify_dataset, load_dataset
from .splits import few_shot_indices, galaxy10_split, indices_sha256, stratified_split

__all__ = [
    "AUGMENT_PRESETS",
    "GALAXY10_SHA256",
    "SPLITS",
    "AugmentConfig",
    "DatasetError",
    "DatasetImages",
    "Galaxy10DECaLS",
    "GalaxyMNIST",
    "HDF5ImageSet",
    "LabelCatalog",
    "augment",
    "concat_datasets",
    "few_shot_indices",
    "galaxy10_split",
    "identify_dataset",
    "indices_sha256",
    "load_dataset",
    "read_label_catalog",
    "stratified_split",
    "verify_sha256",
]
