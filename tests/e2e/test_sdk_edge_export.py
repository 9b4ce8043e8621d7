"""End to end: export_iteration(platform="DockerFile") through the official SDK. The zip's own requirements go
into a fresh venv, its server runs as a process (no Docker daemon here), and what it answers is compared with
the cloud prediction route for the same images: same tags, probabilities within 1e-4. Also the ARM flavour,
the refused Windows flavour, bad input to the edge server, and the Dockerfile's rules (pinned base, non-root)."""

import io
import re
import time
import urllib.request
import zipfile

import pytest
import requests
from azure.cognitiveservices.vision.customvision.training.models import CustomVisionErrorException

from cvcore import layout
from tests.support import images as imgs
from tests.support.edge import edge_python, edge_server
from tests.support.training import CAT, COMPACT, CUP, add_cats_and_cups, local_stack, photo, wait_trained

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def published(azurite):
    with local_stack(azurite) as (_, trainer, predictor):
        project = trainer.create_project(f"edge-{layout.new_id()[:8]}", domain_id=COMPACT)
        add_cats_and_cups(trainer, project.id)
        it = wait_trained(trainer, project.id, trainer.train_project(project.id).id)
        assert it.status == "Completed", it.training_error_details
        trainer.publish_iteration(project.id, it.id, "edge", "/subscriptions/local/prediction")
        yield trainer, predictor, project, it
        trainer.delete_project(project.id)


def download(uri: str) -> zipfile.ZipFile:
    with urllib.request.urlopen(uri, timeout=10) as resp:
        return zipfile.ZipFile(io.BytesIO(resp.read()))


def test_linux_container_answers_like_the_cloud(published, tmp_path):
    trainer, predictor, project, it = published
    export = trainer.export_iteration(project.id, it.id, "DockerFile", flavor="Linux")
    assert (export.platform, export.flavor, export.status) == ("DockerFile", "Linux", "Done")
    archive = download(export.download_uri)
    names = set(archive.namelist())
    assert {
        "Dockerfile",
        "requirements.txt",
        "README.md",
        "app/server.py",
        "app/model.onnx",
        "app/model.json",
        "app/labels.txt",
        "app/cvcore/inference.py",
    } <= names
    dockerfile = archive.read("Dockerfile").decode()
    (base,) = re.findall(r"^FROM (\S+)", dockerfile, re.M)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base), base  # a pinned tag, never latest
    assert re.search(r"^USER 10001$", dockerfile, re.M) and "--platform" not in dockerfile
    requirements = archive.read("requirements.txt")
    assert all(re.fullmatch(r"[a-z0-9_-]+==[\w.]+", line) for line in requirements.decode().split())
    assert "docker run" in archive.read("README.md").decode()
    archive.extractall(tmp_path)

    with edge_server(tmp_path, edge_python(requirements)) as edge:
        health = requests.get(edge + "/", timeout=10).json()
        assert (
            health["status"] == "ok"
            and set(health["tags"]) == {"cat", "cup"}
            and health["iteration"] == it.id
        )
        for kind, n in ((CAT, 40), (CUP, 41), (CAT, 42), (CUP, 43)):
            data = photo(kind, n)
            cloud = predictor.classify_image_with_no_store(project.id, "edge", data).predictions
            for reply in (
                requests.post(
                    edge + "/image",
                    data=data,
                    timeout=30,
                    headers={"Content-Type": "application/octet-stream"},
                ),
                requests.post(
                    edge + "/image", files={"imageData": ("a.jpg", data, "image/jpeg")}, timeout=30
                ),
                requests.post(
                    edge + f"/{project.id}/classify/iterations/edge/image/nostore", data=data, timeout=30
                ),
            ):
                assert reply.status_code == 200, reply.text
                body = reply.json()
                assert body["project"] == project.id and body["iteration"] == it.id and body["created"]
                got = body["predictions"]
                assert [p["tagName"] for p in got] == [p.tag_name for p in cloud]
                assert [p["tagId"] for p in got] == [p.tag_id for p in cloud]
                assert (
                    max(abs(a["probability"] - b.probability) for a, b in zip(got, cloud, strict=True))
                    <= 1e-4
                )

        bad = requests.post(edge + "/image", data=imgs.corrupt_bytes(), timeout=10)
        assert bad.status_code == 400 and bad.json()["code"] == "BadRequestImageFormat"
        inside = requests.post(
            edge + "/url", json={"url": "http://169.254.169.254/latest/meta-data"}, timeout=10
        )
        assert inside.status_code == 400 and inside.json()["code"] == "BadRequestImageUrl"
        big = requests.post(edge + "/image", data=b"\xff" * (5 * 1024 * 1024), timeout=30)
        assert big.status_code == 413 and big.json()["code"] == "BadRequestImageSizeBytes"
        assert requests.get(edge + "/", timeout=10).status_code == 200  # still serving after bad input


def test_arm_flavour_and_refused_windows(published):
    trainer, _, project, it = published
    arm = trainer.export_iteration(project.id, it.id, "DockerFile", flavor="ARM")
    assert (arm.flavor, arm.status) == ("ARM", "Done")
    dockerfile = download(arm.download_uri).read("Dockerfile").decode()
    assert re.search(r"^FROM --platform=linux/arm64 python:", dockerfile, re.M)
    with pytest.raises(CustomVisionErrorException) as err:
        trainer.export_iteration(project.id, it.id, "DockerFile", flavor="Windows")
    assert err.value.error.code == "BadRequestExportValidationFailed" and "Windows" in err.value.error.message
    with pytest.raises(CustomVisionErrorException) as err:
        trainer.export_iteration(project.id, it.id, "VAIDK")
    assert "VAIDK" in err.value.error.message
    listed = {(e.platform, e.flavor): e.status for e in trainer.get_exports(project.id, it.id)}
    assert listed[("DockerFile", "ARM")] == "Done"
    assert "DockerFile" in trainer.get_iteration(project.id, it.id).exportable_to


def wait_export(trainer, project_id, iteration_id, platform, timeout=180, flavor=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [
            e
            for e in trainer.get_exports(project_id, iteration_id)
            if e.platform == platform and (flavor is None or e.flavor == flavor)
        ]
        if found and found[0].status != "Exporting":
            return found[0]
        time.sleep(0.5)
    raise AssertionError(f"{platform} export still Exporting")


def test_openvino_export_is_made_by_the_trainer_and_matches_onnx(published, tmp_path):
    import json

    import numpy as np
    import onnxruntime as ort
    import openvino as ov
    from PIL import Image

    from cvcore import artifacts

    trainer, _, project, it = published
    asked = trainer.export_iteration(project.id, it.id, "OpenVino")
    assert (asked.platform, asked.status, asked.flavor) == ("OpenVino", "Exporting", None)
    done = wait_export(trainer, project.id, it.id, "OpenVino")
    assert done.status == "Done", done
    archive = download(done.download_uri)
    assert {"model.xml", "model.bin", "model.json", "labels.txt", "README.md"} <= set(archive.namelist())
    sidecar_json = json.loads(archive.read("model.json"))
    check = sidecar_json["export"]
    assert check["status"] == "Done" and check["samples"] >= 2 and check["max_abs_diff"] <= 1e-3
    assert check["top1_agreement"] == 1.0 and check["runtime"].startswith("openvino")
    archive.extractall(tmp_path)
    # Beside the ONNX export, on images the model never saw.
    onnx = ort.InferenceSession(
        download(trainer.export_iteration(project.id, it.id, "ONNX").download_uri).read("model.onnx"),
        providers=["CPUExecutionProvider"],
    )
    compiled = ov.Core().compile_model(str(tmp_path / "model.xml"), "CPU")
    sidecar = artifacts.ModelSidecar.from_json({k: v for k, v in sidecar_json.items() if k != "export"})
    for kind, n in ((CAT, 50), (CUP, 51)):
        batch = artifacts.preprocess([Image.open(io.BytesIO(photo(kind, n))).convert("RGB")], sidecar)
        want = onnx.run(["probabilities"], {"image": batch})[0]
        got = compiled(batch)[compiled.output("probabilities")]
        assert np.max(np.abs(want - got)) <= 1e-3 and want.argmax() == got.argmax()
    assert "compile_model" in archive.read("README.md").decode()


def readme_example(archive) -> str:
    (code,) = re.findall(r"```python\n(.*?)```", archive.read("README.md").decode(), re.S)
    return code


@pytest.mark.parametrize(
    ("flavor", "model_file"),
    [("TensorFlowNormal", "saved_model/saved_model.pb"), ("TensorFlowLite", "model.tflite")],
)
def test_tensorflow_exports_are_checked_and_their_readme_example_runs(
    published, tmp_path, flavor, model_file
):
    import json
    import subprocess
    import sys

    import onnxruntime as ort
    from PIL import Image

    from cvcore import artifacts

    trainer, _, project, it = published
    asked = trainer.export_iteration(project.id, it.id, "TensorFlow", flavor=flavor)
    assert (asked.platform, asked.flavor, asked.status) == ("TensorFlow", flavor, "Exporting")
    done = wait_export(trainer, project.id, it.id, "TensorFlow", flavor=flavor)
    assert done.status == "Done", done
    archive = download(done.download_uri)
    assert {model_file, "model.json", "labels.txt", "README.md"} <= set(archive.namelist())
    sidecar_json = json.loads(archive.read("model.json"))
    check = sidecar_json["export"]
    assert check["status"] == "Done" and check["flavor"] == flavor and check["samples"] >= 2
    assert check["max_abs_diff"] <= 1e-3 and check["top1_agreement"] == 1.0
    archive.extractall(tmp_path)
    onnx = ort.InferenceSession(
        download(trainer.export_iteration(project.id, it.id, "ONNX").download_uri).read("model.onnx"),
        providers=["CPUExecutionProvider"],
    )
    sidecar = artifacts.ModelSidecar.from_json({k: v for k, v in sidecar_json.items() if k != "export"})
    labels = archive.read("labels.txt").decode().splitlines()
    for kind, n in ((CAT, 52), (CUP, 53)):
        (tmp_path / "photo.jpg").write_bytes(photo(kind, n))
        want = onnx.run(
            ["probabilities"],
            {"image": artifacts.preprocess([Image.open(tmp_path / "photo.jpg").convert("RGB")], sidecar)},
        )[0][0]
        # The README's own example, run as a user would, in the unzipped folder.
        ran = subprocess.run(
            [sys.executable, "-c", readme_example(archive)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert ran.returncode == 0, ran.stderr[-2000:]
        printed = re.findall(r"'([^']+)'\)", ran.stdout.strip().splitlines()[-1])
        assert printed[0] == labels[int(want.argmax())], (ran.stdout, want)


def test_tensorflow_is_refused_for_a_detector_and_coreml_for_everything(published):
    trainer, _, project, it = published
    with pytest.raises(CustomVisionErrorException) as err:
        trainer.export_iteration(project.id, it.id, "CoreML")
    assert "no CoreML runtime exists off Apple hardware" in err.value.error.message
    assert set(trainer.get_iteration(project.id, it.id).exportable_to) >= {
        "ONNX",
        "TensorFlow",
        "OpenVino",
        "DockerFile",
    }
