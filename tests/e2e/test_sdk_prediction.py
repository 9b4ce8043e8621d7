"""End to end: the official SDK's CustomVisionPredictionClient against the local host (a real process) on
real Azurite, with a model the trainer worker really trained (a cat vs a coffee cup); a tiny detector for
the detection calls; the daily purge run through the host's admin API."""

import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
from azure.cognitiveservices.vision.customvision.prediction.models import CustomVisionErrorException
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from msrest.authentication import ApiKeyCredentials

from cvcore import settings
from cvcore.settings import LOCAL_PREDICTION_KEY, LOCAL_TRAINING_KEY
from functions import bootstrap
from functions.prediction.ports import RETENTION
from tests.integration.test_prediction_store import record
from tests.support import images as imgs
from tests.support.localhost import running_host, running_trainer
from tests.support.tiny_models import DETECTION_DOMAIN, add_iteration
from tests.support.training import CAT, CUP, add_cats_and_cups, photo, wait_trained

pytestmark = pytest.mark.e2e
COMPACT = "0732100f-1a38-4e49-a514-c9b44c697ab5"


def sdk_error(call) -> str:
    with pytest.raises(CustomVisionErrorException) as err:
        call()
    return err.value.error.code


@pytest.fixture(scope="module")
def env(azurite):
    with running_host(azurite) as url, running_trainer(azurite) as worker:
        trainer = CustomVisionTrainingClient(
            url, ApiKeyCredentials(in_headers={"Training-key": LOCAL_TRAINING_KEY})
        )
        predictor = CustomVisionPredictionClient(
            url, ApiKeyCredentials(in_headers={"Prediction-key": LOCAL_PREDICTION_KEY})
        )
        services = bootstrap.build(settings.load({"AzureWebJobsStorage": azurite}))
        project = trainer.create_project("predict-cats", domain_id=COMPACT)
        add_cats_and_cups(trainer, project.id)
        it = wait_trained(trainer, project.id, trainer.train_project(project.id).id, log_path=worker.log_path)
        assert it.status == "Completed", it.training_error_details
        trainer.publish_iteration(project.id, it.id, "prod", "/subscriptions/local/prediction")
        yield dict(
            url=url,
            trainer=trainer,
            predictor=predictor,
            services=services,
            project=project.id,
            iteration=it.id,
        )
        trainer.unpublish_iteration(project.id, it.id)
        trainer.delete_project(project.id)
        services.pool.shutdown(wait=False)


def eventually(read, ok, seconds: float = 10.0):
    """Stored predictions are written just after the reply (functions/prediction/recorder.py)."""
    deadline = time.monotonic() + seconds
    while not ok(got := read()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return got


def test_classify_with_every_sdk_call(env):
    predictor, p = env["predictor"], env["project"]
    result = predictor.classify_image(p, "prod", photo(CAT, 40), application="door-cam")
    assert result.iteration == env["iteration"] and result.project == p
    assert result.predictions[0].tag_name == "cat" and result.predictions[0].probability > 0.5
    assert [x.probability for x in result.predictions] == sorted(
        (x.probability for x in result.predictions), reverse=True
    )
    assert predictor.classify_image_with_no_store(p, "prod", photo(CUP, 40)).predictions[0].tag_name == "cup"
    training_image = env["trainer"].get_tagged_images(p, take=1)[0]
    by_url = predictor.classify_image_url(p, "prod", training_image.original_image_uri)
    assert by_url.predictions[0].tag_name == training_image.tags[0].tag_name
    assert predictor.classify_image_url_with_no_store(
        p, "prod", training_image.original_image_uri
    ).predictions
    stored = eventually(
        lambda: {r.id: r for r in env["services"].predictor.store.scan(p)}, lambda got: len(got) >= 2
    )
    assert result.id in stored and by_url.id in stored and len(stored) == 2
    assert (
        stored[result.id].application == "door-cam" and stored[result.id].predictions[0]["tagName"] == "cat"
    )


def test_refusals_speak_custom_vision(env):
    predictor, p = env["predictor"], env["project"]
    assert sdk_error(lambda: predictor.detect_image(p, "prod", photo(CAT, 41))) == "BadRequestNotSupported"
    assert sdk_error(lambda: predictor.classify_image(p, "staging", photo(CAT, 41))) == "NotFoundIteration"
    assert (
        sdk_error(lambda: predictor.classify_image(p, "prod", imgs.truncated_jpeg()))
        == "BadRequestImageFormat"
    )
    assert (
        sdk_error(lambda: predictor.classify_image_url(p, "prod", "http://169.254.169.254/latest/meta-data"))
        == "BadRequestImageUrl"
    )
    wrong = CustomVisionPredictionClient(
        env["url"], ApiKeyCredentials(in_headers={"Prediction-key": "not-the-key"})
    )
    assert sdk_error(lambda: wrong.classify_image(p, "prod", photo(CAT, 41))) == "Unauthorized"


def test_raw_http_paths_match_without_case_on_both_versions(env):
    p = env["project"]
    for prefix in ("customvision/v3.0/Prediction", "customvision/v3.1/prediction"):
        resp = requests.post(
            f"{env['url']}/{prefix}/{p}/classify/iterations/prod/image/nostore",
            data=photo(CUP, 42),
            headers={"prediction-key": LOCAL_PREDICTION_KEY, "Content-Type": "application/octet-stream"},
            timeout=30,
        )
        assert resp.status_code == 200 and resp.json()["predictions"][0]["tagName"] == "cup"


def test_unpublish_and_republish(env):
    trainer, predictor, p, it = env["trainer"], env["predictor"], env["project"], env["iteration"]
    trainer.unpublish_iteration(p, it)
    assert (
        sdk_error(lambda: predictor.classify_image_with_no_store(p, "prod", photo(CAT, 43)))
        == "NotFoundIteration"
    )
    trainer.publish_iteration(p, it, "prod", "/subscriptions/local/prediction")
    assert predictor.classify_image_with_no_store(p, "prod", photo(CAT, 43)).predictions[0].tag_name == "cat"


def test_detect_with_the_sdk(env):
    trainer, predictor, services = env["trainer"], env["predictor"], env["services"]
    project = trainer.create_project("tiny-boxes", domain_id=DETECTION_DOMAIN)
    try:
        for name in ("red", "blue"):
            trainer.create_tag(project.id, name)
        it = add_iteration(services.repo, services.blobs, project.id)
        trainer.publish_iteration(project.id, it, "boxes", "/subscriptions/local/prediction")
        red = imgs.photo_png(0)  # any photo: the tiny detector scores by mean colour
        result = predictor.detect_image(project.id, "boxes", red)
        assert result.predictions and all(
            0 <= x.bounding_box.left <= 1 and 0 < x.bounding_box.width <= 1 for x in result.predictions
        )
        assert predictor.detect_image_with_no_store(project.id, "boxes", red).predictions
        assert (
            sdk_error(lambda: predictor.classify_image(project.id, "boxes", red)) == "BadRequestNotSupported"
        )
        assert len(eventually(lambda: list(services.predictor.store.scan(project.id)), bool)) == 1
    finally:
        trainer.unpublish_iteration(project.id, it)
        trainer.delete_project(project.id)


def test_the_daily_purge_runs_through_the_admin_api(env):
    store, p = env["services"].predictor.store, env["project"]
    old = record(p, datetime.now(UTC) - RETENTION - timedelta(days=1))
    store.add(old)
    resp = requests.post(f"{env['url']}/admin/functions/purge_predictions", json={"input": ""}, timeout=60)
    assert resp.status_code == 202
    assert store.get(p, [old.id]) == {} and list(store.scan(p))  # the recent ones stay
