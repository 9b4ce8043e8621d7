"""COCO datasets: the one validator behind the upload drop, project import and the Image Analysis route, and
the checks the frozen training manifest (cvcore.manifest) shares with it.

    report = validate(data, resolver, Rules(task=DETECTION))    # never raises on bad input
    report.ok, report.problems                                  # every problem, each with its JSON path

Checks, in the order they run (structure first; the images only once the structure names them):

    * JSON object with `images`, `annotations`, `categories` lists of objects
    * integer ids, unique per list; every annotation's image_id and category_id exist
    * category names: 1..256 characters, unique without case (they become tags)
    * image width and height positive integers, equal to the decoded (upright) image
    * boxes [left, top, width, height]: all normalised (left, top in [0, 1), width, height in (0, 1],
      left + width <= 1, top + height <= 1) or all in pixels (inside the image; converted, and the
      report says so); `info.bbox_format` may say which ("normalized_ltwh" or "pixels")
    * at least `min_images_per_category` images per category (a category with none is skipped, noted);
      at most one category per image in a multiclass project; at most 300 boxes per image
    * each image's source: `absolute_url`, else `coco_url` (when inside the storage account), else
      `file_name` relative to the dataset folder; never a path outside it (see `safe_relative_path`)
    * each referenced image exists, decodes and passes cvcore.imaging.check_image

Images are read through a resolver, a bounded window at a time, decoded one by one and dropped: only
their sha256 and size are kept, so a 20,000-image file needs no more memory than its JSON.

Pure: stdlib, Pillow (through cvcore.imaging) and nothing of Azure. Resolvers for blob storage and
URLs live with their callers; `StorageResolver` does the path and URL rules over any read function.
"""

from __future__ import annotations

import dataclasses
import json
import math
import posixpath
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, cast
from urllib.parse import unquote, urlsplit

from .imaging import MAX_TRAINING_IMAGE_BYTES, ImageError, check_image

CLASSIFICATION, DETECTION = "classification", "detection"
NORMALIZED, PIXELS = "normalized", "pixels"
MAX_REGIONS_PER_IMAGE = 300
MAX_TAGS_PER_IMAGE = 100
MAX_NAME = 256
_EPS = 1e-6
_PIXEL_SLACK = 0.5  # pixel boxes may overshoot the image by rounding, up to half a pixel (then clipped)

# Problem codes: what each one means is in its message; tests and callers match on the code.
NOT_JSON = "NotJson"
NOT_AN_OBJECT = "NotAnObject"
MISSING_FIELD = "MissingField"
WRONG_TYPE = "WrongType"
ID_NOT_INTEGER = "IdNotInteger"
DUPLICATE_ID = "DuplicateId"
UNKNOWN_IMAGE = "UnknownImage"
UNKNOWN_CATEGORY = "UnknownCategory"
BAD_NAME = "BadCategoryName"
DUPLICATE_NAME = "DuplicateCategoryName"
BAD_DIMENSION = "BadDimension"
SIZE_MISMATCH = "SizeMismatch"
BAD_BBOX = "BadBbox"
BBOX_OUT_OF_RANGE = "BboxOutOfRange"
BBOX_OUTSIDE_IMAGE = "BboxOutsideImage"
MIXED_UNITS = "MixedBboxUnits"
BBOX_REQUIRED = "BboxRequired"
TOO_FEW_IMAGES = "TooFewImages"
MULTIPLE_CATEGORIES = "MultipleCategoriesOnImage"
TOO_MANY_REGIONS = "TooManyRegions"
TOO_MANY_TAGS = "TooManyTags"
NO_SOURCE = "NoImageSource"
UNSAFE_PATH = "UnsafePath"
OUTSIDE_ACCOUNT = "UrlOutsideStorageAccount"
IMAGE_NOT_FOUND = "ImageNotFound"
IMAGE_UNREADABLE = "ImageUnreadable"
IMAGE_REJECTED = "ImageRejected"


@dataclass(frozen=True)
class Problem:
    path: str  # JSON path of the offending item: "images[3].width", "$" for the whole document
    code: str
    message: str

    def to_json(self) -> dict:
        return {"path": self.path, "code": self.code, "message": self.message}

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class SourceError(Exception):
    """A resolver refuses or cannot find an image's source. `field` is the image entry's key at fault."""

    def __init__(self, code: str, message: str, field: str = "file_name"):
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


class Resolver(Protocol):
    def locate(self, entry: dict) -> tuple[str, str]:
        """(reference to read, the entry's key it came from), or raise SourceError."""

    def read(self, ref: str, max_bytes: int) -> bytes:
        """The image's bytes (at most max_bytes + 1 of them), or raise SourceError / FileNotFoundError."""


@dataclass(frozen=True)
class Rules:
    task: str = DETECTION
    multiclass: bool = False
    min_images_per_category: int = 2  # 0 keeps empty categories too (moving a project keeps its empty tags)
    max_image_bytes: int = MAX_TRAINING_IMAGE_BYTES
    image_tags_in_detection: bool = False  # a bbox-less annotation tags its image (moving a project)


@dataclass
class Category:
    index: int
    id: int
    name: str
    extra: dict  # optional Custom Vision fields: type, description


@dataclass
class ImageEntry:
    index: int
    id: int
    ref: str | None  # what the resolver reads
    field: str  # absolute_url / coco_url / file_name
    width: int
    height: int
    extra: dict  # optional: metadata
    sha256: str | None = None  # of the source bytes, once checked
    annotations: list[tuple[int, tuple[float, float, float, float] | None]] = dataclasses.field(
        default_factory=list
    )


@dataclass
class Report:
    problems: list[Problem] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    categories: list[Category] = dataclasses.field(
        default_factory=list
    )  # those to import (used, or all when min is 0)
    images: list[ImageEntry] = dataclasses.field(default_factory=list)
    bbox_format: str | None = None  # NORMALIZED or PIXELS (converted); None without boxes
    rules: Rules = dataclasses.field(default_factory=Rules)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, path: str, code: str, message: str) -> None:
        self.problems.append(Problem(path, code, message))

    def summary(self) -> dict:
        return {
            "images": len(self.images),
            "annotations": sum(len(im.annotations) for im in self.images),
            "categories": [c.name for c in self.categories],
            "bboxFormat": self.bbox_format,
            "notes": self.notes,
            "problemCount": len(self.problems),
        }


# ---- shared rules -----------------------------------------------------------------------------------------
def is_int_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def normalised_box_problem(box) -> str | None:
    """Why `box` is not a normalised [left, top, width, height] (Custom Vision's region rule), or None."""
    if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(is_number(v) for v in box):
        return f"{_short(box)} is not a list of 4 finite numbers"
    left, top, width, height = box
    bad = [
        f"{name} {v:.6g} is outside {rng}"
        for name, v, ok, rng in (
            ("left", left, 0 <= left < 1, "[0, 1)"),
            ("top", top, 0 <= top < 1, "[0, 1)"),
            ("width", width, 0 < width <= 1, "(0, 1]"),
            ("height", height, 0 < height <= 1, "(0, 1]"),
        )
        if not ok
    ]
    if left + width > 1 + _EPS:
        bad.append(f"left + width = {left + width:.6g} exceeds 1")
    if top + height > 1 + _EPS:
        bad.append(f"top + height = {top + height:.6g} exceeds 1")
    return "; ".join(bad) or None


def clamp_box(box) -> tuple[float, float, float, float]:
    left, top, width, height = (float(v) for v in box)
    return left, top, min(width, 1.0 - left), min(height, 1.0 - top)


def require_lists(body, keys: Iterable[str], report: Report) -> dict[str, list]:
    """The named top-level lists (missing or wrong ones reported, and given as empty)."""
    if not isinstance(body, dict):
        report.add("$", NOT_AN_OBJECT, f"a COCO file is a JSON object, not {type(body).__name__}")
        return {k: [] for k in keys}
    out = {}
    for key in keys:
        value = body.get(key)
        if key not in body:
            report.add(key, MISSING_FIELD, f"the {key!r} list is missing")
        elif not isinstance(value, list):
            report.add(key, WRONG_TYPE, f"must be a list, got {type(value).__name__}")
        out[key] = value if isinstance(value, list) else []
    return out


def check_references(annotations: list, image_ids, category_ids, report: Report) -> list[bool]:
    """Report annotations naming a missing image or category; return, per annotation, whether both exist."""
    ok = []
    for j, a in enumerate(annotations):
        good = isinstance(a, dict)
        if good and a.get("image_id") not in image_ids:
            report.add(
                f"annotations[{j}].image_id", UNKNOWN_IMAGE, f"{_short(a.get('image_id'))} is not an image id"
            )
            good = False
        if good and a.get("category_id") not in category_ids:
            report.add(
                f"annotations[{j}].category_id",
                UNKNOWN_CATEGORY,
                f"{_short(a.get('category_id'))} is not a category id",
            )
            good = False
        ok.append(good)
    return ok


def parse_json(data: bytes | str, report: Report):
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        report.add("$", NOT_JSON, f"not JSON: {exc}")
        return None


# ---- paths and URLs ---------------------------------------------------------------------------------------
def safe_relative_path(name) -> str:
    """`name` as a normalised relative path that stays inside its folder, or ValueError saying why: no
    backslash, no absolute path or drive, no `..` or `.` segment, no scheme, no control characters."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("must be a non-empty string")
    if "\\" in name:
        raise ValueError(f"{_short(name)} contains a backslash; use / between folders")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ValueError(f"{_short(name)} contains control characters")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":") or "://" in name:
        raise ValueError(f"{_short(name)} is absolute; give a path relative to the COCO file's folder")
    parts = [p for p in name.split("/") if p]
    if any(p in ("..", ".") for p in parts):
        raise ValueError(f"{_short(name)} has a '.' or '..' segment; paths never leave the dataset folder")
    return posixpath.join(*parts)


def account_blob(url: str, endpoint: str) -> tuple[str, str]:
    """(container, blob name as written) of a URL inside the storage account whose blob endpoint is
    `endpoint` (query, e.g. a SAS, ignored), or ValueError. The name is not yet judged as a path."""
    u, e = urlsplit(url.strip()), urlsplit(endpoint.rstrip("/"))
    if (u.scheme.lower(), u.hostname, _port(u), u.username) != (e.scheme.lower(), e.hostname, _port(e), None):
        raise ValueError(f"{_short(url)} is not in this storage account ({endpoint})")
    prefix = e.path.rstrip("/") + "/"
    if not u.path.startswith(prefix):
        raise ValueError(f"{_short(url)} is not in this storage account ({endpoint})")
    container, _, name = unquote(u.path[len(prefix) :]).partition("/")
    if not container or not name:
        raise ValueError(f"{_short(url)} names no blob (expected {endpoint}/container/blob)")
    return container, name


def _port(u) -> int | None:
    try:
        return u.port or {"http": 80, "https": 443}.get(u.scheme.lower())
    except ValueError:
        return None


class StorageResolver:
    """Images in one storage account: `absolute_url` / `coco_url` inside the account's blob endpoint
    (containers limited to `containers`), else `file_name` under `folder` of `container`. Reads go through
    `read(container, name, max_bytes)`: the storage client, never an HTTP fetch of the URL."""

    def __init__(
        self,
        read: Callable[[str, str, int], bytes],
        container: str,
        folder: str,
        endpoint: str | None,
        containers: Iterable[str],
    ):
        self._read, self.container, self.folder = read, container, folder.strip("/")
        self.endpoint, self.containers = endpoint, tuple(containers)

    def locate(self, entry: dict) -> tuple[str, str]:
        for key in ("absolute_url", "coco_url"):
            if entry.get(key) is None:
                continue
            try:
                return self._in_account(entry[key], key), key
            except SourceError:
                if key == "absolute_url" or entry.get("file_name") is None:
                    raise
                # a coco_url elsewhere (images.cocodataset.org) is fine when file_name says where the copy is
        if entry.get("file_name") is None:
            raise SourceError(NO_SOURCE, "an image needs absolute_url, coco_url or file_name", "file_name")
        try:
            name = safe_relative_path(entry["file_name"])
        except ValueError as exc:
            raise SourceError(UNSAFE_PATH, f"file_name {exc}", "file_name") from None
        return f"{self.container}/{posixpath.join(self.folder, name) if self.folder else name}", "file_name"

    def _in_account(self, url, key: str) -> str:
        if not isinstance(url, str) or not url.strip():
            raise SourceError(WRONG_TYPE, "a URL string is required", key)
        if not self.endpoint:
            raise SourceError(
                OUTSIDE_ACCOUNT, "image URLs cannot be resolved here (no storage endpoint)", key
            )
        try:
            container, name = account_blob(url, self.endpoint)
        except ValueError as exc:
            raise SourceError(OUTSIDE_ACCOUNT, str(exc), key) from None
        try:
            name = safe_relative_path(name)
        except ValueError as exc:
            raise SourceError(UNSAFE_PATH, f"the blob name {exc}", key) from None
        if container not in self.containers:
            raise SourceError(
                OUTSIDE_ACCOUNT,
                f"container {container!r} is not readable for imports; use {' or '.join(self.containers)}",
                key,
            )
        return f"{container}/{name}"

    def read(self, ref: str, max_bytes: int) -> bytes:
        container, _, name = ref.partition("/")
        return self._read(container, name, max_bytes)


# ---- validation -------------------------------------------------------------------------------------------
def validate(
    data: bytes | str,
    resolver: Resolver | None,
    rules: Rules = Rules(),
    *,
    pool: Executor | None = None,
    window: int = 16,
    progress: Callable[[str, int, int], None] | None = None,
) -> Report:
    """Judge a COCO file and, through `resolver`, every image it names; return the report (never raises
    for bad input). Without a resolver only the structure is checked."""
    report = Report(rules=rules)
    body = parse_json(data, report)
    if report.problems:
        return report
    lists = require_lists(body, ("images", "annotations", "categories"), report)
    categories, category_ids = _categories(lists["categories"], report)
    images = _images(lists["images"], resolver, report)
    on_images = _annotations(
        body.get("info") if isinstance(body, dict) else None,
        lists["annotations"],
        images,
        categories,
        category_ids,
        report,
    )
    del body, lists
    _per_category_and_image(images, categories, on_images, report)
    report.images = [im for im in images.values() if im is not None]  # the invalid ones are gone already
    if resolver is not None:
        check_images(report, resolver, pool=pool, window=window, progress=progress)
    return report


def _unique_id(item: dict, path: str, seen: set, report: Report) -> bool:
    value = item.get("id")
    if not is_int_id(value):
        report.add(f"{path}.id", ID_NOT_INTEGER, f"ids are integers, got {_short(value)}")
        return False
    if value in seen:
        report.add(f"{path}.id", DUPLICATE_ID, f"id {value} is used twice")
        return False
    seen.add(value)
    return True


def _objects(items: list, key: str, report: Report):
    """(index, path, item) of the items that are objects; the others reported."""
    for i, item in enumerate(items):
        if isinstance(item, dict):
            yield i, f"{key}[{i}]", item
        else:
            report.add(f"{key}[{i}]", NOT_AN_OBJECT, f"must be an object, got {_short(item)}")


def _categories(items: list, report: Report) -> tuple[dict[int, Category], set]:
    out: dict[int, Category] = {}
    seen: set = set()
    names: dict[str, int] = {}
    for i, path, c in _objects(items, "categories", report):
        ok = _unique_id(c, path, seen, report)
        name = c.get("name")
        if not isinstance(name, str) or not name.strip() or len(name.strip()) > MAX_NAME:
            report.add(
                f"{path}.name", BAD_NAME, f"a category name is 1 to {MAX_NAME} characters, got {_short(name)}"
            )
            continue
        key = name.strip().casefold()
        if key in names:
            report.add(
                f"{path}.name",
                DUPLICATE_NAME,
                f"{name!r} is also the name of categories[{names[key]}]; "
                "names become tags and must differ (without case)",
            )
            continue
        names[key] = i
        if ok:
            extra = {k: c[k] for k in ("type", "description") if isinstance(c.get(k), str)}
            out[c["id"]] = Category(i, c["id"], name.strip(), extra)
    return out, seen


def _images(items: list, resolver: Resolver | None, report: Report) -> dict[int, ImageEntry | None]:
    """Image entries by id; None for an id seen on an invalid entry (known for reference checks, not importable)."""
    out: dict[int, ImageEntry | None] = {}
    seen: set = set()
    for i, path, im in _objects(items, "images", report):
        ok = _unique_id(im, path, seen, report)
        for key in ("width", "height"):
            if not is_int_id(im.get(key)) or im[key] <= 0:
                report.add(
                    f"{path}.{key}",
                    BAD_DIMENSION,
                    f"a positive integer is required, got {_short(im.get(key))}",
                )
                ok = False
        ref, source = None, "file_name"
        if resolver is not None:
            try:
                ref, source = resolver.locate(im)
            except SourceError as exc:
                report.add(f"{path}.{exc.field}", exc.code, exc.message)
        extra = {"metadata": im["metadata"]} if isinstance(im.get("metadata"), dict) else {}
        if ok:
            out[im["id"]] = ImageEntry(i, im["id"], ref, source, im["width"], im["height"], extra)
        elif is_int_id(im.get("id")):
            out.setdefault(im["id"], None)  # exists for reference checks, not importable
    return out


def _annotations(
    info, items: list, images: dict, categories: dict, category_ids: set, report: Report
) -> dict[int, set]:
    """Attach each good annotation to its image (boxes normalised). `images` and `category_ids` hold every
    integer id seen, valid or not, so an entry already reported is not reported again per annotation.
    Returns the images each category is on, counting annotations whatever their box (a bad box is its
    own problem, not also a category's)."""
    if report.problems and any(p.path in ("$", "images", "categories") for p in report.problems):
        refs_ok = [False] * len(items)  # no image or category list to check against: said once already
    else:
        refs_ok = check_references(items, images, category_ids, report)
    seen: set = set()
    boxes: list = []
    on_images: dict[int, set] = {c: set() for c in categories}
    for j, path, a in _objects(items, "annotations", report):
        _unique_id(a, path, seen, report)
        if refs_ok[j] and a["category_id"] in categories:
            on_images[a["category_id"]].add(a["image_id"])
        box = a.get("bbox")
        if box is not None and (
            not isinstance(box, list) or len(box) != 4 or not all(is_number(v) for v in box)
        ):
            report.add(
                f"{path}.bbox",
                BAD_BBOX,
                f"a bbox is [left, top, width, height], 4 finite numbers; got {_short(box)}",
            )
            continue
        if box is None and report.rules.task == DETECTION and not report.rules.image_tags_in_detection:
            report.add(f"{path}.bbox", BBOX_REQUIRED, "object detection needs a bbox on every annotation")
            continue
        if refs_ok[j] and images.get(a["image_id"]) is not None and a["category_id"] in categories:
            boxes.append((path, images[a["image_id"]], a["category_id"], box))
    report.bbox_format = _bbox_format(info, [b for *_, b in boxes if b is not None], report)
    if report.rules.task == CLASSIFICATION and report.bbox_format:
        report.notes.append("boxes are ignored in a classification project: each annotation tags its image")
    for path, image, category_id, box in boxes:
        if report.rules.task == CLASSIFICATION or box is None:
            image.annotations.append((category_id, None))
            continue
        normalised = _to_normalised(path, box, image, report)
        if normalised is not None:
            image.annotations.append((category_id, normalised))
    return on_images


def _bbox_format(info, boxes: list, report: Report) -> str | None:
    hint = str((info or {}).get("bbox_format", "")).lower() if isinstance(info, dict) else ""
    if not boxes:
        return None
    if hint.startswith("normali"):
        return NORMALIZED
    if hint in ("pixels", "absolute", "coco") or any(v > 1 for b in boxes for v in b):
        report.notes.append(
            f"boxes are in pixels: {len(boxes)} converted to normalised [left, top, width, height]"
        )
        return PIXELS
    return NORMALIZED


def _to_normalised(path: str, box: list, image: ImageEntry, report: Report):
    if report.bbox_format == NORMALIZED:
        problem = normalised_box_problem(box)
        if problem:
            report.add(f"{path}.bbox", BBOX_OUT_OF_RANGE, problem)
            return None
        return clamp_box(box)
    x, y, w, h = box
    if max(box) <= 1 and w < 1 and h < 1:
        report.add(
            f"{path}.bbox",
            MIXED_UNITS,
            f"{_short(box)} looks normalised, but other boxes are in pixels; use one unit for every box",
        )
        return None
    W, H = image.width, image.height
    if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > W + _PIXEL_SLACK or y + h > H + _PIXEL_SLACK:
        report.add(
            f"{path}.bbox",
            BBOX_OUTSIDE_IMAGE,
            f"pixel box {_short(box)} is not inside the {W}x{H} image "
            f"(x, y >= 0, width, height > 0, x + width <= {W}, "
            f"y + height <= {H})",
        )
        return None
    return clamp_box((x / W, y / H, w / W, h / H))


def _per_category_and_image(
    images: dict, categories: dict, on_images: dict[int, set], report: Report
) -> None:
    rules = report.rules
    for key in [k for k, im in images.items() if im is None]:
        del images[key]
    for im in images.values():
        cats = {c for c, _ in im.annotations}
        path = f"images[{im.index}]"
        if rules.multiclass and len(cats) > 1:
            names = ", ".join(sorted(categories[c].name for c in cats))
            report.add(
                path,
                MULTIPLE_CATEGORIES,
                f"a Multiclass project allows one category per image; this one has {names}",
            )
        if rules.task == DETECTION and len(im.annotations) > MAX_REGIONS_PER_IMAGE:
            report.add(
                path,
                TOO_MANY_REGIONS,
                f"{len(im.annotations)} boxes; an image holds at most {MAX_REGIONS_PER_IMAGE}",
            )
        if rules.task == CLASSIFICATION and len(cats) > MAX_TAGS_PER_IMAGE:
            report.add(
                path, TOO_MANY_TAGS, f"{len(cats)} categories; an image has at most {MAX_TAGS_PER_IMAGE} tags"
            )
    for cid, c in sorted(categories.items(), key=lambda kv: kv[1].index):
        count = len(on_images[cid])
        if count == 0 and rules.min_images_per_category > 0:
            report.notes.append(f"category {c.name!r} has no annotations: no tag is created for it")
        elif count < rules.min_images_per_category:
            report.add(
                f"categories[{c.index}]",
                TOO_FEW_IMAGES,
                f"{c.name!r} is on {count} image; every category "
                f"needs at least {rules.min_images_per_category}",
            )
        else:
            report.categories.append(c)


def check_images(
    report: Report,
    resolver: Resolver,
    *,
    pool: Executor | None = None,
    window: int = 16,
    progress: Callable[[str, int, int], None] | None = None,
) -> None:
    """Read, check and drop each image, at most `window` in flight; fill sha256, report problems."""
    todo = [im for im in report.images if im.ref is not None]
    own = pool is None
    pool = pool or ThreadPoolExecutor(max_workers=4, thread_name_prefix="coco-check")
    max_bytes = report.rules.max_image_bytes

    def one(im: ImageEntry) -> Problem | None:
        path = f"images[{im.index}]"
        try:
            checked = check_image(
                resolver.read(cast(str, im.ref), max_bytes), max_bytes=max_bytes, make_thumbnail=False
            )
        except FileNotFoundError:
            return Problem(f"{path}.{im.field}", IMAGE_NOT_FOUND, f"{im.ref} does not exist")
        except SourceError as exc:
            return Problem(f"{path}.{im.field}", exc.code, exc.message)
        except ImageError as exc:
            return Problem(path, IMAGE_REJECTED, f"{exc.status}: {exc.message}")
        except Exception as exc:
            return Problem(
                f"{path}.{im.field}",
                IMAGE_UNREADABLE,
                f"{im.ref} could not be read: {type(exc).__name__}: {str(exc)[:200]}",
            )
        if (checked.width, checked.height) != (im.width, im.height):
            hint = (
                " (its EXIF orientation turns it)" if any("orientation" in n for n in checked.notes) else ""
            )
            return Problem(
                f"{path}.width",
                SIZE_MISMATCH,
                f"declared {im.width}x{im.height}, but the image is "
                f"{checked.width}x{checked.height} upright{hint}",
            )
        im.sha256 = checked.sha256
        return None

    found: dict[int, Problem] = {}
    try:
        for done, (im, problem) in enumerate(bounded_map(pool, one, todo, window), start=1):
            if problem is not None:
                found[im.index] = problem
            if progress is not None:
                progress("validating", done, len(todo))
    finally:
        if own:
            pool.shutdown(wait=True)
    report.problems.extend(found[k] for k in sorted(found))
    _note_same_content(report)


def bounded_map(pool: Executor, fn, items: list, window: int):
    """Yield (item, fn(item)) in order, with at most `window` calls submitted and not yet consumed."""
    pending: deque = deque()
    it = iter(items)
    for item in it:
        pending.append((item, pool.submit(fn, item)))
        if len(pending) >= window:
            break
    while pending:
        item, future = pending.popleft()
        yield item, future.result()
        nxt = next(it, None)
        if nxt is not None:
            pending.append((nxt, pool.submit(fn, nxt)))


def _note_same_content(report: Report) -> None:
    first: dict[str, int] = {}
    for im in report.images:
        if im.sha256 is None:
            continue
        if im.sha256 in first:
            report.notes.append(
                f"images[{im.index}] has the same bytes as images[{first[im.sha256]}]: one image, "
                "their annotations merged"
            )
        else:
            first[im.sha256] = im.index


class Throttle:
    """Calls `fn` at most every `seconds` (and always for the last step), for progress reports."""

    def __init__(self, fn: Callable[[str, int, int], None], seconds: float = 2.0):
        self.fn, self.seconds, self.last = fn, seconds, 0.0

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - self.last >= self.seconds:
            self.last = now
            self.fn(phase, done, total)


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
