"""A large Image Analysis dataset on real Azurite: PUT answers at once, its job goes on the real project-imports
queue, and the queue trigger (as the Functions worker hands it the message) imports it."""

import pytest
from azure.functions.queue import QueueMessage

from cvcore import layout
from functions import bootstrap, queue_imports
from functions.training import project_transfer
from functions.vision.registry import ETAG
from tests.integration.api import queued_message
from tests.unit.test_vision_api import call, coco_file, model

pytestmark = pytest.mark.integration


@pytest.fixture
def s(services):
    bootstrap.override(services)
    yield services
    bootstrap.override(None)


def test_a_large_dataset_registers_through_the_real_queue_and_its_trigger(s, monkeypatch):
    monkeypatch.setattr(project_transfer, "INLINE_IMAGES", 3)
    name = f"bg-{layout.new_id()[:8]}"
    status, body = call(
        "PUT",
        f"datasets/{name}",
        {"annotationKind": "imageObjectDetection", "annotationFileUris": [coco_file(s, name, 2)]},
    )
    assert status == 201, body
    try:
        record = s.vision.get("dataset", name)
        assert record["state"] == "importing" and s.repo.list_images(record["projectId"]) == []
        assert s.repo.get_project(record["projectId"]).status == "Importing"
        assert model(s, f"m-{name}", name)[1]["error"]["code"] == "DatasetNotReady"
        queue, message = queued_message(s, layout.PROJECT_IMPORTS, lambda job: job.get("name") == name)
        mine = [message]
        queue_imports.project_imports(
            QueueMessage(id=mine[0].id, body=mine[0].content.encode(), dequeue_count=mine[0].dequeue_count)
        )
        queue.delete_message(mine[0])
        record = s.vision.get("dataset", name)
        assert record["state"] == "ready" and s.repo.get_project(record["projectId"]).status == "Succeeded"
        images = s.repo.list_images(record["projectId"])
        assert len(images) == 4 and all(len(im.regions) == 1 for im in images)
        assert call("GET", f"datasets/{name}")[1] == {
            **body,
            "updatedDateTime": record["updated"],
            "eTag": record[ETAG],
        }  # the same shape
    finally:
        call("DELETE", f"datasets/{name}")
