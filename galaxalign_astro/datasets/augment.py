"""Training augmentations suited to galaxy images.

A galaxy's morphology class does not change when the image is rotated by any
angle, mirrored, moved by a few pixels, slightly rescaled or given a little
more noise; a bar or a spiral arm does not either. :class:`AugmentConfig`
says which of these to apply and how strongly; :func:`augment` applies them
to a batch, each image drawing its own parameters from a ``torch.Generator``
(so a seeded run is reproducible). The defaults (random 90-degree rotations and
flips, which lose nothing at the borders) and the ``"galaxy"`` preset are ours.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["AUGMENT_PRESETS", "AugmentConfig", "augment"]

PADDING_MODES = ("zeros", "border", "reflection")


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations to apply and how strongly.

    Parameters
    ----------
    rot90 : bool
        Rotate each image by a random multiple of 90 degrees (lossless).
    flip : bool
        Mirror each image with probability 1/2 (lossless; with ``rot90`` it
        gives all eight symmetries of the square).
    rotate_degrees : float
        Extra rotation drawn uniformly in [-rotate_degrees, rotate_degrees].
    shift_fraction : float
        Shift in x and y, each drawn uniformly in +-shift_fraction of the side.
    zoom : tuple of float
        Scale range (min, max), drawn log-uniformly; above 1 enlarges the galaxy.
    noise_std : float
        Gaussian noise is added with a standard deviation drawn uniformly in
        [0, noise_std] per image (image values are in [0, 1]).
    colour : float
        Each image's planes are multiplied by gains drawn log-uniformly in
        [exp(-colour), exp(colour)], one per plane (ours: survey composites differ
        in colour balance and stretch).
    gamma : tuple of float
        Each image is raised to a power drawn log-uniformly in this range (ours:
        a change of stretch; 1, 1 is off).
    padding : {'zeros', 'border', 'reflection'}
        What fills pixels moved in from outside the image by rotations, shifts
        and zooms out; 'zeros' is dark sky for these composites (reflection
        would duplicate neighbouring sources).
    """

    rot90: bool = True
    flip: bool = True
    rotate_degrees: float = 0.0
    shift_fraction: float = 0.0
    zoom: tuple[float, float] = (1.0, 1.0)
    noise_std: float = 0.0
    colour: float = 0.0
    gamma: tuple[float, float] = (1.0, 1.0)
    padding: str = "zeros"

    def __post_init__(self) -> None:
        zoom = tuple(float(z) for z in self.zoom)
        if len(zoom) != 2 or not 0 < zoom[0] <= zoom[1]:
            msg = f"zoom must be (min, max) with 0 < min <= max, got {self.zoom}"
            raise ValueError(msg)
        object.__setattr__(self, "zoom", zoom)
        gamma = tuple(float(g) for g in self.gamma)
        if len(gamma) != 2 or not 0 < gamma[0] <= gamma[1]:
            msg = f"gamma must be (min, max) with 0 < min <= max, got {self.gamma}"
            raise ValueError(msg)
        object.__setattr__(self, "gamma", gamma)
        for name in ("rotate_degrees", "shift_fraction", "noise_std", "colour"):
            value = getattr(self, name)
            if not value >= 0:
                msg = f"{name} must be >= 0, got {value}"
                raise ValueError(msg)
        if self.shift_fraction > 0.5:
            msg = f"shift_fraction must be at most 0.5, got {self.shift_fraction}"
            raise ValueError(msg)
        if self.padding not in PADDING_MODES:
            msg = f"padding must be one of {', '.join(PADDING_MODES)}, got {self.padding!r}"
            raise ValueError(msg)

    @property
    def geometric(self) -> bool:
        """Whether an interpolating transform (rotation, shift or zoom) is applied."""
        return self.rotate_degrees > 0 or self.shift_fraction > 0 or self.zoom != (1.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["zoom"] = list(self.zoom)
        out["gamma"] = list(self.gamma)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AugmentConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            msg = f"unknown augmentation parameters: {', '.join(sorted(unknown))}"
            raise ValueError(msg)
        values = dict(data)
        for key in ("zoom", "gamma"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)

    @classmethod
    def preset(cls, name: str) -> AugmentConfig:
        """A named configuration from :data:`AUGMENT_PRESETS`."""
        try:
            return cls.from_dict(AUGMENT_PRESETS[name])
        except KeyError:
            msg = f"unknown augmentation preset {name!r}; known: {', '.join(AUGMENT_PRESETS)}"
            raise ValueError(msg) from None


#: named settings (ours): ``none``; ``flips`` (the lossless symmetries, the default);
#: ``galaxy`` (also any rotation angle, 4 % shifts, 0.9-1.1 zoom, light noise);
#: ``real`` (for real composites: wider zoom, colour and stretch changes, more noise)
AUGMENT_PRESETS: dict[str, dict[str, Any]] = {
    "none": {"rot90": False, "flip": False},
    "flips": {},
    "galaxy": {
        "rotate_degrees": 45.0,
        "shift_fraction": 0.04,
        "zoom": [0.9, 1.1],
        "noise_std": 0.01,
    },
    # real survey composites of several surveys and stretches, framed by galaxy size
    "real": {
        "rotate_degrees": 180.0,
        "shift_fraction": 0.04,
        "zoom": [0.8, 1.25],
        "noise_std": 0.02,
        "colour": 0.15,
        "gamma": [0.75, 1.35],
    },
}


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    u = torch.rand(n, generator=generator, device=generator.device, dtype=torch.float64)
    return low + (high - low) * u


def augment(
    images: torch.Tensor, config: AugmentConfig, generator: torch.Generator
) -> torch.Tensor:
    """Augment a batch of square images (B, C, S, S), float in [0, 1]; returns a new tensor.

    Random numbers are drawn from ``generator`` in a fixed order (90-degree
    turns, flips, angles, zooms, shifts, noise levels, noise), on the
    generator's device, so a seeded generator reproduces a batch exactly.
    """
    if images.ndim != 4 or images.shape[-1] != images.shape[-2]:
        msg = f"augment needs square images (B, C, S, S), got shape {tuple(images.shape)}"
        raise ValueError(msg)
    if not images.is_floating_point():
        msg = f"augment needs floating images in [0, 1], got dtype {images.dtype}"
        raise ValueError(msg)
    n, device = images.shape[0], images.device
    out = images.clone()
    if config.rot90:
        turns = torch.randint(0, 4, (n,), generator=generator, device=generator.device).cpu()
        for k in range(1, 4):
            chosen = (turns == k).nonzero().flatten().to(device)
            if len(chosen):
                out[chosen] = torch.rot90(out[chosen], k, dims=(2, 3))
    if config.flip:
        mirror = (_uniform(n, 0, 1, generator) < 0.5).nonzero().flatten().to(device)
        if len(mirror):
            out[mirror] = torch.flip(out[mirror], dims=(3,))
    if config.geometric:
        out = _affine(out, config, generator)
    if config.colour > 0 or config.gamma != (1.0, 1.0):
        gains = torch.exp(_uniform(n * out.shape[1], -config.colour, config.colour, generator))
        low, high = (math.log(g) for g in config.gamma)
        power = torch.exp(_uniform(n, low, high, generator))
        gains = gains.view(n, -1, 1, 1).to(device, out.dtype)
        out = out.clamp(min=0.0).pow(power.view(-1, 1, 1, 1).to(device, out.dtype)) * gains
        out = out.clamp_(0.0, 1.0)
    if config.noise_std > 0:
        sigma = _uniform(n, 0.0, config.noise_std, generator).to(device, out.dtype)
        noise = torch.randn(
            out.shape, generator=generator, device=generator.device, dtype=out.dtype
        ).to(device)
        out = (out + sigma.view(-1, 1, 1, 1) * noise).clamp_(0.0, 1.0)
    return out


def _affine(images: torch.Tensor, config: AugmentConfig, generator: torch.Generator):
    n = images.shape[0]
    r = math.radians(config.rotate_degrees)
    angle = _uniform(n, -r, r, generator)
    low, high = (math.log(z) for z in config.zoom)
    scale = torch.exp(_uniform(n, low, high, generator))
    # affine_grid works in [-1, 1] coordinates: a shift of f of the side is 2 f
    shift = _uniform(2 * n, -2 * config.shift_fraction, 2 * config.shift_fraction, generator)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [
            torch.stack([cos, -sin, shift[:n]], dim=1),
            torch.stack([sin, cos, shift[n:]], dim=1),
        ],
        dim=1,
    ).to(images.device, images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(
        images, grid, mode="bilinear", padding_mode=config.padding, align_corners=False
    )
    return out.clamp_(0.0, 1.0)
