"""End to end: the official Custom Vision SDK against the running local host on real Azurite."""

import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    CustomVisionErrorException,
    ImageFileCreateBatch,
    ImageFileCreateEntry,
    ImageRegionCreateEntry,
    ImageTagCreateEntry,
    ImageUrlCreateBatch,
    ImageUrlCreateEntry,
    Region,
)
from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas
from msrest.authentication import ApiKeyCredentials
from msrest.exceptions import HttpOperationError

from cvcore import layout
from cvcore.settings import LOCAL_TRAINING_KEY
from tests.support import images as imgs
from tests.support.localhost import running_host

pytestmark = pytest.mark.e2e
DETECTION = "da2e3a8a-40a5-4171-82f4-58522f70fbc1"


@pytest.fixture(scope="module")
def host(azurite):
    with running_host(azurite) as url:
        yield url


@pytest.fixture(scope="module")
def trainer(host):
    return CustomVisionTrainingClient(
        host, ApiKeyCredentials(in_headers={"Training-key": LOCAL_TRAINING_KEY})
    )


def test_domains(trainer):
    domains = trainer.get_domains()
    names = {(d.type, d.name) for d in domains}
    for name in (
        "General",
        "Food",
        "Landmarks",
        "Retail",
        "General (compact)",
        "Food (compact)",
        "Landmarks (compact)",
        "Retail (compact)",
    ):
        assert ("Classification", name) in names
    assert {("ObjectDetection", "General"), ("ObjectDetection", "General (compact)")} <= names
    compact = trainer.get_domain("0732100f-1a38-4e49-a514-c9b44c697ab5")
    assert compact.exportable and "ONNX" in compact.exportable_platforms


def test_classification_dataset_workflow(trainer, azurite):
    project = trainer.create_project(
        f"fruit-{layout.new_id()[:8]}", description="e2e", classification_type="Multilabel"
    )
    try:
        assert trainer.get_project(project.id).settings.classification_type == "Multilabel"
        cat = trainer.create_tag(project.id, "cat")
        cup = trainer.create_tag(project.id, "cup", description="coffee")
        batch = ImageFileCreateBatch(
            images=[
                ImageFileCreateEntry(name=f"{i}.jpg", contents=imgs.photo_jpeg(100 + i)) for i in range(10)
            ],
            tag_ids=[cat.id],
        )
        summary = trainer.create_images_from_files(project.id, batch)
        assert summary.is_batch_successful and all(i.status == "OK" for i in summary.images)
        from_data = trainer.create_images_from_data(project.id, imgs.photo_jpeg(120), tag_ids=[cup.id])
        assert from_data.images[0].status == "OK"
        blob = BlobServiceClient.from_connection_string(azurite).get_blob_client(
            layout.UPLOADS, f"staging/{layout.new_id()}.jpg"
        )
        blob.upload_blob(imgs.photo_jpeg(121))
        sas = generate_blob_sas(
            blob.account_name,
            blob.container_name,
            blob.blob_name,
            account_key=blob.credential.account_key,
            permission=BlobSasPermissions(read=True),
            expiry=datetime.now(UTC) + timedelta(hours=1),
        )
        urls = trainer.create_images_from_urls(
            project.id, ImageUrlCreateBatch(images=[ImageUrlCreateEntry(url=f"{blob.url}?{sas}")])
        )
        assert urls.images[0].status == "OK", urls.images[0]
        untagged_id = urls.images[0].image.id

        assert trainer.get_image_count(project.id) == 12
        assert trainer.get_tagged_image_count(project.id) == 11
        assert trainer.get_untagged_image_count(project.id) == 1
        assert [i.id for i in trainer.get_untagged_images(project.id)] == [untagged_id]
        page = trainer.get_tagged_images(project.id, tag_ids=[cat.id], order_by="Oldest", take=4, skip=2)
        assert len(page) == 4 and all(t.tag_name == "cat" for i in page for t in i.tags)
        assert {t.name: t.image_count for t in trainer.get_tags(project.id)} == {"cat": 10, "cup": 1}

        tagged = trainer.create_image_tags(
            project.id, tags=[ImageTagCreateEntry(image_id=untagged_id, tag_id=cup.id)]
        )
        assert len(tagged.created) == 1
        assert trainer.get_untagged_image_count(project.id) == 0
        trainer.delete_image_tags(project.id, [untagged_id], [cup.id])
        assert trainer.get_untagged_image_count(project.id) == 1

        meta = trainer.update_image_metadata(project.id, [untagged_id], {"camera": "azurite"})
        assert meta.is_batch_successful and meta.images[0].metadata == {"camera": "azurite"}
        got = trainer.get_images_by_ids(project.id, image_ids=[untagged_id])
        assert got[0].metadata == {"camera": "azurite"} and got[0].width == 640 and got[0].height == 480
        assert got[0].thumbnail_uri.startswith("http://127.0.0.1:")

        trainer.update_tag(
            project.id, cup.id, updated_tag=cup.__class__(name="mug", description="", type="Regular")
        )
        assert trainer.get_tag(project.id, cup.id).name == "mug"
        trainer.delete_tag(project.id, cat.id)
        assert trainer.get_tagged_image_count(project.id) == 1

        trainer.delete_images(project.id, image_ids=[untagged_id])
        assert trainer.get_image_count(project.id) == 11
        updated = trainer.update_project(
            project.id,
            updated_project=trainer.get_project(project.id).__class__(
                name=project.name + "-renamed", description="changed", settings=project.settings
            ),
        )
        assert updated.name.endswith("-renamed")
        assert project.id in [p.id for p in trainer.get_projects()]
    finally:
        trainer.delete_project(project.id)
    with pytest.raises(CustomVisionErrorException) as err:
        trainer.get_project(project.id)
    assert err.value.error.code == "NotFoundProject"


def test_detection_regions(trainer):
    project = trainer.create_project(f"det-{layout.new_id()[:8]}", domain_id=DETECTION)
    try:
        tag = trainer.create_tag(project.id, "thing")
        entry = ImageFileCreateEntry(
            name="a.jpg",
            contents=imgs.photo_jpeg(130),
            regions=[Region(tag_id=tag.id, left=0.1, top=0.2, width=0.3, height=0.4)],
        )
        image = (
            trainer.create_images_from_files(project.id, ImageFileCreateBatch(images=[entry])).images[0].image
        )
        assert image.regions[0].tag_name == "thing" and abs(image.regions[0].width - 0.3) < 1e-9
        created = trainer.create_image_regions(
            project.id,
            regions=[
                ImageRegionCreateEntry(
                    image_id=image.id, tag_id=tag.id, left=0.5, top=0.5, width=0.2, height=0.2
                )
            ],
        )
        assert len(created.created) == 1
        trainer.delete_image_regions(project.id, [created.created[0].region_id])
        assert len(trainer.get_images_by_ids(project.id, image_ids=[image.id])[0].regions) == 1
        with pytest.raises(CustomVisionErrorException) as err:
            trainer.create_image_regions(
                project.id,
                regions=[
                    ImageRegionCreateEntry(
                        image_id=image.id, tag_id=tag.id, left=0.9, top=0.5, width=0.2, height=0.2
                    )
                ],
            )
        assert err.value.error.code == "BadRequestImageRegions"
    finally:
        trainer.delete_project(project.id)


def test_wrong_key_is_refused(host):
    bad = CustomVisionTrainingClient(host, ApiKeyCredentials(in_headers={"Training-key": "not-the-key"}))
    with pytest.raises(CustomVisionErrorException) as err:
        bad.get_projects()
    assert err.value.response.status_code == 401 and err.value.error.code == "Unauthorized"


def test_dropped_file_becomes_a_tagged_image(trainer, azurite):
    project = trainer.create_project(f"drop-{layout.new_id()[:8]}")
    try:
        blobs = BlobServiceClient.from_connection_string(azurite)
        blobs.get_blob_client(layout.UPLOADS, f"{project.id}/Coffee/cup.jpg").upload_blob(
            imgs.photo_jpeg(140)
        )
        blobs.get_blob_client(layout.UPLOADS, f"{project.id}/Coffee/broken.jpg").upload_blob(
            imgs.truncated_jpeg()
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
            trainer.get_tagged_image_count(project.id) == 1
            and blobs.get_blob_client(layout.REJECTED, f"{project.id}/Coffee/broken.jpg.error.json").exists()
        ):
            time.sleep(0.2)
        assert trainer.get_tagged_image_count(project.id) == 1
        assert [t.name for t in trainer.get_tags(project.id)] == ["Coffee"]
        assert not blobs.get_blob_client(layout.UPLOADS, f"{project.id}/Coffee/cup.jpg").exists()
        assert blobs.get_blob_client(layout.REJECTED, f"{project.id}/Coffee/broken.jpg.error.json").exists()
    finally:
        trainer.delete_project(project.id)


def test_get_artifact_streams_a_project_file_and_refuses_paths_outside_it(trainer):
    project = trainer.create_project(f"artifacts-{layout.new_id()[:8]}")
    try:
        jpeg = imgs.photo_jpeg(77, (160, 120))
        created = trainer.create_images_from_files(
            project.id, ImageFileCreateBatch(images=[ImageFileCreateEntry(name="a.jpg", contents=jpeg)])
        )
        image = created.images[0].image
        original = b"".join(trainer.get_artifact(project.id, f"images/originals/{image.id}"))
        assert original[:3] == b"\xff\xd8\xff" and len(original) > 1000
        assert original == requests.get(image.original_image_uri, timeout=10).content  # the same stored bytes
        with pytest.raises(HttpOperationError) as err:  # get_artifact's own error type (no error model)
            list(trainer.get_artifact(project.id, f"images/../{image.id}"))
        assert err.value.response.status_code == 400
        assert err.value.response.json()["code"] == "BadRequestInvalidArtifactUri"
    finally:
        trainer.delete_project(project.id)
