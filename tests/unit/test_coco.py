"""cvcore.coco: the validator's rules one by one, its path and URL guards, its bounded memory, and the frozen
manifest sharing its checks."""

import hashlib
import json
import tracemalloc
from types import SimpleNamespace

import pytest

from cvcore import coco, manifest
from tests.support import images as imgs
from tests.unit.test_coco_corpus import ENDPOINT, base_document, resolver


def validate(doc, rules=None, res=None):
    return coco.validate(json.dumps(doc), res or resolver(), rules or coco.Rules())


def test_pixel_boxes_are_converted_and_the_report_says_so():
    report = validate(base_document())
    assert report.ok and report.bbox_format == coco.PIXELS
    assert any("pixels" in n and "converted" in n for n in report.notes)
    assert report.images[0].annotations == [(1, pytest.approx((0.1, 0.1, 0.5, 0.5)))]
    assert all(len(im.sha256) == 64 for im in report.images)


def test_normalised_boxes_are_kept_and_edges_are_clamped():
    doc = base_document()
    for a in doc["annotations"]:
        a["bbox"] = [0.5, 0.25, 0.5 + 5e-7, 0.75]
    report = validate(doc)
    assert report.ok and report.bbox_format == coco.NORMALIZED and not report.notes
    left, top, width, height = report.images[0].annotations[0][1]
    assert left + width <= 1.0 and (top, height) == (0.25, 0.75)


def test_info_bbox_format_decides_between_units():
    doc = base_document()
    doc["info"] = {"bbox_format": "normalized_ltwh"}
    report = validate(doc)  # pixel values under a normalised declaration are out of range, not converted
    assert {p.code for p in report.problems} == {coco.BBOX_OUT_OF_RANGE}
    doc = base_document()
    doc["info"] = {"bbox_format": "pixels"}
    for a in doc["annotations"]:
        a["bbox"] = [0.5, 0.5, 0.25, 0.25]  # sub-pixel: looks normalised, but the file says pixels
    assert validate(doc).problems[0].code == coco.MIXED_UNITS


def test_pixel_boxes_may_overshoot_by_rounding_then_are_clipped():
    doc = base_document()
    doc["annotations"][0]["bbox"] = [40, 30, 40.4, 30.3]
    report = validate(doc)
    assert report.ok
    left, top, width, height = report.images[0].annotations[0][1]
    assert left + width == pytest.approx(1.0) and top + height == pytest.approx(1.0)


def test_classification_annotations_tag_images_and_boxes_are_ignored():
    doc = base_document()
    report = validate(doc, coco.Rules(task=coco.CLASSIFICATION))
    assert report.ok and report.images[0].annotations == [(1, None)]
    assert any("ignored" in n for n in report.notes)
    for a in doc["annotations"]:
        del a["bbox"]
    assert validate(doc, coco.Rules(task=coco.CLASSIFICATION)).ok


def test_unused_category_is_skipped_with_a_note_but_kept_when_moving_a_project():
    doc = base_document()
    doc["categories"].append({"id": 3, "name": "bird", "type": "Negative"})
    report = validate(doc)
    assert report.ok and [c.name for c in report.categories] == ["cat", "dog"]
    assert any("'bird' has no annotations" in n for n in report.notes)
    kept = validate(doc, coco.Rules(min_images_per_category=0))
    assert [c.name for c in kept.categories] == ["cat", "dog", "bird"] and kept.categories[2].extra[
        "type"
    ] == "Negative"


def test_same_bytes_twice_are_one_image_with_a_note():
    doc = base_document()
    doc["images"][1]["file_name"] = "a.jpg"
    report = validate(doc)
    assert report.ok and report.images[0].sha256 == report.images[1].sha256
    assert any("same bytes" in n for n in report.notes)


def test_coco_url_elsewhere_falls_back_to_file_name_and_urls_inside_the_account_resolve():
    doc = base_document()
    doc["images"][0]["coco_url"] = "http://images.cocodataset.org/val2017/000000000139.jpg"
    doc["images"][1]["absolute_url"] = f"{ENDPOINT}/uploads/p/_coco/b.jpg?sv=2024&sig=secret"
    doc["images"][1]["file_name"] = "not-used.jpg"
    doc["images"][2]["coco_url"] = f"{ENDPOINT}/uploads/p/_coco/c%2Ejpg"
    report = validate(doc)
    assert report.ok, report.problems
    assert [(im.ref, im.field) for im in report.images[:3]] == [
        ("uploads/p/_coco/a.jpg", "file_name"),
        ("uploads/p/_coco/b.jpg", "absolute_url"),
        ("uploads/p/_coco/c.jpg", "coco_url"),
    ]


def test_every_problem_is_listed_in_file_order_with_paths():
    doc = base_document()
    doc["images"][0]["width"] = 81
    doc["images"][3]["file_name"] = "nothere.jpg"
    doc["annotations"][1]["bbox"] = [70, 0, 40, 30]
    report = validate(doc)
    assert [(p.code, p.path) for p in report.problems] == [
        (coco.BBOX_OUTSIDE_IMAGE, "annotations[1].bbox"),
        (coco.SIZE_MISMATCH, "images[0].width"),
        (coco.IMAGE_NOT_FOUND, "images[3].file_name"),
    ]
    assert report.summary()["problemCount"] == 3


@pytest.mark.parametrize(
    "name, ok",
    [
        ("a.jpg", "a.jpg"),
        ("sub/dir/a.jpg", "sub/dir/a.jpg"),
        ("sub//a.jpg", "sub/a.jpg"),
        ("../a.jpg", None),
        ("a/../../b", None),
        ("./a.jpg", None),
        ("/abs.jpg", None),
        ("a\\b.jpg", None),
        ("C:/x.jpg", None),
        ("http://x/y.jpg", None),
        ("", None),
        (7, None),
        ("a\x00.jpg", None),
        ("..", None),
    ],
)
def test_safe_relative_path(name, ok):
    if ok is None:
        with pytest.raises(ValueError):
            coco.safe_relative_path(name)
    else:
        assert coco.safe_relative_path(name) == ok


@pytest.mark.parametrize(
    "url, expected",
    [
        ("http://127.0.0.1:10000/devstoreaccount1/uploads/p/a.jpg", ("uploads", "p/a.jpg")),
        (
            "http://127.0.0.1:10000/devstoreaccount1/images/p/originals/x?se=1&sig=2",
            ("images", "p/originals/x"),
        ),
        ("http://127.0.0.1:10001/devstoreaccount1/uploads/p/a.jpg", None),  # the queue port
        ("http://127.0.0.1:10000/otheraccount/uploads/p/a.jpg", None),
        ("https://127.0.0.1:10000/devstoreaccount1/uploads/p/a.jpg", None),
        ("http://user@127.0.0.1:10000/devstoreaccount1/uploads/p/a.jpg", None),
        ("http://127.0.0.1:10000/devstoreaccount1/uploads", None),
    ],
)
def test_account_blob_accepts_only_the_configured_endpoint(url, expected):
    endpoint = "http://127.0.0.1:10000/devstoreaccount1"
    if expected is None:
        with pytest.raises(ValueError):
            coco.account_blob(url, endpoint)
    else:
        assert coco.account_blob(url, endpoint) == expected


def test_validating_20000_images_holds_a_window_of_them_not_all(monkeypatch):
    """Scale without the decode cost: every read is a fresh 64 KiB buffer; if the validator kept them,
    20,000 would be 1.3 GB. Decoding itself is covered by the corpus and the Azurite scale test."""
    n, size = 20_000, 64 * 1024
    monkeypatch.setattr(
        coco,
        "check_image",
        lambda data, **kw: SimpleNamespace(
            width=80, height=60, sha256=hashlib.sha256(data).hexdigest(), notes=()
        ),
    )

    class Fresh:
        def locate(self, entry):
            return entry["file_name"], "file_name"

        def read(self, ref, max_bytes):
            return bytes(size)

    doc = {
        "images": [{"id": i, "file_name": f"{i}.jpg", "width": 80, "height": 60} for i in range(n)],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
        "annotations": [
            {"id": i, "image_id": i, "category_id": 1 + i % 2, "bbox": [0.1, 0.1, 0.5, 0.5]} for i in range(n)
        ],
    }
    data = json.dumps(doc).encode()
    del doc
    seen = []
    tracemalloc.start()
    try:
        report = coco.validate(data, Fresh(), progress=lambda phase, done, total: seen.append((done, total)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.ok and len(report.images) == n and seen[-1] == (n, n) and len(seen) == n
    assert peak < 64 * 1024 * 1024, f"peak {peak / 1e6:.0f} MB while validating {n} images"


def test_bounded_map_never_has_more_than_the_window_in_flight():
    import threading
    from concurrent.futures import ThreadPoolExecutor

    lock, state = threading.Lock(), {"now": 0, "max": 0}

    def work(i):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        return i * 2

    with ThreadPoolExecutor(8) as pool:
        out = []
        for item, result in coco.bounded_map(pool, work, list(range(200)), window=5):
            out.append((item, result))
            with lock:
                state["now"] -= 1
    assert out == [(i, 2 * i) for i in range(200)] and state["max"] <= 5


def test_manifest_uses_the_shared_checks():
    good = manifest.Manifest(
        project_id="6f6b2b52-9d0e-4f0c-9a8e-3c1f4d2b7a10",
        iteration_id="6f6b2b52-9d0e-4f0c-9a8e-3c1f4d2b7a11",
        task="detection",
        classification_type=None,
        categories=[{"id": 1, "name": "a", "tag_id": "6f6b2b52-9d0e-4f0c-9a8e-3c1f4d2b7a12"}],
        images=[
            {
                "id": 1,
                "file_name": "x",
                "image_id": "6f6b2b52-9d0e-4f0c-9a8e-3c1f4d2b7a13",
                "width": 80,
                "height": 60,
            }
        ],
        annotations=[{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0.1, 0.1, 0.5, 0.5]}],
    )
    assert manifest.loads(good.dumps()).images == good.images
    bad = good.to_coco()
    bad["annotations"].append({"id": 2, "image_id": 9, "category_id": 1, "bbox": [0.6, 0, 0.5, 1]})
    with pytest.raises(manifest.ManifestError) as err:
        manifest.loads(json.dumps(bad))
    assert err.value.problems == [
        "annotations[1].image_id: 9 is not an image id",
        "annotations[1].bbox: left + width = 1.1 exceeds 1",
    ]
    with pytest.raises(manifest.ManifestError, match="not JSON"):
        manifest.loads(b"{")


def test_exif_rotated_image_is_judged_upright():
    doc = base_document()
    doc["images"][0]["file_name"] = "rotated.jpg"
    assert validate(doc).ok  # 80x60 upright, stored 60x80 with orientation 6
    assert imgs.exif_stored_size(6, (80, 60)) == (60, 80)
