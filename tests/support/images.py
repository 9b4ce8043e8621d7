"""Test images, as bytes: real photos (scikit-image's bundled ones) and every bad or odd case the image
checks must handle. Deterministic; expensive ones are cached, so tests may call these freely.

    photo_jpeg(i), photo_png(i), photo_image(i)   distinct real photos for i = 0, 1, 2, ... (thousands)
    cmyk_jpeg, grey_jpeg, palette_png, rgba_png, la_png, grey16_png, exif_rotated_jpeg, animated_gif,
    animated_png, animated_webp, mpo, webp, bmp, tiff, ico                   odd but acceptable
    truncated_jpeg, corrupt_bytes, not_an_image, unsupported_format, tiny_image, huge_dimensions_png,
    decompression_bomb_png, oversized_jpeg, empty                            refused

Only the photos bundled with scikit-image are used (no downloads); files are read with Pillow from
skimage's data directory, falling back to the `skimage.data` loaders.
"""

from __future__ import annotations

import functools
import io
import os
import struct
import zlib

from PIL import Image

# Colour photos bundled with scikit-image (no download needed).
PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "ihc.png",
    "hubble_deep_field.jpg",
)
GREY_PHOTO = "camera.png"

# Crop placements per photo and zoom level in photo_image(index): 16 x 16 offsets x 2 mirrorings.
_STEPS = 16

# EXIF orientation -> the transpose that turns the upright image into the stored one (the inverse of
# what a viewer applies).
_TO_STORED = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}
MARKER = (255, 0, 0)  # exif_rotated_jpeg and animated_* paint the top-left corner of the upright/first image


@functools.cache
def _source(name: str) -> Image.Image:
    import skimage.data

    path = os.path.join(getattr(skimage.data, "data_dir", ""), name)
    if os.path.exists(path):
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB") if name != GREY_PHOTO else im.convert("L")
    loaders = {
        "astronaut.png": skimage.data.astronaut,
        "chelsea.png": skimage.data.chelsea,
        "coffee.png": skimage.data.coffee,
        "rocket.jpg": skimage.data.rocket,
        "motorcycle_left.png": lambda: skimage.data.stereo_motorcycle()[0],
        "ihc.png": skimage.data.immunohistochemistry,
        "hubble_deep_field.jpg": skimage.data.hubble_deep_field,
        GREY_PHOTO: skimage.data.camera,
    }
    return Image.fromarray(loaders[name]())


@functools.lru_cache(maxsize=64)
def _scaled(name: str, size: tuple[int, int], zoom: int = 0) -> Image.Image:
    """The photo resized (aspect kept) to cover `size` enlarged by 15% per zoom step, plus a margin
    for the offsets."""
    im = _source(name)
    need_w = round(size[0] * (1 + 0.15 * zoom)) + 2 * _STEPS
    need_h = round(size[1] * (1 + 0.15 * zoom)) + 2 * _STEPS
    scale = max(need_w / im.width, need_h / im.height)
    return im.resize(
        (max(need_w, round(im.width * scale)), max(need_h, round(im.height * scale))),
        Image.Resampling.BILINEAR,
    )


@functools.lru_cache(maxsize=512)
def photo_image(index: int = 0, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A real-photo RGB image of exactly `size`; different indices give different pixels.

    index -> photo (index % 7), then a crop placement (16 x 16 offsets x mirror = 512 per photo and zoom
    level), then a zoom level: every index gives a different picture, with no upper bound."""
    if index < 0:
        raise ValueError("index must be >= 0")
    name = PHOTOS[index % len(PHOTOS)]
    k = index // len(PHOTOS)
    placements = _STEPS * _STEPS * 2
    zoom, k = divmod(k, placements)
    base = _scaled(name, size, zoom)
    dx, dy, flip = k % _STEPS, (k // _STEPS) % _STEPS, k // (_STEPS * _STEPS)
    spare_w, spare_h = base.width - size[0], base.height - size[1]
    x = dx * spare_w // (_STEPS - 1)
    y = dy * spare_h // (_STEPS - 1)
    crop = base.crop((x, y, x + size[0], y + size[1]))
    if flip:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return crop


def _save(im: Image.Image, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **params)
    return out.getvalue()


@functools.lru_cache(maxsize=1024)
def photo_jpeg(index: int = 0, size: tuple[int, int] = (640, 480), quality: int = 90) -> bytes:
    """A real-photo RGB JPEG (YCbCr, no EXIF): the fast path."""
    return _save(photo_image(index, size), "JPEG", quality=quality)


@functools.lru_cache(maxsize=256)
def photo_png(index: int = 0, size: tuple[int, int] = (320, 240)) -> bytes:
    """A real-photo 8-bit RGB PNG."""
    return _save(photo_image(index, size), "PNG", compress_level=1)


@functools.cache
def cmyk_jpeg(size: tuple[int, int] = (320, 240)) -> bytes:
    """An Adobe CMYK JPEG (Pillow writes inverted CMYK with an Adobe marker, like Photoshop)."""
    return _save(photo_image(1, size).convert("CMYK"), "JPEG", quality=90)


@functools.cache
def grey_jpeg(size: tuple[int, int] = (320, 240)) -> bytes:
    """A single-channel (L) JPEG of a real photo."""
    return _save(_source(GREY_PHOTO).resize(size), "JPEG", quality=90)


@functools.cache
def palette_png(size: tuple[int, int] = (320, 240), transparent: bool = False) -> bytes:
    """A palette (P) PNG; with `transparent`, palette index of the top-left pixel is transparent."""
    im = photo_image(2, size).quantize(colors=64)
    if transparent:
        return _save(im, "PNG", transparency=im.getpixel((0, 0)))
    return _save(im, "PNG")


@functools.cache
def rgba_png(size: tuple[int, int] = (320, 240)) -> bytes:
    """RGBA PNG: the left half fully transparent (so it must come out white), the right half opaque."""
    im = photo_image(3, size).convert("RGBA")
    alpha = Image.new("L", size, 255)
    alpha.paste(0, (0, 0, size[0] // 2, size[1]))
    im.putalpha(alpha)
    return _save(im, "PNG")


@functools.cache
def la_png(size: tuple[int, int] = (200, 150)) -> bytes:
    """Grey + alpha PNG, the top half transparent."""
    im = _source(GREY_PHOTO).resize(size).convert("LA")
    alpha = Image.new("L", size, 255)
    alpha.paste(0, (0, 0, size[0], size[1] // 2))
    im.putalpha(alpha)
    return _save(im, "PNG")


@functools.cache
def grey16_image(size: tuple[int, int] = (256, 192)) -> Image.Image:
    """The 8-bit grey photo that grey16_png() holds, as 16-bit (v * 257): scaling back must give this."""
    return _source(GREY_PHOTO).resize(size)


@functools.cache
def grey16_png(size: tuple[int, int] = (256, 192)) -> bytes:
    """A 16-bit greyscale PNG (Pillow mode I;16) whose values use the whole 0..65535 range."""
    grey = grey16_image(size)
    raw = bytearray()
    for v in grey.tobytes():
        raw += struct.pack(">H", v * 257)
    return _png_bytes(
        size[0],
        size[1],
        bit_depth=16,
        colour_type=0,
        rows=(bytes(raw[y * size[0] * 2 : (y + 1) * size[0] * 2]) for y in range(size[1])),
    )


def exif_upright_size(orientation: int, size: tuple[int, int] = (640, 480)) -> tuple[int, int]:
    """The upright (width, height) of exif_rotated_jpeg(orientation, size): `size` is the upright size."""
    return size


def exif_stored_size(orientation: int, size: tuple[int, int] = (640, 480)) -> tuple[int, int]:
    """The (width, height) in the JPEG header of exif_rotated_jpeg(orientation, size)."""
    return (size[1], size[0]) if orientation in (5, 6, 7, 8) else size


@functools.cache
def exif_upright_image(size: tuple[int, int] = (640, 480)) -> Image.Image:
    """What exif_rotated_jpeg(o, size) must look like once its orientation is applied: a photo with a
    red MARKER block in the top-left corner."""
    im = photo_image(4, size).copy()
    im.paste(MARKER, (0, 0, size[0] // 8, size[1] // 8))
    return im


@functools.cache
def exif_rotated_jpeg(
    orientation: int = 6, size: tuple[int, int] = (640, 480), camera: tuple[str, str] | None = None
) -> bytes:
    """A JPEG whose stored pixels, shown with EXIF `orientation`, are exif_upright_image(size), optionally
    with an EXIF camera (make, model).

    Its header size is exif_stored_size(orientation, size); upright it is `size`."""
    upright = exif_upright_image(size)
    stored = upright.transpose(_TO_STORED[orientation]) if orientation in _TO_STORED else upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    if camera:
        exif[0x010F], exif[0x0110] = camera
    return _save(stored, "JPEG", quality=90, exif=exif.tobytes())


def _frames(n: int, size: tuple[int, int]) -> list[Image.Image]:
    frames = [photo_image(10 + i, size).copy() for i in range(n)]
    frames[0].paste(MARKER, (0, 0, size[0] // 4, size[1] // 4))
    return frames


@functools.cache
def animated_gif(frames: int = 3, size: tuple[int, int] = (160, 120)) -> bytes:
    """An animated GIF; only the first frame has the red MARKER in its top-left corner."""
    ims = [f.quantize(colors=128) for f in _frames(frames, size)]
    return _save(ims[0], "GIF", save_all=True, append_images=ims[1:], duration=100, loop=0)


@functools.cache
def animated_png(frames: int = 3, size: tuple[int, int] = (160, 120)) -> bytes:
    """An APNG; only the first frame has the red MARKER."""
    ims = _frames(frames, size)
    return _save(ims[0], "PNG", save_all=True, append_images=ims[1:], duration=100, compress_level=1)


@functools.cache
def animated_webp(frames: int = 3, size: tuple[int, int] = (160, 120)) -> bytes:
    """An animated WebP; only the first frame has the red MARKER."""
    ims = _frames(frames, size)
    return _save(ims[0], "WEBP", save_all=True, append_images=ims[1:], duration=100, lossless=True)


@functools.cache
def mpo(frames: int = 2, size: tuple[int, int] = (320, 240)) -> bytes:
    """A multi-picture (MPO) file, as stereo cameras write; the first picture has the MARKER."""
    ims = _frames(frames, size)
    return _save(ims[0], "MPO", save_all=True, append_images=ims[1:], quality=90)


@functools.cache
def webp(size: tuple[int, int] = (320, 240), lossless: bool = False) -> bytes:
    return _save(photo_image(5, size), "WEBP", quality=85, lossless=lossless)


@functools.cache
def bmp(size: tuple[int, int] = (200, 150)) -> bytes:
    return _save(photo_image(6, size), "BMP")


@functools.cache
def tiff(size: tuple[int, int] = (200, 150), compression: str | None = "tiff_deflate") -> bytes:
    return _save(photo_image(7, size), "TIFF", compression=compression)


@functools.cache
def ico(side: int = 64) -> bytes:
    return _save(photo_image(8, (side, side)), "ICO", sizes=[(side, side)])


@functools.cache
def truncated_jpeg() -> bytes:
    """A real-photo JPEG cut off in the middle of its scan."""
    data = photo_jpeg(0)
    return data[: len(data) // 2]


@functools.cache
def corrupt_bytes() -> bytes:
    """A PNG whose header is valid but whose compressed pixel data is garbage (the decode must fail)."""
    width, height = 120, 90
    raw = (b"\x00" + b"\x80" * (width * 3)) * height
    good = zlib.compress(raw)
    bad = good[:2] + bytes((b ^ 0x5A) for b in good[2:])  # keep the zlib header, scramble the stream
    return _png(width, height, 8, 2, bad)


def not_an_image() -> bytes:
    """A PDF header: a document, not an image."""
    return b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< >>\n%%EOF\n"


def empty() -> bytes:
    return b""


@functools.cache
def unsupported_format() -> bytes:
    """A PPM: Pillow reads it, Custom Vision does not accept it."""
    return _save(photo_image(9, (120, 90)), "PPM")


@functools.cache
def tiny_image(side: int = 40, fmt: str = "PNG") -> bytes:
    """A real-photo image `side` pixels square (below MIN_SIDE = 50 by default)."""
    return _save(photo_image(0, (side, side)), fmt)


@functools.cache
def huge_dimensions_png(width: int = 10241, height: int = 60) -> bytes:
    """A small file declaring one side above MAX_SIDE = 10240 (pixel count well within Pillow's limit)."""
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    return _png(width, height, 1, 0, zlib.compress(row * height, 9))


@functools.cache
def decompression_bomb_png(side: int = 10000) -> bytes:
    """A genuinely decodable all-black 1-bit PNG of side x side pixels in a few KB.

    10000 x 10000 = 1e8 pixels: over Pillow's MAX_IMAGE_PIXELS (89,478,485, where Pillow warns) and
    under twice that (where Pillow itself raises), with both sides within MAX_SIDE: only the
    decompression-bomb guard can refuse it. Built row by row, never holding the raw pixels."""
    row = b"\x00" * (1 + (side + 7) // 8)
    comp = zlib.compressobj(9)
    chunks = [comp.compress(row * 500) for _ in range(side // 500)]
    chunks.append(comp.compress(row * (side % 500)))
    chunks.append(comp.flush())
    return _png(side, side, 1, 0, b"".join(chunks))


@functools.cache
def oversized_jpeg(n_bytes: int = 6 * 1024 * 1024 + 1) -> bytes:
    """A valid real-photo JPEG of at least `n_bytes`, padded with COM segments after SOI."""
    data = photo_jpeg(0)
    need = max(0, n_bytes - len(data))
    segments = []
    while need > 0:
        payload = min(65533, max(need - 4, 1))
        segments.append(b"\xff\xfe" + struct.pack(">H", payload + 2) + b"\x20" * payload)
        need -= payload + 4
    return data[:2] + b"".join(segments) + data[2:]


# -- raw PNG writing (for shapes Pillow would take too long or too much memory to produce) ----------


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(width: int, height: int, bit_depth: int, colour_type: int, idat: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _png_bytes(width: int, height: int, *, bit_depth: int, colour_type: int, rows) -> bytes:
    return _png(width, height, bit_depth, colour_type, zlib.compress(b"".join(b"\x00" + r for r in rows), 6))
