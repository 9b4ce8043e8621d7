"""The model doctor (gpu_trainer/doctor/): each diagnosis on evidence where the answer is known, the page,
and its place in the training (near duplicates share a fold, the evidence it is handed)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from gpu_trainer import doctor
from gpu_trainer.cv import assign_folds
from gpu_trainer.report import advice_page

NAMES = ["apple", "citrus", "pear"]


def noise_image(seed: int, border=None, size=(96, 96)) -> Image.Image:
    """A distinct picture per seed (smooth random blobs), optionally on a flat-coloured border band."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    image = np.asarray(Image.fromarray(small).resize(size, Image.BICUBIC)).copy()
    if border is not None:
        b = size[0] // 6
        image[:b], image[-b:], image[:, :b], image[:, -b:] = border, border, border, border
    return Image.fromarray(image)


def near_copy(image: Image.Image) -> Image.Image:
    w, h = image.size
    out = io.BytesIO()
    image.crop((1, 1, w - 1, h - 1)).resize((w, h)).save(out, "JPEG", quality=85)
    return Image.open(io.BytesIO(out.getvalue())).convert("RGB")


def evidence(y, oof=None, features=None, k=3, stats=None, **kw) -> doctor.Evidence:
    y = np.asarray(y)
    n = len(y)
    rng = np.random.default_rng(0)
    if features is None:
        features = rng.normal(size=(n, 16)) + 3.0 * np.eye(16)[np.minimum(y, 15)]
    if oof is None:
        oof = np.full((n, len(NAMES)), 0.05)
        oof[np.arange(n), np.minimum(y, len(NAMES) - 1)] = 0.9
    folds = np.arange(n) % k
    return doctor.Evidence(
        features=np.asarray(features, float),
        folds=folds,
        k=k,
        y=y,
        regular_names=list(NAMES),
        multilabel=False,
        oof=np.asarray(oof, float),
        c=0.1,
        gate=(0.0, 0.05),
        gate_dims=16,
        has_negative=False,
        stats=stats,
        **kw,
    )


def test_quantity_and_balance_follow_custom_visions_guidance():
    assert doctor.quantity({"a": 50, "b": 60}, "classification") == []
    (few,) = doctor.quantity({"a": 4, "b": 30, "c": 60}, "classification")
    assert few.severity == "high" and few.tags == ["a", "b"] and "minimum of 5" in few.message
    assert doctor.balance({"a": 30, "b": 60}) == []  # 1:2 is fine
    (off,) = doctor.balance({"a": 8, "b": 60, "c": 55})
    assert off.tags == ["a"] and off.severity == "high" and "'a' has 8 images and 'b' 60" in off.message


def test_confidently_contradicted_labels_are_found_and_ranked_with_a_suggested_tag():
    y = np.repeat([0, 1, 2], 20)
    oof = np.full((60, 3), 0.05)
    oof[np.arange(60), y] = 0.9
    wrong = {5: 1, 25: 2, 47: 0}  # tagged y, but the held-out model is sure it is the other
    for i, other in wrong.items():
        oof[i] = 0.02
        oof[i, other] = {5: 0.97, 25: 0.95, 47: 0.88}[i]  # 0.88 still passes apple's own average (0.856)
    oof[10] = [0.45, 0.5, 0.05]  # merely unsure: not a suspect
    oof[11] = [0.2, 0.0, 0.8]  # sure of another tag, but still gives its own 0.2: not a suspect
    ids = [f"img{i}" for i in range(60)]
    (found,) = doctor.label_errors(evidence(y, oof), ids)
    assert found.image_ids == ["img5", "img25", "img47"]  # most confident first
    first = found.numbers["suspects"][0]
    assert (first["tag"], first["suggested"]) == ("apple", "citrus") and found.severity == "high"
    assert doctor.label_errors(evidence(y), ids) == []


def test_near_copies_across_tags_are_contradictions_and_within_a_tag_inflation():
    images = [noise_image(s) for s in range(12)]
    images += [near_copy(images[0]), near_copy(images[1])]
    y = np.array([0, 1, 2] * 4 + [1, 1])  # copy of 0 (apple) tagged citrus; copy of 1 (citrus) tagged citrus
    stats = np.stack([doctor.image_stats(im) for im in images])
    features = stats[:, doctor.THUMBNAIL]  # stand-in embeddings that agree with the thumbnails
    tag_sets = [(NAMES[v],) for v in y]
    ids = [f"i{n}" for n in range(len(images))]
    found = {f.kind: f for f in doctor.duplicates(evidence(y, features=features), stats, ids, tag_sets)}
    assert found["duplicates_across_tags"].numbers["pairs"][0]["images"] == ["i0", "i12"]
    assert found["duplicates_within_tags"].numbers["pairs"][0]["images"] == ["i1", "i13"]
    assert set(found) == {"duplicates_across_tags", "duplicates_within_tags"}
    groups = doctor.duplicate_groups(stats)
    assert groups[12] == groups[0] and groups[13] == groups[1] and len(set(groups)) == 12
    folds, k = assign_folds(y, 0, groups)
    assert folds[12] == folds[0] and folds[13] == folds[1]
    assert np.array_equal(assign_folds(y, 0, np.arange(len(y)))[0], assign_folds(y, 0)[0])


def test_a_tag_on_its_own_background_is_a_shortcut_and_varied_backgrounds_are_not():
    rng = np.random.default_rng(3)
    y = np.repeat([0, 1, 2], 12)

    def border(tag):
        return (200, 30, 30) if tag == 1 else tuple(int(v) for v in rng.integers(60, 200, 3))

    stats = np.stack([doctor.image_stats(noise_image(100 + i, border(t))) for i, t in enumerate(y)])
    (found,) = doctor.shortcuts(evidence(y), stats, [f"i{i}" for i in range(len(y))])
    assert (
        found.tags == ["citrus"] and found.numbers["view"] == "background" and found.numbers["recall"] >= 0.9
    )
    plain = np.stack([doctor.image_stats(noise_image(200 + i, border(0))) for i in range(len(y))])
    assert doctor.shortcuts(evidence(y), plain, [f"i{i}" for i in range(len(y))]) == []


def layered(seed: int, top, bottom, size=(96, 96)) -> Image.Image:
    """noise_image with the top half of its border band one colour and the bottom half another."""
    image = np.asarray(noise_image(seed, size=size)).copy()
    b = size[0] // 6
    half = size[1] // 2
    image[:half, :b], image[:half, -b:], image[:b] = top, top, top
    image[half:, :b], image[half:, -b:], image[-b:] = bottom, bottom, bottom
    return Image.fromarray(image)


def test_a_background_told_apart_only_by_its_layout_is_a_shortcut():
    # Every tag has the same two background colours; only 'citrus' has the blue above (sky) and the green below
    # (grass): the band's colour statistics are alike, the blurred object-masked view is not.
    blue, green = (40, 90, 220), (40, 170, 50)
    y = np.repeat([0, 1, 2], 12)
    stats = np.stack(
        [
            doctor.image_stats(layered(300 + i, *((blue, green) if t == 1 else (green, blue))))
            for i, t in enumerate(y)
        ]
    )
    assert np.allclose(
        stats[y == 1][:, doctor.BACKGROUND].mean(0), stats[y != 1][:, doctor.BACKGROUND].mean(0), atol=0.02
    )
    found = doctor.shortcuts(evidence(y), stats, [f"i{i}" for i in range(len(y))])
    assert [f.tags for f in found] == [["citrus"]] and found[0].numbers["view"] == "background"


def test_a_tag_taken_with_its_own_camera_is_a_shortcut_and_mixed_cameras_are_not():
    y = np.repeat([0, 1, 2], 12)
    ids = [f"i{i}" for i in range(len(y))]
    stats = np.stack([doctor.image_stats(noise_image(400 + i, (90, 90, 90))) for i in range(len(y))])
    phones = ["Google Pixel 7", "Apple iPhone 13"]
    by_tag = [
        {"camera": "Canon EOS 5D", "format": "JPEG"}
        if t == 1
        else {"camera": phones[i % 2], "format": "JPEG"}
        for i, t in enumerate(y)
    ]
    (found,) = doctor.shortcuts(evidence(y), stats, ids, by_tag)
    assert found.tags == ["citrus"] and found.numbers["view"] == "camera"
    assert found.numbers["cameras"] == {"Canon EOS 5D": 12} and "camera" in found.message
    mixed = [{"camera": phones[i % 2] if i % 3 else "Canon EOS 5D"} for i in range(len(y))]
    assert doctor.shortcuts(evidence(y), stats, ids, mixed) == []
    assert doctor.shortcuts(evidence(y), stats, ids, [{} for _ in ids]) == []  # no EXIF: nothing to say


def test_the_uploaded_format_counts_not_the_stored_re_encode():
    y = np.repeat([0, 1, 2], 12)
    ids = [f"i{i}" for i in range(len(y))]
    stats = np.stack([doctor.image_stats(noise_image(500 + i, (90, 90, 90)), "PNG") for i in range(len(y))])
    uploaded = [{"format": "BMP" if t == 1 else "JPEG"} for t in y]  # every BMP was stored as PNG
    (found,) = doctor.shortcuts(evidence(y), stats, ids, uploaded)
    assert found.tags == ["citrus"] and found.numbers["view"] == "size_format"
    assert doctor.shortcuts(evidence(y), stats, ids) == []


def test_the_learning_curve_rises_on_learnable_data_and_predicts_a_gain():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 40)
    features = rng.normal(size=(120, 32)) + 1.2 * np.eye(32)[y]  # overlapping classes: more data helps
    ev = evidence(y, features=features, k=4)
    ev.oof = np.eye(3)[y] * 0.8 + 0.066
    curve = doctor.learning_curve(ev, {n: 40 for n in NAMES})
    assert len(curve["sizes"]) == 4 and curve["sizes"] == sorted(curve["sizes"])
    assert curve["top1"][-1] > curve["top1"][0]
    assert curve["expected_gain_when_doubled"] > 0 and set(curve["per_tag"]) == set(NAMES)
    (finding,) = doctor.curve_findings(curve, {n: 40 for n in NAMES})
    assert finding.kind == "learning_curve" and "doubling" in finding.message
    flat = {**curve, "expected_gain_when_doubled": 0.001}
    assert "flat" in doctor.curve_findings(flat, {n: 40 for n in NAMES})[0].message


def test_unseen_look_alikes_scored_confidently_call_for_a_negative_tag():
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1, 2], 15)
    centres = (
        rng.normal(size=(3, 16)) * 0.3
    )  # close tags: a left-out one is taken for another with confidence
    features = centres[y] + 0.05 * rng.normal(size=(45, 16))
    (found,) = doctor.out_of_set(evidence(y, features=features), [f"i{i}" for i in range(45)])
    assert found.kind == "out_of_set" and "Negative tag" in found.message


def test_detector_regions_tiny_huge_cut_and_drawn_twice():
    images = [
        {"id": "a", "boxes": [(0, 0.4, 0.4, 0.005, 0.005), (1, 0.02, 0.02, 0.97, 0.97)]},
        {"id": "b", "boxes": [(0, 0.0, 0.3, 0.2, 0.2), (0, 0.001, 0.301, 0.2, 0.2)]},
        {"id": "c", "boxes": [(1, 0.3, 0.3, 0.3, 0.3)]},
    ]
    advice = doctor.diagnose_detector(images, ["cup", "cat"])
    kinds = {f["kind"]: f for f in advice["findings"]}
    assert kinds["tiny_boxes"]["image_ids"] == ["a"] and kinds["huge_boxes"]["image_ids"] == ["a"]
    assert kinds["duplicate_boxes"]["image_ids"] == ["b"] and kinds["boxes_cut_by_border"]["image_ids"] == [
        "b"
    ]
    assert kinds["quantity"]["severity"] == "high" and advice["regions_per_tag"] == {"cup": 3, "cat": 2}
    assert advice["findings"][0]["severity"] == "high"  # most severe first


def test_a_failing_check_is_reported_and_the_others_still_run(monkeypatch):
    y = np.repeat([0, 1, 2], 10)
    examples = [type("E", (), {"key": f"i{i}", "image": noise_image(i)})() for i in range(30)]

    def broken(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(doctor, "shortcuts", broken)
    advice = doctor.diagnose_classifier(examples, evidence(y))
    assert advice["checks"]["shortcuts"] == "failed: RuntimeError: boom"
    assert advice["checks"]["quantity"].startswith("ran") and advice["checks"]["learning_curve"].startswith(
        "ran"
    )
    json.dumps(advice)  # advice.json is plain JSON


def test_the_page_escapes_what_people_typed():
    page = advice_page(
        {
            "task": "classification",
            "images": 3,
            "seconds": 0.1,
            "checks": {"quantity": "ran"},
            "findings": [
                {
                    "kind": "quantity",
                    "severity": "high",
                    "message": "'<script>x</script>'",
                    "tags": [],
                    "image_ids": ["<b>"],
                    "numbers": {},
                }
            ],
        }
    )
    assert "<script>" not in page and "&lt;script&gt;" in page and "&lt;b&gt;" in page


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_image_statistics_layout(fmt):
    image = noise_image(7, border=(10, 200, 30), size=(120, 80))
    stats = doctor.image_stats(image, fmt)
    assert stats.shape == (doctor.SIDES.stop,) and set(np.unique(stats[doctor.HASH])) <= {0.0, 1.0}
    assert np.allclose(stats[doctor.SIDES].reshape(4, 3), np.array([10, 200, 30]) / 255, atol=0.08)
    assert abs(np.linalg.norm(stats[doctor.THUMBNAIL]) - 1) < 1e-4
    assert np.allclose(stats[doctor.BACKGROUND][:3], np.array([10, 200, 30]) / 255, atol=0.08)
    assert list(stats[doctor.FILE][:2]) == [120, 80] and stats[doctor.FILE][3] == {"PNG": 2, "JPEG": 1}[fmt]


def test_field_images_unlike_the_training_set_are_drift_ranked_most_unlike_first():
    rng = np.random.default_rng(5)
    y = np.repeat([0, 1, 2], 20)
    centres = rng.normal(size=(3, 32)) * 3
    features = centres[y] + rng.normal(size=(60, 32))
    ev = evidence(y, features=features)
    alike = centres[rng.integers(0, 3, 20)] + rng.normal(size=(20, 32))
    assert doctor.drift(ev, alike, [f"p{i}" for i in range(20)]) == []
    other = rng.normal(size=(20, 32)) * 3 + 8  # a different camera, a different place
    mixed = np.concatenate([alike[:10], other[:10]])
    (found,) = doctor.drift(ev, mixed, [f"p{i}" for i in range(20)])
    assert found.kind == "drift" and set(found.prediction_ids[:10]) == {f"p{i}" for i in range(10, 20)}
    assert found.numbers["share_unlike"] >= 0.5 and found.severity == "high"
    assert doctor.drift(ev, other[:3], ["a", "b", "c"]) == []  # too few to say


def test_the_drift_check_embeds_stored_predictions_through_the_training_embedding(monkeypatch):
    y = np.repeat([0, 1, 2], 10)
    examples = [type("E", (), {"key": f"i{i}", "image": noise_image(i)})() for i in range(30)]
    tight = 5.0 * np.eye(16)[y] + 0.3 * np.random.default_rng(2).normal(size=(30, 16))  # three tight clusters
    ev = evidence(y, features=tight)
    seen = {}

    def embed(load, keys):
        seen["keys"] = keys
        seen["sizes"] = [load(i).size for i in range(len(keys))]
        return np.tile(5.0 * np.eye(16)[12], (len(keys), 1))  # along none of the training clusters

    ev.embed = embed
    jpeg = io.BytesIO()
    noise_image(99).save(jpeg, "JPEG")
    data = jpeg.getvalue()
    field = [(f"pred{i}", lambda: data) for i in range(9)] + [("broken", lambda: b"nope")]
    advice = doctor.diagnose_classifier(examples, ev, field=field)
    assert seen["keys"] == [f"prediction-pred{i}" for i in range(9)] and seen["sizes"][0] == (96, 96)
    (found,) = [f for f in advice["findings"] if f["kind"] == "drift"]
    assert found["prediction_ids"][0].startswith("pred") and advice["checks"]["drift"].startswith("ran")
    assert doctor.diagnose_classifier(examples, evidence(y), field=field[:3])["checks"]["drift"].startswith(
        "not run"
    )
