"""Box-preserving augmentation on PIL images: mirror, zoom in (random crop) or out (the image on a larger
canvas), aspect jitter, colour jitter. Boxes are (label, left, top, width, height) normalised 0..1; a box
keeps its clipped part when at least MIN_VISIBLE of it stays in view, and is dropped otherwise."""

from __future__ import annotations

import math
import random

from PIL import Image, ImageEnhance

MIN_VISIBLE = 0.45


def _clip(boxes, x0: float, y0: float, x1: float, y1: float):
    """Boxes in the window (x0, y0, x1, y1) of the old unit square, re-expressed in the window's 0..1."""
    out, sx, sy = [], x1 - x0, y1 - y0
    for label, left, top, w, h in boxes:
        l, t = max(left, x0), max(top, y0)
        r, b = min(left + w, x1), min(top + h, y1)
        if r <= l or b <= t or (r - l) * (b - t) < MIN_VISIBLE * w * h:
            continue
        out.append((label, (l - x0) / sx, (t - y0) / sy, (r - l) / sx, (b - t) / sy))
    return out


def augment(image: Image.Image, boxes, rng: random.Random, fill=(124, 116, 104)):
    """One random view of (image, boxes)."""
    boxes = list(boxes)
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        boxes = [(lab, 1.0 - l - w, t, w, h) for lab, l, t, w, h in boxes]
    width, height = image.size
    mode = rng.random()
    if mode < 0.45:  # zoom in: a window covering 55-100% of each side, aspect jittered
        sw = rng.uniform(0.55, 1.0)
        sh = min(1.0, max(0.45, sw * rng.uniform(0.8, 1.25)))
        x0, y0 = rng.uniform(0, 1 - sw), rng.uniform(0, 1 - sh)
        kept = _clip(boxes, x0, y0, x0 + sw, y0 + sh)
        if kept or not boxes:
            image = image.crop(
                (round(x0 * width), round(y0 * height), round((x0 + sw) * width), round((y0 + sh) * height))
            )
            boxes = kept
    elif mode < 0.8:  # zoom out: the image on a canvas 1.1-2.2 times as large (smaller objects)
        k = math.exp(rng.uniform(math.log(1.1), math.log(2.2)))
        cw, ch = round(width * k), round(height * k * rng.uniform(0.9, 1.1))
        ch = max(ch, height)
        ox, oy = rng.randint(0, cw - width), rng.randint(0, ch - height)
        canvas = Image.new("RGB", (cw, ch), fill)
        canvas.paste(image, (ox, oy))
        image = canvas
        boxes = [
            (lab, (l * width + ox) / cw, (t * height + oy) / ch, w * width / cw, h * height / ch)
            for lab, l, t, w, h in boxes
        ]
    image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.7, 1.3))
    image = ImageEnhance.Contrast(image).enhance(rng.uniform(0.7, 1.3))
    image = ImageEnhance.Color(image).enhance(rng.uniform(0.6, 1.4))
    return image, boxes
