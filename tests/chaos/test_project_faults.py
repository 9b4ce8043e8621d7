"""Chaos: a project deleted while it trains, while an import fills it and while a COCO drop ingests into it;
and hostile drops in uploads/ (unicode and newline names, 0 bytes, 7 MB, names that collide with the
`.error.json` reports). Each ends with the deletion Deleted, every queue and the drop zone drained, and no
row or blob of the project left (the only thing a deleted project may leave is a rejected drop with its
NotFoundProject report: the record of why a drop was refused). Every wait is bounded.
"""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import pytest
import requests
from azure.storage.blob import BlobServiceClient

from cvcore import layout, settings
from functions import bootstrap
from tests.chaos import load
from tests.chaos.test_trainer_faults import TRAINER_ENV, _lock_leased, _queues_settled
from tests.support import images as imgs
from tests.support.chaos import blob_names, queue_depth, table_rows, wait_until
from tests.support.localhost import running_host, running_trainer
from tests.support.training import add_cats_and_cups

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]
HEADERS = {"Training-Key": settings.LOCAL_TRAINING_KEY}
ROW_TABLES = (layout.IMAGES_TABLE, layout.TAGS_TABLE, layout.ITERATIONS_TABLE, layout.PREDICTIONS_TABLE)


@pytest.fixture(scope="module")
def env(azurite):
    from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
    from msrest.authentication import ApiKeyCredentials

    with running_host(azurite) as url, running_trainer(azurite, env=TRAINER_ENV) as worker:
        services = bootstrap.build(settings.load({"AzureWebJobsStorage": azurite}))
        trainer = CustomVisionTrainingClient(
            url, ApiKeyCredentials(in_headers={"Training-key": HEADERS["Training-Key"]})
        )
        yield SimpleNamespace(conn=azurite, url=url, worker=worker, services=services, trainer=trainer)
        services.pool.shutdown(wait=False)


def _api(env, method: str, path: str, **kw) -> requests.Response:
    return requests.request(method, f"{env.url}{load.TRAINING}/{path}", headers=HEADERS, timeout=60, **kw)


def _deletion_done(env, project_id: str) -> dict | None:
    reply = _api(env, "GET", f"projects/{project_id}/deletion")
    body = reply.json() if reply.status_code == 200 else {}
    assert body.get("status") != "Failed", body
    return body if body.get("status") == "Deleted" else None


def assert_nothing_left(env, project_id: str) -> list[str]:
    """No blob of the project in any container (but rejected drops with their NotFoundProject report), no
    row in any table, no project row. Returns the rejected drops left."""
    prefix = layout.project_prefix(project_id)
    for container in layout.CONTAINERS:
        if container != layout.REJECTED:
            left = blob_names(env.conn, container, prefix)
            assert left == [], f"{container}/ still holds {left[:5]} ({len(left)})"
    for table in ROW_TABLES:
        rows = table_rows(env.conn, table, project_id)
        assert rows == [], f"table {table} still holds {len(rows)} rows of the deleted project"
    projects = table_rows(env.conn, layout.PROJECTS_TABLE, layout.PROJECT_PARTITION)
    assert project_id not in {r["RowKey"] for r in projects}, "the project row came back"
    rejected = blob_names(env.conn, layout.REJECTED, prefix)
    drops = [n for n in rejected if not n.endswith(".error.json")]
    for name in drops:
        report = json.loads(_download(env.conn, layout.REJECTED, layout.rejected_error_name(name)))
        assert report["status"] == "NotFoundProject", report
    return drops


def _download(conn: str, container: str, name: str) -> bytes:
    return (
        BlobServiceClient.from_connection_string(conn)
        .get_blob_client(container, name)
        .download_blob()
        .readall()
    )


def _settled(env) -> bool:
    return _queues_settled(env.conn) and queue_depth(env.conn, layout.PROJECT_IMPORTS) == 0


def _tagged_project(env, name: str, images: int, first: int) -> str:
    project = env.trainer.create_project(f"{name}-{layout.new_id()[:8]}")
    tag = env.trainer.create_tag(project.id, "chaos").id
    photos = load.distinct_jpegs(first, images)
    per = max(1, images // 4)
    out = load.upload(
        env.url,
        project.id,
        tag,
        [[photos[k : k + 8] for k in range(s, s + per, 8)] for s in range(0, images, per)],
    )
    assert not out.problems and len(out.ok) == images, out.problems[:3]
    return project.id


def test_deleted_while_training(env):
    project = env.trainer.create_project(f"chaos-del-train-{layout.new_id()[:8]}")
    add_cats_and_cups(env.trainer, project.id, per_tag=5)
    iteration = env.trainer.train_project(project.id)
    wait_until(lambda: _lock_leased(env.conn, project.id, iteration.id), 60, what="training started")
    time.sleep(1.0)
    started = time.monotonic()
    assert _api(env, "DELETE", f"projects/{project.id}").status_code == 204
    wait_until(lambda: _deletion_done(env, project.id), 90, what="the deletion finished")
    wait_until(lambda: _settled(env), 60, what="training and import queues drained")
    seconds = time.monotonic() - started
    assert_nothing_left(env, project.id)
    print(f"\nCHAOS deleted while training: deletion and trainer settled in {seconds:.1f} s, nothing left")


def test_deleted_while_importing(env):
    source = _tagged_project(env, "chaos-del-src", 160, 40_000)
    token = env.trainer.export_project(source).token
    name = f"chaos-del-import-{layout.new_id()[:8]}"
    reply: dict = {}

    def run_import() -> None:
        r = _api(env, "POST", "projects/import", params={"token": token, "name": name})
        reply.update(status=r.status_code, body=r.text[:300])

    importer = threading.Thread(target=run_import, daemon=True)
    importer.start()

    def created() -> str | None:
        found = [
            r
            for r in table_rows(env.conn, layout.PROJECTS_TABLE, layout.PROJECT_PARTITION)
            if r.get("Name") == name
        ]
        return (
            found[0]["RowKey"]
            if found and table_rows(env.conn, layout.IMAGES_TABLE, found[0]["RowKey"])
            else None
        )

    project_id = wait_until(created, 60, every=0.05, what="the import began writing images")
    started = time.monotonic()
    deleted = _api(env, "DELETE", f"projects/{project_id}")
    assert deleted.status_code == 204, deleted.text
    importer.join(timeout=120)
    assert not importer.is_alive(), "the import request hung"
    wait_until(lambda: _deletion_done(env, project_id), 90, what="the deletion finished")
    wait_until(lambda: _settled(env), 60, what="the import queue drained")
    seconds = time.monotonic() - started
    assert reply["status"] in (200, 404), reply  # finished first, or told the project went
    assert_nothing_left(env, project_id)
    assert _api(env, "GET", f"projects/{project_id}").status_code == 404
    print(
        f"\nCHAOS deleted while importing: import replied {reply['status']}, settled in {seconds:.1f} s, nothing left"
    )
    env.trainer.delete_project(source)


def test_deleted_while_a_coco_drop_ingests(env):
    project = env.trainer.create_project(
        f"chaos-del-coco-{layout.new_id()[:8]}", domain_id="da2e3a8a-40a5-4171-82f4-58522f70fbc1"
    )
    names = [f"img{k:03}.jpg" for k in range(150)]
    photos = load.distinct_jpegs(50_000, len(names))
    uploads = BlobServiceClient.from_connection_string(env.conn).get_container_client(layout.UPLOADS)
    list(
        env.services.pool.map(
            lambda kv: uploads.upload_blob(f"{project.id}/_coco/{kv[0]}", kv[1], overwrite=True),
            zip(names, photos, strict=True),
        )
    )
    doc = {
        "images": [{"id": i + 1, "file_name": n, "width": 96, "height": 72} for i, n in enumerate(names)],
        "annotations": [
            {"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [8, 6, 40, 30]}
            for i in range(len(names))
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }
    uploads.upload_blob(f"{project.id}/_coco/set.coco.json", json.dumps(doc).encode(), overwrite=True)
    rows = lambda: table_rows(env.conn, layout.IMAGES_TABLE, project.id)
    wait_until(rows, 60, every=0.05, what="the COCO drop began writing images")
    started = time.monotonic()
    assert _api(env, "DELETE", f"projects/{project.id}").status_code == 204
    wait_until(lambda: _deletion_done(env, project.id), 90, what="the deletion finished")
    wait_until(
        lambda: not blob_names(env.conn, layout.UPLOADS, layout.project_prefix(project.id)),
        60,
        what="drop zone drained",
    )
    time.sleep(2)  # a drop retried by the blob listener would write again now
    seconds = time.monotonic() - started
    rejected = assert_nothing_left(env, project.id)
    print(
        f"\nCHAOS deleted while a COCO drop ingests: settled in {seconds:.1f} s, nothing left ({len(rejected)} rejected drops kept)"
    )


def test_hostile_drop_names_and_sizes(env):
    project = env.trainer.create_project(f"chaos-drops-{layout.new_id()[:8]}")
    folder = f"{project.id}/chaos"
    good = imgs.photo_jpeg(777, size=(96, 72))
    drops = {
        f"{folder}/café ☕ 猫.jpg": imgs.photo_jpeg(778, size=(96, 72)),
        f"{folder}/new\nline.jpg": imgs.photo_jpeg(779, size=(96, 72)),
        f"{folder}/empty.jpg": b"",
        f"{folder}/big.jpg": imgs.oversized_jpeg(7 * 1024 * 1024),
        f"{folder}/bad.jpg": b"not an image at all",
        f"{folder}/bad.jpg.error.json": b'{"forged": "report"}',  # would overwrite bad.jpg's report
        f"{folder}/ok.jpg.error.json": good,  # an image under a report's name
    }
    uploads = BlobServiceClient.from_connection_string(env.conn).get_container_client(layout.UPLOADS)
    for name, data in drops.items():
        uploads.upload_blob(name, data, overwrite=True)
    wait_until(lambda: not blob_names(env.conn, layout.UPLOADS, folder + "/"), 60, what="every drop handled")
    rows = {
        r["RowKey"]
        for r in table_rows(env.conn, layout.IMAGES_TABLE, project.id)
        if not r["RowKey"].startswith("~")
    }
    rejected = blob_names(env.conn, layout.REJECTED, folder + "/")
    # every .error.json in rejected/ is a report (a drop named so is kept under another name), whole
    reports = {
        n: json.loads(_download(env.conn, layout.REJECTED, n)) for n in rejected if n.endswith(".error.json")
    }
    by_drop = {r["blob"].removeprefix(f"{layout.UPLOADS}/"): r for r in reports.values()}
    expected_rejects = {
        f"{folder}/empty.jpg",
        f"{folder}/big.jpg",
        f"{folder}/bad.jpg",
        f"{folder}/bad.jpg.error.json",
    }
    assert set(by_drop) == expected_rejects, f"reports for {sorted(by_drop)}"
    assert by_drop[f"{folder}/big.jpg"]["status"] == "ErrorImageSize"
    assert by_drop[f"{folder}/bad.jpg"]["status"] != "ErrorImageSize"
    kept = {r["keptAs"].removeprefix(f"{layout.REJECTED}/"): drop for drop, r in by_drop.items()}
    assert set(rejected) == set(reports) | set(kept), "rejected/ holds blobs no report names"
    for name, drop in kept.items():
        assert _download(env.conn, layout.REJECTED, name) == drops[drop], f"{drop} not kept as dropped"
    assert len(rows) == 3, f"ingested {len(rows)} of the 3 good images"
    assert load.image_count(env.url, project.id) == 3
    print(f"\nCHAOS hostile drops: {len(rows)} ingested, {len(by_drop)} rejected each with its own report")
    env.trainer.delete_project(project.id)
