"""Morphology class sets (taxonomies) the package knows by name.

A taxonomy is an ordered list of classes; the index of a class is its label in
the data sets that use it. Each class has a short machine ``key`` used to look up
its symbol family and descriptions, and the human ``name`` used in catalogs.

A taxonomy may also have coarse *groups* of its classes (Galaxy10 DECaLS: smooth,
spiral, edge-on, merger-irregular), for data labelled only at the coarse level.
Training labels are then *nodes*: ``0 .. n_classes - 1`` are the classes, and
``n_classes + g`` is group ``g``, meaning "one of the group's classes, which one
unknown" (ours; see docs/method.md, "Hierarchical labels").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "GALAXY10_DECALS",
    "GALAXY_MNIST",
    "TAXONOMIES",
    "CoarseGroup",
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
class CoarseGroup:
    """A coarse class: ``members`` are the keys of the classes it groups."""

    key: str
    name: str
    members: tuple[str, ...]


def _norm(text: object) -> str:
    return " ".join(str(text).strip().lower().replace("_", " ").replace("-", " ").split())


@dataclass(frozen=True)
class Taxonomy:
    """An ordered set of morphology classes; list position is the label.

    ``groups`` are optional coarse classes; a group's node label is
    ``len(classes) + its position`` (see the module documentation).
    """

    name: str
    classes: tuple[MorphClass, ...]
    groups: tuple[CoarseGroup, ...] = ()

    def __post_init__(self) -> None:
        keys = self.keys
        for group in self.groups:
            unknown = [m for m in group.members if m not in keys]
            if unknown or not group.members:
                msg = f"{self.name}: group {group.key!r} has unknown members {unknown}"
                raise ValueError(msg)

    @property
    def n_nodes(self) -> int:
        """Number of training labels: classes, then groups."""
        return len(self.classes) + len(self.groups)

    @property
    def node_keys(self) -> list[str]:
        """Key of every node label: the class keys, then the group keys."""
        return self.keys + [g.key for g in self.groups]

    @property
    def node_names(self) -> list[str]:
        return self.names + [g.name for g in self.groups]

    def members_matrix(self) -> np.ndarray:
        """bool (n_nodes, n_classes): the classes each node label may be."""
        out = np.zeros((self.n_nodes, len(self.classes)), dtype=bool)
        out[np.arange(len(self.classes)), np.arange(len(self.classes))] = True
        index = {k: i for i, k in enumerate(self.keys)}
        for g, group in enumerate(self.groups):
            out[len(self.classes) + g, [index[m] for m in group.members]] = True
        return out

    def group_of_class(self) -> np.ndarray:
        """int (n_classes,): the group of each class, -1 for a class in no group."""
        out = np.full(len(self.classes), -1, dtype=np.int64)
        index = {k: i for i, k in enumerate(self.keys)}
        for g, group in enumerate(self.groups):
            out[[index[m] for m in group.members]] = g
        return out

    def node_groups(self, labels: np.ndarray) -> np.ndarray:
        """int (n,): the coarse group of every node label (-1 for a class in no group)."""
        labels = np.asarray(labels, dtype=np.int64)
        n = len(self.classes)
        return np.where(labels < n, self.group_of_class()[np.minimum(labels, n - 1)], labels - n)

    def class_label(self, value: object) -> int:
        """Class index of a class name or key (any case; '-', '_' and ' ' alike)."""
        wanted = _norm(value)
        for i, c in enumerate(self.classes):
            if wanted in (_norm(c.key), _norm(c.name)):
                return i
        msg = f"{value!r} is not a {self.name} class (known: {', '.join(self.names)})"
        raise ValueError(msg)

    def group_label(self, value: object) -> int:
        """Node label of a group name or key (any case; '-', '_' and ' ' alike)."""
        wanted = _norm(value)
        for g, group in enumerate(self.groups):
            if wanted in (_norm(group.key), _norm(group.name)):
                return len(self.classes) + g
        known = ", ".join(g.name for g in self.groups) or "none"
        msg = f"{value!r} is not a coarse group of {self.name} (known: {known})"
        raise ValueError(msg)

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
    # the coarse classes of Galaxy Zoo catalogs (ours, following the decision tree's
    # first questions): smooth, featured with arms, edge-on disk, merger or disturbed
    (
        CoarseGroup("smooth", "smooth", ("round_smooth", "in_between_smooth", "cigar_smooth")),
        CoarseGroup(
            "spiral",
            "spiral",
            ("barred_spiral", "unbarred_tight_spiral", "unbarred_loose_spiral"),
        ),
        CoarseGroup("edge_on", "edge-on", ("edge_on_no_bulge", "edge_on_bulge")),
        CoarseGroup("merger_irregular", "merger-irregular", ("disturbed", "merging")),
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
