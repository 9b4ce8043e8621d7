"""End to end, object detection through the official SDK: composed scenes (real object photos pasted on real
backgrounds at known boxes, tests/support/scenes.py) uploaded with regions, Quick training by the trainer worker
(its CPU budget shortened), then the evaluation, per-image regions, the report and the ONNX export."""

import io
import json
import time
import urllib.request
import zipfile

import numpy as np
import pytest
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    CustomVisionErrorException,
    ImageFileCreateBatch,
    ImageFileCreateEntry,
    Region,
)
from msrest.authentication import ApiKeyCredentials

from cvcore import boxes, layout, settings
from tests.support import scenes
from tests.support.localhost import running_host, running_trainer

pytestmark = pytest.mark.e2e
DETECTION_COMPACT = "a27d5ca5-bb19-49d8-a70a-fec086c47f5b"
TAGS = ("cat", "cup")


def _jpeg(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def trained(azurite):
    env = {settings.TRAINER_QUICK_CPU_SECONDS: "40"}
    with running_host(azurite) as url, running_trainer(azurite, env=env) as worker:
        key = ApiKeyCredentials(in_headers={"Training-key": settings.LOCAL_TRAINING_KEY})
        client = CustomVisionTrainingClient(url, key)
        project = client.create_project(
            "scenes", domain_id=DETECTION_COMPACT, target_export_platforms=["ONNX"]
        )
        tags = {name: client.create_tag(project.id, name) for name in TAGS}
        entries = [
            ImageFileCreateEntry(
                name=s.key,
                contents=_jpeg(s.image),
                regions=[
                    Region(tag_id=tags[TAGS[b[0]]].id, left=b[1], top=b[2], width=b[3], height=b[4])
                    for b in s.boxes
                ],
            )
            for s in scenes.dataset(TAGS, 15, seed=11)
        ]
        assert client.create_images_from_files(
            project.id, ImageFileCreateBatch(images=entries)
        ).is_batch_successful
        iteration = client.train_project(project.id)
        deadline = time.monotonic() + 300
        while (it := client.get_iteration(project.id, iteration.id)).status not in ("Completed", "Failed"):
            assert time.monotonic() < deadline, open(worker.log_path).read()[-3000:]
            time.sleep(0.5)
        assert it.status == "Completed", it.training_error_details
        yield client, project, tags, it, azurite


def test_detector_is_evaluated_like_custom_vision(trained):
    client, project, tags, it, _ = trained
    perf = client.get_iteration_performance(project.id, it.id, threshold=0.5, overlap_threshold=0.3)
    assert {t.name for t in perf.per_tag_performance} == set(TAGS)
    assert all(0 <= t.average_precision <= 1 for t in perf.per_tag_performance)
    assert perf.average_precision > 0.3  # out-of-fold, 15 scenes per tag, a 40 s CPU budget
    loose = client.get_iteration_performance(project.id, it.id, threshold=0.05, overlap_threshold=0.1)
    assert loose.recall >= perf.recall  # a lower threshold and overlap never find fewer boxes
    shown = client.get_image_performances(project.id, it.id, take=50)
    assert len(shown) == 30 == client.get_image_performance_count(project.id, it.id)
    regions = [p for im in shown for p in im.predictions]
    assert regions and all(0 <= p.bounding_box.left <= 1 and 0 < p.bounding_box.width <= 1 for p in regions)


def test_detector_exports_onnx_with_its_boxes_and_the_report(trained):
    import onnxruntime as ort
    from azure.storage.blob import BlobServiceClient

    from cvcore import artifacts

    client, project, tags, it, conn = trained
    export = client.export_iteration(project.id, it.id, "ONNX")
    assert export.status == "Done"
    with urllib.request.urlopen(export.download_uri, timeout=10) as resp:
        with zipfile.ZipFile(io.BytesIO(resp.read())) as zf:
            model = zf.read("model.onnx")
            sidecar = artifacts.ModelSidecar.from_json(json.loads(zf.read("model.json")))
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    held_out = scenes.dataset(TAGS, 3, seed=12)
    found = 0
    for s in held_out:
        out_boxes, scores, labels = session.run(
            ["boxes", "scores", "labels"], {"image": artifacts.preprocess([s.image], sidecar)}
        )
        (label, *truth) = s.boxes[0]
        best = [
            b
            for b, sc, lab in zip(out_boxes[0], scores[0], labels[0], strict=True)
            if int(lab) == label and sc >= 0.3
        ]
        assert np.all((out_boxes[0] >= -1e-6) & (out_boxes[0] <= 1 + 1e-6))  # normalised ltwh
        if best and boxes.iou(boxes.ltwh_to_xyxy([truth]), boxes.ltwh_to_xyxy(best)).max() >= 0.5:
            found += 1
    assert found >= len(held_out) // 2, (
        f"the first object was found in {found} of {len(held_out)} held-out scenes"
    )
    with pytest.raises(CustomVisionErrorException, match="detectors"):  # no int8 flavour for detectors yet
        client.export_iteration(project.id, it.id, "ONNX", flavor="ONNXInt8")
    report = (
        BlobServiceClient.from_connection_string(conn)
        .get_blob_client(layout.MODELS, layout.iteration_artifact(project.id, it.id, layout.REPORT_PR_CURVES))
        .download_blob()
        .readall()
    )
    assert report[:8] == b"\x89PNG\r\n\x1a\n"


def test_detector_edge_container_draws_the_cloud_boxes(trained, tmp_path):
    from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient

    from tests.support.edge import edge_python, edge_server

    client, project, tags, it, _ = trained
    client.publish_iteration(project.id, it.id, "edge", "/subscriptions/local/prediction")
    predictor = CustomVisionPredictionClient(
        client.config.endpoint,
        ApiKeyCredentials(in_headers={"Prediction-key": settings.LOCAL_PREDICTION_KEY}),
    )
    export = client.export_iteration(project.id, it.id, "DockerFile", flavor="Linux")
    with urllib.request.urlopen(export.download_uri, timeout=10) as resp:
        archive = zipfile.ZipFile(io.BytesIO(resp.read()))
    archive.extractall(tmp_path)
    with edge_server(tmp_path, edge_python(archive.read("requirements.txt"))) as edge:
        for s in scenes.dataset(TAGS, 2, seed=13):
            data = _jpeg(s.image)
            cloud = predictor.detect_image_with_no_store(project.id, "edge", data).predictions
            got = urllib.request.urlopen(
                urllib.request.Request(edge + "/image", data=data, method="POST"), timeout=30
            ).read()
            edge_boxes = json.loads(got)["predictions"]
            assert cloud and len(edge_boxes) == len(cloud)
            for a, b in zip(edge_boxes, cloud, strict=True):
                assert a["tagId"] == b.tag_id and abs(a["probability"] - b.probability) <= 1e-4
                box = b.bounding_box
                assert np.allclose(
                    [a["boundingBox"][k] for k in ("left", "top", "width", "height")],
                    [box.left, box.top, box.width, box.height],
                    atol=1e-4,
                )


def test_detector_openvino_export_matches_onnx(trained):
    client, project, tags, it, _ = trained
    assert client.export_iteration(project.id, it.id, "OpenVino").status == "Exporting"
    deadline = time.monotonic() + 180
    while (found := [e for e in client.get_exports(project.id, it.id) if e.platform == "OpenVino"])[
        0
    ].status == "Exporting":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    if found[0].status != "Done":
        with pytest.raises(CustomVisionErrorException) as err:  # asking again answers with the reason
            client.export_iteration(project.id, it.id, "OpenVino")
        pytest.fail(err.value.error.message)
    with urllib.request.urlopen(found[0].download_uri, timeout=10) as resp:
        archive = zipfile.ZipFile(io.BytesIO(resp.read()))
    check = json.loads(archive.read("model.json"))["export"]
    assert set(check["per_output"]) == {"boxes", "scores", "labels"}
    assert check["detections"] >= 1 and check["max_score_diff"] <= 1e-3 and check["max_box_diff"] <= 1e-3
    assert "top1_agreement" not in check and {"model.xml", "model.bin"} <= set(archive.namelist())
