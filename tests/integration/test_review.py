"""The review loop on real Azurite (Table + Blob adapters): query pages through the real prediction store,
the Suggested session blob, promotion of a stored prediction into the training set, quick test, and the
suggestion cache beside the iteration's model."""

import random
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from cvcore import layout
from functions.domain.records import utcnow
from functions.prediction.ports import StoredPrediction
from functions.training import iterations, projects, ranking, review
from tests.integration import test_training_api as training_api_tests
from tests.support import images as imgs
from tests.support.tiny_models import add_iteration, published_project

pytestmark = pytest.mark.integration
T0 = datetime(2025, 6, 1, tzinfo=UTC)


api = training_api_tests.api  # the fixture: Api() on the session's Azurite services


@pytest.fixture
def project(api, services):
    p, it, tag_ids = published_project(services.repo, services.blobs)
    yield {"p": p, "it": it, "tags": tag_ids}
    for i in services.repo.list_iterations(p):
        if i.publish_name:
            iterations.unpublish(services.repo, p, i.id)
    services.predictor.store.delete(p, [r.id for r in services.predictor.store.scan(p)])
    projects.delete_project(services.repo, services.blobs, p)


def stored(p, minutes, uncertainty, signature, tag_id):
    when = T0 + timedelta(minutes=minutes)
    return StoredPrediction(
        id=layout.new_prediction_id(int(when.timestamp() * 1000)),
        project_id=p,
        iteration_id="i",
        publish_name="prod",
        application="",
        created=when,
        task="classification",
        predictions=[
            {
                "probability": uncertainty,
                "tagId": tag_id,
                "tagName": "red",
                "tagType": "Regular",
                "boundingBox": None,
            }
        ],
        uncertainty=uncertainty,
        signature=signature,
    )


def pages(api, p, body, between=None):
    ids, token = [], None
    while True:
        got = api.ok("POST", f"projects/{p}/predictions/query", json={**body, "continuation": token})
        ids += [x["id"] for x in got["results"]]
        if between:
            between(got)
        if not (token := got["token"]["continuation"]):
            return ids


def test_every_order_pages_through_the_real_store(api, services, project, monkeypatch):
    monkeypatch.setattr(ranking, "POOL", 8)  # 5 of one scene and 3 others; the rest is the tail
    p, red = project["p"], project["tags"][0]
    rng = random.Random(3)
    scene = rng.getrandbits(64)
    made = [
        stored(p, m, 0.9 - m / 100, f"{scene ^ (1 << m):016x}", red) for m in range(5)
    ]  # one scene, 5 times
    made += [stored(p, 10 + m, 0.6 - m / 100, f"{rng.getrandbits(64):016x}", red) for m in range(9)]
    for r in made:
        services.predictor.store.add(r)
    newest = pages(api, p, {"orderBy": "Newest", "maxCount": 4})
    assert newest == [r.id for r in made[::-1]]
    assert pages(
        api, p, {"orderBy": "Oldest", "maxCount": 5, "tags": [{"id": red, "maxThreshold": 0.555}]}
    ) == [r.id for r in made[-4:]]
    suggested = pages(api, p, {"orderBy": "Suggested", "maxCount": 4})
    assert sorted(suggested) == sorted(newest) and suggested[0] == made[0].id
    assert len({r.id for r in made[:5]} & set(suggested[:4])) == 1  # the scene once at the top of the list
    session_blobs = [
        b.name
        for b in services.clients.blob.get_container_client(layout.PREDICTIONS).list_blobs(
            name_starts_with=f"{p}/query-sessions/"
        )
    ]
    assert session_blobs

    def delete_what_was_shown(page):
        ids = [x["id"] for x in page["results"]]
        if ids:
            assert api.call("DELETE", f"projects/{p}/predictions", params={"ids": ids})[0] == 204

    assert pages(api, p, {"orderBy": "Suggested", "maxCount": 4}, between=delete_what_was_shown) == suggested
    assert list(services.predictor.store.scan(p)) == []
    assert review.purge_query_sessions(services.repo, services.blobs, utcnow() + timedelta(days=2)) >= len(
        session_blobs
    )


def test_promotion_and_quick_test_on_real_storage(api, services, project):
    p, it, (red, _) = project["p"], project["it"], project["tags"]
    photo = imgs.photo_jpeg(6, (320, 240))
    status, shot = api.call(
        "POST",
        f"projects/{p}/quicktest/image",
        body=photo,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert status == 200 and shot["iteration"] == it
    assert services.predictor.recorder.flush(10)
    listed = api.ok("POST", f"projects/{p}/predictions/query", json={})["results"]
    assert [x["id"] for x in listed] == [shot["id"]]
    with urllib.request.urlopen(listed[0]["originalImageUri"], timeout=10) as resp:
        assert resp.read() == photo

    later = add_iteration(
        services.repo, services.blobs, p
    )  # deleting the quick test's iteration loses nothing
    iterations.unpublish(services.repo, p, it)
    iterations.delete_iteration(services.repo, services.blobs, p, it)
    assert [x["id"] for x in api.ok("POST", f"projects/{p}/predictions/query", json={})["results"]] == [
        shot["id"]
    ]

    got = api.ok(
        "POST", f"projects/{p}/images/predictions", json={"images": [{"id": shot["id"], "tagIds": [red]}]}
    )
    image = got["images"][0]["image"]
    assert got["images"][0]["status"] == "OK" and image["tags"][0]["tagId"] == red
    with urllib.request.urlopen(image["originalImageUri"], timeout=10) as resp:
        assert resp.read() == photo
    assert services.predictor.store.get(p, [shot["id"]]) == {}
    assert not services.blobs.exists(layout.PREDICTIONS, layout.prediction_image(p, shot["id"]))
    assert [im.id for im in services.repo.list_images(p)] == [image["id"]]

    # the smart labeler on the new iteration: computed once, cached beside its model, gone with it
    untagged = api.ok(
        "POST",
        f"projects/{p}/images",
        body=imgs.photo_jpeg(7, (320, 240)),
        headers={"Content-Type": "application/octet-stream"},
    )["images"][0]["image"]["id"]
    got = api.ok(
        "POST",
        f"projects/{p}/tagsandregions/suggestions",
        params={"iterationId": later, "imageIds": untagged},
    )
    assert got[0]["id"] == untagged and 0 <= got[0]["predictionUncertainty"] <= 1
    cache = layout.iteration_artifact(p, later, f"suggestions/{untagged}.json")
    assert services.blobs.exists(layout.MODELS, cache)
    count = api.ok(
        "POST", f"projects/{p}/images/suggested/count", params={"iterationId": later}, json={"tagIds": [red]}
    )
    assert count == {red: 1}
    iterations.delete_iteration(services.repo, services.blobs, p, later)
    assert not services.blobs.exists(layout.MODELS, cache)
