"""Every operation of the official SDK (azure-cognitiveservices-vision-customvision: Training v3.4-preview,
Prediction v3.1) has a route here, read from the SDK's own operation metadata: an operation the SDK gains or
a route that goes missing fails this test."""

import inspect
import re
import uuid

import pytest
from azure.cognitiveservices.vision.customvision.prediction.operations import (
    _custom_vision_prediction_client_operations as prediction_ops,
)
from azure.cognitiveservices.vision.customvision.training.operations import (
    _custom_vision_training_client_operations as training_ops,
)

from cvcore.errors import NotFound
from functions import http_prediction
from functions.training import routes as training_routes

ID = str(uuid.uuid4())


def operations(module) -> list[tuple[str, str, str]]:
    """(operation, HTTP verb, URL template) as the SDK sends them."""
    src = inspect.getsource(module)
    found = []
    for name, body in re.findall(r"\n    def (\w+)\((.*?)(?=\n    def |\Z)", src, flags=re.S):
        url = re.search(r"\.metadata = \{'url': '([^']+)'\}", body)
        verb = re.search(r"request = self\._client\.(get|post|put|patch|delete)\(", body)
        if url and verb:
            found.append((name, verb.group(1).upper(), url.group(1)))
    return found


TRAINING = operations(training_ops)
PREDICTION = operations(prediction_ops)


def concrete(url: str) -> str:
    return re.sub(r"\{\w+\}", ID, url).lstrip("/")


def test_the_sdk_surface_is_what_the_api_notes_say():
    assert len(TRAINING) == 52 and len(PREDICTION) == 8


ALL = [(training_routes.router, *op) for op in TRAINING] + [
    (http_prediction.router, *op) for op in PREDICTION
]


@pytest.mark.parametrize("router,name,verb,url", ALL, ids=[op[1] for op in ALL])
def test_every_sdk_operation_has_a_route(router, name, verb, url):
    try:
        handler, _ = router.resolve(verb, concrete(url))
    except NotFound as exc:
        pytest.fail(f"{name}: {verb} {url} has no route ({exc.message})")
    assert callable(handler)
