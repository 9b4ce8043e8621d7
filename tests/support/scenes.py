"""Detection scenes with exact boxes: real object photos (crops of scikit-image's bundled photos: the cat
from chelsea, the coffee cup, the rocket, the astronaut's face, ...) pasted onto real backgrounds (other
bundled photos and textures) at known positions and scales. Deterministic by seed; no downloads.

    scene(seed, tags, size)            -> Scene(image, boxes, key); boxes: (tag index, l, t, w, h) in 0..1
    dataset(tags, per_tag, seed, size) -> [Scene]: per_tag scenes per tag, each holding at least one of it
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from tests.support.images import _source

# name -> (photo, crop box in the photo's pixels)
OBJECTS = {
    "cat": ("chelsea.png", (90, 10, 400, 290)),
    "cup": ("coffee.png", (70, 10, 540, 390)),
    "rocket": ("rocket.jpg", (275, 115, 370, 418)),
    "face": ("astronaut.png", (165, 15, 305, 195)),
    "motorcycle": ("motorcycle_left.png", (60, 110, 700, 460)),
    "shuttle": ("astronaut.png", (350, 0, 470, 280)),
}
DEFAULT_TAGS = ("cat", "cup", "face")
# real backgrounds that show none of the objects
BACKGROUNDS = (
    "grass.png",
    "gravel.png",
    "brick.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "retina.jpg",
    "moon.png",
    "coins.png",
    "color.png",
    "motorcycle_right.png",
)


@dataclass
class Scene:
    image: Image.Image
    boxes: list[tuple[int, float, float, float, float]]
    key: str


@functools.cache
def _photo(name: str) -> Image.Image:
    try:
        return _source(name).convert("RGB")
    except KeyError:  # a texture without a loader fallback: read it through skimage.data by name
        import skimage.data

        return Image.fromarray(getattr(skimage.data, name.split(".")[0])()).convert("RGB")


@functools.cache
def object_photo(name: str) -> Image.Image:
    photo, box = OBJECTS[name]
    return _photo(photo).crop(box)


def _background(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    im = _photo(rng.choice(BACKGROUNDS))
    side = rng.uniform(0.4, 1.0) * min(im.size)
    aspect = size[0] / size[1]
    w, h = (side, side / aspect) if aspect >= 1 else (side * aspect, side)
    x, y = rng.uniform(0, im.width - w), rng.uniform(0, im.height - h)
    out = im.resize(size, Image.Resampling.BILINEAR, box=(x, y, x + w, y + h))
    if rng.random() < 0.5:
        out = ImageOps.mirror(out)
    return ImageEnhance.Brightness(out).enhance(rng.uniform(0.7, 1.2))


def _overlap(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def _jittered(name: str, rng: random.Random, jitter: float) -> Image.Image:
    """The object's crop with each side moved by up to `jitter` of its size (in or out): a different
    framing of the same object every time."""
    photo, (x0, y0, x1, y1) = OBJECTS[name]
    im = _photo(photo)
    w, h = x1 - x0, y1 - y0
    box = (
        max(0, x0 + rng.uniform(-jitter, jitter) * w),
        max(0, y0 + rng.uniform(-jitter, jitter) * h),
        min(im.width, x1 + rng.uniform(-jitter, jitter) * w),
        min(im.height, y1 + rng.uniform(-jitter, jitter) * h),
    )
    return im.crop(tuple(round(v) for v in box))


def _feathered_mask(w: int, h: int) -> Image.Image:
    """Opaque inside, fading over the outermost 2 pixels: no hard rectangle edge to learn."""
    mask = Image.new("L", (w, h), 0)
    mask.paste(255, (1, 1, w - 1, h - 1))
    return mask.filter(ImageFilter.GaussianBlur(1))


def scene(
    seed: int,
    tags=DEFAULT_TAGS,
    size: tuple[int, int] = (320, 240),
    first: int | None = None,
    objects: tuple[int, int] = (1, 3),
    scale: tuple[float, float] = (0.18, 0.5),
    distractors: int = 1,
    jitter: float = 0.08,
) -> Scene:
    """One scene: a background and between objects[0] and objects[1] pasted objects (the first of tag
    index `first` when given, the others drawn from `tags`) plus up to `distractors` unlabelled objects
    of other kinds (OBJECTS not in `tags`); each a freshly framed crop (`jitter`) with its longer side
    `scale` x the scene's shorter side, mirrored, re-lit, feathered at the edges, overlapping the others
    by IoU <= 0.1. Boxes are the pasted rectangles."""
    rng = random.Random(f"scene:{seed}:{','.join(tags)}:{size}:{first}")
    canvas = _background(rng, size)
    boxes, placed = [], []
    count = rng.randint(*objects)
    others = [name for name in OBJECTS if name not in tags]
    extra = rng.randint(0, distractors) if others else 0
    for n in range(count + extra):
        if n < count:
            index = first if (n == 0 and first is not None) else rng.randrange(len(tags))
            obj = _jittered(tags[index], rng, jitter)
        else:
            index = None
            obj = _jittered(rng.choice(others), rng, jitter)
        for _ in range(30):
            longer = rng.uniform(*scale) * min(size)
            stretch = rng.uniform(0.9, 1.1)
            k = longer / max(obj.size)
            w = max(8, round(obj.width * k * stretch))
            h = max(8, round(obj.height * k / stretch))
            if w >= size[0] or h >= size[1]:
                continue
            x, y = rng.randint(0, size[0] - w), rng.randint(0, size[1] - h)
            rect = (x, y, x + w, y + h)
            if all(_overlap(rect, other) <= 0.1 for other in placed):
                break
        else:
            continue
        piece = obj.resize((w, h), Image.Resampling.BILINEAR)
        if rng.random() < 0.5:
            piece = ImageOps.mirror(piece)
        piece = ImageEnhance.Brightness(piece).enhance(rng.uniform(0.8, 1.2))
        piece = ImageEnhance.Color(piece).enhance(rng.uniform(0.8, 1.2))
        canvas.paste(piece, (x, y), _feathered_mask(w, h))
        placed.append(rect)
        if index is not None:
            boxes.append((index, x / size[0], y / size[1], w / size[0], h / size[1]))
    return Scene(image=canvas, boxes=boxes, key=f"scene-{seed}-{first}")


def dataset(
    tags=DEFAULT_TAGS, per_tag: int = 15, seed: int = 0, size: tuple[int, int] = (320, 240), **options
) -> list[Scene]:
    """per_tag scenes for each tag, each with at least one object of that tag (others may join);
    `options` go to scene()."""
    out = []
    for index in range(len(tags)):
        for i in range(per_tag):
            s = scene(seed * 100003 + index * 1009 + i, tags, size, first=index, **options)
            s.key = f"{tags[index]}-{seed}-{i}"
            out.append(s)
    return out
