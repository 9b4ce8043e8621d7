"""The Image Analysis API on real Azurite: the registry's table rows (ETags, chunked JSON, a name taken once), and
a dataset registered from a container of the account's own, its images named by absolute_url with pixel boxes."""

import io
import json

import pytest
from azure.core.exceptions import ResourceExistsError
from PIL import Image

from cvcore import layout
from functions import bootstrap
from functions.adapters.vision_registry import TableVisionRegistry
from functions.domain.ports import ConcurrencyError
from functions.vision.registry import ETAG, AlreadyExists, evaluations_of
from tests.unit.test_vision_api import call

pytestmark = pytest.mark.integration
CONTAINER = "customer-datasets"


@pytest.fixture(scope="module")
def s(services):
    bootstrap.override(services)
    try:
        services.clients.blob.create_container(CONTAINER)
    except ResourceExistsError:
        pass
    yield services
    bootstrap.override(None)


def test_registry_rows(s):
    registry = TableVisionRegistry(s.clients.table)
    name = f"r-{layout.new_id()[:8]}"
    big = {
        "name": name,
        "performance": {"tagPerformance": {f"tag{i}": {"accuracy": 0.5} for i in range(2000)}},
    }
    registry.add("model", name, big)
    with pytest.raises(AlreadyExists):
        registry.add("model", name, {"name": name})
    stored = registry.get("model", name)
    assert stored["performance"] == big["performance"] and stored[ETAG]
    registry.replace("model", name, {**stored, "status": "x"}, stored[ETAG])
    with pytest.raises(ConcurrencyError):
        registry.replace("model", name, stored, stored[ETAG])  # stale
    assert name in [r["name"] for r in registry.list("model")]
    registry.add(evaluations_of(name), "e1", {"name": "e1"})
    assert [r["name"] for r in registry.list(evaluations_of(name))] == ["e1"]
    registry.delete("model", name)
    registry.delete("model", name)  # absent: fine
    assert registry.get("model", name) is None
    assert all(p.id for p in s.repo.list_projects())  # the registry's partitions are not projects


def _jpeg(rgb, size=(120, 90)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, rgb).save(out, "JPEG", quality=95)
    return out.getvalue()


def test_a_dataset_from_a_customer_container_with_absolute_urls_and_pixel_boxes(s):
    name = f"d-{layout.new_id()[:8]}"
    endpoint = s.settings.storage.endpoints["blob"]
    container = s.clients.blob.get_container_client(CONTAINER)
    doc = {
        "images": [],
        "annotations": [],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "cup"}],
    }
    for k in range(4):
        blob = f"{name}/images/{k}.jpg"
        container.upload_blob(blob, _jpeg((40 * k, 200, 90)), overwrite=True)
        doc["images"].append(
            {
                "id": k + 1,
                "width": 120,
                "height": 90,
                "file_name": f"{k}.jpg",
                "absolute_url": f"{endpoint}/{CONTAINER}/{blob}",
            }
        )
        doc["annotations"].append(
            {"id": k + 1, "image_id": k + 1, "category_id": 1 + k % 2, "bbox": [12, 9, 60, 45]}
        )  # pixels
    container.upload_blob(f"{name}/train.json", json.dumps(doc).encode(), overwrite=True)
    annotation_uri = f"{endpoint}/{CONTAINER}/{name}/train.json"
    status, body = call(
        "PUT",
        f"datasets/{name}",
        {"annotationKind": "imageObjectDetection", "annotationFileUris": [annotation_uri]},
    )
    assert status == 201, body
    record = s.vision.get("dataset", name)
    images = s.repo.list_images(record["projectId"])
    assert len(images) == 4
    assert {(r.left, r.top, r.width, r.height) for im in images for r in im.regions} == {(0.1, 0.1, 0.5, 0.5)}
    assert record["summary"][0]["bboxFormat"] == "pixels"
    assert call("GET", f"datasets/{name}")[1]["eTag"] == record[ETAG]
    internal = f"{endpoint}/{layout.MODELS}/{record['projectId']}/x.json"
    status, body = call(
        "PUT",
        f"datasets/{name}-2",
        {"annotationKind": "imageObjectDetection", "annotationFileUris": [internal]},
    )
    assert status == 400 and body["error"]["code"] == "DatasetInvalidAnnotationUri"
    assert call("DELETE", f"datasets/{name}") == (204, None)
    assert s.repo.get_project(record["projectId"]) is None and s.vision.get("dataset", name) is None
