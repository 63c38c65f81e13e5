"""load_drawing: a user's own sketch turned into the symbol style."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from galaxalign_astro.symbols import load_drawing


def _sketch(width: int = 300, height: int = 200, *, dark_on_light: bool = True) -> Image.Image:
    """A ring with a bar, drawn off-centre, as a person might sketch it."""
    bg, ink = (255, 0) if dark_on_light else (0, 255)
    im = Image.new("L", (width, height), bg)
    draw = ImageDraw.Draw(im)
    w = max(1, width // 60)
    draw.ellipse((0.45 * width, 0.2 * height, 0.85 * width, 0.8 * height), outline=ink, width=w)
    draw.line((0.5 * width, 0.5 * height, 0.8 * width, 0.5 * height), fill=ink, width=w)
    return im


def _centroid(img: np.ndarray) -> np.ndarray:
    grey = img[..., 0].astype(float)
    y, x = np.mgrid[: grey.shape[0], : grey.shape[1]]
    return np.array([(grey * x).sum(), (grey * y).sum()]) / grey.sum()


def test_dark_on_light_and_light_on_dark_give_the_same_symbol(tmp_path):
    dark = tmp_path / "dark.png"
    light = tmp_path / "light.png"
    _sketch(dark_on_light=True).save(dark)
    _sketch(dark_on_light=False).save(light)
    a = load_drawing(dark, size=64)
    b = load_drawing(str(light), size=64)
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 2
    # light strokes on a black background
    assert a[0].max() == 0 and a[:, 0].max() == 0
    assert a.max() > 200


def test_drawing_is_cropped_centred_and_fills_like_an_icon(tmp_path):
    path = tmp_path / "sketch.png"
    _sketch().save(path)
    img = load_drawing(path, size=100)
    lit = img[..., 0] > 25
    rows, cols = np.flatnonzero(lit.any(axis=1)), np.flatnonzero(lit.any(axis=0))
    extent = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1
    assert 80 <= extent <= 92  # the longer side fills about 86% of the symbol
    assert np.all(np.abs(_centroid(img) - 49.5) < 6)


def test_rgba_with_transparent_background(tmp_path):
    ink = np.asarray(_sketch(dark_on_light=True))
    rgba = np.zeros((*ink.shape, 4), dtype=np.uint8)  # black ink, alpha marks the strokes
    rgba[..., 3] = 255 - ink
    path = tmp_path / "transparent.png"
    Image.fromarray(rgba).save(path)
    from_rgba = load_drawing(path, size=64)
    reference = load_drawing(np.asarray(_sketch()), size=64)
    assert np.abs(from_rgba.astype(int) - reference.astype(int)).max() <= 2
    # the same through the array interface
    assert np.abs(load_drawing(rgba, size=64).astype(int) - reference.astype(int)).max() <= 2


def test_rgb_jpeg_and_float_arrays(tmp_path):
    reference = load_drawing(np.asarray(_sketch()), size=64).astype(int)
    rgb = _sketch().convert("RGB")
    path = tmp_path / "sketch.jpg"
    rgb.save(path, quality=90)
    jpeg = load_drawing(path, size=64).astype(int)
    assert np.abs(jpeg - reference).mean() < 3
    as_float = np.asarray(rgb, dtype=np.float32) / 255.0
    assert np.abs(load_drawing(as_float, size=64).astype(int) - reference).max() <= 2
    as_float_255 = np.asarray(rgb, dtype=np.float64)[..., :1]
    assert np.abs(load_drawing(as_float_255, size=64).astype(int) - reference).max() <= 2


def test_tiny_and_huge_images(tmp_path):
    tiny = np.zeros((5, 5), dtype=np.uint8)
    tiny[2, 2] = 255
    out = load_drawing(tiny, size=32)
    assert out.shape == (32, 32, 3)
    assert out.max() > 100
    assert np.all(np.abs(_centroid(out) - 15.5) < 2)
    path = tmp_path / "huge.png"
    _sketch(4000, 3000).save(path)
    big = load_drawing(path, size=64)
    small = load_drawing(np.asarray(_sketch(400, 300)), size=64)
    assert big.shape == (64, 64, 3)
    assert np.abs(big.astype(int) - small.astype(int)).mean() < 8


def test_blank_unreadable_and_missing_files_raise(tmp_path):
    blank = tmp_path / "blank.png"
    Image.new("RGB", (50, 40), (250, 250, 250)).save(blank)
    with pytest.raises(ValueError, match=r"blank.png is blank"):
        load_drawing(blank, size=32)
    with pytest.raises(ValueError, match=r"<array> is blank"):
        load_drawing(np.zeros((10, 10)), size=32)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ValueError, match=r"cannot read drawing .*notes.png"):
        load_drawing(text, size=32)
    with pytest.raises(FileNotFoundError, match=r"missing.png"):
        load_drawing(tmp_path / "missing.png", size=32)
    with pytest.raises(ValueError, match="shape"):
        load_drawing(np.zeros((4, 4, 2)), size=32)
    with pytest.raises(ValueError, match="NaN"):
        load_drawing(np.full((4, 4), np.nan), size=32)
