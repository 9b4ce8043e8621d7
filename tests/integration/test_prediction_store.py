"""The stored-prediction adapter and the Prediction API's HTTP function on real Azurite: both orders, time
windows, continuation, filters, deletion and the 30-day purge; images and thumbnails really stored."""

import io
import json
import urllib.request
from datetime import UTC, datetime, timedelta

import azure.functions as func
import pytest
from azure.core.exceptions import ResourceNotFoundError
from PIL import Image

from cvcore import layout
from cvcore.settings import LOCAL_PREDICTION_KEY
from functions import bootstrap, http_prediction
from functions.prediction.ports import RETENTION, StoredPrediction
from functions.training import iterations, projects
from tests.support import images as imgs
from tests.support.tiny_models import published_project

pytestmark = pytest.mark.integration
T0 = datetime(2030, 1, 1, tzinfo=UTC)


def record(project_id, when, iteration="i1", application="", n=2):
    pid = layout.new_prediction_id(int(when.timestamp() * 1000))
    preds = [
        {
            "probability": 1 / (k + 2),
            "tagId": f"tag{k}",
            "tagName": f"n{k}",
            "tagType": "Regular",
            "boundingBox": {"left": 0.1, "top": 0.1, "width": 0.2, "height": 0.2},
        }
        for k in range(n)
    ]
    return StoredPrediction(
        id=pid,
        project_id=project_id,
        iteration_id=iteration,
        publish_name="prod",
        application=application,
        created=when,
        task="detection",
        predictions=preds,
        uncertainty=0.5,
        margin=0.3,
        signature="00ff00ff00ff00ff",
        width=64,
        height=48,
        content_type="image/png",
    )


@pytest.fixture
def store(services):
    return services.predictor.store


def test_orders_windows_continuation_and_filters(store):
    p = layout.new_id()
    made = [
        record(
            p, T0 + timedelta(minutes=m), iteration="a" if m % 2 else "b", application="cam" if m < 3 else ""
        )
        for m in range(6)
    ]
    for r in made:
        store.add(r)
    newest = [r.id for r in made[::-1]]
    assert [r.id for r in store.scan(p)] == newest
    assert [r.id for r in store.scan(p, oldest_first=True)] == newest[::-1]
    window = dict(start=T0 + timedelta(minutes=1), end=T0 + timedelta(minutes=4))
    assert [r.id for r in store.scan(p, **window)] == [made[3].id, made[2].id, made[1].id]
    assert [r.id for r in store.scan(p, oldest_first=True, **window)] == [made[1].id, made[2].id, made[3].id]
    assert [r.id for r in store.scan(p, after=made[4].id)] == newest[2:]
    assert [r.id for r in store.scan(p, oldest_first=True, after=made[1].id)] == [r.id for r in made[2:]]
    assert [r.id for r in store.scan(p, iteration_id="a")] == [made[5].id, made[3].id, made[1].id]
    assert [r.id for r in store.scan(p, application="cam", oldest_first=True)] == [r.id for r in made[:3]]
    assert list(store.scan(layout.new_id())) == []
    got = store.get(p, [made[0].id, layout.new_id()])
    assert list(got) == [made[0].id] and got[made[0].id] == made[0]


def test_most_uncertain_first_with_windows_filters_and_cursor(store):
    p = layout.new_id()
    made = [record(p, T0 + timedelta(minutes=m), iteration="a" if m % 2 else "b") for m in range(8)]
    for r, u in zip(made, [0.5, 0.9, 0.0, 0.9, 1.0, 0.25, 0.5, 0.75], strict=True):
        r.uncertainty = u
        store.add(r)
    expected = sorted(made, key=lambda r: (-r.uncertainty, r.id))
    assert [r.id for r in store.scan_uncertain(p)] == [r.id for r in expected]
    assert [r.id for r in store.scan(p)] == sorted(
        r.id for r in made
    )  # the other orders do not see the index
    assert len(list(store.scan(p, oldest_first=True))) == 8
    cursor = (expected[2].uncertainty, expected[2].id)
    assert [r.id for r in store.scan_uncertain(p, after=cursor)] == [r.id for r in expected[3:]]
    window = {"start": T0 + timedelta(minutes=2), "end": T0 + timedelta(minutes=6)}
    assert [r.id for r in store.scan_uncertain(p, **window)] == [
        r.id for r in expected if window["start"] <= r.created < window["end"]
    ]
    assert [r.id for r in store.scan_uncertain(p, iteration_id="a")] == [
        r.id for r in expected if r.iteration_id == "a"
    ]
    brief = list(store.scan_uncertain(p, brief=True, page=3))  # pages of 3 rows, only what ranking needs
    assert [(r.id, r.uncertainty, r.signature, r.created) for r in brief] == [
        (r.id, r.uncertainty, r.signature, r.created) for r in expected
    ]  # read from the uncertain rows' keys (created: the id's time, which record() makes them equal to)
    assert all(r.predictions == [] and r.iteration_id == "" for r in brief) and expected[0].predictions
    store.delete(p, [expected[0].id])
    assert [r.id for r in store.scan_uncertain(p)] == [r.id for r in expected[1:]]
    assert store.delete_project(p) == 7


def test_complete_serves_records_it_has_read_and_reads_the_rest(store, services):
    """Records never change once written, so `complete` (for ids a scan has just listed) answers from the
    records the store has read and reads only the others; `get` always asks storage; deletions forget."""
    p = layout.new_id()
    made = [record(p, T0 + timedelta(minutes=m)) for m in range(4)]
    for r in made:
        store.add(r)
    assert store.get(p, [made[0].id, made[1].id]) == {made[0].id: made[0], made[1].id: made[1]}
    table = services.clients.table.get_table_client(layout.PREDICTIONS_TABLE)
    for r in (made[0], made[2]):  # behind the store's back: where complete's answers come from shows
        table.delete_entity(p, r.id)
    got = store.complete(p, [r.id for r in made])
    assert got == {made[0].id: made[0], made[1].id: made[1], made[3].id: made[3]}  # 0 kept, 2 read: gone
    assert store.get(p, [made[0].id]) == {}  # get reads storage, and the store forgets what is gone
    assert store.complete(p, [made[0].id]) == {}
    store.delete(p, [made[1].id])
    assert store.complete(p, [made[1].id]) == {}
    assert store.complete(p, [made[3].id]) == {made[3].id: made[3]}
    store.delete_project(p)
    assert store.complete(p, [made[3].id]) == {}


def test_the_records_kept_for_complete_are_bounded_by_size():
    from functions.adapters.predictions import _Recent

    recent = _Recent(budget=3 * 1259)
    rows = [{"Id": f"id{k}", "Predictions": "x" * 1000} for k in range(4)]  # 256 + 3 + 1000 each
    recent.keep("p", rows[:3])
    assert set(recent.take("p", ["id0"])) == {"id0"}  # id0 used: id1 is now the least recent
    recent.keep("p", rows[3:])
    assert set(recent.take("p", [r["Id"] for r in rows])) == {"id0", "id2", "id3"}
    assert recent.take("q", ["id0"]) == {}  # by project
    recent.drop("p", ["id0"])
    recent.drop("p")
    assert recent.take("p", ["id2", "id3"]) == {} and recent._size == 0


def test_predictions_stored_before_the_uncertainty_index_are_indexed_once(store, services):
    from functions.adapters import predictions as adapter

    p = layout.new_id()
    old = [record(p, T0 + timedelta(minutes=m)) for m in range(3)]
    for r, u in zip(old, (0.2, 0.8, 0.5), strict=True):
        r.uncertainty = u
    table = services.clients.table.get_table_client(layout.PREDICTIONS_TABLE)
    for r in old:  # as the store wrote them before: no uncertain row, no INDEX row
        for e in adapter.entities(r)[:2]:
            table.create_entity(e)
    fresh = adapter.TablePredictionStore(
        services.clients.table, services.blobs, services.pool
    )  # a new process
    newer = record(p, T0 + timedelta(hours=1))
    newer.uncertainty = 0.6
    fresh.add(newer)  # adding leaves the legacy rows to the first scan
    with pytest.raises(ResourceNotFoundError):
        table.get_entity(p, adapter.INDEX)
    ranked = [r.id for r in fresh.scan_uncertain(p)]
    assert ranked == [old[1].id, newer.id, old[2].id, old[0].id]
    table.get_entity(p, adapter.INDEX)
    assert [r.id for r in store.scan_uncertain(p)] == ranked  # another process: the INDEX row says done
    assert fresh.delete_project(p) == 4


def test_large_results_round_trip_and_delete_removes_rows_and_blobs(store, services):
    p = layout.new_id()
    big = record(p, T0, n=200)
    store.put_images(p, big.id, imgs.photo_png(3), "image/png", imgs.photo_jpeg(3, size=(128, 96)))
    store.add(big)
    assert store.get(p, [big.id])[big.id].predictions == big.predictions
    assert services.blobs.exists(layout.PREDICTIONS, layout.prediction_thumbnail(p, big.id))
    store.delete(p, [big.id])
    assert store.get(p, [big.id]) == {} and list(store.scan(p, oldest_first=True)) == []
    assert not services.blobs.exists(layout.PREDICTIONS, layout.prediction_image(p, big.id))


def test_purge_removes_what_is_older_than_the_retention_in_every_project(store, services):
    now = datetime.now(UTC)
    kept, gone = [], []
    for _ in range(2):
        p = layout.new_id()
        old, new = (
            record(p, now - RETENTION - timedelta(hours=1)),
            record(p, now - RETENTION + timedelta(hours=1)),
        )
        for r in (old, new):
            store.put_images(p, r.id, b"img", "image/png", b"thumb")
            store.add(r)
        kept.append(new)
        gone.append(old)
    assert store.purge(now - RETENTION) >= 2
    for r in kept:
        assert list(store.get(r.project_id, [r.id])) == [r.id]
        assert services.blobs.exists(layout.PREDICTIONS, layout.prediction_image(r.project_id, r.id))
    for r in gone:
        assert store.get(r.project_id, [r.id]) == {}
        assert not services.blobs.exists(layout.PREDICTIONS, layout.prediction_thumbnail(r.project_id, r.id))
    assert store.purge(now - RETENTION) == 0


def test_http_prediction_on_real_storage_stores_image_and_thumbnail(services):
    bootstrap.override(services)
    p, it, _ = published_project(services.repo, services.blobs)
    try:
        red = io.BytesIO()
        Image.new("RGB", (120, 90), (250, 10, 10)).save(red, "JPEG")
        req = func.HttpRequest(
            "POST",
            f"http://localhost/customvision/v3.1/Prediction/{p}/classify/iterations/prod/image",
            headers={"prediction-key": LOCAL_PREDICTION_KEY, "Content-Type": "application/octet-stream"},
            params={},
            route_params={"version": "v3.1", "path": f"{p}/classify/iterations/prod/image"},
            body=red.getvalue(),
        )
        resp = http_prediction.handle(req)
        body = json.loads(resp.get_body())
        assert resp.status_code == 200 and body["predictions"][0]["tagName"] == "red"
        assert services.predictor.recorder.flush(10)  # stored after the reply
        stored = services.predictor.store.get(p, [body["id"]])[body["id"]]
        assert (stored.iteration_id, stored.width, stored.height) == (it, 120, 90)
        with urllib.request.urlopen(services.predictor.store.image_url(p, body["id"]), timeout=10) as r:
            assert r.read() == red.getvalue()
        with urllib.request.urlopen(services.predictor.store.thumbnail_url(p, body["id"]), timeout=10) as r:
            assert Image.open(io.BytesIO(r.read())).size == (120, 90)
        iterations.unpublish(services.repo, p, it)
        iterations.delete_iteration(services.repo, services.blobs, p, it)
        assert list(services.predictor.store.get(p, [body["id"]])) == [body["id"]]  # outlives its iteration
    finally:
        bootstrap.override(None)
        projects.delete_project(services.repo, services.blobs, p)


def test_a_published_detector_reads_back_and_answers_with_boxes(services):
    bootstrap.override(services)
    p, it, _ = published_project(services.repo, services.blobs, detection=True, publish_name="boxes")
    try:
        assert services.repo.get_iteration(p, it).classification_type is None  # a detector has none
        req = func.HttpRequest(
            "POST",
            "http://localhost/",
            headers={"Prediction-Key": LOCAL_PREDICTION_KEY},
            params={},
            route_params={"version": "v3.0", "path": f"{p}/detect/iterations/boxes/image/nostore"},
            body=imgs.photo_png(1),
        )
        resp = http_prediction.handle(req)
        assert resp.status_code == 200 and all(
            x["boundingBox"] for x in json.loads(resp.get_body())["predictions"]
        )
        assert list(services.predictor.store.scan(p)) == []
    finally:
        bootstrap.override(None)
        projects.delete_project(services.repo, services.blobs, p)


def test_deleting_a_project_deletes_its_stored_predictions_only(services, store):
    gone, kept = (
        projects.create_project(services.repo, f"p-{layout.new_id()}", None, None, None, [])["id"]
        for _ in range(2)
    )
    doomed = [record(gone, T0 + timedelta(minutes=m)) for m in range(3)]
    survivor = record(kept, T0)
    for r in [*doomed, survivor]:
        store.add(r)
    projects.delete_project(services.repo, services.blobs, gone, store)
    assert list(store.scan(gone)) == [] and list(store.scan(gone, oldest_first=True)) == []
    assert [r.id for r in store.scan(kept)] == [survivor.id]
    assert store.delete_project(kept) == 1 and list(store.scan(kept)) == []
    projects.delete_project(services.repo, services.blobs, kept)
