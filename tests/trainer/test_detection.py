"""Detection training (gpu_trainer/detection.py, detection_eval.py): targets and decode, box-preserving
augmentation, a small training on composed scenes (real photos, exact boxes), the evaluation contract, ONNX
export matching torch in onnxruntime, divergence. Small on purpose: 128 px inputs, a dozen images, few
steps."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from PIL import Image

from cvcore import boxes as B
from cvcore.artifacts import DETECTION, Label, ModelSidecar, preprocess
from gpu_trainer import detection, detection_eval
from gpu_trainer.detection import DetExample, train_detector
from gpu_trainer.detection_augment import augment
from gpu_trainer.detection_model import Decode, regression_boxes, targets
from tests.support import scenes

TAGS = ("cat", "cup")
LABELS = [
    Label(index=i, tag_id=f"00000000-0000-0000-0000-00000000000{i}", name=t) for i, t in enumerate(TAGS)
]


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _examples(per_tag: int, seed: int, size=(160, 120)):
    return [DetExample(s.image, s.boxes, s.key) for s in scenes.dataset(TAGS, per_tag, seed=seed, size=size)]


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    seen = []
    result = train_detector(
        _examples(6, seed=3),
        LABELS,
        input_size=128,
        steps=150,
        dataset_hash="abc",
        progress=lambda f, m: seen.append((f, m)),
    )
    return result, seen


# -- scenes -------------------------------------------------------------------------------------------


def test_scenes_are_deterministic_with_exact_boxes():
    a, b = scenes.scene(7, TAGS, first=1), scenes.scene(7, TAGS, first=1)
    assert a.boxes == b.boxes and a.image.tobytes() == b.image.tobytes()
    assert scenes.scene(8, TAGS, first=1).image.tobytes() != a.image.tobytes()
    assert a.boxes[0][0] == 1
    for _label, left, top, w, h in a.boxes:
        assert 0 <= left and 0 <= top and left + w <= 1 + 1e-9 and top + h <= 1 + 1e-9 and w > 0 and h > 0
    ds = scenes.dataset(TAGS, 3, seed=1)
    assert len(ds) == 6 and len({s.key for s in ds}) == 6
    assert all(any(b[0] == i // 3 for b in s.boxes) for i, s in enumerate(ds))


# -- targets, decode, augmentation --------------------------------------------------------------------


def test_decode_recovers_boxes_from_perfect_outputs():
    """Targets -> the outputs a perfect head would give -> Decode gives the boxes back, best first,
    padded rows all zero; a duplicate peak of the same label is suppressed by the in-graph NMS."""
    h = w = 8
    truth = [(0, 0.1, 0.2, 0.3, 0.25), (1, 0.55, 0.5, 0.4, 0.45)]
    heat, box_t, weight = targets(truth, 2, h, w)
    assert heat.max() == 1.0 and int((heat == 1).sum()) == 2 and weight.max() == 1.0
    logits = torch.where(heat == 1, torch.tensor(6.0), torch.tensor(-9.0)).unsqueeze(0)
    reg = torch.zeros(1, 4, h, w)
    ys = torch.arange(h).view(h, 1) + 0.5
    xs = torch.arange(w).view(1, w) + 0.5
    cx, cy = (box_t[0] + box_t[2]) / 2, (box_t[1] + box_t[3]) / 2
    reg[0, 0], reg[0, 1] = cx * w - xs, cy * h - ys
    reg[0, 2] = torch.log((box_t[2] - box_t[0]).clamp(min=1e-3))
    reg[0, 3] = torch.log((box_t[3] - box_t[1]).clamp(min=1e-3))
    assert torch.allclose(regression_boxes(reg)[0, :, weight > 0][2:], (box_t[2:] - box_t[:2])[:, weight > 0])
    boxes, scores, labels = Decode(top_k=10, nms_iou=0.5)(logits, reg)
    assert boxes.shape == (1, 10, 4) and scores.shape == (1, 10) and labels.dtype == torch.int64
    got = sorted(
        (int(lab), *np.round(b.tolist(), 4))
        for b, s, lab in zip(boxes[0], scores[0], labels[0], strict=True)
        if s > 0.01
    )
    assert got == [(0, 0.1, 0.2, 0.3, 0.25), (1, 0.55, 0.5, 0.4, 0.45)]
    assert torch.all(boxes[0][scores[0] == 0] == 0) and torch.all(labels[0][scores[0] == 0] == 0)
    assert int((scores[0] > 0).sum()) < 10  # off-peak cells are zeroed
    # a second peak of label 0 next to the first (not adjacent: both survive the 3x3 max-pool) overlapping it
    i, j = (heat[0] == 1).nonzero()[0].tolist()
    logits[0, 0, i, j + 2] = 5.0
    reg[0, :, i, j + 2] = reg[0, :, i, j] + torch.tensor([-2.0, 0, 0, 0])
    _, scores2, _ = Decode(top_k=10, nms_iou=0.5)(logits, reg)
    assert int((scores2 > 0.01).sum()) == 2
    _, scores3, _ = Decode(top_k=10, nms_iou=1.0)(logits, reg)
    assert int((scores3 > 0.01).sum()) == 3


def test_augment_keeps_boxes_on_the_object():
    """A red block on grey: after any augmentation, the returned box is where the red pixels are."""
    image = Image.new("RGB", (200, 150), (120, 120, 120))
    image.paste((230, 20, 20), (40, 30, 100, 90))
    box = (0, 40 / 200, 30 / 150, 60 / 200, 60 / 150)
    rng = random.Random(0)
    checked = 0
    for _ in range(40):
        out, boxes = augment(image, [box], rng)
        a = np.asarray(out).astype(int)
        red = (a[:, :, 0] > a[:, :, 1] + 60) & (a[:, :, 0] > a[:, :, 2] + 60)
        if not boxes:
            continue
        ys, xs = np.nonzero(red)
        found = (
            xs.min() / out.width,
            ys.min() / out.height,
            (xs.max() + 1 - xs.min()) / out.width,
            (ys.max() + 1 - ys.min()) / out.height,
        )
        assert B.iou([found], [boxes[0][1:]])[0, 0] > 0.9, (found, boxes)
        checked += 1
    assert checked > 30


# -- training and evaluation --------------------------------------------------------------------------


def test_train_detector_result_contract(trained):
    result, seen = trained
    side = result.sidecar
    assert side.task == DETECTION and side.input_size == (128, 128) and side.backbone == "mobilenet_v2"
    assert side.labels == LABELS and side.dataset_hash == "abc" and 0 < side.nms_iou < 1
    assert side.max_detections == 100
    assert set(side.thresholds) == {lab.tag_id for lab in LABELS}
    assert {"precision", "recall", "averagePrecision", "map30", "map50", "map75"} <= set(side.metrics)
    assert ModelSidecar.from_json(json.loads(json.dumps(side.to_json()))) == side
    assert seen and seen[-1][0] == 1.0 and all(0 <= f <= 1 for f, _ in seen)
    assert json.loads(json.dumps(result.config))["recipe"]["input_size"] == 128


def test_evaluation_contract_and_performance(trained):
    result, _ = trained
    ev = json.loads(json.dumps(result.evaluation))
    assert ev["task"] == "detection" and ev["folds"] == 3
    assert [lab["tag_id"] for lab in ev["labels"]] == [lab.tag_id for lab in LABELS]
    assert len(ev["images"]) == 12 and {im["fold"] for im in ev["images"]} == {0, 1, 2}
    for im in ev["images"]:
        assert set(im) >= {"key", "fold", "width", "height", "truth", "detections"}
        assert (im["width"], im["height"]) == (160, 120)
        for label, score, left, top, w, h in im["detections"]:
            assert label in (0, 1) and 0 < score <= 1
            assert 0 <= left and 0 <= top and left + w <= 1 + 1e-6 and top + h <= 1 + 1e-6
        scores = [d[1] for d in im["detections"]]
        assert scores == sorted(scores, reverse=True)
    for key in ("map30", "map50", "map75"):
        assert 0 <= ev[key] <= 1
    assert ev["map30"] >= ev["map50"] >= ev["map75"]
    perf = B.detection_performance(ev, 0.5, 0.3)
    assert [t["name"] for t in perf["perTagPerformance"]] == list(TAGS)
    assert perf["map50"] == ev["map50"]
    loose = B.detection_performance(ev, 0.05, 0.3)
    assert loose["recall"] >= perf["recall"]
    assert ev["map50"] > 0.3, ev  # 8 training images per fold, 150 steps: it does find things


def test_model_outputs_and_fit(trained):
    """The final model finds the boxes of its own training images (normalised ltwh, best first)."""
    result, _ = trained
    examples = _examples(6, seed=3)
    batch = torch.from_numpy(preprocess([e.image for e in examples], result.sidecar))
    with torch.inference_mode():
        boxes, scores, labels = result.model(batch)
    assert boxes.shape == (12, 100, 4) and scores.shape == (12, 100) and labels.dtype == torch.int64
    assert torch.all(scores[:, :-1] >= scores[:, 1:]) and torch.all((boxes >= 0) & (boxes <= 1))
    images = []
    for e, b, s, lab in zip(examples, boxes.numpy(), scores.numpy(), labels.numpy(), strict=True):
        dets = B.postprocess(b, s, lab, nms_iou=result.sidecar.nms_iou, min_score=0.01)
        images.append(
            {
                "width": 160,
                "height": 120,
                "truth": [list(x) for x in e.boxes],
                "detections": [list(d) for d in dets],
            }
        )
    assert detection_eval.coco_maps(images, 2)["map50"] > 0.7


def test_onnx_export_matches_torch(trained, tmp_path):
    import onnxruntime as ort

    result, _ = trained
    path = tmp_path / "model.onnx"
    samples = [e.image for e in _examples(2, seed=9)]
    from gpu_trainer.export import export_onnx, quantize_int8

    report = export_onnx(result.model, result.sidecar, path, samples[:2], output_names=detection.OUTPUT_NAMES)
    assert report["max_abs_diff"] <= 1e-4
    import onnx

    graph = onnx.load(str(path))
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) >= 17
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["boxes", "scores", "labels"]
    batch = preprocess(samples, result.sidecar)  # 4 images: a batch size other than the export's
    got = session.run(["boxes", "scores", "labels"], {"image": batch})
    with torch.inference_mode():
        want = [t.numpy() for t in result.model(torch.from_numpy(batch))]
    assert got[2].dtype == np.int64 and got[0].shape == want[0].shape == (4, 100, 4)
    assert np.allclose(got[1], want[1], atol=1e-4)
    live = want[1] > 1e-3
    assert np.allclose(got[0][live], want[0][live], atol=1e-4)
    assert np.array_equal(got[2][live], want[2][live])
    quantize_int8(path, tmp_path / "int8.onnx", check=None)
    q = ort.InferenceSession(str(tmp_path / "int8.onnx"), providers=["CPUExecutionProvider"])
    assert [o.shape for o in q.run(None, {"image": batch})] == [x.shape for x in want]


def test_diverging_loss_raises(monkeypatch):
    monkeypatch.setattr(detection, "focal_loss", lambda logits, target: logits.sum() * float("nan"))
    with pytest.raises(detection.TrainingDiverged):
        train_detector(_examples(2, seed=5), LABELS, input_size=64, steps=3)


# -- evaluation helpers -------------------------------------------------------------------------------


def test_folds_are_balanced_by_tag():
    examples = _examples(6, seed=3)
    folds = detection_eval.assign_folds(examples, 3, seed=0)
    assert sorted(np.bincount(folds).tolist()) == [4, 4, 4]
    for tag in range(2):
        assert sorted(
            np.bincount(
                folds[[i for i, e in enumerate(examples) if e.boxes[0][0] == tag]], minlength=3
            ).tolist()
        ) == [2, 2, 2]


def test_coco_maps_and_calibration():
    truth = [[0, 0.1, 0.1, 0.3, 0.3], [1, 0.5, 0.5, 0.3, 0.3]]
    perfect = [
        {"width": 100, "height": 80, "truth": truth, "detections": [[t[0], 0.9, *t[1:]] for t in truth]}
    ]
    assert detection_eval.coco_maps(perfect, 2) == pytest.approx({"map30": 1.0, "map50": 1.0, "map75": 1.0})
    shifted = [{**perfect[0], "detections": [[0, 0.9, 0.2, 0.1, 0.3, 0.3]]}]  # IoU 0.5 with the cat, no cup
    maps = detection_eval.coco_maps(shifted, 2)
    assert maps["map30"] == pytest.approx(0.5) and maps["map75"] == 0.0
    assert detection_eval.coco_maps([{**perfect[0], "detections": []}], 2)["map50"] == 0.0
    assert detection_eval.fit_calibration(perfect) == (1.0, 0.0)  # too little evidence: identity
    rng = np.random.default_rng(0)
    images = []
    for _ in range(60):  # scores 0.2 right half the time, 0.6 right almost always
        s = float(rng.choice([0.2, 0.6]))
        right = rng.random() < (0.5 if s == 0.2 else 0.95)
        box = [0.1, 0.1, 0.3, 0.3] if right else [0.6, 0.6, 0.3, 0.3]
        images.append({"truth": [[0, 0.1, 0.1, 0.3, 0.3]], "detections": [[0, s, *box]]})
    a, b = detection_eval.fit_calibration(images)
    assert a > 0
    assert detection_eval.calibrate_score(0.2, (a, b)) == pytest.approx(0.5, abs=0.15)
    assert detection_eval.calibrate_score(0.6, (a, b)) > 0.85


def test_decode_graph_is_deterministic_with_saturated_scores(tmp_path):
    """Scores that saturate to exactly 1.0 after calibration must still come out in the same order from
    onnxruntime and torch (the order comes from the logits, kept rows are compacted by integer rank)."""
    import onnxruntime as ort

    class Only(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.decode = Decode(top_k=20, nms_iou=0.5, calibration=(20.0, 10.0))

        def forward(self, heat, reg):
            return self.decode(heat, reg)

    torch.manual_seed(0)
    heat, reg = torch.randn(3, 2, 6, 6) * 4, torch.randn(3, 4, 6, 6) * 0.3
    path = str(tmp_path / "decode.onnx")
    torch.onnx.export(
        Only(),
        (heat, reg),
        path,
        input_names=["heat", "reg"],
        output_names=["b", "s", "l"],
        opset_version=17,
        dynamo=False,
        dynamic_axes={"heat": {0: "n"}, "reg": {0: "n"}},
    )
    got = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(
        None, {"heat": heat.numpy(), "reg": reg.numpy()}
    )
    want = [t.numpy() for t in Only()(heat, reg)]
    assert (want[1] == 1.0).sum() > 3  # saturated: ties in the scores
    assert np.array_equal(got[2], want[2]) and np.allclose(got[0], want[0], atol=1e-6)
    assert np.allclose(got[1], want[1], atol=1e-6)


def test_advanced_tries_recipes_and_keeps_the_best():
    """Advanced: the frozen-backbone recipe and the ones that also train the stride-32 stages are
    cross-validated; the kept one is the best by mAP@50 and its model runs."""
    examples = _examples(3, seed=4, size=(96, 96))
    result = train_detector(examples, LABELS, advanced=True, budget_seconds=600, input_size=64, steps=4)
    tried = result.config["candidates"]
    assert [c["recipe"] for c in tried][:2] == ["head@64", "high@64"]
    assert result.config["recipe"]["trainable"] in ("head", "high")
    best = max(c["map50"] for c in tried)
    assert result.evaluation["map50"] == best and result.evaluation["folds"] == 5
    with torch.inference_mode():
        batch = torch.from_numpy(preprocess([e.image for e in examples], result.sidecar))
        boxes, scores, labels = result.model(batch)
    assert boxes.shape == (6, 32, 4)  # top-K capped by labels x cells (2 x 4 x 4)


def test_calibration_survives_separable_scores():
    images = [
        {
            "truth": [[0, 0.1, 0.1, 0.3, 0.3]],
            "detections": [[0, s, *([0.1, 0.1, 0.3, 0.3] if s > 0.5 else [0.6, 0.6, 0.3, 0.3])]],
        }
        for s in np.linspace(0.05, 0.95, 40)
    ]
    a, b = detection_eval.fit_calibration(images)
    assert 0 < a <= 8 and abs(b) <= 10
    assert (
        detection_eval.calibrate_score(0.9, (a, b)) > 0.9
        and detection_eval.calibrate_score(0.1, (a, b)) < 0.1
    )
