"""The malformed-COCO corpus (tests/data/coco_malformed): every file is rejected with its listed reasons."""

import functools
import json
from pathlib import Path

import pytest

from cvcore import coco
from tests.support import images as imgs

CORPUS = Path(__file__).resolve().parents[1] / "data" / "coco_malformed"
INDEX = json.loads((CORPUS / "cases.json").read_text())
ENDPOINT = "https://acct.blob.core.windows.net"
FOLDER = "p/_coco"
RULES = {
    "detection": coco.Rules(task=coco.DETECTION),
    "multiclass": coco.Rules(task=coco.CLASSIFICATION, multiclass=True),
    "multilabel": coco.Rules(task=coco.CLASSIFICATION),
}


@functools.cache
def harness() -> dict[str, bytes]:
    """The images the corpus names, as blobs of uploads/p/_coco/."""
    files = {f"{n}.jpg": imgs.photo_jpeg(i, (80, 60)) for i, n in enumerate("abcd")}
    files.update(
        {
            "rotated.jpg": imgs.exif_rotated_jpeg(6, (80, 60)),
            "truncated.jpg": imgs.truncated_jpeg(),
            "document.jpg": imgs.not_an_image(),
            "tiny.png": imgs.tiny_image(40),
            "bomb.png": imgs.decompression_bomb_png(),
        }
    )
    return {f"uploads/{FOLDER}/{name}": data for name, data in files.items()}


def resolver() -> coco.StorageResolver:
    def read(container, name, max_bytes):
        try:
            return harness()[f"{container}/{name}"][: max_bytes + 1]
        except KeyError:
            raise FileNotFoundError(name) from None

    return coco.StorageResolver(read, "uploads", FOLDER, ENDPOINT, ("uploads", "images"))


def base_document() -> dict:
    """What every detection case starts from (a valid file)."""
    return {
        "images": [
            {"id": i + 1, "file_name": f"{n}.jpg", "width": 80, "height": 60} for i, n in enumerate("abcd")
        ],
        "annotations": [
            {"id": i + 1, "image_id": i + 1, "category_id": 1 if i < 2 else 2, "bbox": [8, 6, 40, 30]}
            for i in range(4)
        ],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
    }


def test_the_corpus_is_complete():
    listed = {c["file"] for c in INDEX["cases"]}
    on_disk = {p.name for p in CORPUS.glob("*.json")} - {"cases.json"}
    assert listed == on_disk and len(listed) >= 30
    assert all(c["expect"] and c["why"] for c in INDEX["cases"])


def test_the_base_document_is_valid():
    """So that each case fails for its own change, not for a broken harness."""
    report = coco.validate(json.dumps(base_document()), resolver(), RULES["detection"])
    assert report.ok, report.problems
    assert report.bbox_format == coco.PIXELS and len(report.images) == 4


@pytest.mark.parametrize("case", INDEX["cases"], ids=[c["file"] for c in INDEX["cases"]])
def test_malformed_file_is_rejected_with_its_reason(case):
    report = coco.validate((CORPUS / case["file"]).read_bytes(), resolver(), RULES[case["project"]])
    got = {(p.code, p.path) for p in report.problems}
    assert not report.ok
    missing = [e for e in case["expect"] if (e["code"], e["path"]) not in got]
    assert not missing, f"{case['why']}: expected {missing}, got {[p.to_json() for p in report.problems]}"
    assert all(p.message for p in report.problems)
