"""The Prediction API's HTTP function over in-memory fakes and tiny real ONNX models: routes, keys, replies,
stored predictions, publish changes and every refusal, with Custom Vision's codes."""

import io
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import azure.functions as func
import pytest
from PIL import Image

from cvcore import inference, layout, settings
from functions import bootstrap, http_prediction
from functions.prediction.published import Catalog
from functions.prediction.service import Predictor
from functions.prediction.session_cache import ModelCache
from functions.training import iterations
from tests.support import images as imgs
from tests.support.tiny_models import add_iteration, published_project
from tests.unit.fakes import FakeBlobStore, FakePredictionStore, FakeRepository

KEY = settings.LOCAL_PREDICTION_KEY


def colour(rgb=(10, 10, 240), fmt="PNG", size=(64, 64)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, rgb).save(out, fmt)
    return out.getvalue()


@pytest.fixture
def s():
    repo, blobs, pool = FakeRepository(), FakeBlobStore(), ThreadPoolExecutor(4)
    services = bootstrap.Services(
        settings=settings.load({"AzureWebJobsStorage": "UseDevelopmentStorage=true"}),
        repo=repo,
        blobs=blobs,
        pool=pool,
    )
    services.predictor = Predictor(Catalog(repo), ModelCache(blobs.get), FakePredictionStore(blobs), pool)
    bootstrap.override(services)
    yield services
    bootstrap.override(None)
    pool.shutdown()


def call(
    path, body=b"", *, version="v3.1", headers=None, params=None, content_type="application/octet-stream"
):
    hdrs = {"Prediction-Key": KEY, "Content-Type": content_type, **(headers or {})}
    hdrs = {k: v for k, v in hdrs.items() if v is not None}
    if isinstance(body, dict):
        body, hdrs["Content-Type"] = json.dumps(body).encode(), "application/json"
    req = func.HttpRequest(
        "POST",
        f"http://localhost/customvision/{version}/prediction/{path}",
        headers=hdrs,
        params=params or {},
        route_params={"version": version, "path": path},
        body=body,
    )
    resp = http_prediction.handle(req)
    return resp.status_code, json.loads(resp.get_body() or b"null")


def multipart(data: bytes, name="imageData") -> tuple[bytes, str]:
    boundary = "b0undary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def test_classify_replies_in_custom_vision_shape_and_stores_the_prediction(s):
    p, it, (_, blue) = published_project(s.repo, s.blobs)
    status, body = call(f"{p}/classify/iterations/prod/image", colour(), params={"application": "app-1"})
    assert status == 200, body
    assert set(body) == {"id", "project", "iteration", "created", "predictions"}
    assert (body["project"], body["iteration"]) == (p, it) and body["created"].endswith("Z")
    assert [x["tagName"] for x in body["predictions"]] == ["blue", "red"]
    assert body["predictions"][0]["tagId"] == blue and body["predictions"][0]["tagType"] == "Regular"
    assert body["predictions"][0]["probability"] > 0.9 and body["predictions"][0]["boundingBox"] is None
    stored = s.predictor.store.get(p, [body["id"]])[body["id"]]
    assert (stored.iteration_id, stored.publish_name, stored.application) == (it, "prod", "app-1")
    assert stored.predictions == body["predictions"] and (stored.width, stored.height) == (64, 64)
    assert 0 <= stored.uncertainty < 0.2 and stored.margin > 0.8 and len(stored.signature) == 16
    assert s.blobs.exists(layout.PREDICTIONS, layout.prediction_image(p, body["id"]))
    assert s.blobs.exists(layout.PREDICTIONS, layout.prediction_thumbnail(p, body["id"]))
    assert abs(layout.prediction_time_ms(body["id"]) - stored.created.timestamp() * 1000) < 1


def test_nostore_multipart_and_both_versions(s):
    p, _, _ = published_project(s.repo, s.blobs)
    body, ctype = multipart(colour((250, 10, 10)))
    for version in ("v3.0", "v3.1"):
        status, got = call(
            f"{p}/classify/iterations/prod/image/nostore", body, version=version, content_type=ctype
        )
        assert status == 200 and got["predictions"][0]["tagName"] == "red"
    assert list(s.predictor.store.scan(p)) == []
    assert call(f"{p}/classify/iterations/prod/image", version="v2.0")[1]["code"] == "NotFound"


def test_model_loads_once_for_concurrent_first_calls(s):
    p, _, _ = published_project(s.repo, s.blobs)
    results = []
    threads = [
        threading.Thread(
            target=lambda: results.append(call(f"{p}/classify/iterations/prod/image/nostore", colour())[0])
        )
        for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 6 and s.predictor.models.loads == 1


@pytest.mark.parametrize(
    "headers, code",
    [
        ({"Prediction-Key": None}, 401),
        ({"Prediction-Key": "wrong-key-123"}, 401),
        ({"Prediction-Key": None, "prediction-KEY": KEY}, 200),
    ],
)
def test_every_route_checks_its_key(s, headers, code):
    p, _, _ = published_project(s.repo, s.blobs)
    for route in ("image", "url"):
        status, body = call(f"{p}/classify/iterations/prod/{route}/nostore", colour(), headers=headers)
        if code == 401:
            assert (status, body["code"]) == (401, "Unauthorized")
    assert call(f"{p}/classify/iterations/prod/image", colour(), headers=headers)[0] == code


def test_detection_boxes_are_normalised_suppressed_and_sorted(s):
    p, _, _ = published_project(s.repo, s.blobs, detection=True, publish_name="boxes")
    status, body = call(f"{p}/detect/iterations/boxes/image", colour((250, 10, 10)))
    assert status == 200, body
    preds = body["predictions"]
    assert [x["tagName"] for x in preds] == ["red", "blue"]  # the overlapping second red box is suppressed
    assert preds[0]["probability"] >= preds[1]["probability"]
    assert preds[0]["boundingBox"] == pytest.approx({"left": 0.1, "top": 0.1, "width": 0.4, "height": 0.4})
    stored = s.predictor.store.get(p, [body["id"]])[body["id"]]
    assert stored.task == "detection" and 0 < stored.uncertainty <= 1


@pytest.mark.parametrize(
    "route, detection, code",
    [("classify", True, "BadRequestNotSupported"), ("detect", False, "BadRequestNotSupported")],
)
def test_the_wrong_kind_of_call_is_refused(s, route, detection, code):
    p, _, _ = published_project(s.repo, s.blobs, detection=detection)
    assert call(f"{p}/{route}/iterations/prod/image", colour())[1]["code"] == code


def test_unknown_project_name_and_unpublished_iteration(s):
    p, it, _ = published_project(s.repo, s.blobs)
    status, body = call(f"{layout.new_id()}/classify/iterations/prod/image", colour())
    assert (status, body["code"]) == (404, "NotFoundProject")
    assert call("not-a-guid/classify/iterations/prod/image", colour())[1]["code"] == "NotFoundProject"
    status, body = call(f"{p}/classify/iterations/other/image", colour())
    assert (status, body["code"]) == (404, "NotFoundIteration")
    assert call(f"{p}/classify/iterations/prod/image", colour())[0] == 200
    iterations.unpublish(s.repo, p, it)
    assert call(f"{p}/classify/iterations/prod/image", colour())[1]["code"] == "NotFoundIteration"
    assert s.predictor.models.loads == 1 and len(s.predictor.models) == 0  # unpublish dropped the model


@pytest.mark.parametrize(
    "data, content_type, code",
    [
        (b"", "application/octet-stream", "BadRequestImageStream"),
        (imgs.not_an_image(), "application/octet-stream", "BadRequestImageFormat"),
        (imgs.corrupt_bytes(), "application/octet-stream", "BadRequestImageFormat"),
        (imgs.truncated_jpeg(), "application/octet-stream", "BadRequestImageFormat"),
        (colour(size=(20, 20)), "application/octet-stream", "BadRequestImageDimensions"),
        (b"\xff\xd8" + b"\0" * (4 * 1024 * 1024), "image/jpeg", "BadRequestImageSizeBytes"),
        (colour(), "text/plain", "UnsupportedMediaType"),
    ],
)
def test_bad_images_are_refused_and_nothing_is_stored(s, data, content_type, code):
    p, _, _ = published_project(s.repo, s.blobs)
    status, body = call(f"{p}/classify/iterations/prod/image", data, content_type=content_type)
    assert (status, body["code"]) == (400, code), body
    assert list(s.predictor.store.scan(p)) == []
    assert not [k for k in s.blobs.blobs if k[0] == layout.PREDICTIONS]


def test_url_inputs_refuse_private_addresses_and_bad_bodies(s):
    p, _, _ = published_project(s.repo, s.blobs)
    for url in (
        "http://127.0.0.1:9/x.png",
        "http://169.254.169.254/latest",
        "http://10.0.0.1/a.jpg",
        "file:///etc/passwd",
    ):
        status, body = call(f"{p}/classify/iterations/prod/url", {"url": url})
        assert (status, body["code"]) == (400, "BadRequestImageUrl"), (url, body)
    assert call(f"{p}/classify/iterations/prod/url", {"nourl": 1})[1]["code"] == "BadRequestImageUrl"
    assert (
        call(f"{p}/classify/iterations/prod/url", b"{not json", content_type="application/json")[1]["code"]
        == "BadRequestInvalid"
    )
    assert (
        call(f"{p}/classify/iterations/nope/url", {"url": "http://127.0.0.1/"})[1]["code"]
        == "NotFoundIteration"
    )


def test_url_inputs_are_fetched_and_predicted(s, monkeypatch):
    from cvcore.urlfetch import Fetched

    p, _, _ = published_project(s.repo, s.blobs)
    seen = {}

    def fake_fetch(url, **kw):
        seen.update(kw, url=url)
        return Fetched(colour((250, 10, 10)), "image/png", url)

    monkeypatch.setattr(inference, "fetch", fake_fetch)
    status, body = call(f"{p}/classify/iterations/prod/url", {"Url": "https://example.com/red.png"})
    assert status == 200 and body["predictions"][0]["tagName"] == "red"
    assert seen["url"] == "https://example.com/red.png" and seen["max_bytes"] == 4 * 1024 * 1024
    assert len(list(s.predictor.store.scan(p))) == 1


def test_application_names_are_checked(s):
    p, _, _ = published_project(s.repo, s.blobs)
    status, body = call(f"{p}/classify/iterations/prod/image", colour(), params={"application": "bad/name"})
    assert (status, body["code"]) == (400, "BadRequestPredictionInvalidApplicationName")


def test_missing_or_corrupt_model_is_a_clear_error_and_a_good_publish_recovers(s):
    p, broken, _ = published_project(s.repo, s.blobs)
    s.blobs.delete(layout.MODELS, layout.iteration_artifact(p, broken, layout.MODEL_ONNX))
    status, body = call(f"{p}/classify/iterations/prod/image", colour())
    assert (status, body["code"]) == (404, "ErrorPredictionModelNotFound") and "missing" in body["message"]
    corrupt = add_iteration(s.repo, s.blobs, p, model=b"this is not onnx")
    iterations.publish(s.repo, p, corrupt, "prod", None, True)
    status, body = call(f"{p}/classify/iterations/prod/image", colour())
    assert (status, body["code"]) == (404, "ErrorPredictionModelNotFound") and "not valid" in body["message"]
    good = add_iteration(s.repo, s.blobs, p)
    iterations.publish(s.repo, p, good, "prod", None, True)
    status, body = call(f"{p}/classify/iterations/prod/image", colour())
    assert status == 200 and body["iteration"] == good


def test_republish_moves_the_name_and_predictions_survive_iteration_deletion(s):
    p, first, _ = published_project(s.repo, s.blobs)
    one = call(f"{p}/classify/iterations/prod/image", colour())[1]
    second = add_iteration(s.repo, s.blobs, p)
    iterations.publish(s.repo, p, second, "prod", None, True)
    two = call(f"{p}/classify/iterations/prod/image", colour())[1]
    assert (one["iteration"], two["iteration"]) == (first, second)
    iterations.delete_iteration(s.repo, s.blobs, p, first)
    kept = s.predictor.store.get(p, [one["id"]])[one["id"]]
    assert kept.iteration_id == first
    assert s.blobs.exists(layout.PREDICTIONS, layout.prediction_image(p, one["id"]))
    assert [r.id for r in s.predictor.store.scan(p)] == [two["id"], one["id"]]  # newest first


def test_prediction_during_republish_answers_with_the_old_or_the_new_model(s):
    p, first, _ = published_project(s.repo, s.blobs)
    second = add_iteration(s.repo, s.blobs, p)
    stop, answers = threading.Event(), []

    def keep_calling():
        while not stop.is_set():
            answers.append(call(f"{p}/classify/iterations/prod/image/nostore", colour()))

    worker = threading.Thread(target=keep_calling)
    worker.start()
    for target in (second, first, second):
        iterations.publish(s.repo, p, target, "prod", None, True)
    stop.set()
    worker.join()
    assert answers and all(status == 200 for status, _ in answers), [a for a in answers if a[0] != 200][:3]
    assert {body["iteration"] for _, body in answers} <= {first, second}


def test_url_redirecting_to_a_private_address_is_refused(s):
    """The first hop is an allowed origin (a local server standing in for public storage); its redirect to
    another loopback port is not, so the fetch stops there."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self):
            target = "/red.png" if self.path == "/ok" else "http://127.0.0.1:1/secret"
            if self.path == "/red.png":
                data = colour((250, 10, 10))
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self.send_response(302)
            self.send_header("Location", target)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    s.predictor.url_allow_origins = (origin,)
    try:
        p, _, _ = published_project(s.repo, s.blobs)
        status, body = call(f"{p}/classify/iterations/prod/url", {"url": origin + "/ok"})
        assert status == 200 and body["predictions"][0]["tagName"] == "red"
        status, body = call(f"{p}/classify/iterations/prod/url/nostore", {"url": origin + "/private"})
        assert (status, body["code"]) == (400, "BadRequestImageUrl") and "redirected" in body["message"]
    finally:
        server.shutdown()
