"""End to end on the running local host: the SDK's export_project / import_project pair, a COCO file dropped
into blob storage and imported by the blob trigger, and the COCO export loaded by pycocotools."""

import json
import time

import pytest
import requests
from azure.cognitiveservices.vision.customvision.training.models import (
    CustomVisionErrorException,
    ImageFileCreateBatch,
    ImageFileCreateEntry,
    Region,
)
from azure.storage.blob import BlobServiceClient

from cvcore import layout
from cvcore.settings import LOCAL_TRAINING_KEY
from tests.e2e import test_sdk_training as shared
from tests.support import images as imgs

pytestmark = pytest.mark.e2e
DETECTION = "da2e3a8a-40a5-4171-82f4-58522f70fbc1"
HEADERS = {"Training-key": LOCAL_TRAINING_KEY}
host, trainer = shared.host, shared.trainer  # the same fixtures: a local host on Azurite, an SDK client


def training_url(host: str, path: str) -> str:
    return f"{host}/customvision/v3.4-preview/training/{path}"


def test_export_token_imports_the_project_with_its_images(trainer):
    source = trainer.create_project(f"src-{layout.new_id()[:8]}", domain_id=DETECTION)
    copy = None
    try:
        fork = trainer.create_tag(source.id, "fork")
        knife = trainer.create_tag(source.id, "knife", description="sharp")
        entries = [
            ImageFileCreateEntry(
                name=f"{i}.jpg",
                contents=imgs.photo_jpeg(300 + i, (160, 120)),
                regions=[
                    Region(tag_id=(fork if i % 2 else knife).id, left=0.1, top=0.2, width=0.3, height=0.4)
                ],
            )
            for i in range(6)
        ]
        assert trainer.create_images_from_files(
            source.id, ImageFileCreateBatch(images=entries)
        ).is_batch_successful
        exported = trainer.export_project(source.id)
        assert (
            exported.iteration_count,
            exported.image_count,
            exported.tag_count,
            exported.region_count,
        ) == (0, 6, 2, 6)
        assert exported.estimated_import_time_in_ms > 0 and exported.token

        copy = trainer.import_project(exported.token, name=f"copy-{layout.new_id()[:8]}")
        assert copy.settings.domain_id == DETECTION and copy.status == "Succeeded"
        assert {t.name: t.image_count for t in trainer.get_tags(copy.id)} == {"fork": 3, "knife": 3}
        assert [t.description for t in trainer.get_tags(copy.id) if t.name == "knife"] == ["sharp"]
        moved = trainer.get_tagged_images(copy.id, take=50)
        assert len(moved) == 6 and all(len(im.regions) == 1 and im.width == 160 for im in moved)
        box = moved[0].regions[0]
        assert (box.left, box.top, box.width, box.height) == pytest.approx((0.1, 0.2, 0.3, 0.4))
        assert requests.get(moved[0].original_image_uri, timeout=10).content  # stored in the new project

        with pytest.raises(CustomVisionErrorException) as err:
            trainer.import_project("not-a-token")
        assert err.value.error.code == "BadRequestInvalidImportToken"
    finally:
        trainer.delete_project(source.id)
        if copy is not None:
            trainer.delete_project(copy.id)


def test_coco_file_dropped_into_blob_storage_is_imported_by_the_trigger(trainer, host, azurite, tmp_path):
    from pycocotools.coco import COCO

    project = trainer.create_project(f"drop-{layout.new_id()[:8]}", domain_id=DETECTION)
    try:
        uploads = BlobServiceClient.from_connection_string(azurite).get_container_client(layout.UPLOADS)
        names = [f"photos/{i}.jpg" for i in range(6)]
        for i, name in enumerate(names):
            uploads.upload_blob(f"{project.id}/_coco/{name}", imgs.photo_jpeg(400 + i, (100, 80)))
        doc = {
            "images": [
                {"id": i + 1, "file_name": n, "width": 100, "height": 80} for i, n in enumerate(names)
            ],
            "annotations": [
                {"id": i + 1, "image_id": i + 1, "category_id": 1 + i % 3, "bbox": [10, 8, 50, 40]}
                for i in range(6)
            ],
            "categories": [{"id": k, "name": n} for k, n in ((1, "apple"), (2, "pear"), (3, "plum"))],
        }
        uploads.upload_blob(f"{project.id}/_coco/fruit.coco.json", json.dumps(doc).encode())

        status, deadline = None, time.monotonic() + 120
        while time.monotonic() < deadline:
            reply = requests.get(
                training_url(host, f"projects/{project.id}/coco/import"),
                params={"name": "_coco/fruit.coco.json"},
                headers=HEADERS,
                timeout=10,
            )
            status = reply.json() if reply.status_code == 200 else None
            if status and status["state"] in ("completed", "rejected", "failed"):
                break
            time.sleep(0.3)
        assert status and status["state"] == "completed", status
        assert status["summary"]["imagesCreated"] == 6 and status["summary"]["bboxFormat"] == "pixels"
        assert {t.name: t.image_count for t in trainer.get_tags(project.id)} == {
            "apple": 2,
            "pear": 2,
            "plum": 2,
        }
        box = trainer.get_tagged_images(project.id)[0].regions[0]
        assert (box.left, box.top, box.width, box.height) == pytest.approx((0.1, 0.1, 0.5, 0.5))

        reply = requests.get(training_url(host, f"projects/{project.id}/coco"), headers=HEADERS, timeout=30)
        (tmp_path / "export.json").write_text(reply.text)
        exported = COCO(str(tmp_path / "export.json"))
        assert len(exported.getImgIds()) == 6 and {
            tuple(a["bbox"]) for a in exported.loadAnns(exported.getAnnIds())
        } == {(10, 8, 50, 40)}
    finally:
        trainer.delete_project(project.id)
