"""Services fields are optional so a test can build only what it exercises; code that needs one takes it
through domain.ports.wired, which names the missing field instead of failing later on None."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from cvcore import settings
from functions import bootstrap
from functions.domain.ports import wired
from functions.training import ports as training_ports
from functions.vision import ports as vision_ports
from tests.unit.fakes import FakeBlobStore, FakeRepository


@pytest.fixture
def bare():
    with ThreadPoolExecutor(1) as pool:
        yield bootstrap.Services(
            settings=settings.load({"AzureWebJobsStorage": "UseDevelopmentStorage=true"}),
            repo=FakeRepository(),
            blobs=FakeBlobStore(),
            pool=pool,
        )


def test_wired_hands_back_what_is_there():
    queue = object()
    assert wired(queue, "jobs") is queue


@pytest.mark.parametrize(
    "take, field",
    [
        (training_ports.predictor, "predictor"),
        (training_ports.jobs, "jobs"),
        (vision_ports.registry, "vision"),
    ],
)
def test_a_missing_service_is_named(bare, take, field):
    with pytest.raises(RuntimeError, match=rf"Services\.{field} is not wired"):
        take(bare)
