"""End to end: the `customvision` command line as a real process (`python -m cvcli`, the console script's
entry) against the local host and trainer worker on real Azurite, the way a person with a folder of photos
uses it: upload (tag folders, a corrupt file, a COCO file), train --wait, publish, predict, export."""

import json
import os
import subprocess
import sys
import zipfile

import pytest

from cvcore import layout
from tests.support import images as imgs
from tests.support.azurite import ROOT, free_port
from tests.support.training import CAT, CUP, local_stack, photo

pytestmark = pytest.mark.e2e
PER_TAG = 6  # in each tag folder
COCO_PER_TAG = 2  # in the COCO file (the validator's minimum per category)


def cvcli(*args: str, endpoint: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "CUSTOMVISION_ENDPOINT": endpoint}
    for key in ("CUSTOMVISION_TRAINING_KEY", "CUSTOMVISION_PREDICTION_KEY"):
        env.pop(key, None)  # the loopback endpoint's local keys, as a person running `make run` has them
    return subprocess.run(
        [sys.executable, "-m", "cvcli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def photo_folder(root) -> None:
    """cat/ and cup/ with PER_TAG photos each, a truncated JPEG in cup/, an untagged cat at the top, and a COCO
    file tagging
    COCO_PER_TAG more of each kind whose images sit in _coco/."""
    for name, kind in (("cat", CAT), ("cup", CUP)):
        (root / name).mkdir(parents=True)
        for n in range(PER_TAG):
            (root / name / f"{n}.jpg").write_bytes(photo(kind, n))
    (root / "cup" / "broken.jpg").write_bytes(imgs.truncated_jpeg())
    (root / "loose-cat.jpg").write_bytes(photo(CAT, 30))  # at the top: untagged
    write_coco(root, "more.json")


def write_coco(root, name: str, box: list | None = None) -> None:
    """COCO_PER_TAG photos of a cat and of a cup under root/_coco, in the COCO file root/name (each
    annotation with `box`, in pixels of the 320x240 photos, when given)."""
    (root / "_coco").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for category, kind in ((1, CAT), (2, CUP)):
        for n in range(COCO_PER_TAG):
            image_id = len(images) + 1
            file_name = f"_coco/{kind}-{n}.jpg"
            (root / file_name).write_bytes(photo(kind, 20 + n))
            images.append({"id": image_id, "file_name": file_name, "width": 320, "height": 240})
            bbox = {} if box is None else {"bbox": box}
            annotations.append({"id": image_id, "image_id": image_id, "category_id": category, **bbox})
    categories = [{"id": 1, "name": "cat"}, {"id": 2, "name": "cup"}]
    (root / name).write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )


@pytest.fixture(scope="module")
def stack(azurite):
    with local_stack(azurite, cpu_seconds=15) as (url, trainer, _):
        yield url, trainer


def test_a_folder_of_photos_to_a_published_model_and_its_export(stack, tmp_path):
    url, trainer = stack
    name = f"cli-{layout.new_id()[:8]}"
    photo_folder(tmp_path / "photos")

    up = cvcli(
        "upload", str(tmp_path / "photos"), "--project", name, "--domain", "General (compact)", endpoint=url
    )
    assert up.returncode == 1, up.stderr  # one file failed
    created = 2 * (PER_TAG + COCO_PER_TAG) + 1
    assert f"{created} created, 0 duplicates, 1 failed" in up.stdout
    failed_line = next(line for line in up.stdout.splitlines() if "broken.jpg" in line)
    assert "ErrorImageFormat" in failed_line
    assert "images/s" in up.stderr  # the progress bar
    project = next(p for p in trainer.get_projects() if p.name == name)
    assert trainer.get_image_count(project.id) == created
    assert trainer.get_untagged_image_count(project.id) == 1
    assert {t.name: t.image_count for t in trainer.get_tags(project.id)} == {
        "cat": PER_TAG + COCO_PER_TAG,
        "cup": PER_TAG + COCO_PER_TAG,
    }
    again = json.loads(
        cvcli("--json", "upload", str(tmp_path / "photos"), "-p", project.id, endpoint=url).stdout
    )
    assert (again["created"], again["duplicates"]) == (0, created)
    assert [(os.path.basename(f["file"]), f["status"]) for f in again["failed"]] == [
        ("broken.jpg", "ErrorImageFormat")
    ]

    trained = cvcli("train", "-p", name, "--wait", "--poll", "0.3", endpoint=url, timeout=180)
    assert trained.returncode == 0, trained.stderr
    assert "Completed" in trained.stderr
    rows = {line.split("│")[1].strip(): line for line in trained.stdout.splitlines() if line.count("│") >= 4}
    assert {"cat", "cup", "all tags"} <= set(rows), trained.stdout
    iteration = trainer.get_iterations(project.id)[0]
    perf = trainer.get_iteration_performance(project.id, iteration.id, threshold=0.5)
    cat = next(t for t in perf.per_tag_performance if t.name == "cat")
    assert f"{100 * cat.precision:.1f}%" in rows["cat"] and f"{100 * cat.recall:.1f}%" in rows["cat"]

    assert cvcli("publish", "-p", name, "--name", "prod", endpoint=url).returncode == 0
    (tmp_path / "held-out-cat.jpg").write_bytes(photo(CAT, 40))
    (tmp_path / "held-out-cup.jpg").write_bytes(photo(CUP, 40))
    predicted = cvcli(
        "predict",
        str(tmp_path / "held-out-cat.jpg"),
        str(tmp_path / "held-out-cup.jpg"),
        "-p",
        name,
        "--top",
        "1",
        "--json",
        endpoint=url,
    )
    assert predicted.returncode == 0, predicted.stderr
    assert [(os.path.basename(r["file"]), r["tag"]) for r in json.loads(predicted.stdout)] == [
        ("held-out-cat.jpg", "cat"),
        ("held-out-cup.jpg", "cup"),
    ]

    suggested = cvcli("suggest", "-p", name, "--json", endpoint=url)
    assert suggested.returncode == 0, suggested.stderr
    untagged = trainer.get_untagged_images(project.id)
    assert [(r["file"], r["tag"]) for r in json.loads(suggested.stdout)] == [(untagged[0].id, "cat")]

    stored = cvcli("--json", "predictions", "-p", name, "--suggested", endpoint=url)
    assert stored.returncode == 0, stored.stderr
    assert len(json.loads(stored.stdout)) == 2  # the two images predicted above (stored by default)

    exported = cvcli(
        "export", "-p", name, "--platform", "ONNX", "-o", str(tmp_path / "model.zip"), endpoint=url
    )
    assert exported.returncode == 0, exported.stderr
    with zipfile.ZipFile(tmp_path / "model.zip") as z:
        assert z.testzip() is None and "model.onnx" in z.namelist()
        assert len(z.read("model.onnx")) > 1000


def test_a_wrong_key_is_one_clear_line_and_exit_code_2(stack):
    url, _ = stack
    refused = cvcli("--training-key", "not-the-key", "projects", endpoint=url)
    assert refused.returncode == 2
    assert refused.stderr.strip() == f"error: training key rejected by {url}"


def test_an_unreachable_endpoint_is_one_clear_line_and_exit_code_2():
    nowhere = f"http://127.0.0.1:{free_port()}"
    refused = cvcli("projects", endpoint=nowhere, timeout=30)
    assert refused.returncode == 2
    assert refused.stderr.startswith(f"error: cannot reach {nowhere}: ") and "Traceback" not in refused.stderr


def test_a_coco_file_gives_a_new_detector_its_tags_and_boxes(stack, tmp_path):
    url, trainer = stack
    name = f"cli-det-{layout.new_id()[:8]}"
    write_coco(tmp_path, "shelf.json", box=[32, 24, 160, 120])
    up = cvcli("--json", "upload", str(tmp_path), "-p", name, "--type", "ObjectDetection", endpoint=url)
    assert up.returncode == 0, up.stderr
    summary = json.loads(up.stdout)
    assert (summary["created"], summary["failed"]) == (2 * COCO_PER_TAG, [])
    assert any("converted" in note for note in summary["notes"])  # pixel boxes, said so
    project = trainer.get_project(summary["project"]["id"])
    assert trainer.get_domain(project.settings.domain_id).type == "ObjectDetection"
    regions = [r for im in trainer.get_tagged_images(project.id) for r in im.regions]
    assert sorted(r.tag_name for r in regions) == ["cat"] * COCO_PER_TAG + ["cup"] * COCO_PER_TAG
    assert all((r.left, r.top, r.width, r.height) == pytest.approx((0.1, 0.1, 0.5, 0.5)) for r in regions)
