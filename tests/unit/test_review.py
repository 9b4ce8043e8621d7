"""The review loop over stored predictions, through the Training API's HTTP function on in-memory fakes and
tiny real ONNX models: query (Newest, Oldest, Suggested; filters; continuation), delete, promote into the
training set, quick test; every refusal with Custom Vision's code and a message naming the field."""

import base64
import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from cvcore import inference, layout
from functions.domain.records import utcnow
from functions.prediction.ports import StoredPrediction
from functions.training import iterations, ranking, review
from tests.integration.api import Api
from tests.support import images as imgs
from tests.support.tiny_models import add_iteration, published_project
from tests.unit import test_prediction_api as prediction_api
from tests.unit.test_prediction_api import call as predict_call
from tests.unit.test_prediction_api import colour, multipart

T0 = datetime(2025, 1, 1, tzinfo=UTC)  # in the past: Suggested snapshots end at "now"
api = Api()
s = prediction_api.s  # the fixture: services on in-memory fakes, predictions stored before the reply
INVALID = "BadRequestPredictionInvalidQueryParameters"


def stored(
    project_id, minutes, *, uncertainty=0.5, signature="", probs=(), iteration="it", application="", when=None
):
    when = when or T0 + timedelta(minutes=minutes)
    return StoredPrediction(
        id=layout.new_prediction_id(int(when.timestamp() * 1000)),
        project_id=project_id,
        iteration_id=iteration,
        publish_name="prod",
        application=application,
        created=when,
        task="classification",
        predictions=[
            {"probability": p, "tagId": t, "tagName": "x", "tagType": "Regular", "boundingBox": None}
            for t, p in probs
        ],
        uncertainty=uncertainty,
        signature=signature,
    )


def query(p, body):
    return api.call("POST", f"projects/{p}/predictions/query", json=body)


def fill(s, p, records):
    for r in records:
        s.predictor.store.add(r)
    return records


def all_pages(p, body, between=None):
    ids, token = [], None
    while True:
        status, got = query(p, {**body, "continuation": token} if token else body)
        assert status == 200, got
        ids += [x["id"] for x in got["results"]]
        token = got["token"]["continuation"]
        if between:
            between(got)
        if not token:
            return ids


def test_newest_and_oldest_pages_cover_everything_once_and_echo_the_query(s):
    p, it, _ = published_project(s.repo, s.blobs)
    made = fill(s, p, [stored(p, m, iteration=it) for m in range(7)])
    status, got = query(p, {"orderBy": "Newest", "maxCount": 3})
    assert status == 200 and [x["id"] for x in got["results"]] == [r.id for r in made[::-1][:3]]
    token = got["token"]
    assert token["orderBy"] == "Newest" and token["maxCount"] == 3 and token["tags"] == []
    assert token["continuation"].startswith("v1.") and token["session"] is None
    first = got["results"][0]
    assert first["project"] == p and first["iteration"] == it and first["created"].endswith("Z")
    assert first["originalImageUri"].startswith("fake://predictions/") and first["thumbnailUri"].endswith(
        ".jpg"
    )
    assert first["domain"] == s.repo.get_iteration(p, it).domain_id
    assert all_pages(p, {"orderBy": "Newest", "maxCount": 3}) == [r.id for r in made[::-1]]
    assert all_pages(p, {"orderBy": "oldest", "maxCount": 2}) == [r.id for r in made]
    assert all_pages(p, {}) == [r.id for r in made[::-1]]  # defaults: Newest, 50 a page


def test_filters_tags_window_iteration_and_application(s):
    p, _, (red, blue) = published_project(s.repo, s.blobs)
    made = fill(
        s,
        p,
        [
            stored(
                p,
                m,
                probs=[(red, m / 10), (blue, 1 - m / 10)],
                iteration="a" if m % 2 else "b",
                application="cam" if m < 4 else "",
            )
            for m in range(10)
        ],
    )
    tagged = all_pages(
        p, {"orderBy": "Oldest", "tags": [{"id": red, "minThreshold": 0.3, "maxThreshold": 0.6}]}
    )
    assert tagged == [made[m].id for m in (3, 4, 5, 6)]
    both = all_pages(p, {"tags": [{"id": red, "minThreshold": 0.5}, {"id": blue, "minThreshold": 0.3}]})
    assert both == [made[m].id for m in (7, 6, 5)]
    window = {
        "startTime": (T0 + timedelta(minutes=2)).isoformat(),
        "endTime": (T0 + timedelta(minutes=5)).isoformat().replace("+00:00", "Z"),
    }
    assert all_pages(p, {"orderBy": "Oldest", **window}) == [made[m].id for m in (2, 3, 4)]
    assert all_pages(p, {"iterationId": layout.new_id()}) == []
    assert all_pages(p, {"application": "cam", "maxCount": 1}) == [made[m].id for m in (3, 2, 1, 0)]
    got = query(p, {"tags": [{"id": red, "minThreshold": 0.85}], "maxCount": 1})[1]
    assert got["token"]["tags"] == [{"id": red, "minThreshold": 0.85, "maxThreshold": 1.0}]


@pytest.mark.parametrize(
    "body, code, field",
    [
        ({"orderBy": "Random"}, INVALID, "orderBy"),
        ({"maxCount": 257}, "BadRequestPredictionResultsExceededCount", "maxCount"),
        ({"maxCount": -1}, INVALID, "maxCount"),
        ({"maxCount": "ten"}, INVALID, "maxCount"),
        ({"tags": [{"id": "x"}]}, "BadRequestInvalidIds", "tags[0].id"),
        ({"tags": [{"id": layout.new_id()}]}, "NotFoundTag", "tags[0].id"),
        ({"tags": "red"}, INVALID, "tags"),
        ({"startTime": "yesterday"}, INVALID, "startTime"),
        ({"startTime": "2030-01-02T00:00:00Z", "endTime": "2030-01-01T00:00:00Z"}, INVALID, "startTime"),
        ({"iterationId": "nope"}, "BadRequestInvalidIds", "iterationId"),
        ({"application": "a/b"}, "BadRequestPredictionInvalidApplicationName", "application"),
        ({"continuation": "abc"}, INVALID, "continuation"),
        ([1, 2], INVALID, "PredictionQueryToken"),
    ],
)
def test_bad_queries_are_refused_naming_the_field(s, body, code, field):
    p, _, _ = published_project(s.repo, s.blobs)
    status, got = query(p, body)
    assert (status, got["code"]) == (404 if code == "NotFoundTag" else 400, code) and field in got[
        "message"
    ], got


def test_threshold_and_tag_count_refusals(s):
    p, _, (red, blue) = published_project(s.repo, s.blobs)
    status, got = query(p, {"tags": [{"id": red}, {"id": blue}, {"id": red}]})
    assert (status, got["code"]) == (400, "BadRequestPredictionTagsExceededCount")
    for bad in ({"minThreshold": 1.5}, {"maxThreshold": -0.1}, {"minThreshold": 0.8, "maxThreshold": 0.2}):
        status, got = query(p, {"tags": [{"id": red, **bad}]})
        assert (status, got["code"]) == (400, INVALID) and "tags[0]" in got["message"], got
    assert api.call("POST", f"projects/{p}/predictions/query")[1]["code"] == "BadRequestRequiredParamIsNull"
    assert query(layout.new_id(), {})[1]["code"] == "NotFoundProject"


def test_continuation_tokens_are_checked(s):
    p, _, (red, _) = published_project(s.repo, s.blobs)
    fill(s, p, [stored(p, m, probs=[(red, 0.9)]) for m in range(4)])
    token = query(p, {"maxCount": 1})[1]["token"]["continuation"]
    raw = json.loads(base64.urlsafe_b64decode(token[3:] + "=" * (-len(token[3:]) % 4)))
    raw["b"] = raw["b"].replace('"after":"', '"after":"0')
    forged = "v1." + base64.urlsafe_b64encode(json.dumps(raw).encode()).decode()
    other, _, _ = published_project(s.repo, s.blobs)
    for body, words in (
        ({"maxCount": 1, "continuation": forged}, "damaged"),
        ({"maxCount": 1, "continuation": token, "orderBy": "Oldest"}, "different query"),
        ({"continuation": token, "tags": [{"id": red}]}, "different query"),
    ):
        status, got = query(p, body)
        assert (status, got["code"]) == (400, INVALID) and words in got["message"], got
    assert query(other, {"continuation": token})[1]["code"] == INVALID
    assert query(p, {"maxCount": 2, "continuation": token})[0] == 200  # the page size may change


def far_signatures(n, seed=7):
    """n signatures at least 24 bits from each other (unrelated pictures)."""
    rng, out = random.Random(seed), []
    while len(out) < n:
        sig = rng.getrandbits(64)
        if all((sig ^ o).bit_count() >= 24 for o in out):
            out.append(sig)
    return [f"{x:016x}" for x in out]


def burst_and_others(p, n_burst=6, n_others=10):
    """A burst of near-identical, very uncertain predictions (one scene sent again and again), and
    unrelated predictions that are a little less uncertain."""
    sigs = far_signatures(n_others + 1)
    base = int(sigs[0], 16)
    burst = [
        stored(p, m, uncertainty=0.95 - m / 100, signature=f"{base ^ (1 << m):016x}") for m in range(n_burst)
    ]
    others = [stored(p, 10 + m, uncertainty=0.8 - m / 50, signature=sigs[m + 1]) for m in range(n_others)]
    return burst, others


def test_suggested_puts_uncertain_images_first_and_spreads_near_duplicates(s):
    p, _, _ = published_project(s.repo, s.blobs)
    burst, others = burst_and_others(p)
    fill(s, p, burst + others)
    got = query(p, {"orderBy": "Suggested", "maxCount": 11})[1]
    top = [x["id"] for x in got["results"]]
    assert top[0] == burst[0].id and set(top[1:]) == {r.id for r in others}
    assert [x["id"] for x in got["results"][1:]] == [r.id for r in others]  # then by uncertainty
    assert got["token"]["session"] and got["token"]["orderBy"] == "Suggested"
    rest = query(p, {"orderBy": "Suggested", "maxCount": 11, "continuation": got["token"]["continuation"]})[1]
    assert [x["id"] for x in rest["results"]] == [r.id for r in burst[1:]] and rest["token"][
        "continuation"
    ] is None


def test_suggested_pages_stay_stable_while_the_reviewer_deletes_and_new_predictions_arrive(s, monkeypatch):
    monkeypatch.setattr(ranking, "POOL", 7)  # the ranked pool, then the tail by uncertainty
    p, _, _ = published_project(s.repo, s.blobs)
    burst, others = burst_and_others(p, n_burst=5, n_others=12)
    fill(s, p, burst + others)
    body = {"orderBy": "Suggested", "maxCount": 3}
    first_pages = all_pages(p, body)
    assert sorted(first_pages) == sorted(r.id for r in burst + others) and len(set(first_pages)) == 17

    def review_page(page):  # the reviewer deletes what it saw, and the camera keeps sending
        ids = [x["id"] for x in page["results"]]
        if ids:
            assert api.call("DELETE", f"projects/{p}/predictions", params={"ids": ids})[0] == 204
        s.predictor.store.add(stored(p, 0, uncertainty=0.99, when=utcnow() + timedelta(seconds=1)))

    seen = all_pages(p, body, between=review_page)
    assert seen == first_pages


def test_an_expired_suggested_session_says_so(s, monkeypatch):
    p, _, _ = published_project(s.repo, s.blobs)
    fill(s, p, [stored(p, m, uncertainty=m / 10) for m in range(5)])
    token = query(p, {"orderBy": "Suggested", "maxCount": 2})[1]["token"]["continuation"]
    monkeypatch.setattr(review, "utcnow", lambda: utcnow() + review.SESSION_TTL + timedelta(minutes=1))
    status, got = query(p, {"orderBy": "Suggested", "maxCount": 2, "continuation": token})
    assert (status, got["code"]) == (400, INVALID) and "expired" in got["message"]
    sessions = [k for k in s.blobs.blobs if "query-sessions" in k[1]]
    assert len(sessions) == 1
    later = review.utcnow() + timedelta(days=2)
    assert review.purge_query_sessions(s.repo, s.blobs, later) == 1
    assert not [k for k in s.blobs.blobs if "query-sessions" in k[1]]


def test_delete_predictions(s):
    p, _, _ = published_project(s.repo, s.blobs)
    made = fill(s, p, [stored(p, m) for m in range(3)])
    status, _ = api.call("DELETE", f"projects/{p}/predictions", params={"ids": [made[0].id, layout.new_id()]})
    assert status == 204 and [r.id for r in s.predictor.store.scan(p)] == [made[2].id, made[1].id]
    for params, code in (
        ({}, "BadRequestPredictionIdsMissing"),
        ({"ids": [layout.new_id() for _ in range(65)]}, "BadRequestPredictionIdsExceededCount"),
        ({"ids": "not-a-guid"}, "BadRequestInvalidIds"),
    ):
        status, got = api.call("DELETE", f"projects/{p}/predictions", params=params)
        assert (status, got["code"]) == (400, code) and "ids" in got["message"]


def predicted(s, p, data):
    status, body = predict_call(f"{p}/classify/iterations/prod/image", data)
    assert status == 200, body
    return body["id"]


def test_a_promoted_prediction_becomes_a_training_image_like_an_upload(s):
    p, _, (red, blue) = published_project(s.repo, s.blobs)
    photo, other = imgs.photo_jpeg(3, (320, 240)), imgs.photo_jpeg(4, (320, 240))
    first, second, third = predicted(s, p, photo), predicted(s, p, other), predicted(s, p, colour())
    batch = {
        "images": [{"id": first, "tagIds": [blue]}, {"id": second}, {"id": layout.new_id()}],
        "tagIds": [red],
        "metadata": {"camera": "door"},
    }
    status, got = api.call("POST", f"projects/{p}/images/predictions", json=batch)
    assert status == 207 and not got["isBatchSuccessful"]
    ok, ok2, gone = got["images"]
    assert (ok["status"], ok["sourceUrl"], ok2["status"], gone["status"]) == (
        "OK",
        first,
        "OK",
        "ErrorSource",
    )
    assert "not stored" in gone["message"]
    assert {t["tagId"] for t in ok["image"]["tags"]} == {red, blue} and ok["image"]["metadata"] == {
        "camera": "door"
    }
    # exactly what an upload of the same bytes would be: same content-addressed id, then OKDuplicate
    upload = api.call(
        "POST", f"projects/{p}/images", body=photo, headers={"Content-Type": "application/octet-stream"}
    )
    assert (
        upload[1]["images"][0]["status"] == "OKDuplicate"
        and upload[1]["images"][0]["image"]["id"] == ok["image"]["id"]
    )
    assert s.blobs.exists(layout.IMAGES, layout.image_thumbnail(p, ok["image"]["id"]))
    # the promoted predictions are gone, record and blobs; the third is still there
    assert [r.id for r in s.predictor.store.scan(p)] == [third]
    assert not s.blobs.exists(layout.PREDICTIONS, layout.prediction_image(p, first))
    again = api.call("POST", f"projects/{p}/images/predictions", json={"images": [{"id": third}]})
    assert again[0] == 200 and again[1]["images"][0]["image"]["tags"] == []


def test_a_prediction_that_cannot_join_stays_stored(s):
    p, _, (red, _) = published_project(s.repo, s.blobs)
    kept = predicted(s, p, colour())
    status, got = api.call(
        "POST",
        f"projects/{p}/images/predictions",
        json={"images": [{"id": kept, "tagIds": [layout.new_id()]}]},
    )
    assert status == 207 and got["images"][0]["status"] == "ErrorInvalidTag"
    assert [r.id for r in s.predictor.store.scan(p)] == [kept]
    duplicate = predicted(s, p, colour())  # the same bytes as an image that joins now
    api.ok("POST", f"projects/{p}/images/predictions", json={"images": [{"id": kept}]})
    got = api.ok(
        "POST", f"projects/{p}/images/predictions", json={"images": [{"id": duplicate}], "tagIds": [red]}
    )
    assert got["images"][0]["status"] == "OKDuplicate" and list(s.predictor.store.scan(p)) == []


@pytest.mark.parametrize(
    "body, code, field",
    [
        ({}, "BadRequestImageBatch", "images"),
        ({"images": []}, "BadRequestImageBatch", "images"),
        ({"images": [{"id": "x"}]}, "BadRequestInvalidIds", "images[0].id"),
        ({"images": ["x"]}, "BadRequestImageBatch", "images[0]"),
        ({"images": [{"id": layout.new_id()} for _ in range(65)]}, "BadRequestImageBatch", "64"),
        (
            {"images": [{"id": layout.new_id(), "tagIds": ["x"]}]},
            "BadRequestImageTags",
            "images[0].tagIds[0]",
        ),
        (
            {
                "images": [
                    {
                        "id": layout.new_id(),
                        "regions": [{"tagId": layout.new_id(), "left": 0, "top": 0, "width": 1, "height": 1}],
                    }
                ]
            },
            "BadRequestImageRegions",
            "regions",
        ),
    ],
)
def test_bad_promotion_batches_are_refused(s, body, code, field):
    p, _, _ = published_project(s.repo, s.blobs)
    status, got = api.call("POST", f"projects/{p}/images/predictions", json=body)
    assert (status, got["code"]) == (400, code) and field in got["message"], got


def test_detection_predictions_join_with_their_regions(s):
    p, _, (red, _) = published_project(s.repo, s.blobs, detection=True, publish_name="boxes")
    body = predict_call(f"{p}/detect/iterations/boxes/image", imgs.photo_jpeg(5, (320, 240)))[1]
    box = {"tagId": red, "left": 0.1, "top": 0.2, "width": 0.3, "height": 0.4}
    got = api.ok(
        "POST", f"projects/{p}/images/predictions", json={"images": [{"id": body["id"], "regions": [box]}]}
    )
    region = got["images"][0]["image"]["regions"][0]
    assert (
        region["tagId"] == red
        and region["left"] == pytest.approx(0.1)
        and region["height"] == pytest.approx(0.4)
    )


def quick(p, data=b"", params=None, content_type="application/octet-stream", **kw):
    return api.call(
        "POST",
        f"projects/{p}/quicktest/image",
        params=params,
        body=data,
        headers={"Content-Type": content_type},
        **kw,
    )


def test_quick_test_against_any_completed_iteration(s):
    p, first, (red, blue) = published_project(s.repo, s.blobs)
    second = add_iteration(s.repo, s.blobs, p)  # latest Completed, not published
    status, got = quick(p, colour((250, 10, 10)))
    assert status == 200 and got["iteration"] == second and got["predictions"][0]["tagId"] == red
    assert set(got) == {"id", "project", "iteration", "created", "predictions"}
    stored_one = s.predictor.store.get(p, [got["id"]])[got["id"]]
    assert stored_one.publish_name == "" and stored_one.iteration_id == second
    data, ctype = multipart(colour())
    status, got = quick(p, data, params={"iterationId": first, "store": "false"}, content_type=ctype)
    assert status == 200 and got["iteration"] == first and got["predictions"][0]["tagId"] == blue
    assert len(list(s.predictor.store.scan(p))) == 1
    # a stored quick test outlives its iteration
    iterations.delete_iteration(s.repo, s.blobs, p, second)
    assert [x["id"] for x in query(p, {})[1]["results"]] == [stored_one.id]


def test_quick_test_refusals(s):
    p, it, _ = published_project(s.repo, s.blobs)
    training = s.repo.get_iteration(p, it)
    training.status = "Training"
    s.repo.update_iteration(p, training)
    assert quick(p, colour(), params={"iterationId": it})[1]["code"] == "BadRequestIterationIsNotTrained"
    assert quick(p, colour())[1]["code"] == "NotFoundProjectDefaultIteration"
    assert quick(p, colour(), params={"iterationId": layout.new_id()})[1]["code"] == "NotFoundIteration"
    good = add_iteration(s.repo, s.blobs, p)
    for data, ctype, code in (
        (b"", "application/octet-stream", "BadRequestImageStream"),
        (imgs.truncated_jpeg(), "application/octet-stream", "BadRequestImageFormat"),
        (imgs.not_an_image(), "application/octet-stream", "BadRequestImageFormat"),
        (imgs.corrupt_bytes(), "image/png", "BadRequestImageFormat"),
        (colour(size=(20, 20)), "image/png", "BadRequestImageDimensions"),
        (b"\xff\xd8" + b"\0" * (4 * 1024 * 1024), "image/jpeg", "BadRequestImageSizeBytes"),
        (colour(), "text/plain", "UnsupportedMediaType"),
    ):
        status, got = quick(p, data, params={"iterationId": good}, content_type=ctype)
        assert (status, got["code"]) == (400, code), (code, got)
        assert code == "UnsupportedMediaType" or got["message"].startswith("imageData: "), got
    assert list(s.predictor.store.scan(p)) == []


def test_quick_test_url_uses_the_guarded_fetch(s, monkeypatch):
    from cvcore.urlfetch import Fetched

    p, _, (red, _) = published_project(s.repo, s.blobs)
    for url in (
        "http://127.0.0.1:9/x.png",
        "http://169.254.169.254/latest",
        "http://10.1.2.3/a.jpg",
        "ftp://x/y",
    ):
        status, got = api.call("POST", f"projects/{p}/quicktest/url", json={"url": url})
        assert (status, got["code"]) == (400, "BadRequestImageUrl") and "url" in got["message"], (url, got)
    assert (
        api.call("POST", f"projects/{p}/quicktest/url", json={"nourl": 1})[1]["code"] == "BadRequestImageUrl"
    )
    monkeypatch.setattr(
        inference, "fetch", lambda url, **kw: Fetched(colour((250, 10, 10)), "image/png", url)
    )
    status, got = api.call(
        "POST",
        f"projects/{p}/quicktest/url",
        params={"store": "false"},
        json={"url": "https://example.com/red.png"},
    )
    assert status == 200 and got["predictions"][0]["tagId"] == red and list(s.predictor.store.scan(p)) == []


def test_deleting_the_project_through_the_api_deletes_its_stored_predictions(s):
    p, _, _ = published_project(s.repo, s.blobs)
    other, _, _ = published_project(s.repo, s.blobs, publish_name="other")
    mine = [predict_call(f"{p}/classify/iterations/prod/image", colour())[1]["id"] for _ in range(2)]
    theirs = predict_call(f"{other}/classify/iterations/other/image", colour())[1]["id"]
    assert api.call("DELETE", f"projects/{p}")[0] == 204
    assert s.predictor.store.get(p, mine) == {} and list(s.predictor.store.scan(p)) == []
    assert list(s.predictor.store.get(other, [theirs])) == [theirs]
    assert not any(s.blobs.exists(layout.PREDICTIONS, layout.prediction_image(p, i)) for i in mine)


def test_suggested_with_a_tag_filter_serves_the_matching_records_in_full(s):
    p, _, (red, blue) = published_project(s.repo, s.blobs)
    made = fill(
        s,
        p,
        [
            stored(
                p,
                m,
                uncertainty=m / 10,
                signature=f"{(0x5555 * (m + 1)) << (m * 3):016x}"[-16:],
                probs=[(red, m / 10), (blue, 1 - m / 10)],
            )
            for m in range(8)
        ],
    )
    body = {"orderBy": "Suggested", "maxCount": 2, "tags": [{"id": red, "minThreshold": 0.45}]}
    got = query(p, body)[1]
    assert {x["id"] for x in got["results"]} <= {r.id for r in made[5:]}
    assert all(len(x["predictions"]) == 2 for x in got["results"])  # full records, not ranking briefs
    assert sorted(all_pages(p, body)) == sorted(r.id for r in made[5:])
