"""get_artifact (GET /projects/{id}/artifacts?path=) on the in-memory fakes: a project's files by their path
relative to the project, with the path never trusted: traversal, other containers and other projects fail."""

import json

import azure.functions as func
import pytest

from cvcore import layout
from cvcore.settings import LOCAL_TRAINING_KEY
from functions import http_training
from functions.training import projects
from functions.training.ingest import Candidate, ingest
from tests.support import images as imgs
from tests.unit import test_prediction_api as prediction_api

s = prediction_api.s  # the fixture: services on in-memory fakes


def artifact(project_id: str, path: str | None, key: str = LOCAL_TRAINING_KEY):
    params = {"path": path} if path is not None else {}
    req = func.HttpRequest(
        "GET",
        f"http://localhost/customvision/v3.3/training/projects/{project_id}/artifacts",
        headers={"Training-Key": key},
        params=params,
        body=b"",
        route_params={"version": "v3.3", "path": f"projects/{project_id}/artifacts"},
    )
    resp = http_training.handle(req)
    return resp.status_code, resp.mimetype, resp.get_body()


def project_with_image(s, seed: int):
    p = projects.create_project(s.repo, f"art-{layout.new_id()[:8]}", None, None, None, [])["id"]
    jpeg = imgs.photo_jpeg(seed, (120, 90))
    [out] = ingest(s.repo, s.blobs, s.pool, s.repo.get_project(p), [Candidate("a.jpg", jpeg)])
    return p, out.record.id


def test_files_of_the_project_come_back_by_relative_path(s):
    p, image = project_with_image(s, 1)
    status, kind, body = artifact(p, f"images/originals/{image}")
    assert (status, kind) == (200, "image/jpeg")
    assert body == s.blobs.get(layout.IMAGES, layout.image_original(p, image))
    status, kind, body = artifact(p, f"/images/thumbnails/{image}.jpg")  # a leading slash is fine
    assert status == 200 and kind == "image/jpeg" and body[:3] == b"\xff\xd8\xff"
    iteration = layout.new_id()
    s.blobs.put(
        layout.MODELS,
        f"{layout.project_prefix(p)}{iteration}/config.json",
        b'{"recipe": "linear"}',
        "application/json",
    )
    status, kind, body = artifact(p, f"models/{iteration}/config.json")
    assert (status, kind, json.loads(body)) == (200, "application/json", {"recipe": "linear"})


@pytest.mark.parametrize(
    "path",
    [
        "",
        "   ",
        "images",
        "images/",
        "uploads/x.jpg",
        "rejected/a.json",
        "images/../x",
        "images/originals/..",
        "images/originals/../../other/originals/x",
        "images//originals",
        "images/originals/a b",
        "images\\originals\\x",
        "models/./config.json",
        "models/%2e%2e/x",
        "images/originals/\x00",
        "x" * 600,
    ],
)
def test_paths_that_are_not_plain_names_in_a_project_container_are_refused(s, path):
    p, _ = project_with_image(s, 2)
    status, _, body = artifact(p, path)
    assert status == 400 and json.loads(body)["code"] == "BadRequestInvalidArtifactUri", (path, body)


def test_no_path_reaches_another_project_and_missing_things_are_404(s):
    mine, _ = project_with_image(s, 3)
    theirs, their_image = project_with_image(s, 4)
    status, _, body = artifact(mine, f"images/originals/{their_image}")  # their id, resolved under my project
    assert status == 404 and json.loads(body)["code"] == "NotFound"
    assert artifact(mine, None)[0] == 400
    status, _, body = artifact(layout.new_id(), f"images/originals/{their_image}")
    assert status == 404 and json.loads(body)["code"] == "NotFoundProject"
    assert artifact(theirs, f"images/originals/{their_image}", key="wrong")[0] == 401
