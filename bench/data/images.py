"""Decoding any image file into 8-bit RGB the same way everywhere (validation scan, pre-resized cache, loader).

fastai's `load_image` ends in `Image.convert("RGB")`, which clips 16-bit greyscale to 255 (a near-white image) and
turns transparent pixels into whatever colour hides under the alpha channel; `to_rgb` fixes both.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

BACKGROUND = (255, 255, 255)  # transparent pixels are composited on white, as viewers show them


def to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB: 16/32-bit integer and float greyscale rescaled, alpha composited, CMYK and
    palette converted by PIL."""
    if im.mode.startswith("I;16") or im.mode == "I":
        a = np.asarray(im, dtype=np.float64)
        # 16-bit sources use 0..65535; 32-bit "I" images from 16-bit PNGs do too
        im = Image.fromarray(np.clip(np.round(a / 257.0), 0, 255).astype(np.uint8), mode="L")
    elif im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        scale = 255.0 if np.nanmax(a, initial=0.0) <= 1.0 else 1.0
        im = Image.fromarray(np.clip(np.nan_to_num(a * scale), 0, 255).astype(np.uint8), mode="L")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        im = Image.alpha_composite(bg, rgba)
    return im if im.mode == "RGB" else im.convert("RGB")


def open_rgb(path: str | Path, min_short: int | None = None) -> Image.Image:
    """Open, fully decode, apply the EXIF orientation and convert to RGB. With `min_short`, a JPEG is decoded at a
    reduced scale whose shorter side stays >= min_short: much faster when the image is about to be shrunk."""
    with Image.open(path) as im:
        if min_short is not None and im.format == "JPEG":
            w, h = im.size
            s = min(w, h)
            if s > min_short:
                im.draft("RGB", (math.ceil(w * min_short / s), math.ceil(h * min_short / s)))
        im.load()
        im = ImageOps.exif_transpose(im) or im
        return to_rgb(im)


def shrink(im: Image.Image, short_side: int) -> Image.Image:
    """Resize so the shorter side is `short_side`; smaller images are returned unchanged (never upscaled)."""
    w, h = im.size
    s = min(w, h)
    if s <= short_side:
        return im
    size = (max(1, round(w * short_side / s)), max(1, round(h * short_side / s)))
    return im.resize(size, Image.Resampling.LANCZOS)
