"""cvcore.imaging: what is accepted, how it is normalised, what is refused and why."""

from __future__ import annotations

import hashlib
import io
import random
import struct
import threading
import time
import warnings
import zlib

import pytest
from PIL import Image, ImageChops, ImageFile, ImageStat

from cvcore import imaging
from cvcore.imaging import (
    MAX_PREDICTION_IMAGE_BYTES,
    MAX_SIDE,
    MAX_TRAINING_IMAGE_BYTES,
    MIN_SIDE,
    THUMBNAIL_SIDE,
    CheckedImage,
    ImageError,
    ImageStatus,
    check_image,
    decode_rgb,
)
from tests.support import images

S = ImageStatus


def _open(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def _mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    assert a.size == b.size, (a.size, b.size)
    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean) / 3


def _refused(data: bytes, **kw) -> ImageError:
    with pytest.raises(ImageError) as info:
        check_image(data, **kw)
    return info.value


def _close(pixel, expected, tol=12) -> bool:
    return all(abs(p - e) <= tol for p, e in zip(pixel, expected, strict=True))


# -- vocabulary and limits -------------------------------------------------------------------------


def test_status_vocabulary_is_custom_visions():
    assert {s.value for s in ImageStatus} == {
        "OK",
        "OKDuplicate",
        "ErrorSource",
        "ErrorImageFormat",
        "ErrorImageSize",
        "ErrorStorage",
        "ErrorLimitExceed",
        "ErrorTagLimitExceed",
        "ErrorRegionLimitExceed",
        "ErrorUnknown",
        "ErrorNegativeAndRegularTagOnSameImage",
        "ErrorImageDimensions",
        "ErrorInvalidTag",
    }
    assert S.ERROR_IMAGE_SIZE == "ErrorImageSize" and isinstance(S.OK, str)


def test_limits():
    assert MAX_TRAINING_IMAGE_BYTES == 6 * 1024 * 1024
    assert MAX_PREDICTION_IMAGE_BYTES == 4 * 1024 * 1024
    assert (MIN_SIDE, MAX_SIDE, THUMBNAIL_SIDE) == (50, 10240, 256)
    assert imaging.ACCEPTED_FORMATS == {"JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF", "ICO", "MPO"}


def test_image_error_carries_status_and_message():
    err = _refused(images.oversized_jpeg(7 * 1024 * 1024))
    assert err.status is S.ERROR_IMAGE_SIZE
    assert str(err).startswith("ErrorImageSize: ")
    assert err.message in str(err)


# -- the fast path ---------------------------------------------------------------------------------


def test_plain_jpeg_is_stored_as_uploaded():
    data = images.photo_jpeg(0)
    checked = check_image(data)
    assert isinstance(checked, CheckedImage)
    assert checked.data is data or checked.data == data
    assert checked.content_type == "image/jpeg"
    assert (checked.width, checked.height) == (640, 480)
    assert checked.sha256 == hashlib.sha256(data).hexdigest()
    assert checked.source_format == "JPEG"
    assert checked.notes == ()
    thumb = _open(checked.thumbnail)
    assert thumb.format == "JPEG" and thumb.mode == "RGB"
    assert thumb.size == (256, 192)
    # the thumbnail shows the photo
    reference = images.photo_image(0).resize((256, 192), Image.Resampling.BILINEAR)
    assert _mean_abs_diff(thumb, reference) < 8


def test_thumbnail_can_be_skipped():
    checked = check_image(images.photo_jpeg(1), make_thumbnail=False)
    assert checked.thumbnail is None and checked.notes == ()


def test_plain_rgb_png_is_stored_as_uploaded():
    data = images.photo_png(3)
    checked = check_image(data)
    assert checked.data == data and checked.content_type == "image/png" and checked.notes == ()
    assert (checked.width, checked.height) == (320, 240)


@pytest.mark.parametrize("size", [(256, 100), (100, 256), (50, 50), (300, 60)])
def test_thumbnail_keeps_aspect_and_longest_side(size):
    checked = check_image(images.photo_jpeg(5, size=size))
    thumb = _open(checked.thumbnail)
    assert max(thumb.size) <= THUMBNAIL_SIDE
    if max(size) <= THUMBNAIL_SIDE:
        assert thumb.size == size
    else:
        assert max(thumb.size) == THUMBNAIL_SIDE
        assert abs(thumb.size[0] / thumb.size[1] - size[0] / size[1]) < 0.02


def test_sha256_is_of_the_original_bytes_even_when_reencoded():
    data = images.cmyk_jpeg()
    checked = check_image(data)
    assert checked.data != data
    assert checked.sha256 == hashlib.sha256(data).hexdigest()


def test_fast_path_is_fast():
    data = images.photo_jpeg(2)
    check_image(data)
    n = 30
    start = time.perf_counter()
    for _ in range(n):
        check_image(data)
    per_image = (time.perf_counter() - start) / n
    assert per_image < 0.025, f"{per_image * 1000:.1f} ms per 640x480 JPEG"  # measured ~2-3 ms


# -- normalisation ---------------------------------------------------------------------------------


def test_cmyk_jpeg_becomes_rgb_jpeg():
    checked = check_image(images.cmyk_jpeg())
    assert checked.content_type == "image/jpeg"
    assert any("CMYK" in n for n in checked.notes)
    out = _open(checked.data)
    assert out.mode == "RGB" and out.size == (320, 240)
    assert _mean_abs_diff(out, images.photo_image(1, (320, 240))) < 6


def test_grey_jpeg_becomes_rgb():
    checked = check_image(images.grey_jpeg())
    out = _open(checked.data)
    assert checked.content_type == "image/jpeg" and out.mode == "RGB"
    r, g, b = out.split()
    assert ImageChops.difference(r, g).getbbox() is None or max(ImageChops.difference(r, g).getextrema()) < 3


def test_palette_png_becomes_rgb_png():
    checked = check_image(images.palette_png())
    out = _open(checked.data)
    assert checked.content_type == "image/png" and out.mode == "RGB"
    assert any("converted P to RGB" in n for n in checked.notes)
    assert _mean_abs_diff(out, images.photo_image(2, (320, 240))) < 8


def test_transparent_palette_index_becomes_white():
    out = decode_rgb(images.palette_png(transparent=True))
    assert out.getpixel((0, 0)) == (255, 255, 255)


def test_rgba_is_composited_on_white():
    checked = check_image(images.rgba_png())
    out = _open(checked.data)
    assert out.mode == "RGB" and checked.content_type == "image/png"
    assert any("onto white" in n for n in checked.notes)
    left = out.crop((0, 0, 160, 240))
    assert left.getextrema() == ((255, 255), (255, 255), (255, 255))
    right = out.crop((160, 0, 320, 240))
    assert _mean_abs_diff(right, images.photo_image(3, (320, 240)).crop((160, 0, 320, 240))) < 1


def test_grey_alpha_is_composited_on_white():
    out = decode_rgb(images.la_png())
    assert out.mode == "RGB"
    assert out.crop((0, 0, 200, 75)).getextrema() == ((255, 255),) * 3


def test_16_bit_grey_is_scaled_not_clipped():
    data = images.grey16_png()
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    checked = check_image(data)
    assert any("16-bit" in n for n in checked.notes)
    out = _open(checked.data)
    assert out.mode == "RGB"
    expected = images.grey16_image().convert("RGB")
    assert max(b for _, b in ImageChops.difference(out, expected).getextrema()) <= 1


@pytest.mark.parametrize(
    "values,expected",
    [
        # 32-bit integer grey holding 16-bit values: scaled like I;16
        ([0, 257 * 128, 65535], [0, 128, 255]),
        # holding 8-bit values: kept
        ([0, 100, 255], [0, 100, 255]),
        # anything else: stretched to the full range
        ([-1000, 0, 1000], [0, 128, 255]),
    ],
)
def test_32_bit_grey_tiff(values, expected):
    im = Image.new("I", (60, 60))
    for i, v in enumerate(values):
        im.paste(v, (0, i * 20, 60, (i + 1) * 20))
    buf = io.BytesIO()
    im.save(buf, "TIFF")
    out = decode_rgb(buf.getvalue())
    got = [out.getpixel((30, i * 20 + 10))[0] for i in range(3)]
    assert all(abs(g - e) <= 1 for g, e in zip(got, expected, strict=True)), got


def test_float_grey_tiff_in_unit_range():
    im = Image.new("F", (60, 60), 0.5)
    buf = io.BytesIO()
    im.save(buf, "TIFF")
    assert abs(decode_rgb(buf.getvalue()).getpixel((1, 1))[0] - 128) <= 1


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(orientation):
    size = (160, 120)
    data = images.exif_rotated_jpeg(orientation, size)
    assert Image.open(io.BytesIO(data)).size == images.exif_stored_size(orientation, size)
    checked = check_image(data)
    assert (checked.width, checked.height) == images.exif_upright_size(orientation, size)
    out = _open(checked.data)
    assert out.size == size
    assert _mean_abs_diff(out, images.exif_upright_image(size)) < 6
    assert _close(out.getpixel((3, 3)), images.MARKER, 40)  # the marker is top-left once upright
    assert _close(_open(checked.thumbnail).getpixel((2, 2)), images.MARKER, 40)
    if orientation == 1:
        assert checked.data == data and checked.notes == ()
    else:
        assert f"applied EXIF orientation {orientation}" in checked.notes
        assert checked.content_type == "image/jpeg"
        # stored upright, so the orientation must not be applied a second time by a viewer
        assert _open(checked.data).getexif().get(0x0112, 1) == 1
    assert decode_rgb(data).size == size


@pytest.mark.parametrize("orientation", [1, 6])  # stored as uploaded / re-encoded upright (EXIF dropped)
def test_the_exif_camera_is_kept_from_the_upload(orientation):
    checked = check_image(
        images.exif_rotated_jpeg(orientation, (96, 64), camera=("Canon", "Canon EOS 5D\x00"))
    )
    assert checked.camera == "Canon EOS 5D"  # a model that repeats the make is not doubled; NULs dropped
    assert (
        check_image(images.exif_rotated_jpeg(1, (96, 64), camera=("Google", "Pixel 7"))).camera
        == "Google Pixel 7"
    )
    assert check_image(images.exif_rotated_jpeg(1, (96, 64))).camera == ""
    assert len(check_image(images.exif_rotated_jpeg(1, (96, 64), camera=("M" * 90, "x"))).camera) == 64


@pytest.mark.parametrize(
    "factory,fmt",
    [(images.animated_gif, "GIF"), (images.animated_png, "PNG"), (images.animated_webp, "WEBP")],
)
def test_animations_use_the_first_frame(factory, fmt):
    data = factory(3)
    checked = check_image(data)
    assert checked.source_format == fmt
    assert "used first of 3 frames" in checked.notes
    assert checked.content_type == "image/png"
    out = _open(checked.data)
    assert out.mode == "RGB" and out.size == (160, 120)
    assert getattr(out, "n_frames", 1) == 1
    assert _close(out.getpixel((5, 5)), images.MARKER, 40)


def test_mpo_uses_the_first_picture():
    checked = check_image(images.mpo())
    assert checked.source_format == "MPO" and checked.content_type == "image/jpeg"
    assert "used first of 2 frames" in checked.notes
    out = _open(checked.data)
    assert out.format == "JPEG" and _close(out.getpixel((5, 5)), images.MARKER, 40)


@pytest.mark.parametrize(
    "factory,fmt,size",
    [
        (images.webp, "WEBP", (320, 240)),
        (images.bmp, "BMP", (200, 150)),
        (images.tiff, "TIFF", (200, 150)),
        (images.ico, "ICO", (64, 64)),
    ],
)
def test_other_accepted_formats_become_png(factory, fmt, size):
    checked = check_image(factory())
    assert checked.source_format == fmt and checked.content_type == "image/png"
    out = _open(checked.data)
    assert out.mode == "RGB" and out.size == size == (checked.width, checked.height)


def test_reencoded_png_is_lossless():
    im = images.photo_image(20, (120, 90)).convert("RGB")
    buf = io.BytesIO()
    im.save(buf, "BMP")
    out = _open(check_image(buf.getvalue()).data)
    assert ImageChops.difference(out, im).getbbox() is None


# -- refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", images.not_an_image(), b"\x00" * 1000, b"GIF89a"],
    ids=["empty", "pdf", "zeros", "gif-signature-only"],
)
def test_not_an_image(data):
    err = _refused(data)
    assert err.status is S.ERROR_IMAGE_FORMAT
    assert err.message


def test_empty_message():
    assert "empty" in _refused(images.empty()).message


def test_unsupported_format_is_named():
    data = images.unsupported_format()
    assert Image.open(io.BytesIO(data)).format == "PPM"  # Pillow can read it; we refuse it
    err = _refused(data)
    assert err.status is S.ERROR_IMAGE_FORMAT and "PPM" in err.message and "JPEG" in err.message


def test_truncated_jpeg():
    err = _refused(images.truncated_jpeg())
    assert err.status is S.ERROR_IMAGE_FORMAT and "truncated" in err.message
    with pytest.raises(ImageError) as info:
        decode_rgb(images.truncated_jpeg())
    assert info.value.status is S.ERROR_IMAGE_FORMAT


def test_truncated_jpeg_without_thumbnail_is_still_caught():
    assert _refused(images.truncated_jpeg(), make_thumbnail=False).status is S.ERROR_IMAGE_FORMAT


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.9])
def test_truncated_png(cut):
    data = images.photo_png(4)
    assert _refused(data[: int(len(data) * cut)]).status is S.ERROR_IMAGE_FORMAT


def test_corrupt_pixel_data():
    err = _refused(images.corrupt_bytes())
    assert err.status is S.ERROR_IMAGE_FORMAT


@pytest.mark.parametrize("side,ok", [(40, False), (49, False), (50, True), (51, True)])
def test_min_side(side, ok):
    data = images.tiny_image(side)
    if ok:
        assert check_image(data).width == side
    else:
        err = _refused(data)
        assert err.status is S.ERROR_IMAGE_DIMENSIONS and f"{side}x{side}" in err.message


def test_one_short_side_is_enough_to_refuse():
    err = _refused(images.photo_jpeg(0, size=(640, 49)))
    assert err.status is S.ERROR_IMAGE_DIMENSIONS


def test_side_above_max_is_refused_from_the_header():
    data = images.huge_dimensions_png()
    assert len(data) < 10_000
    start = time.perf_counter()
    err = _refused(data)
    assert time.perf_counter() - start < 0.05
    assert err.status is S.ERROR_IMAGE_DIMENSIONS and "10241x60" in err.message


def test_max_side_itself_is_accepted():
    checked = check_image(images.huge_dimensions_png(10240, 60))
    assert (checked.width, checked.height) == (10240, 60)


def test_decompression_bomb_is_refused_without_decoding():
    data = images.decompression_bomb_png()
    assert len(data) < 100_000
    before = (Image.MAX_IMAGE_PIXELS, list(warnings.filters))
    with warnings.catch_warnings(record=True) as caught:  # test-side only: prove nothing is emitted
        warnings.simplefilter("always")
        start = time.perf_counter()
        err = _refused(data)
        assert time.perf_counter() - start < 0.05
    assert err.status is S.ERROR_IMAGE_DIMENSIONS
    assert "decompression-bomb" in err.message and "10000x10000" in err.message
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    assert (Image.MAX_IMAGE_PIXELS, list(warnings.filters)) == before
    assert Image.MAX_IMAGE_PIXELS is not None


def test_bomb_over_twice_the_limit():
    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + header + struct.pack(">I", zlib.crc32(b"IHDR" + header))
    data = b"\x89PNG\r\n\x1a\n" + chunk + b"\x00\x00\x00\x00IEND\xaeB`\x82"
    err = _refused(data)
    assert err.status is S.ERROR_IMAGE_DIMENSIONS and "decompression-bomb" in err.message


def test_bomb_refused_even_when_warnings_are_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _refused(images.decompression_bomb_png()).status is S.ERROR_IMAGE_DIMENSIONS


def test_guard_follows_pillows_limit(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 640 * 480 - 1)
    assert _refused(images.photo_jpeg(0)).status is S.ERROR_IMAGE_DIMENSIONS
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # someone switched it off: we do not
    assert _refused(images.decompression_bomb_png()).status is S.ERROR_IMAGE_DIMENSIONS


def test_size_is_checked_first():
    err = _refused(images.oversized_jpeg())
    assert err.status is S.ERROR_IMAGE_SIZE
    limit = MAX_TRAINING_IMAGE_BYTES
    assert err.message == f"image is {limit + 1} bytes; the limit is {limit}"
    # before any parsing: even garbage of that size is a size error
    assert _refused(b"\x00" * (MAX_TRAINING_IMAGE_BYTES + 1)).status is S.ERROR_IMAGE_SIZE


def test_oversized_jpeg_is_a_valid_jpeg():
    data = images.oversized_jpeg()
    assert len(data) > MAX_TRAINING_IMAGE_BYTES
    assert check_image(data, max_bytes=len(data)).width == 640


def test_prediction_limit():
    data = images.oversized_jpeg(MAX_PREDICTION_IMAGE_BYTES + 1)
    assert check_image(data).width == 640
    assert _refused(data, max_bytes=MAX_PREDICTION_IMAGE_BYTES).status is S.ERROR_IMAGE_SIZE
    with pytest.raises(ImageError):
        decode_rgb(data, max_bytes=MAX_PREDICTION_IMAGE_BYTES)
    assert decode_rgb(data, max_bytes=None).size == (640, 480)


def test_exact_limit_is_accepted():
    data = images.photo_jpeg(7)
    assert check_image(data, max_bytes=len(data)).data == data
    assert _refused(data, max_bytes=len(data) - 1).status is S.ERROR_IMAGE_SIZE


def test_pillow_globals_are_left_alone():
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    filters = list(warnings.filters)
    for data in (images.truncated_jpeg(), images.decompression_bomb_png(), images.photo_jpeg(0)):
        try:
            check_image(data)
        except ImageError:
            pass
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    assert list(warnings.filters) == filters


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's own notes about the corrupt EXIF/TIFF tags
def test_mutated_images_never_raise_anything_but_image_error():
    """Bit flips, truncations and splices of every accepted format: an ImageError or a result."""
    rng = random.Random(1234)
    sources = [
        images.photo_jpeg(0, size=(120, 90)),
        images.photo_png(0, size=(120, 90)),
        images.bmp(),
        images.tiff(),
        images.webp(),
        images.animated_gif(2),
        images.ico(),
        images.mpo(2, (80, 60)),
        images.cmyk_jpeg((80, 60)),
        images.exif_rotated_jpeg(6, (80, 60)),
        images.grey16_png((64, 64)),
    ]
    outcomes = {"ok": 0, "error": 0}
    for _ in range(300):
        data = bytearray(rng.choice(sources))
        kind = rng.randrange(3)
        if kind == 0:
            for _ in range(rng.randrange(1, 8)):
                i = rng.randrange(len(data))
                data[i] = rng.randrange(256)
        elif kind == 1:
            data = data[: rng.randrange(1, len(data))]
        else:
            i = rng.randrange(len(data))
            data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        try:
            result = check_image(bytes(data))
        except ImageError as exc:
            assert exc.status in (S.ERROR_IMAGE_FORMAT, S.ERROR_IMAGE_DIMENSIONS), exc
            outcomes["error"] += 1
        else:
            assert result.content_type in ("image/jpeg", "image/png")
            assert MIN_SIDE <= result.width <= MAX_SIDE and MIN_SIDE <= result.height <= MAX_SIDE
            outcomes["ok"] += 1
    assert outcomes["error"] > 0


def test_unexpected_plugin_exception_becomes_image_format(monkeypatch):
    from PIL import PngImagePlugin

    data = images.photo_png(0)

    def boom(self):
        raise RuntimeError("plugin exploded")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load_prepare", boom)
    err = _refused(data)
    assert err.status is S.ERROR_IMAGE_FORMAT and "plugin exploded" in err.message


# -- decode_rgb --------------------------------------------------------------------------------------


def test_decode_rgb_matches_the_stored_image():
    for data in (
        images.photo_jpeg(0),
        images.rgba_png(),
        images.exif_rotated_jpeg(8, (160, 120)),
        images.cmyk_jpeg(),
    ):
        im = decode_rgb(data)
        assert im.mode == "RGB"
        stored = _open(check_image(data).data)
        assert im.size == stored.size
        assert _mean_abs_diff(im, stored) < 2


def test_decode_rgb_shares_the_checks():
    for data, status in [
        (images.truncated_jpeg(), S.ERROR_IMAGE_FORMAT),
        (images.tiny_image(), S.ERROR_IMAGE_DIMENSIONS),
        (images.decompression_bomb_png(), S.ERROR_IMAGE_DIMENSIONS),
        (images.unsupported_format(), S.ERROR_IMAGE_FORMAT),
        (images.oversized_jpeg(), S.ERROR_IMAGE_SIZE),
    ]:
        with pytest.raises(ImageError) as info:
            decode_rgb(data)
        assert info.value.status is status


def test_decode_rgb_draft():
    data = images.photo_jpeg(0, size=(1600, 1200))
    small = decode_rgb(data, draft_size=(224, 224))
    assert small.size == (400, 300)  # 1/4 scale: the smallest DCT scale still >= 224 on both sides
    assert decode_rgb(data).size == (1600, 1200)
    rotated = decode_rgb(images.exif_rotated_jpeg(6, (480, 640)), draft_size=(100, 200))
    assert rotated.size == (240, 320)


def test_concurrent_checks_agree_with_serial():
    datas = [images.photo_jpeg(i, size=(200, 150)) for i in range(8)]
    datas += [images.rgba_png(), images.cmyk_jpeg()]
    serial = [check_image(d) for d in datas]
    results: list = [None] * len(datas)

    def work(i):
        results[i] = check_image(datas[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(datas))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == serial


# -- the factory itself ------------------------------------------------------------------------------


def test_photo_factory_gives_hundreds_of_distinct_deterministic_photos():
    indices = list(range(320)) + [3583, 3584, 3585, 7168, 9000, 9001, 20000]  # across zoom levels too
    digests = {hashlib.sha256(images.photo_jpeg(i, size=(96, 72))).hexdigest() for i in indices}
    assert len(digests) == len(indices)
    assert images.photo_image(3) is images.photo_image(3)
    first = images.photo_image(400, (96, 72)).tobytes()
    images.photo_image.cache_clear()
    assert images.photo_image(400, (96, 72)).tobytes() == first
    assert images.photo_jpeg(0) != images.photo_jpeg(1)


def test_photo_factory_photos_are_real():
    # a real photo has texture: plenty of distinct colours and a wide spread
    im = images.photo_image(0)
    assert len(im.getcolors(maxcolors=1 << 20) or ()) > 5000
    assert all(s > 20 for s in ImageStat.Stat(im).stddev)


@pytest.mark.filterwarnings("ignore:Image was not the expected size")
def test_ico_whose_png_is_larger_than_its_directory_says():
    """The ICO directory claims 64x64; the PNG inside is 12000x60: the real size is what is judged."""
    png = images.huge_dimensions_png(12000, 60)
    entry = struct.pack("<BBBBHHII", 64, 64, 0, 0, 1, 32, len(png), 6 + 16)
    ico = struct.pack("<HHH", 0, 1, 1) + entry + png
    err = _refused(ico)
    assert err.status is S.ERROR_IMAGE_DIMENSIONS and "12000x60" in err.message
