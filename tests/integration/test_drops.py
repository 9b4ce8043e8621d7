"""Drop-a-file ingestion on real Azurite: tag by folder, reject with a report, deliver twice, ingest once."""

import json

import pytest

from cvcore import layout
from functions.training import projects, tags
from functions.training.drops import ingest_drop
from tests.support import images as imgs

pytestmark = pytest.mark.integration


@pytest.fixture
def project(services):
    p = projects.create_project(services.repo, f"drops-{layout.new_id()}", None, None, "Multilabel", [])["id"]
    yield p
    projects.delete_project(services.repo, services.blobs, p)


def drop(services, name, data):
    services.blobs.put(layout.UPLOADS, name, data, "application/octet-stream")
    return ingest_drop(services.repo, services.blobs, services.pool, name, data)


def exists(services, container, name):
    return services.clients.blob.get_blob_client(container, name).exists()


def test_folder_names_the_tag_and_drop_is_removed_after_success(services, project):
    name = f"{project}/Cats/chelsea.jpg"
    result = drop(services, name, imgs.photo_jpeg(1))
    assert result.outcome == "ingested"
    assert not exists(services, layout.UPLOADS, name)
    listed = tags.list_tags(services.repo, project)
    assert [(t["name"], t["imageCount"]) for t in listed] == [("Cats", 1)]
    # a second folder with the same name in another case reuses the tag
    assert drop(services, f"{project}/cats/other.jpg", imgs.photo_jpeg(2)).outcome == "ingested"
    assert [(t["name"], t["imageCount"]) for t in tags.list_tags(services.repo, project)] == [("Cats", 2)]


def test_untagged_folder_and_redelivery_ingests_once(services, project):
    data = imgs.photo_jpeg(3)
    first = drop(services, f"{project}/untagged/a.jpg", data)
    again = ingest_drop(services.repo, services.blobs, services.pool, f"{project}/untagged/a.jpg", data)
    assert (first.outcome, again.outcome) == ("ingested", "duplicate") and first.image_id == again.image_id
    assert len(services.repo.list_images(project)) == 1
    assert not services.repo.list_images(project)[0].is_tagged


@pytest.mark.parametrize(
    "make, status",
    [
        (imgs.truncated_jpeg, "ErrorImageFormat"),
        (imgs.not_an_image, "ErrorImageFormat"),
        (lambda: imgs.tiny_image(side=40), "ErrorImageDimensions"),
    ],
)
def test_bad_drop_moves_to_rejected_with_a_report(services, project, make, status):
    name = f"{project}/Cats/bad.bin"
    result = drop(services, name, make())
    assert result.outcome == "rejected"
    assert not exists(services, layout.UPLOADS, name)
    assert services.blobs.get(layout.REJECTED, name) == make()
    report = json.loads(services.blobs.get(layout.REJECTED, name + ".error.json"))
    assert report["status"] == status and report["errors"][0]["message"]
    assert services.repo.list_images(project) == []


def test_unknown_project_and_bad_path_are_rejected(services):
    unknown = f"{layout.new_id()}/Cats/x.jpg"
    assert drop(services, unknown, imgs.photo_jpeg(4)).outcome == "rejected"
    report = json.loads(services.blobs.get(layout.REJECTED, unknown + ".error.json"))
    assert report["status"] == "NotFoundProject"
    result = drop(services, "not-a-project/x.jpg", imgs.photo_jpeg(4))
    assert result.outcome == "rejected" and "project id" in result.detail


def test_coco_files_go_to_the_coco_importer(services, project):
    name = f"{project}/dataset.coco.json"
    assert drop(services, name, b"{}").outcome == "rejected"  # tests/integration/test_coco_drop.py: the rest
    report = json.loads(services.blobs.get(layout.REJECTED, name + ".error.json"))
    assert {e["path"] for e in report["errors"]} == {"images", "annotations", "categories"}


def test_concurrent_drops_into_a_new_folder_create_one_tag(services):
    """Two blobs of one new tag folder handled at once (the host runs triggers in parallel) make one tag."""
    from concurrent.futures import ThreadPoolExecutor

    p = projects.create_project(services.repo, f"race-{layout.new_id()[:8]}", None, None, None, [])["id"]
    try:
        with ThreadPoolExecutor(4) as pool:
            list(
                pool.map(
                    lambda i: ingest_drop(
                        services.repo,
                        services.blobs,
                        services.pool,
                        f"{p}/Mugs/{i}.jpg",
                        imgs.photo_jpeg(600 + i),
                    ),
                    range(4),
                )
            )
        assert [t.name for t in services.repo.list_tags(p)] == ["Mugs"]
    finally:
        projects.delete_project(services.repo, services.blobs, p)
