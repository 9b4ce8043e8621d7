"""ONNX export (parity with torch through cvcore.artifacts.preprocess), int8 quantisation, report images."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from cvcore import inference
from cvcore.artifacts import ModelSidecar, preprocess
from cvcore.imaging import MAX_PREDICTION_IMAGE_BYTES, decode_rgb
from gpu_trainer import export
from gpu_trainer.report import detection_curves, write_detection_report, write_report
from tests.support.images import photo_image, photo_jpeg
from tests.trainer.test_classification import ASTRONAUT, CHELSEA, COFFEE, photo, trained_two_photos

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    result, examples = trained_two_photos()
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    check = export.export_onnx(result.model, result.sidecar, path, [ex.image for ex in examples[:3]])
    return result, path, check


def test_graph_contract(exported):
    result, path, check = exported
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == ["image"]
    assert [o.name for o in model.graph.output] == ["probabilities"]
    assert max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")) >= 17
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, *result.sidecar.input_size]
    assert check["max_abs_diff"] <= 1e-4


def test_onnxruntime_matches_torch_on_new_images_and_any_batch(exported):
    result, path, _ = exported
    sess = export.session(path)
    images = [photo(ASTRONAUT, 60), photo(COFFEE, 60), photo(CHELSEA, 60)]
    batch = preprocess(images, result.sidecar)
    with torch.no_grad():
        expected = result.model(torch.from_numpy(batch)).numpy()
    got = sess.run(["probabilities"], {"image": batch})[0]
    assert np.abs(got - expected).max() < 1e-4
    one = sess.run(["probabilities"], {"image": batch[:1]})[0]
    assert np.abs(one - expected[:1]).max() < 1e-4
    # the sidecar round-trips through JSON and still drives preprocess identically
    again = ModelSidecar.from_json(result.sidecar.to_json())
    assert np.array_equal(preprocess(images, again), batch)


def test_export_refuses_a_graph_that_does_not_match(tmp_path):
    result, examples = trained_two_photos()
    with pytest.raises(export.ExportMismatch):
        export.export_onnx(
            result.model, result.sidecar, tmp_path / "m.onnx", [examples[0].image], tolerance=-1.0
        )


def test_int8_quantisation_loads_and_agrees(exported, tmp_path):
    result, path, _ = exported
    out = tmp_path / "model.int8.onnx"
    info = export.quantize_int8(path, out)
    assert out.exists() and info["agreement"] == 1.0
    assert out.stat().st_size < path.stat().st_size
    images = [photo(ASTRONAUT, 61), photo(COFFEE, 61)]
    p = export.session(out).run(["probabilities"], {"image": preprocess(images, result.sidecar)})[0]
    assert p[0].argmax() == 0 and p[1].argmax() == 1


def test_generic_outputs_for_other_tasks(tmp_path):
    class TwoOutputs(torch.nn.Module):
        def forward(self, x):
            pooled = x.mean(dim=(2, 3))
            return pooled * 2, pooled.sum(dim=1, keepdim=True)

    sidecar = ModelSidecar(
        task="detection",
        labels=[],
        input_size=(32, 32),
        mean=(0.5,) * 3,
        std=(0.5,) * 3,
        backbone="none",
        dataset_hash="",
    )
    check = export.export_onnx(
        TwoOutputs(),
        sidecar,
        tmp_path / "two.onnx",
        [photo_image(1, (40, 30))],
        output_names=("boxes", "scores"),
    )
    assert check["outputs"] == ["boxes", "scores"]
    info = export.quantize_int8(tmp_path / "two.onnx", tmp_path / "two.int8.onnx", check=None)
    assert info["agreement"] is None and (tmp_path / "two.int8.onnx").exists()


def test_report_images(tmp_path):
    result, _ = trained_two_photos()
    written = write_report(result.evaluation, result.sidecar.labels, tmp_path / "report")
    assert {p.name for p in written} == {"pr_curves.png", "confusion_matrix.png"}
    for p in written:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def test_detection_report_curves_follow_the_overlap_rule(tmp_path):
    labels = [{"index": 0, "name": "cup"}, {"index": 1, "name": "cat"}, {"index": 2, "name": "none"}]
    images = [  # truth [label, l, t, w, h]; detections [label, score, l, t, w, h]
        {
            "truth": [[0, 0.1, 0.1, 0.2, 0.2]],
            "detections": [[0, 0.9, 0.1, 0.1, 0.2, 0.2], [0, 0.8, 0.6, 0.6, 0.2, 0.2]],
        },
        {
            "truth": [[0, 0.5, 0.5, 0.2, 0.2], [1, 0.0, 0.0, 0.5, 0.5]],
            "detections": [[0, 0.7, 0.52, 0.5, 0.2, 0.2], [1, 0.6, 0.3, 0.3, 0.5, 0.5]],
        },
    ]
    evaluation = {"task": "detection", "labels": labels, "images": images, "folds": 2}
    curves = {legend.split(" ")[0]: (legend, r, p) for legend, r, p in detection_curves(evaluation, 0.5)}
    assert set(curves) == {"cup", "cat"}  # a tag without true boxes has no curve
    legend, recall, precision = curves["cup"]
    np.testing.assert_allclose(recall, [0.5, 0.5, 1.0])  # 0.9 right, 0.8 wrong, 0.7 right (IoU 0.82)
    np.testing.assert_allclose(precision, [1.0, 0.5, 2 / 3])
    assert "AP@0.50 0.83" in legend
    assert curves["cat"][1].tolist() == [0.0]  # IoU 0.087 < 0.5: a miss
    assert detection_curves(evaluation, 0.05)[1][1].tolist() == [1.0]  # ...but a hit at IoU >= 0.05
    (path,) = write_detection_report(evaluation, tmp_path / "report")
    assert path.name == "pr_curves.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_prediction_decodes_a_large_jpeg_at_a_reduced_scale_within_a_resave_of_it(exported):
    """The prediction route decodes a JPEG at the DCT scale the model needs (cvcore.inference.decode); against
    the trainer's full decode it must move a probability less than re-saving the photo as a quality-80 JPEG
    does (on average, and at most 0.03), keep the top tag, and really decode the large photos smaller."""
    result, path, _ = exported
    sess, sidecar = export.session(path), result.sidecar
    height, width = sidecar.input_size

    def probabilities(image):
        return sess.run(["probabilities"], {"image": preprocess([image], sidecar)})[0][0]

    moved, resaved, reduced = [], [], 0
    for size in ((640, 480), (1024, 768), (2048, 1536), (480, 640), (800, 200)):
        for i in range(8):
            data = photo_jpeg(3 * i + 1, size, quality=90)
            full = decode_rgb(data, max_bytes=MAX_PREDICTION_IMAGE_BYTES)
            draft = inference.decode(data, sidecar)
            if draft.size != full.size:
                reduced += 1
                assert (
                    draft.width >= inference.DRAFT_FACTOR * width
                    and draft.height >= inference.DRAFT_FACTOR * height
                )
            exact, fast = probabilities(full), probabilities(draft)
            resave = probabilities(decode_rgb(photo_jpeg(3 * i + 1, size, quality=80)))
            assert exact.argmax() == fast.argmax(), (size, i)
            moved.append(float(np.abs(exact - fast).max()))
            resaved.append(float(np.abs(exact - resave).max()))
    assert reduced >= 16, reduced  # 1024x768 and 2048x1536 at least
    assert np.mean(moved) <= np.mean(resaved), (np.mean(moved), np.mean(resaved))
    assert max(moved) <= 0.03, max(moved)
