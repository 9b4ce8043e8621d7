"""Smart labeler (suggested tags and regions for training images) through the Training API's HTTP function on
in-memory fakes and tiny real ONNX models."""

import pytest

from cvcore import layout
from functions.training import smart_labeler as suggestions
from tests.integration.api import Api
from tests.support.tiny_models import published_project
from tests.unit import test_prediction_api as prediction_api
from tests.unit.test_prediction_api import colour

api = Api()
s = prediction_api.s  # the fixture: services on in-memory fakes, predictions stored before the reply
# mean colour decides the tiny classifier: red ... blue, the middle one is the most uncertain
COLOURS = {
    "red": (250, 10, 10),
    "reddish": (150, 10, 110),
    "purple": (131, 10, 129),
    "bluish": (110, 10, 150),
    "blue": (10, 10, 250),
}


def upload(p, rgb, tag_ids=()):
    params = {"tagIds": list(tag_ids)} if tag_ids else None
    got = api.ok(
        "POST",
        f"projects/{p}/images",
        body=colour(rgb),
        params=params,
        headers={"Content-Type": "application/octet-stream"},
    )
    return got["images"][0]["image"]["id"]


@pytest.fixture
def project(s):
    p, it, (red, blue) = published_project(s.repo, s.blobs)
    ids = {name: upload(p, rgb) for name, rgb in COLOURS.items()}
    upload(p, (240, 20, 20), [red])  # tagged: never among the suggested images
    return {"p": p, "it": it, "red": red, "blue": blue, "ids": ids}


def suggest(pr, ids, **params):
    return api.call(
        "POST",
        f"projects/{pr['p']}/tagsandregions/suggestions",
        params={"iterationId": pr["it"], "imageIds": ids, **params},
    )


def test_suggestions_carry_uncertainty_and_are_computed_once(s, project, monkeypatch):
    calls = []
    real = suggestions.predict_image
    monkeypatch.setattr(suggestions, "predict_image", lambda *a: calls.append(1) or real(*a))
    names = ["purple", "red", "blue"]
    status, got = suggest(project, [project["ids"][n] for n in names])
    assert status == 200 and [x["id"] for x in got] == [project["ids"][n] for n in names]
    by = dict(zip(names, got, strict=True))
    assert by["purple"]["predictionUncertainty"] > 0.9 and by["red"]["predictionUncertainty"] < 0.2
    assert (
        by["red"]["predictions"][0]["tagId"] == project["red"]
        and by["blue"]["predictions"][0]["tagId"] == project["blue"]
    )
    assert (
        by["red"]["iteration"] == project["it"]
        and by["red"]["project"] == project["p"]
        and by["red"]["created"]
    )
    assert len(calls) == 3
    assert (
        suggest(project, [project["ids"][n] for n in names])[1] == got and len(calls) == 3
    )  # from the cache
    cached = [k for k in s.blobs.blobs if k[0] == layout.MODELS and "/suggestions/" in k[1]]
    assert len(cached) == 3


def test_suggestion_refusals(s, project):
    p, it = project["p"], project["it"]
    assert suggest(project, [])[1]["code"] == "BadRequestRequiredParamIsNull"
    assert suggest(project, [layout.new_id() for _ in range(65)])[1]["code"] == "BadRequestExceededBatchSize"
    assert suggest(project, ["x"])[1]["code"] == "BadRequestInvalidIds"
    status, got = suggest(project, [layout.new_id()])
    assert (status, got["code"]) == (404, "NotFoundImage") and "imageIds" in got["message"]
    status, got = api.call(
        "POST",
        f"projects/{p}/tagsandregions/suggestions",
        params={"iterationId": layout.new_id(), "imageIds": project["ids"]["red"]},
    )
    assert (status, got["code"]) == (404, "NotFoundIteration")
    queued = s.repo.get_iteration(p, it)
    queued.status = "Queued"
    s.repo.update_iteration(p, queued)
    assert suggest(project, [project["ids"]["red"]])[1]["code"] == "BadRequestIterationIsNotTrained"


def query(pr, body):
    return api.call(
        "POST", f"projects/{pr['p']}/images/suggested", params={"iterationId": pr["it"]}, json=body
    )


def test_query_suggested_images_filters_sorts_and_pages(s, project):
    ids, red = project["ids"], project["red"]
    status, got = query(project, {"tagIds": [red], "threshold": 0.6})
    assert status == 200 and [x["id"] for x in got["results"]] == [
        ids["reddish"],
        ids["red"],
    ]  # most uncertain first
    first = got["results"][0]
    assert first["width"] == 64 and first["originalImageUri"].startswith("fake://images/")
    assert [x["tagId"] for x in first["predictions"]] == [red] and first["predictionUncertainty"] > 0
    assert got["token"] == {
        "tagIds": [red],
        "threshold": 0.6,
        "session": None,
        "continuation": None,
        "maxCount": 50,
        "sortBy": "UncertaintyDescending",
    }
    status, got = query(project, {"tagIds": [red], "threshold": 0.6, "sortBy": "UncertaintyAscending"})
    assert [x["id"] for x in got["results"]] == [ids["red"], ids["reddish"]]
    # every tag, one a page; tagging what a page showed does not shift the next
    seen, token = [], None
    while True:
        got = query(project, {"maxCount": 1, "threshold": 0.6, **({"continuation": token} if token else {})})[
            1
        ]
        seen += [x["id"] for x in got["results"]]
        for x in got["results"]:
            api.ok(
                "POST",
                f"projects/{project['p']}/images/tags",
                json={"tags": [{"imageId": x["id"], "tagId": x["predictions"][0]["tagId"]}]},
            )
        if not (token := got["token"]["continuation"]):
            break
    assert sorted(seen) == sorted(ids[n] for n in ("red", "reddish", "bluish", "blue"))
    assert query(project, {"threshold": 0.6})[1]["results"] == []


def test_query_suggested_image_count(s, project):
    red, blue = project["red"], project["blue"]
    count = api.call(
        "POST",
        f"projects/{project['p']}/images/suggested/count",
        params={"iterationId": project["it"]},
        json={"tagIds": [red, blue], "threshold": 0.6},
    )
    assert count == (200, {red: 2, blue: 2})
    everything = api.ok(
        "POST",
        f"projects/{project['p']}/images/suggested/count",
        params={"iterationId": project["it"]},
        json={},
    )
    assert everything == {red: 5, blue: 5}  # threshold 0: every untagged image has a suggestion for each tag


@pytest.mark.parametrize(
    "body, code, field",
    [
        ({"sortBy": "Random"}, "BadRequestInvalid", "sortBy"),
        ({"threshold": 2}, "BadRequestInvalid", "threshold"),
        ({"maxCount": 1000}, "BadRequestInvalid", "maxCount"),
        ({"tagIds": ["x"]}, "BadRequestInvalidIds", "tagIds[0]"),
        ({"tagIds": [layout.new_id()]}, "NotFoundTag", "tagIds"),
        ({"continuation": "v1.garbage"}, "BadRequestInvalid", "continuation"),
    ],
)
def test_bad_suggested_queries(s, project, body, code, field):
    status, got = query(project, body)
    assert (status, got["code"]) == (404 if code.startswith("NotFound") else 400, code) and field in got[
        "message"
    ]


def test_detection_suggests_regions(s):
    p, it, (red, _) = published_project(s.repo, s.blobs, detection=True)
    image = upload(p, (250, 10, 10))
    got = api.ok(
        "POST", f"projects/{p}/tagsandregions/suggestions", params={"iterationId": it, "imageIds": image}
    )
    regions = got[0]["predictions"]
    assert regions and all(x["boundingBox"] and x["probability"] >= 0.05 for x in regions)
    assert regions[0]["tagId"] == red and 0 <= got[0]["predictionUncertainty"] <= 1
