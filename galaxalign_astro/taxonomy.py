"""Morphology class sets (taxonomies) the package knows by name.

A taxonomy is an ordered list of classes; the index of a class is its label in
the data sets that use it. Each class has a short machine ``key`` used to look up
its symbol family and descriptions, and the human ``name`` used in catalogs.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "GALAXY10_DECALS",
    "GALAXY_MNIST",
    "TAXONOMIES",
    "MorphClass",
    "Taxonomy",
    "get_taxonomy",
]


@dataclass(frozen=True)
class MorphClass:
    """One morphology class: ``key`` names its symbol family and descriptions."""

    key: str
    name: str


@dataclass(frozen=True)
class Taxonomy:
    """An ordered set of morphology classes; list position is the label."""

    name: str
    classes: tuple[MorphClass, ...]

    @property
    def keys(self) -> list[str]:
        return [c.key for c in self.classes]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    def __len__(self) -> int:
        return len(self.classes)


# Index order of Galaxy10 DECaLS (class 3 is "In-between Round Smooth").
GALAXY10_DECALS = Taxonomy(
    "galaxy10_decals",
    (
        MorphClass("disturbed", "Disturbed"),
        MorphClass("merging", "Merging"),
        MorphClass("round_smooth", "Round Smooth"),
        MorphClass("in_between_smooth", "In-between Round Smooth"),
        MorphClass("cigar_smooth", "Cigar Shaped Smooth"),
        MorphClass("barred_spiral", "Barred Spiral"),
        MorphClass("unbarred_tight_spiral", "Unbarred Tight Spiral"),
        MorphClass("unbarred_loose_spiral", "Unbarred Loose Spiral"),
        MorphClass("edge_on_no_bulge", "Edge-on without Bulge"),
        MorphClass("edge_on_bulge", "Edge-on with Bulge"),
    ),
)

# GalaxyMNIST label order; keys reuse the Galaxy10 symbol/description families.
GALAXY_MNIST = Taxonomy(
    "galaxy_mnist",
    (
        MorphClass("round_smooth", "smooth_round"),
        MorphClass("cigar_smooth", "smooth_cigar"),
        MorphClass("edge_on_no_bulge", "edge_on_disk"),
        MorphClass("unbarred_loose_spiral", "unbarred_spiral"),
    ),
)

TAXONOMIES = {t.name: t for t in (GALAXY10_DECALS, GALAXY_MNIST)}


def get_taxonomy(name: str) -> Taxonomy:
    """Return the taxonomy registered under ``name``."""
    try:
        return TAXONOMIES[name]
    except KeyError:
        msg = f"unknown taxonomy {name!r}; known: {', '.join(sorted(TAXONOMIES))}"
        raise ValueError(msg) from None
