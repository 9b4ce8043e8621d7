"""Chaos: storage paused (Azurite SIGSTOPped for 5 s) under a batch upload, a training and a prediction
burst; then 8 concurrent uploaders into one tag and 16 concurrent predictors (store and nostore) on the
running storage. Every client sees a success or a clear 503 with Retry-After within REQUEST_BOUND_S, and
afterwards storage holds exactly what the replies said: no OK image or stored prediction missing, no
duplicate, no orphan row or blob.

A private Azurite (never the shared session one): these tests freeze it.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from cvcore import layout, settings
from functions import bootstrap
from tests.chaos import load
from tests.chaos.test_trainer_faults import TRAINER_ENV, _lock_leased, _queues_settled
from tests.support.azurite import running_azurite_process
from tests.support.chaos import paused, wait_until
from tests.support.localhost import running_host, running_trainer
from tests.support.tiny_models import published_project
from tests.support.training import add_cats_and_cups, wait_trained

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]
PAUSE_S = 5.0


@pytest.fixture(scope="module")
def env():
    from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
    from msrest.authentication import ApiKeyCredentials

    with (
        running_azurite_process() as (conn, azurite),
        running_host(conn) as url,
        running_trainer(conn, env=TRAINER_ENV) as worker,
    ):
        services = bootstrap.build(settings.load({"AzureWebJobsStorage": conn}))
        trainer = CustomVisionTrainingClient(
            url, ApiKeyCredentials(in_headers={"Training-key": settings.LOCAL_TRAINING_KEY})
        )
        yield SimpleNamespace(
            conn=conn, azurite=azurite, url=url, worker=worker, services=services, trainer=trainer
        )
        services.pool.shutdown(wait=False)


def _tag_project(env, name: str) -> tuple[str, str]:
    project = env.trainer.create_project(f"{name}-{layout.new_id()[:8]}")
    return project.id, env.trainer.create_tag(project.id, "chaos").id


def assert_images_match(env, project_id: str, out: load.Outcome) -> int:
    """Storage holds every image a reply called OK, only images that were sent, each with both blobs; the
    API's count agrees. Returns the number stored."""
    assert not out.problems, out.problems[:5]
    rows, originals, thumbs = load.stored_images(env.conn, project_id)
    assert out.ok <= rows, f"{len(out.ok - rows)} images a reply called OK are missing"
    assert rows <= out.ok | out.uncertain, f"rows for images never sent: {rows - out.ok - out.uncertain}"
    assert originals == rows, f"orphan or missing originals: {originals ^ rows}"
    assert thumbs == rows, f"orphan or missing thumbnails: {thumbs ^ rows}"
    assert load.image_count(env.url, project_id) == len(rows)
    return len(rows)


def assert_predictions_match(env, project_id: str, stored: load.Outcome, nostore: load.Outcome) -> int:
    """Every stored reply's prediction is queryable and has its two blobs; nothing else is stored (the
    nostore replies left nothing)."""
    assert not stored.problems and not nostore.problems, (stored.problems + nostore.problems)[:5]
    queried = wait_until(
        lambda: (q := load.queried_predictions(env.url, project_id)) >= stored.ok and q,
        20,
        what="every stored prediction queryable",
    )
    images, thumbs = load.stored_prediction_blobs(env.conn, project_id)
    assert queried == stored.ok, f"stored {len(queried)} predictions, the replies said {len(stored.ok)}"
    assert images == queried and thumbs == queried, "orphan or missing prediction blobs"
    assert not (nostore.ok & queried), "a nostore prediction was stored"
    return len(queried)


def test_storage_paused_during_uploads_training_and_predictions(env):
    up_project, tag = _tag_project(env, "chaos-pause-upload")
    train_project = env.trainer.create_project(f"chaos-pause-train-{layout.new_id()[:8]}")
    add_cats_and_cups(env.trainer, train_project.id, per_tag=5)
    pred_project, _iteration, _tags = published_project(env.services.repo, env.services.blobs)
    photos = load.distinct_jpegs(10_000, 6 * 40)
    batches = [[photos[k * 40 + 4 * n : k * 40 + 4 * n + 4] for n in range(10)] for k in range(6)]
    iteration = env.trainer.train_project(train_project.id)
    wait_until(lambda: _lock_leased(env.conn, train_project.id, iteration.id), 60, what="training started")

    import threading

    results: dict = {}
    with paused(env.azurite, PAUSE_S, after=1.0) as marks:
        until = time.monotonic() + PAUSE_S + 3.0
        uploader = threading.Thread(
            target=lambda: results.update(upload=load.upload(env.url, up_project, tag, batches, until))
        )
        uploader.start()
        results["stored"], results["nostore"] = load.predict(
            env.url, pred_project, "prod", 8, 400, lambda i, n: photos[(i * 7 + n) % len(photos)], until
        )
        uploader.join(timeout=load.REQUEST_BOUND_S * 4)
    assert "stopped_at" in marks and marks["resumed_at"] - marks["stopped_at"] >= PAUSE_S - 0.5

    for name in ("upload", "stored", "nostore"):  # each kind of client really ran into the pause
        assert results[name].tally.slowest >= PAUSE_S - 1.5, (name, str(results[name].tally))
    uploaded = assert_images_match(env, up_project, results["upload"])
    predicted = assert_predictions_match(env, pred_project, results["stored"], results["nostore"])
    settled = wait_trained(
        env.trainer, train_project.id, iteration.id, timeout=150, log_path=env.worker.log_path
    )
    assert settled.status == "Completed" or settled.training_error_details, "Failed without a reason"
    wait_until(lambda: _queues_settled(env.conn), 30, what="training queues drained")
    print(
        f"\nCHAOS storage paused {PAUSE_S:.0f} s: uploads {results['upload'].tally} ({uploaded} images stored),"
        f" predictions store {results['stored'].tally} ({predicted} stored), nostore {results['nostore'].tally};"
        f" training ended {settled.status}"
    )


def test_8_uploaders_into_one_tag_and_16_predictors(env):
    project_id, tag = _tag_project(env, "chaos-load-upload")
    own = load.distinct_jpegs(20_000, 8 * 24)
    shared = load.distinct_jpegs(30_000, 8)  # every uploader sends these too: a race on the same ids
    batches = [
        [
            own[k * 24 + 4 * n : k * 24 + 4 * n + 4] + shared[n : n + 1] + shared[n + 2 : n + 3]
            for n in range(6)
        ]
        for k in range(8)
    ]
    up = load.upload(env.url, project_id, tag, batches)
    assert not up.uncertain, f"{len(up.uncertain)} images refused without a storage fault"
    stored_n = assert_images_match(env, project_id, up)
    assert stored_n == len(own) + len(shared)
    [counted] = [t for t in env.trainer.get_tags(project_id) if t.id == tag]
    assert counted.image_count == stored_n

    pred_project, _iteration, _tags = published_project(env.services.repo, env.services.blobs)
    stored, nostore = load.predict(
        env.url, pred_project, "prod", 16, 12, lambda i, n: own[(i * 12 + n) % len(own)]
    )
    assert stored.tally.by_status == {200: 8 * 12} and nostore.tally.by_status == {200: 8 * 12}
    kept = assert_predictions_match(env, pred_project, stored, nostore)
    print(
        f"\nCHAOS load: 8 uploaders {up.requests} batches / {stored_n} images in {up.seconds:.1f} s "
        f"({up.requests / up.seconds:.1f} req/s, {up.tally}); 16 predictors "
        f"{stored.requests + nostore.requests} requests in {stored.seconds:.1f} s "
        f"({(stored.requests + nostore.requests) / stored.seconds:.1f} req/s, store {stored.tally}, "
        f"nostore {nostore.tally}), {kept} stored"
    )
