"""COCO on real Azurite: drops with images beside them or named by URL, rejects with every problem,
progress, exports through the Training API, the export token, and an import of a couple of thousand images."""

import json
import os
import threading
import time

import pytest

from cvcore import layout, settings
from functions import bootstrap
from functions.training import projects
from functions.training.coco_import import blob_resolver
from functions.training.drops import ingest_drop
from tests.integration import test_training_api
from tests.integration.api import queued_message
from tests.support import images as imgs
from tests.support.azurite import running_azurite

pytestmark = pytest.mark.integration
DETECTION = "da2e3a8a-40a5-4171-82f4-58522f70fbc1"
SCALE = int(os.environ.get("COCO_SCALE_IMAGES", "2000"))
api = test_training_api.api  # the Training API's HTTP function, in-process, on this Azurite


@pytest.fixture
def project(services):
    p = projects.create_project(services.repo, f"coco-{layout.new_id()}", None, DETECTION, None, [])["id"]
    yield p
    projects.delete_project(services.repo, services.blobs, p)


def endpoint(services):
    return services.settings.storage.endpoints["blob"]


def put_images(services, p, names, size=(80, 60), first=0):
    def put(k_name):
        k, name = k_name
        services.blobs.put(
            layout.UPLOADS, f"{p}/_coco/{name}", imgs.photo_jpeg(first + k, size), "image/jpeg"
        )

    list(services.pool.map(put, enumerate(names)))


def drop(services, p, doc, name="set.coco.json"):
    data = json.dumps(doc).encode()
    services.blobs.put(layout.UPLOADS, f"{p}/_coco/{name}", data, "application/json")
    return ingest_drop(
        services.repo,
        services.blobs,
        services.pool,
        f"{p}/_coco/{name}",
        data,
        blob_endpoint=endpoint(services),
    )


def document(names, size=(80, 60), box=(8, 6, 40, 30)):
    return {
        "images": [
            {"id": i + 1, "file_name": n, "width": size[0], "height": size[1]} for i, n in enumerate(names)
        ],
        "annotations": [
            {"id": i + 1, "image_id": i + 1, "category_id": 1 + i % 2, "bbox": list(box)}
            for i in range(len(names))
        ],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
    }


def test_ranged_reads_of_the_blob_adapter(services, project):
    blobs = services.blobs
    blobs.put(layout.UPLOADS, f"{project}/_coco/small", b"0123456789", "application/octet-stream")
    blobs.put(layout.UPLOADS, f"{project}/_coco/empty", b"", "application/octet-stream")
    assert blobs.get_capped(layout.UPLOADS, f"{project}/_coco/small", 4) == b"01234"
    assert blobs.get_capped(layout.UPLOADS, f"{project}/_coco/small", 100) == b"0123456789"
    assert blobs.get_capped(layout.UPLOADS, f"{project}/_coco/empty", 100) == b""
    resolver = blob_resolver(blobs, f"{project}/_coco", endpoint(services))
    with pytest.raises(FileNotFoundError):
        resolver.read(f"{layout.UPLOADS}/{project}/_coco/missing", 100)


def test_drop_with_images_beside_it_and_by_url(services, project):
    put_images(services, project, ["a.jpg", "b.jpg", "sub/c.jpg", "d.jpg"])
    doc = document(["a.jpg", "b.jpg", "sub/c.jpg", "d.jpg"])
    doc["images"][3]["absolute_url"] = (
        f"{endpoint(services)}/{layout.UPLOADS}/{project}/_coco/d.jpg?sv=x&sig=y"
    )
    doc["images"][3]["file_name"] = "elsewhere/ignored.jpg"
    result = drop(services, project, doc)
    assert result.outcome == "imported", result.detail
    images = services.repo.list_images(project)
    assert len(images) == 4 and all(len(im.regions) == 1 for im in images)
    assert sorted({t.name for t in services.repo.list_tags(project)}) == ["cat", "dog"]
    status = json.loads(
        services.blobs.get(layout.MODELS, layout.coco_import_status(project, "_coco/set.coco.json"))
    )
    assert status["state"] == "completed" and status["summary"]["imagesCreated"] == 4
    assert not services.blobs.exists(layout.UPLOADS, f"{project}/_coco/set.coco.json")
    again = drop(services, project, doc)
    assert again.outcome == "duplicate" and len(services.repo.list_images(project)) == 4


def test_bad_file_goes_to_rejected_with_every_problem(services, project, api):
    put_images(services, project, ["a.jpg", "b.jpg"])
    doc = document(["a.jpg", "b.jpg", "../../../etc/passwd", "missing.jpg"])
    doc["images"][0]["width"] = 99
    doc["images"].append(
        {"id": 9, "absolute_url": "http://169.254.169.254/latest/meta-data", "width": 80, "height": 60}
    )
    result = drop(services, project, doc)
    assert result.outcome == "rejected"
    name = f"{project}/_coco/set.coco.json"
    report = json.loads(services.blobs.get(layout.REJECTED, layout.rejected_error_name(name)))
    assert [(e["code"], e["path"]) for e in report["errors"]] == [
        ("UnsafePath", "images[2].file_name"),
        ("UrlOutsideStorageAccount", "images[4].absolute_url"),
        ("SizeMismatch", "images[0].width"),
        ("ImageNotFound", "images[3].file_name"),
    ]
    assert services.repo.list_images(project) == [] and services.repo.list_tags(project) == []
    status = api.ok("GET", f"projects/{project}/coco/import", params={"name": "_coco/set.coco.json"})
    assert status["state"] == "rejected" and status["rejectedTo"] == f"rejected/{name}"
    assert api.call("GET", f"projects/{project}/coco/import", params={"name": "../x"})[0] == 404


def test_export_routes_and_token_round_trip(services, project, api, tmp_path):
    from pycocotools.coco import COCO

    put_images(services, project, ["a.jpg", "b.jpg", "c.jpg", "d.jpg"])
    assert drop(services, project, document(["a.jpg", "b.jpg", "c.jpg", "d.jpg"])).outcome == "imported"
    for boxes, first in (("pixels", [8, 6, 40, 30]), ("normalized", [0.1, 0.1, 0.5, 0.5])):
        doc = api.ok("GET", f"projects/{project}/coco", params={"boxes": boxes})
        (tmp_path / f"{boxes}.json").write_text(json.dumps(doc))
        loaded = COCO(str(tmp_path / f"{boxes}.json"))
        assert len(loaded.getImgIds()) == 4 and loaded.loadAnns([1])[0]["bbox"] == pytest.approx(first)
    assert api.call("GET", f"projects/{project}/coco", params={"boxes": "inches"})[0] == 400

    exported = api.ok("GET", f"projects/{project}/export")
    assert exported["imageCount"] == 4 and exported["regionCount"] == 4 and exported["tagCount"] == 2
    made = api.ok(
        "POST", "projects/import", params={"token": exported["token"], "name": f"moved-{project[:8]}"}
    )
    try:
        assert made["settings"]["domainId"] == DETECTION
        images = api.ok("GET", f"projects/{made['id']}/images")
        assert len(images) == 4 and sorted(r["tagName"] for im in images for r in im["regions"]) == [
            "cat",
            "cat",
            "dog",
            "dog",
        ]
    finally:
        api.call("DELETE", f"projects/{made['id']}")
    status, body = api.call("POST", "projects/import", params={"token": "garbage"})
    assert status == 400 and body["code"] == "BadRequestInvalidImportToken"


def test_a_large_import_goes_through_the_real_queue_and_its_trigger(services, project, api, monkeypatch):
    from azure.functions.queue import QueueMessage

    from functions import queue_imports
    from functions.training import project_transfer

    put_images(services, project, ["a.jpg", "b.jpg", "c.jpg", "d.jpg"])
    assert drop(services, project, document(["a.jpg", "b.jpg", "c.jpg", "d.jpg"])).outcome == "imported"
    exported = api.ok("GET", f"projects/{project}/export")
    monkeypatch.setattr(project_transfer, "INLINE_IMAGES", 3)
    made = api.ok("POST", "projects/import", params={"token": exported["token"], "name": f"bg-{project[:8]}"})
    try:
        assert (
            made["status"] == "Importing" and api.ok("GET", f"projects/{made['id']}")["status"] == "Importing"
        )
        queue, message = queued_message(
            services,
            layout.PROJECT_IMPORTS,
            lambda job: "kind" not in job and job.get("projectId") == made["id"],
        )
        assert project_transfer.parse_job(message.content)[0] == made["id"]
        mine = [message]
        # as the Functions worker hands it over (the api fixture points bootstrap at these services)
        queue_imports.project_imports(
            QueueMessage(id=mine[0].id, body=mine[0].content.encode(), dequeue_count=mine[0].dequeue_count)
        )
        queue.delete_message(mine[0])
        assert api.ok("GET", f"projects/{made['id']}")["status"] == "Succeeded"
        images = api.ok("GET", f"projects/{made['id']}/images")
        assert sorted(r["tagName"] for im in images for r in im["regions"]) == ["cat", "cat", "dog", "dog"]
    finally:
        api.call("DELETE", f"projects/{made['id']}")


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS"))


@pytest.fixture
def own_services():
    """A fresh Azurite of its own: thrown away whole afterwards, which is much faster than deleting
    thousands of blobs one by one from the session's emulator."""
    with running_azurite() as conn:
        s = bootstrap.build(settings.load({"AzureWebJobsStorage": conn}))
        yield s
        s.pool.shutdown(wait=True)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the resident size from /proc")
def test_a_couple_of_thousand_images_import_with_progress_and_bounded_memory(own_services, capsys):
    """The scale test (COCO_SCALE_IMAGES, default 2000 images of 64x64): rate and resident memory growth are
    printed for the README; 20,000 entries are covered for memory in tests/unit/test_coco.py."""
    services = own_services
    project = projects.create_project(services.repo, "scale", None, DETECTION, None, [])["id"]
    names = [f"img/{i:05d}.jpg" for i in range(SCALE)]
    started = time.monotonic()
    put_images(services, project, names, size=(64, 64), first=1000)
    uploaded = time.monotonic() - started
    doc = document(names, size=(64, 64), box=(4, 4, 32, 32))
    seen, blobs, put = [], services.blobs, services.blobs.put

    def spy(container, name, data, content_type):
        if name.endswith(".status.json"):
            seen.append(json.loads(data)["state"])
        put(container, name, data, content_type)

    peak, stop = {"mb": rss_mb()}, threading.Event()

    def sample():
        while not stop.wait(0.1):
            peak["mb"] = max(peak["mb"], rss_mb())

    before, sampler = rss_mb(), threading.Thread(target=sample, daemon=True)
    blobs.put = spy
    sampler.start()
    started = time.monotonic()
    try:
        result = drop(services, project, doc)
    finally:
        stop.set()
        sampler.join()
        del blobs.put
    seconds = time.monotonic() - started
    assert result.outcome == "imported", result.detail
    assert len(services.repo.list_images(project)) == SCALE
    assert seen[0] == "validating" and "importing" in seen and seen[-1] == "completed"
    with capsys.disabled():
        print(
            f"\nCOCO drop of {SCALE} images on Azurite: {seconds:.1f} s, {SCALE / seconds:.0f} images/s "
            f"(upload {uploaded:.1f} s), resident memory +{peak['mb'] - before:.0f} MB"
        )
    assert peak["mb"] - before < 200
