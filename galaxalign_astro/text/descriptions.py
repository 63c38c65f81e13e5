"""Plain-word descriptions of every morphology class, and the prompt templates.

Written by us (ours) from the questions of the Galaxy Zoo DECaLS decision tree:
smooth or featured; how rounded; edge-on disk; central bulge of an edge-on
disk; bar; spiral arms; how tightly wound; how many arms; merging; anything
odd. The paper does not publish its texts. Each description is a noun phrase
starting with an article and without a final full stop, so every template
turns it into a sentence. The four GalaxyMNIST classes use the same keys.
"""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["DESCRIPTIONS", "TEMPLATES", "TextConfig", "class_texts"]

_DESCRIPTIONS: dict[str, tuple[str, ...]] = {
    "disturbed": (
        "a disturbed galaxy with an irregular, lopsided shape",
        "an irregular galaxy with bright clumps scattered unevenly across it",
        "a galaxy whose shape has been distorted, with no clear disk or spiral pattern",
        "a clumpy, asymmetric galaxy that is not merging with a neighbour",
        "a messy galaxy with patchy light and an uneven outline",
        "a galaxy with an odd, disturbed appearance and knots of star formation",
    ),
    "merging": (
        "two galaxies merging into one",
        "a pair of overlapping galaxies with tidal tails",
        "colliding galaxies pulled into long streams of stars",
        "a galaxy merger with two bright cores close together",
        "interacting galaxies joined by a bridge of light",
        "a galaxy in the middle of a merger, with tails and shells around it",
        "two touching galaxies distorting each other",
    ),
    "round_smooth": (
        "a smooth, completely round galaxy with no disk features",
        "a round elliptical galaxy with a bright centre that fades smoothly outward",
        "a featureless galaxy shaped like a circle",
        "a smooth round blob of light with no spiral arms or bar",
        "a round galaxy without any disk, arms or structure",
        "a circular, smooth galaxy with a soft edge",
    ),
    "in_between_smooth": (
        "a smooth galaxy that is in between round and cigar-shaped",
        "a smooth oval galaxy with no disk features",
        "a moderately elongated elliptical galaxy with no structure",
        "a featureless galaxy shaped like an egg",
        "a smooth galaxy, somewhat flattened but not thin",
        "an oval blob of light with a bright centre and no arms or bar",
    ),
    "cigar_smooth": (
        "a smooth, cigar-shaped galaxy",
        "a long, narrow, featureless galaxy shaped like a cigar",
        "a smooth galaxy that is strongly elongated with no disk features",
        "an elongated elliptical galaxy, much longer than it is wide",
        "a thin smooth galaxy with a bright centre and no sign of a disk",
        "a stretched, featureless oval of light",
    ),
    "barred_spiral": (
        "a spiral galaxy with a bar through its centre",
        "a barred spiral galaxy with arms starting at the ends of a straight bar",
        "a spiral galaxy with a bar through its centre and loosely wound arms",
        "a face-on disk galaxy with a central bar and spiral arms",
        "a galaxy with a bright elongated bar across the middle and curved arms",
        "a barred galaxy whose spiral arms wrap around a central bar",
        "a disk galaxy with a bar feature and a small bulge",
    ),
    "unbarred_tight_spiral": (
        "a spiral galaxy with tightly wound arms and no bar",
        "an unbarred spiral galaxy whose arms wrap closely around the centre",
        "a face-on disk galaxy with tightly coiled spiral arms",
        "a spiral galaxy with a prominent bulge and tightly wound arms",
        "a galaxy with many turns of thin spiral arms close together",
        "a spiral without a bar, its arms wound tightly like a coil",
    ),
    "unbarred_loose_spiral": (
        "a spiral galaxy with loosely wound arms and no bar",
        "an unbarred spiral galaxy with open, widely spaced arms",
        "a face-on disk galaxy with loose spiral arms",
        "a spiral galaxy with a small bulge and loosely wound arms",
        "a galaxy with open spiral arms sweeping out from the centre",
        "a spiral without a bar, its arms unwinding far from the centre",
    ),
    "edge_on_no_bulge": (
        "an edge-on disk galaxy with no bulge",
        "a thin disk galaxy seen edge-on, like a flat line",
        "a disk viewed exactly from the side, with no bulge in the middle",
        "a very thin, straight streak of light, a galaxy seen edge-on",
        "an edge-on galaxy that looks like a needle",
        "a flat disk galaxy seen side-on without a central bulge",
    ),
    "edge_on_bulge": (
        "an edge-on disk galaxy with a bulge",
        "a disk galaxy seen edge-on with a round bulge at its centre",
        "a thin edge-on disk with a bright central bulge",
        "a flat line of light with a bulge in the middle, a galaxy seen from the side",
        "an edge-on galaxy with a rounded central bulge sticking out of the disk",
        "a side-on disk galaxy whose centre bulges above and below the disk",
    ),
    # coarse groups of Galaxy10 DECaLS (taxonomy.CoarseGroup keys): what a row labelled
    # only "spiral" (say) is known to be
    "smooth": (
        "a smooth galaxy with no disk, arms or bar",
        "a featureless elliptical galaxy, round or elongated",
        "a smooth blob of light that fades evenly from a bright centre",
        "an elliptical galaxy without any spiral structure",
        "a smooth galaxy, from round to cigar-shaped, with no features",
        "a galaxy with a smooth, even glow and no structure",
    ),
    "spiral": (
        "a spiral galaxy seen face-on",
        "a disk galaxy with spiral arms",
        "a face-on spiral galaxy, with or without a bar",
        "a galaxy with arms winding out from its centre",
        "a featured disk galaxy whose arms form a spiral pattern",
        "a spiral galaxy with tightly or loosely wound arms",
    ),
    "edge_on": (
        "a disk galaxy seen edge-on",
        "a thin disk galaxy seen from the side, with or without a bulge",
        "an edge-on galaxy that looks like a narrow streak of light",
        "a flat disk seen exactly from the side",
        "a side-on disk galaxy",
        "a galaxy disk tilted so far that it is seen as a line",
    ),
    "merger_irregular": (
        "a merging or disturbed galaxy",
        "an irregular or interacting galaxy",
        "a galaxy distorted by a merger or by a disturbance",
        "colliding galaxies or a clumpy, lopsided galaxy",
        "a galaxy with tidal features or an irregular shape",
        "an odd galaxy, merging with a neighbour or irregular",
    ),
}

#: class key -> plain-word descriptions (ours), read-only
DESCRIPTIONS: Mapping[str, tuple[str, ...]] = MappingProxyType(_DESCRIPTIONS)

#: prompt templates (ours); ``{}`` is replaced by a description
TEMPLATES: tuple[str, ...] = (
    "{}",
    "a survey image of {}.",
    "an astronomical photograph of {}.",
    "a telescope image of {}.",
    "a colour image from a sky survey showing {}.",
    "a galaxy zoo image of {}.",
)


def _check_templates(templates: Sequence[str]) -> tuple[str, ...]:
    templates = tuple(templates)
    if not templates:
        msg = "templates must not be empty"
        raise ValueError(msg)
    for t in templates:
        if not isinstance(t, str):
            msg = f"template {t!r} is not a string"
            raise ValueError(msg)
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(t) if f is not None]
        except ValueError:
            fields = []
        if fields != [""]:
            msg = f"template {t!r} must contain exactly one '{{}}' placeholder and no other braces"
            raise ValueError(msg)
    return templates


def _check_descriptions(key: str, descriptions: Sequence[str]) -> tuple[str, ...]:
    if isinstance(descriptions, str):
        msg = f"descriptions of {key!r} must be a sequence of strings, not one string"
        raise ValueError(msg)
    descriptions = tuple(descriptions)
    if not descriptions or not all(isinstance(d, str) and d.strip() for d in descriptions):
        msg = f"descriptions of {key!r} must be a non-empty sequence of non-empty strings"
        raise ValueError(msg)
    return descriptions


def class_texts(
    key: str,
    *,
    templates: Sequence[str] | None = None,
    descriptions: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    """Return every text of a class: each description in each template.

    Parameters
    ----------
    key : str
        Class key (see `galaxalign_astro.taxonomy`).
    templates : sequence of str, optional
        Prompt templates with one ``{}``; default `TEMPLATES`.
    descriptions : mapping, optional
        Class key -> descriptions that replace or extend `DESCRIPTIONS`
        (e.g. a new class for zero-shot classification).

    Returns
    -------
    list of str
        ``len(descriptions) * len(templates)`` texts, description-major: all
        templates of the first description, then of the second, ...
    """
    table = {**_DESCRIPTIONS, **(descriptions or {})}
    if key not in table:
        msg = f"no descriptions for class key {key!r}; known: {', '.join(sorted(table))}"
        raise ValueError(msg)
    descs = _check_descriptions(key, table[key])
    temps = _check_templates(TEMPLATES if templates is None else templates)
    return [t.format(d) for d in descs for t in temps]


@dataclass(frozen=True)
class TextConfig:
    """The texts a model is trained with; stored beside the weights.

    Parameters
    ----------
    templates : tuple of str
        Prompt templates, each with one ``{}``.
    descriptions : dict
        Class key -> descriptions overriding (or adding to) `DESCRIPTIONS`.
    """

    templates: tuple[str, ...] = TEMPLATES
    descriptions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "templates", _check_templates(self.templates))
        checked = {
            str(k): _check_descriptions(str(k), v) for k, v in dict(self.descriptions).items()
        }
        object.__setattr__(self, "descriptions", MappingProxyType(checked))

    @property
    def keys(self) -> list[str]:
        """Every class key this configuration has descriptions for, sorted."""
        return sorted({*_DESCRIPTIONS, *self.descriptions})

    def descriptions_for(self, key: str) -> tuple[str, ...]:
        """The descriptions of ``key`` (override first, then `DESCRIPTIONS`)."""
        if key in self.descriptions:
            return self.descriptions[key]
        if key in _DESCRIPTIONS:
            return _DESCRIPTIONS[key]
        msg = f"no descriptions for class key {key!r}; known: {', '.join(self.keys)}"
        raise ValueError(msg)

    def class_texts(self, key: str) -> list[str]:
        """All texts of ``key`` (see `class_texts`)."""
        return class_texts(key, templates=self.templates, descriptions=self.descriptions)

    def to_dict(self, keys: Sequence[str] | None = None) -> dict[str, Any]:
        """JSON-serialisable dict.

        Parameters
        ----------
        keys : sequence of str, optional
            Also write out the full descriptions of these keys, so a stored
            model keeps its exact training texts even if the built-in
            `DESCRIPTIONS` change in a later release.
        """
        descs = {k: list(v) for k, v in self.descriptions.items()}
        for key in keys or ():
            descs.setdefault(key, list(self.descriptions_for(key)))
        return {"templates": list(self.templates), "descriptions": descs}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TextConfig:
        """Rebuild from :meth:`to_dict` output."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            msg = f"unknown TextConfig keys {unknown}; known: {', '.join(sorted(known))}"
            raise ValueError(msg)
        kwargs: dict[str, Any] = {}
        if "templates" in data:
            kwargs["templates"] = tuple(data["templates"])
        if "descriptions" in data:
            kwargs["descriptions"] = {k: tuple(v) for k, v in data["descriptions"].items()}
        return cls(**kwargs)
