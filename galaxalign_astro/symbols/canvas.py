"""A supersampled greyscale canvas on which symbol families draw.

Families draw in *icon coordinates*: x to the right, y up, the image spanning
[-1, 1] on both axes. The canvas applies the variant's rotation, mirroring,
scale and offset, so a family only describes the canonical shape. Drawing is
done at ``supersample`` times the output size and block-averaged down
(antialiasing); shapes combine by taking the maximum, so overlaps never
saturate. The style (light drawing on a black background, grey replicated into
three uint8 channels) is ours.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["SymbolCanvas"]


class SymbolCanvas:
    """Greyscale drawing surface in icon coordinates.

    Parameters
    ----------
    size : int
        Output image side in pixels.
    supersample : int
        Drawing resolution factor; the result is block-averaged by this factor.
    rotation : float
        Rotation of the drawing, degrees counter-clockwise.
    mirror : bool
        Mirror the drawing in x before rotating.
    scale : float
        Size factor on every coordinate and length.
    offset : (float, float)
        Shift of the drawing, in icon coordinates (fractions of half the image).
    line_width : float
        Factor applied by families to stroke widths.
    brightness : float
        Factor on the final intensities.
    squash : float
        Factor on icon y before rotating: below 1 it tilts a face-on design
        (an inclined disk).
    """

    def __init__(
        self,
        size: int,
        *,
        supersample: int = 4,
        rotation: float = 0.0,
        mirror: bool = False,
        scale: float = 1.0,
        offset: Sequence[float] = (0.0, 0.0),
        line_width: float = 1.0,
        brightness: float = 1.0,
        squash: float = 1.0,
    ) -> None:
        if size < 8:
            msg = f"symbol size must be at least 8 pixels, got {size}"
            raise ValueError(msg)
        self.size = int(size)
        self.supersample = int(supersample)
        self.n = self.size * self.supersample
        self.line_width = float(line_width)
        self.brightness = float(brightness)
        self._scale = float(scale)
        theta = math.radians(rotation)
        sx = -1.0 if mirror else 1.0
        c, s = math.cos(theta), math.sin(theta)
        # icon -> world: rotate(mirror(squash(p))) * scale + offset
        rot = np.array([[c, -s], [s, c]])
        self._m = rot @ np.diag([sx, float(squash)]) * self._scale
        self._minv = np.linalg.inv(self._m)
        self._offset = np.asarray(offset, dtype=float)
        self._half = self.n / 2.0
        self.data = np.zeros((self.n, self.n), dtype=np.float32)

    # -- coordinates -------------------------------------------------------

    def to_pixels(self, xy: np.ndarray) -> np.ndarray:
        """Map icon coordinates (..., 2) to supersampled pixel coordinates (col, row)."""
        world = np.asarray(xy, dtype=float) @ self._m.T + self._offset
        col = self._half + world[..., 0] * self._half
        row = self._half - world[..., 1] * self._half
        return np.stack([col, row], axis=-1)

    @property
    def pixel(self) -> float:
        """Length in icon units of one output pixel (for minimum stroke widths)."""
        return 2.0 / (self.size * self._scale)

    def pixel_length(self, length: float) -> float:
        """Convert a length in icon units to supersampled pixels."""
        return length * self._scale * self._half

    def _window(
        self, cx: float, cy: float, radius: float
    ) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray] | None:
        """Pixel window around an icon-space disc, and the icon coordinates of its pixels."""
        centre = self.to_pixels(np.array([cx, cy]))
        r = self.pixel_length(radius) + 2
        c0 = max(math.floor(centre[0] - r), 0)
        c1 = min(math.ceil(centre[0] + r) + 1, self.n)
        r0 = max(math.floor(centre[1] - r), 0)
        r1 = min(math.ceil(centre[1] + r) + 1, self.n)
        if c0 >= c1 or r0 >= r1:
            return None
        cols = (np.arange(c0, c1, dtype=np.float32) + 0.5 - self._half) / self._half
        rows = (self._half - (np.arange(r0, r1, dtype=np.float32) + 0.5)) / self._half
        wx, wy = np.meshgrid(cols - self._offset[0], rows - self._offset[1])
        ix = self._minv[0, 0] * wx + self._minv[0, 1] * wy
        iy = self._minv[1, 0] * wx + self._minv[1, 1] * wy
        return (slice(r0, r1), slice(c0, c1)), ix, iy

    def _combine(
        self, window: tuple[slice, slice], values: np.ndarray, inside: np.ndarray | None = None
    ) -> None:
        if inside is None:
            np.maximum(self.data[window], values.astype(np.float32), out=self.data[window])
        else:
            self.data[window] = np.where(inside, values, self.data[window])

    # -- primitives --------------------------------------------------------

    def ellipse(
        self,
        cx: float,
        cy: float,
        a: float,
        b: float,
        *,
        angle: float = 0.0,
        value: float = 1.0,
        profile: str = "smooth",
        edge: float = 0.4,
        power: float = 1.5,
        over: bool = False,
    ) -> None:
        """Fill an ellipse with semi-axes ``a`` (along ``angle``, degrees) and ``b``.

        ``profile`` is ``"smooth"`` (bright centre falling to ``edge * value`` at
        the rim, a crisp outline), ``"flat"`` (constant ``value``) or ``"glow"``
        (a Gaussian-like haze reaching out to 1.6 times the ellipse, no outline).
        With ``over`` the ellipse replaces what lies beneath it (a bulge hiding
        where the arms start) instead of combining by maximum.
        """
        reach = max(a, b) * (1.6 if profile == "glow" else 1.0)
        win = self._window(cx, cy, reach)
        if win is None:
            return
        window, ix, iy = win
        t = math.radians(angle)
        c, s = math.cos(t), math.sin(t)
        u = ((ix - cx) * c + (iy - cy) * s) / a
        v = (-(ix - cx) * s + (iy - cy) * c) / b
        rho = np.sqrt(u * u + v * v)
        values = _profile(rho, profile=profile, value=value, edge=edge, power=power)
        self._combine(window, values, inside=(rho < 1.0) if over else None)

    def lumpy_blob(
        self,
        cx: float,
        cy: float,
        radius: float,
        harmonics: Sequence[tuple[int, float, float]],
        *,
        value: float = 1.0,
        profile: str = "smooth",
        edge: float = 0.4,
        power: float = 1.5,
    ) -> None:
        """Fill an irregular shape whose rim is ``radius * (1 + sum amp cos(k (phi - phase)))``.

        ``harmonics`` holds ``(k, amp, phase_deg)`` triples.
        """
        reach = (
            radius * (1.0 + sum(abs(h[1]) for h in harmonics)) * (1.6 if profile == "glow" else 1)
        )
        win = self._window(cx, cy, reach)
        if win is None:
            return
        window, ix, iy = win
        dx, dy = ix - cx, iy - cy
        phi = np.arctan2(dy, dx)
        rim = np.ones_like(phi)
        for k, amp, phase in harmonics:
            rim += amp * np.cos(k * (phi - math.radians(phase)))
        rho = np.hypot(dx, dy) / (radius * np.maximum(rim, 0.2))
        self._combine(window, _profile(rho, profile=profile, value=value, edge=edge, power=power))

    def stroke(
        self,
        points: np.ndarray,
        widths: np.ndarray | float,
        values: np.ndarray | float = 1.0,
        *,
        round_caps: bool = True,
    ) -> None:
        """Draw a polyline (N, 2) in icon coordinates with per-point width and intensity.

        Widths are in icon units and are *not* multiplied by :attr:`line_width`;
        families apply that factor where it makes sense. Strokes are at least
        one output pixel wide, so small symbols keep their lines.
        """
        pts = np.asarray(points, dtype=float)
        if len(pts) < 2:
            return
        n = len(pts)
        w = np.broadcast_to(np.asarray(widths, dtype=float), (n,))
        vals = np.clip(np.broadcast_to(np.asarray(values, dtype=float), (n,)), 0.0, 1.0)
        px = self.to_pixels(pts)
        half = np.maximum([self.pixel_length(x) / 2.0 for x in w], self.supersample / 2.0)
        tangent = np.gradient(px, axis=0)
        norm = np.linalg.norm(tangent, axis=1, keepdims=True)
        tangent = tangent / np.where(norm > 0, norm, 1.0)
        normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
        left = px + normal * half[:, None]
        right = px - normal * half[:, None]
        layer = Image.new("L", (self.n, self.n), 0)
        draw = ImageDraw.Draw(layer)
        for i in range(n - 1):
            fill = round(255 * 0.5 * (vals[i] + vals[i + 1]))
            quad = [tuple(left[i]), tuple(left[i + 1]), tuple(right[i + 1]), tuple(right[i])]
            draw.polygon(quad, fill=fill)
        if round_caps:
            for i in (0, n - 1):
                r = half[i]
                x, y = px[i]
                draw.ellipse((x - r, y - r, x + r, y + r), fill=round(255 * vals[i]))
        arr = np.asarray(layer, dtype=np.float32) / 255.0
        np.maximum(self.data, arr, out=self.data)

    # -- output ------------------------------------------------------------

    def to_uint8(self) -> np.ndarray:
        """Block-average to the output size; return uint8 (size, size, 3)."""
        ss = self.supersample
        img = self.data.reshape(self.size, ss, self.size, ss).mean(axis=(1, 3))
        img = np.clip(img * self.brightness, 0.0, 1.0)
        grey = np.round(img * 255.0).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)


def _profile(
    rho: np.ndarray, *, profile: str, value: float, edge: float, power: float
) -> np.ndarray:
    inside = rho < 1.0
    if profile == "smooth":
        core = edge + (1.0 - edge) * np.clip(1.0 - rho, 0.0, 1.0) ** power
        return np.where(inside, value * core, 0.0)
    if profile == "flat":
        return np.where(inside, value, 0.0)
    if profile == "glow":
        return np.where(rho < 1.6, value * np.exp(-2.0 * rho * rho), 0.0)
    msg = f"unknown profile {profile!r}; known: flat, glow, smooth"
    raise ValueError(msg)
