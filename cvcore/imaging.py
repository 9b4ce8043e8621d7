"""Image checks and normalisation: what every uploaded, dropped, imported or predicted image goes through.

`check_image` judges one image and returns what to store; `decode_rgb` applies the same checks and
returns the upright RGB pixels (prediction path, trainer). Failures raise `ImageError`, whose `status`
is one of Custom Vision's ImageCreateStatus strings and whose `message` says what to fix.

Order of checks (cheapest first, nothing decoded until the header has been judged):

    1. byte size            -> ErrorImageSize     (before anything is parsed)
    2. format (header)      -> ErrorImageFormat   (empty, not an image, or a format we do not accept)
    3. pixel count          -> ErrorImageDimensions (Pillow's decompression-bomb limit, warning level)
    4. sides                -> ErrorImageDimensions (MIN_SIDE..MAX_SIDE)
    5. full decode          -> ErrorImageFormat   (truncated or corrupt pixel data; a stored-as-is JPEG
                                                   is decoded at a reduced DCT scale, which still
                                                   entropy-decodes every block of the scan)

Pillow's decompression-bomb guard stays on: the header is identified without `Image.open`'s warning
(so no process-wide warning filter is touched) and any image over `Image.MAX_IMAGE_PIXELS` is refused
here, which is exactly "DecompressionBombWarning treated as an error", locally and thread-safely.

Normalisation: EXIF orientation applied; CMYK, palette, grey, 16/32-bit grey converted; alpha composited
on white; animations reduced to their first frame. Output is always RGB. A plain RGB JPEG (or a
single-frame RGB PNG without transparency) with no orientation to apply is stored byte for byte;
anything else is re-encoded (JPEG quality 95 for JPEG/MPO sources, PNG at compress level 1 otherwise).

Pillow + stdlib only: no numpy, no torch.
"""

from __future__ import annotations

import hashlib
import io
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

from PIL import Image, ImageFile

__all__ = [
    "ACCEPTED_FORMATS",
    "MAX_PREDICTION_IMAGE_BYTES",
    "MAX_SIDE",
    "MAX_TRAINING_IMAGE_BYTES",
    "MIN_SIDE",
    "THUMBNAIL_SIDE",
    "CheckedImage",
    "ImageError",
    "ImageStatus",
    "check_image",
    "decode_rgb",
    "max_pixels",
]

MAX_TRAINING_IMAGE_BYTES = 6 * 1024 * 1024
MAX_PREDICTION_IMAGE_BYTES = 4 * 1024 * 1024
MIN_SIDE = 50
MAX_SIDE = 10240
THUMBNAIL_SIDE = 256
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF", "ICO", "MPO"})

JPEG_QUALITY = 95  # re-encoded JPEG/MPO sources
THUMBNAIL_QUALITY = 85
PNG_COMPRESS_LEVEL = 1  # re-encoded non-JPEG sources: fast, still lossless
WHITE = (255, 255, 255)

# Pillow's own default, used should anything in the process have switched the guard off.
_DEFAULT_MAX_IMAGE_PIXELS = int(1024 * 1024 * 1024 // 4 // 3)
_EXIF_ORIENTATION = 0x0112
_EXIF_MAKE, _EXIF_MODEL = 0x010F, 0x0110
CAMERA_CHARS = 64
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})


class ImageStatus(StrEnum):
    """Custom Vision's ImageCreateStatus values."""

    OK = "OK"
    OK_DUPLICATE = "OKDuplicate"
    ERROR_SOURCE = "ErrorSource"
    ERROR_IMAGE_FORMAT = "ErrorImageFormat"
    ERROR_IMAGE_SIZE = "ErrorImageSize"
    ERROR_STORAGE = "ErrorStorage"
    ERROR_LIMIT_EXCEED = "ErrorLimitExceed"
    ERROR_TAG_LIMIT_EXCEED = "ErrorTagLimitExceed"
    ERROR_REGION_LIMIT_EXCEED = "ErrorRegionLimitExceed"
    ERROR_UNKNOWN = "ErrorUnknown"
    ERROR_NEGATIVE_AND_REGULAR_TAG_ON_SAME_IMAGE = "ErrorNegativeAndRegularTagOnSameImage"
    ERROR_IMAGE_DIMENSIONS = "ErrorImageDimensions"
    ERROR_INVALID_TAG = "ErrorInvalidTag"


class ImageError(Exception):
    """An image was refused. `status` is the ImageCreateStatus, `message` says what was wrong."""

    def __init__(self, status: ImageStatus, message: str):
        super().__init__(f"{status}: {message}")
        self.status = ImageStatus(status)
        self.message = message


@dataclass(frozen=True)
class CheckedImage:
    """An accepted image, ready to store."""

    data: bytes  # what to store: the upload itself on the fast path, else the normalised re-encode
    content_type: str  # "image/jpeg" or "image/png"
    width: int  # of the upright image
    height: int
    sha256: str  # hex digest of the ORIGINAL uploaded bytes (exact-duplicate detection)
    thumbnail: bytes | None  # JPEG, longest side <= THUMBNAIL_SIDE
    source_format: str  # Pillow's format name of the upload: "JPEG", "PNG", ...
    notes: tuple[str, ...] = ()  # what normalisation did, for people and logs
    camera: str = (
        ""  # EXIF "Make Model" of the upload ("" when absent): kept even where the re-encode drops EXIF
    )


def max_pixels() -> int:
    """The pixel count above which an image is refused as a decompression bomb."""
    return Image.MAX_IMAGE_PIXELS or _DEFAULT_MAX_IMAGE_PIXELS


def check_image(
    data: bytes, *, max_bytes: int = MAX_TRAINING_IMAGE_BYTES, make_thumbnail: bool = True
) -> CheckedImage:
    """Judge one uploaded image; return what to store, or raise `ImageError`."""
    data = _as_bytes(data)
    opened = _open(data, max_bytes)
    sha = hashlib.sha256(data).hexdigest()
    im, fmt, notes = opened.image, opened.format, list(opened.notes)
    width, height = opened.upright_size
    thumb_size = _fit(width, height, THUMBNAIL_SIDE)

    with _decoding(fmt):
        if fmt == "JPEG" and im.mode == "RGB" and opened.orientation == 1:
            # Fast path: store the upload as is. libjpeg still entropy-decodes every block when it
            # scales with DCT (draft), so truncation and corrupt scans are still caught, at a fraction
            # of the cost of a full-size decode.
            im.draft(None, thumb_size if make_thumbnail else (1, 1))
            _load(im)
            thumbnail = _thumbnail(im, thumb_size) if make_thumbnail else None
            return CheckedImage(data, "image/jpeg", width, height, sha, thumbnail, fmt, (), opened.camera)

        if (
            fmt == "PNG"
            and im.mode == "RGB"
            and opened.orientation == 1
            and opened.frames == 1
            and "transparency" not in im.info
        ):
            _load(im)
            thumbnail = _thumbnail(im, thumb_size) if make_thumbnail else None
            return CheckedImage(data, "image/png", width, height, sha, thumbnail, fmt, (), opened.camera)

        rgb = _normalise(opened, notes)
        out = io.BytesIO()
        if fmt in ("JPEG", "MPO"):
            icc = im.info.get("icc_profile") if im.mode == "RGB" else None
            rgb.save(out, "JPEG", quality=JPEG_QUALITY, **({"icc_profile": icc} if icc else {}))
            content_type = "image/jpeg"
            notes.append(f"re-encoded {fmt} as JPEG quality {JPEG_QUALITY}")
        else:
            rgb.save(out, "PNG", compress_level=PNG_COMPRESS_LEVEL)
            content_type = "image/png"
            notes.append(f"re-encoded {fmt} as PNG")
        thumbnail = _thumbnail(rgb, thumb_size) if make_thumbnail else None
    return CheckedImage(
        out.getvalue(), content_type, rgb.width, rgb.height, sha, thumbnail, fmt, tuple(notes), opened.camera
    )


def decode_rgb(
    data: bytes,
    *,
    max_bytes: int | None = MAX_TRAINING_IMAGE_BYTES,
    draft_size: tuple[int, int] | None = None,
) -> Image.Image:
    """Apply `check_image`'s checks and normalisation; return the upright RGB image.

    `max_bytes=None` skips the byte limit (for bytes this service stored itself: a re-encoded image may
    be larger than the upload it came from). `draft_size` (width, height of the upright image) lets a
    JPEG decode at a reduced DCT scale that is still at least that large: much faster when the caller
    resizes to a small network input anyway. Other formats ignore it.
    """
    opened = _open(_as_bytes(data), max_bytes)
    with _decoding(opened.format):
        if draft_size is not None and opened.format in ("JPEG", "MPO"):
            w, h = draft_size
            if opened.orientation in (5, 6, 7, 8):
                w, h = h, w
            opened.image.draft(None, (w, h))
        return _normalise(opened, [])


# -- internals ------------------------------------------------------------------------------------


@dataclass
class _Opened:
    image: ImageFile.ImageFile  # header parsed, pixels not yet decoded, positioned on frame 0
    format: str
    frames: int
    orientation: int  # 1..8; 1 when absent or invalid
    notes: list[str]
    camera: str = ""  # EXIF "Make Model"

    @property
    def upright_size(self) -> tuple[int, int]:
        w, h = self.image.size
        return (h, w) if self.orientation in (5, 6, 7, 8) else (w, h)


_init_lock = threading.Lock()
_initialised = False


def _plugins() -> list[tuple[str, Callable[..., ImageFile.ImageFile], Callable[[bytes], Any] | None]]:
    """(format, factory, accept) for every registered opener, in Pillow's own probing order."""
    global _initialised
    if not _initialised:
        with _init_lock:
            Image.preinit()
            Image.init()
            _initialised = True
    return [(fmt, *Image.OPEN[fmt]) for fmt in list(Image.ID) if fmt in Image.OPEN]


def _identify(data: bytes) -> tuple[ImageFile.ImageFile, str]:
    """Parse the header with the first accepted plugin that takes it (like `Image.open`, minus its
    bomb warning: `_open` checks the pixel count itself). Plugins for formats we refuse are never run;
    their `accept` test is used only to name the format in the error."""
    prefix = data[:16]
    refused: list[str] = []
    failure: str | None = None
    for fmt, factory, accept in _plugins():
        if accept is None:
            if fmt not in ACCEPTED_FORMATS:
                continue  # formats without a signature are only ever tried when we accept them
        else:
            try:
                verdict = accept(prefix)
            except Exception:  # a plugin's signature test failing means "not this format"
                continue
            if not verdict or isinstance(verdict, str):
                continue
        if fmt not in ACCEPTED_FORMATS:
            refused.append(fmt)
            continue
        with _decoding(fmt):
            try:
                im = factory(io.BytesIO(data), "")
            except (SyntaxError, IndexError, TypeError, struct.error, EOFError) as exc:
                # what Image.open treats as "not this format": let another plugin try
                failure = failure or f"{fmt} header is unreadable: {exc}"
                continue
        return im, im.format or fmt
    accepted = ", ".join(sorted(ACCEPTED_FORMATS - {"MPO"}))
    if failure:
        raise ImageError(ImageStatus.ERROR_IMAGE_FORMAT, f"not a readable image: {failure}")
    if refused:
        raise ImageError(
            ImageStatus.ERROR_IMAGE_FORMAT, f"{refused[0]} images are not accepted; use one of {accepted}"
        )
    raise ImageError(
        ImageStatus.ERROR_IMAGE_FORMAT,
        f"not a recognised image (starts with {data[:8]!r}); use one of {accepted}",
    )


def _as_bytes(data: bytes) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"image data must be bytes, not {type(data).__name__}")


def _check_size(width: int, height: int) -> None:
    limit = max_pixels()
    if width * height > limit:
        raise ImageError(
            ImageStatus.ERROR_IMAGE_DIMENSIONS,
            f"image is {width}x{height} = {width * height} pixels, over the decompression-bomb "
            f"limit of {limit} pixels; refused without decoding",
        )
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise ImageError(
            ImageStatus.ERROR_IMAGE_DIMENSIONS,
            f"image is {width}x{height} pixels; each side must be between {MIN_SIDE} and {MAX_SIDE}",
        )


def _load(im: Image.Image) -> None:
    """Decode the pixels. A few plugins (ICO holding a PNG, for one) learn the real size only now: an
    image that grew while loading is judged again."""
    expected = im.size
    im.load()
    if im.size != expected:
        _check_size(*im.size)


def _open(data: bytes, max_bytes: int | None) -> _Opened:
    if not data:
        raise ImageError(ImageStatus.ERROR_IMAGE_FORMAT, "image is empty (0 bytes)")
    if max_bytes is not None and len(data) > max_bytes:
        raise ImageError(
            ImageStatus.ERROR_IMAGE_SIZE, f"image is {len(data)} bytes; the limit is {max_bytes}"
        )

    im, fmt = _identify(data)
    _check_size(*im.size)

    notes: list[str] = []
    with _decoding(fmt):
        frames = 1
        if getattr(im, "is_animated", False):
            try:
                frames = int(getattr(im, "n_frames", 1))
                notes.append(f"used first of {frames} frames")
            except Exception:  # a broken later frame does not matter: only the first one is used
                frames = 2
                notes.append("used the first frame (later frames are unreadable)")
            im.seek(0)
        exif = _exif(im)
        orientation = exif.get(_EXIF_ORIENTATION, 1)
        orientation = orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1
    return _Opened(im, fmt, frames, orientation, notes, _camera(exif))


def _exif(im: Image.Image) -> dict:
    if im.format == "PNG" and "exif" not in im.info:
        # Pillow would decode the whole PNG to look for an eXIf chunk after the pixels; such PNGs are rare
        return {}
    try:
        return dict(im.getexif())
    except Exception:  # unreadable EXIF is not a reason to refuse the pixels
        return {}


def _camera(exif: dict) -> str:
    """ "Make Model" from EXIF (printable, at most CAMERA_CHARS), "" when absent: the model doctor asks whether
    a tag is told apart by the camera that took it."""
    parts: list[str] = []
    for tag in (_EXIF_MAKE, _EXIF_MODEL):
        value = exif.get(tag)
        if isinstance(value, bytes):
            value = value.decode("latin-1", "replace")
        if isinstance(value, str):
            value = " ".join("".join(ch for ch in value if ch.isprintable()).split())
            if value and not (parts and value.lower().startswith(parts[0].lower())):
                parts.append(value)
            elif value:  # the model often repeats the make ("Canon" + "Canon EOS 5D")
                parts[:] = [value]
    return " ".join(parts)[:CAMERA_CHARS]


class _decoding:
    """Map whatever Pillow raises while parsing or decoding to an `ImageError`."""

    def __init__(self, fmt: str):
        self.fmt = fmt

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> None:  # never swallows: re-raises as ImageError or lets through
        if exc is None or isinstance(exc, ImageError) or not isinstance(exc, Exception):
            return None
        if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
            raise ImageError(
                ImageStatus.ERROR_IMAGE_DIMENSIONS, f"decompression bomb refused: {exc}"
            ) from exc
        if isinstance(exc, MemoryError):
            raise ImageError(
                ImageStatus.ERROR_IMAGE_DIMENSIONS, "image needs more memory to decode than is available"
            ) from exc
        text = str(exc) or type(exc).__name__
        if isinstance(exc, OSError) and "truncated" in text:
            message = f"{self.fmt} pixel data is truncated: {text}"
        else:
            message = f"{self.fmt} image could not be decoded (corrupt data?): {text}"
        raise ImageError(ImageStatus.ERROR_IMAGE_FORMAT, message) from exc


def _normalise(opened: _Opened, notes: list[str]) -> Image.Image:
    """Decode fully and return the upright RGB image; `notes` gets what was done."""
    im: Image.Image = opened.image
    _load(im)
    mode = im.mode
    if mode in _ALPHA_MODES or (mode in ("P", "L", "RGB") and "transparency" in im.info):
        rgba = im if mode == "RGBA" else im.convert("RGBA")
        rgb = Image.new("RGB", rgba.size, WHITE)
        rgb.paste(rgba, mask=rgba.getchannel("A"))
        notes.append(f"composited {mode} transparency onto white")
    elif mode == "RGB":
        rgb = im
    elif mode.startswith("I;16") or mode in ("I", "F"):
        rgb = _deep_to_l(im, notes).convert("RGB")
    else:
        try:
            rgb = im.convert("RGB")
        except (ValueError, OSError) as exc:
            raise ImageError(
                ImageStatus.ERROR_IMAGE_FORMAT, f"cannot convert a {mode} image to RGB: {exc}"
            ) from exc
        notes.append(f"converted {mode} to RGB")
    if opened.orientation != 1:
        rgb = rgb.transpose(_TRANSPOSE[opened.orientation])
        notes.append(f"applied EXIF orientation {opened.orientation}")
    return rgb


def _deep_to_l(im: Image.Image, notes: list[str]) -> Image.Image:
    """16-bit and 32-bit grey to 8 bit by scaling, never by clipping."""
    mode = im.mode
    if mode.startswith("I;16"):
        scaled = im.convert("I").point(lambda v: v * (255 / 65535) + 0.5)
        notes.append(f"scaled 16-bit grey ({mode}) to 8 bit")
        return scaled.convert("L")
    lo, hi = cast(tuple[float, float], im.getextrema())  # one band: (min, max)
    if mode == "F" and lo >= 0 and hi <= 1:
        scale, offset, how = 255.0, 0.0, "scaled 0..1 float grey to 8 bit"
    elif mode == "I" and lo >= 0 and hi <= 255:
        scale, offset, how = 1.0, 0.0, "converted 32-bit grey holding 8-bit values to 8 bit"
    elif mode == "I" and lo >= 0 and hi <= 65535:
        scale, offset, how = 255 / 65535, 0.0, "scaled 32-bit grey holding 16-bit values to 8 bit"
    else:
        span = (hi - lo) or 1
        scale, offset, how = 255 / span, -lo * 255 / span, f"stretched {mode} grey {lo}..{hi} to 8 bit"
    notes.append(how)
    return im.point(lambda v: v * scale + offset + 0.5).convert("L")


def _fit(width: int, height: int, side: int) -> tuple[int, int]:
    if max(width, height) <= side:
        return width, height
    scale = side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _thumbnail(im: Image.Image, size: tuple[int, int]) -> bytes:
    if im.mode != "RGB":
        im = im.convert("RGB")
    if im.size != size:
        im = im.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    out = io.BytesIO()
    im.save(out, "JPEG", quality=THUMBNAIL_QUALITY)
    return out.getvalue()
