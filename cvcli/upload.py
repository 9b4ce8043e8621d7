"""`customvision upload DIR`: a folder of photos into a project.

    DIR/apple/1.jpg        -> tagged "apple" (the tag is created when the project has none of that name)
    DIR/2.jpg              -> untagged
    DIR/shelf.json         -> a COCO dataset: its categories become tags, its images (file_name relative to
                              the JSON file's folder) are uploaded with their boxes or tags

Every image goes through the SDK's create_images_from_files in batches of at most 64 (Custom Vision's
limit), so the service judges each file and answers its status (OK, OKDuplicate, ErrorImageFormat, ...).

COCO: neither the 3.1.1 SDK (Training v3.4-preview) nor Custom Vision's REST API has a COCO import (the
service here imports COCO from a storage drop, which an endpoint-and-key client cannot reach), so the file
is read here: checked whole first with the service's own validator (cvcore.coco, the same rules as the
drop: ids, references, boxes normalised or all in pixels, at least 2 images per category, every image
decoded), and only a file that passes is uploaded, as ordinary images with their tags or regions. That is
also how it works against Azure Custom Vision.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from azure.cognitiveservices.vision.customvision.training.models import (
    ImageFileCreateBatch,
    ImageFileCreateEntry,
    Region,
)

from cvcore import coco
from cvcore.imaging import MAX_TRAINING_IMAGE_BYTES

BATCH = 64  # Custom Vision's limit per create_images_from_files call
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ico", ".mpo"}
)
OK, DUPLICATE = "OK", "OKDuplicate"
TOO_BIG = "ErrorImageSize"  # the service's own status for the same refusal


@dataclass
class Item:
    """One image to upload: where it is, and what it carries (tag names; regions as (tag, l, t, w, h))."""

    path: Path
    tags: tuple[str, ...] = ()
    regions: tuple[tuple[str, float, float, float, float], ...] = ()


@dataclass
class Outcome:
    path: Path
    status: str
    message: str = ""


@dataclass
class Plan:
    items: list[Item] = field(default_factory=list)
    refused: list[Outcome] = field(default_factory=list)  # never sent: over the size limit, a bad COCO file
    skipped: list[Path] = field(default_factory=list)  # not images
    notes: list[str] = field(default_factory=list)

    @property
    def tag_names(self) -> list[str]:
        names: dict[str, str] = {}
        for item in self.items:
            for name in (*item.tags, *(r[0] for r in item.regions)):
                names.setdefault(name.casefold(), name)
        return list(names.values())


# ---- the folder ------------------------------------------------------------------------------------------
def plan_folder(root: Path, *, detection: bool, multiclass: bool, max_bytes: int = MAX_TRAINING_IMAGE_BYTES):
    """What uploading `root` would send. COCO files are read (and their images excluded from the folder
    walk, so an image is not sent twice, once without its boxes); files over `max_bytes` are refused here
    with the service's status rather than sent."""
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a folder")
    plan = Plan()
    files = sorted(p for p in _walk(root))
    in_coco: set[Path] = set()
    for path in (p for p in files if p.suffix.lower() == ".json"):
        items, problems, notes = read_coco(
            path, detection=detection, multiclass=multiclass, max_bytes=max_bytes
        )
        in_coco |= {item.path.resolve() for item in items} | _referenced(path)
        plan.notes += [f"{path.relative_to(root)}: {n}" for n in notes]
        if problems:
            shown = "; ".join(str(p) for p in problems[:5])
            more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
            plan.refused.append(Outcome(path, "ErrorCocoFile", f"{shown}{more}: nothing from it uploaded"))
        else:
            plan.items += items
    tagged_in_detector = 0
    for path in files:
        if path.suffix.lower() == ".json" or path.resolve() in in_coco:
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            plan.skipped.append(path)
            continue
        folder = path.parent.relative_to(root).parts
        tag = folder[0] if folder and folder[0].casefold() != "untagged" else None
        if tag and detection:
            tagged_in_detector += 1
            tag = None
        if path.stat().st_size > max_bytes:
            plan.refused.append(Outcome(path, TOO_BIG, too_big(path.stat().st_size, max_bytes)))
            continue
        plan.items.append(Item(path, (tag,) if tag else ()))
    if tagged_in_detector:
        plan.notes.append(
            f"{tagged_in_detector} images in tag folders uploaded untagged: an object detection project "
            "needs boxes (give them in a COCO file)"
        )
    return plan


def too_big(size: int, limit: int) -> str:
    return f"{size / 2**20:.1f} MB is over the {limit / 2**20:.0f} MB limit: not sent"


def _walk(root: Path) -> Iterator[Path]:
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in names:
            if not name.startswith("."):
                yield Path(folder, name)


def _referenced(path: Path) -> set[Path]:
    """Every local file a COCO file names, even when the file is refused (so its images are not uploaded
    as untagged strays)."""
    try:
        images = json.loads(path.read_bytes()).get("images", [])
        return {
            (path.parent / im["file_name"]).resolve() for im in images if isinstance(im.get("file_name"), str)
        }
    except (ValueError, AttributeError, TypeError):
        return set()


# ---- COCO ------------------------------------------------------------------------------------------------
class LocalResolver:
    """cvcore.coco's resolver over the local disk: `file_name` relative to the COCO file's folder (never
    outside it); URLs are not fetched (Custom Vision uploads bytes here)."""

    def __init__(self, folder: Path):
        self.folder = folder

    def locate(self, entry: dict) -> tuple[str, str]:
        if entry.get("file_name") is None:
            raise coco.SourceError(coco.NO_SOURCE, "a local upload needs file_name", "file_name")
        try:
            return coco.safe_relative_path(entry["file_name"]), "file_name"
        except ValueError as exc:
            raise coco.SourceError(coco.UNSAFE_PATH, f"file_name {exc}", "file_name") from None

    def read(self, ref: str, max_bytes: int) -> bytes:
        with open(self.folder / ref, "rb") as f:
            return f.read(max_bytes + 1)


def read_coco(path: Path, *, detection: bool, multiclass: bool, max_bytes: int = MAX_TRAINING_IMAGE_BYTES):
    """(items, problems, notes) of one COCO file, validated as the service validates a dropped one."""
    rules = coco.Rules(
        task=coco.DETECTION if detection else coco.CLASSIFICATION,
        multiclass=multiclass,
        max_image_bytes=max_bytes,
    )
    report = coco.validate(path.read_bytes(), LocalResolver(path.parent), rules)
    if not report.ok:
        return [], report.problems, report.notes
    names = {c.id: c.name for c in report.categories}
    items = []
    for im in report.images:
        file = path.parent / str(im.ref)  # validate() keeps only images it could read by their ref
        if detection:
            regions = tuple((names[c], *box) for c, box in im.annotations if c in names and box)
            items.append(Item(file, regions=regions))
        else:
            tags = tuple(dict.fromkeys(names[c] for c, _ in im.annotations if c in names))
            items.append(Item(file, tags=tags))
    return items, [], report.notes


# ---- sending ---------------------------------------------------------------------------------------------
def ensure_tags(trainer, project_id: str, names: list[str]) -> dict[str, str]:
    """{name casefolded: tag id}, creating the tags the project lacks (matched without case, as the
    service matches folder names)."""
    tags = {t.name.casefold(): t.id for t in trainer.get_tags(project_id)}
    for name in names:
        if name.casefold() not in tags:
            tags[name.casefold()] = trainer.create_tag(project_id, name).id
    return tags


def batches(items: list[Item], size: int = BATCH) -> Iterator[list[Item]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def entry(item: Item, tag_ids: dict[str, str]) -> ImageFileCreateEntry:
    return ImageFileCreateEntry(
        name=item.path.name,
        contents=item.path.read_bytes(),  # type: ignore[arg-type]  # msrest sends bytes as they are
        tag_ids=[tag_ids[t.casefold()] for t in item.tags] or None,
        regions=[
            Region(tag_id=tag_ids[name.casefold()], left=left, top=top, width=width, height=height)
            for name, left, top, width, height in item.regions
        ]
        or None,
    )


def send(
    trainer, project_id: str, plan: Plan, advance: Callable[[int], None] = lambda n: None
) -> list[Outcome]:
    """Upload the plan's items a batch at a time; one Outcome per item, in order, with the service's status."""
    tag_ids = ensure_tags(trainer, project_id, plan.tag_names)
    outcomes = []
    for batch in batches(plan.items):
        summary = trainer.create_images_from_files(
            project_id, ImageFileCreateBatch(images=[entry(item, tag_ids) for item in batch])
        )
        results = summary.images or []
        if len(results) != len(batch):
            raise RuntimeError(
                f"the service answered {len(results)} results for a batch of {len(batch)} images"
            )
        for item, result in zip(batch, results, strict=True):
            outcomes.append(Outcome(item.path, result.status, _message(result.status)))
        advance(len(batch))
    return outcomes


_MESSAGES = {
    "ErrorImageFormat": "not a readable image (corrupt, truncated or an unsupported format)",
    "ErrorImageSize": "over the size limit",
    "ErrorImageDimensions": "a side under 50 px or over 10,240 px",
    "ErrorInvalidTag": "a tag that is not in this project",
    "ErrorNegativeAndRegularTagOnSameImage": "the Negative tag together with another tag",
    "ErrorTagLimitExceed": "too many tags on the image",
    "ErrorRegionLimitExceed": "too many regions on the image",
    "ErrorLimitExceed": "the project's image limit is reached",
}


def _message(status: str) -> str:
    return _MESSAGES.get(status, "")


@dataclass
class Summary:
    created: int
    duplicates: int
    failed: list[Outcome]
    skipped: int

    def to_json(self) -> dict:
        return {
            "created": self.created,
            "duplicates": self.duplicates,
            "failed": [{"file": str(o.path), "status": o.status, "message": o.message} for o in self.failed],
            "skipped": self.skipped,
        }


def summarise(plan: Plan, outcomes: list[Outcome]) -> Summary:
    return Summary(
        created=sum(o.status == OK for o in outcomes),
        duplicates=sum(o.status == DUPLICATE for o in outcomes),
        failed=plan.refused + [o for o in outcomes if o.status not in (OK, DUPLICATE)],
        skipped=len(plan.skipped),
    )
