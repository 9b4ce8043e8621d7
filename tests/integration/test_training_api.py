"""The Training API's HTTP function on real Azurite: uploads, bad input, isolation, keys."""

import base64

import pytest

from cvcore import layout
from functions import bootstrap
from tests.integration.api import Api, queued_message
from tests.support import images as imgs

pytestmark = pytest.mark.integration
DETECTION = "da2e3a8a-40a5-4171-82f4-58522f70fbc1"


@pytest.fixture(scope="module")
def api(services):
    bootstrap.override(services)
    yield Api()
    bootstrap.override(None)


@pytest.fixture
def project(api):
    p = api.ok(
        "POST", "projects", params={"name": f"p-{layout.new_id()}", "classificationType": "Multilabel"}
    )
    yield p["id"]
    api.call("DELETE", f"projects/{p['id']}")


def files(*blobs, **entry):
    return {
        "images": [
            {"name": f"f{i}.img", "contents": base64.b64encode(b).decode(), **entry}
            for i, b in enumerate(blobs)
        ]
    }


def test_wrong_or_missing_key_is_401_with_custom_vision_body(api):
    for key in ("wrong-key-123", None):
        status, body = Api(key=key).call("GET", "projects")
        assert status == 401 and body["code"] == "Unauthorized" and "Training-Key" in body["message"]


def test_both_api_versions_are_served_and_others_are_not(api):
    assert Api(version="v3.3").call("GET", "domains")[0] == 200
    status, body = Api(version="v2.0").call("GET", "domains")
    assert status == 404 and "v3.3" in body["message"]


def test_batch_of_64_with_one_corrupt_image_fails_alone(api, project):
    tag = api.ok("POST", f"projects/{project}/tags", params={"name": "photo"})["id"]
    batch = [imgs.photo_jpeg(i) for i in range(63)] + [imgs.truncated_jpeg()]
    status, out = api.call(
        "POST", f"projects/{project}/images/files", json={**files(*batch), "tagIds": [tag]}
    )
    assert status == 207  # Multi-Status: part of the batch failed
    statuses = [im["status"] for im in out["images"]]
    assert statuses[:63] == ["OK"] * 63 and statuses[63] == "ErrorImageFormat"
    assert out["isBatchSuccessful"] is False
    assert out["images"][0]["image"]["tags"][0]["tagName"] == "photo"
    assert api.ok("GET", f"projects/{project}/images/tagged/count") == 63
    assert api.ok("GET", f"projects/{project}/tags/{tag}")["imageCount"] == 63


def test_more_than_64_images_is_refused(api, project):
    status, body = api.call("POST", f"projects/{project}/images/files", json=files(*([b"x"] * 65)))
    assert status == 400 and body["code"] == "BadRequestImageBatch" and "64" in body["message"]


@pytest.mark.parametrize(
    "make, status",
    [
        (imgs.corrupt_bytes, "ErrorImageFormat"),
        (imgs.not_an_image, "ErrorImageFormat"),
        (imgs.unsupported_format, "ErrorImageFormat"),
        (lambda: imgs.oversized_jpeg(6 * 1024 * 1024 + 10), "ErrorImageSize"),
        (lambda: imgs.tiny_image(side=40), "ErrorImageDimensions"),
        (imgs.huge_dimensions_png, "ErrorImageDimensions"),
        (imgs.decompression_bomb_png, "ErrorImageDimensions"),
    ],
)
def test_bad_images_get_their_status_and_nothing_is_stored(api, project, make, status):
    out = api.ok("POST", f"projects/{project}/images/files", json=files(make(), imgs.photo_jpeg(200)))
    assert [im["status"] for im in out["images"]] == [status, "OK"]
    assert out["images"][0]["image"] is None and out["images"][0]["message"]
    assert api.ok("GET", f"projects/{project}/images/count") == 1


@pytest.mark.parametrize(
    "make",
    [
        imgs.cmyk_jpeg,
        imgs.palette_png,
        imgs.rgba_png,
        imgs.grey16_png,
        imgs.animated_gif,
        imgs.webp,
        imgs.bmp,
        imgs.tiff,
    ],
)
def test_odd_but_valid_images_are_accepted_as_rgb(api, project, make, services):
    out = api.ok("POST", f"projects/{project}/images/files", json=files(make()))
    assert out["images"][0]["status"] == "OK", out
    image = out["images"][0]["image"]
    stored = services.blobs.get(layout.IMAGES, layout.image_original(project, image["id"]))
    import io

    from PIL import Image

    with Image.open(io.BytesIO(stored)) as im:
        assert im.mode == "RGB" and im.size == (image["width"], image["height"])


def test_exif_rotated_image_is_stored_upright(api, project, services):
    out = api.ok(
        "POST", f"projects/{project}/images/files", json=files(imgs.exif_rotated_jpeg(orientation=6))
    )
    image = out["images"][0]["image"]
    w, h = imgs.exif_upright_size(6)
    assert (image["width"], image["height"]) == (w, h)


def test_the_upload_format_and_exif_camera_reach_the_frozen_dataset(api, project, services):
    from functions.domain.records import Tag
    from functions.training import train

    jpeg = imgs.exif_rotated_jpeg(orientation=6, size=(96, 64), camera=("NIKON CORPORATION", "NIKON D750"))
    out = api.ok("POST", f"projects/{project}/images/files", json=files(jpeg, imgs.bmp()))
    ids = [r["image"]["id"] for r in out["images"]]
    rows = services.repo.get_images(project, ids)
    assert (rows[ids[0]].camera, rows[ids[0]].source_format) == ("NIKON CORPORATION NIKON D750", "JPEG")
    assert (rows[ids[1]].camera, rows[ids[1]].source_format) == ("", "BMP")  # stored as PNG, uploaded as BMP
    tag = Tag(id=layout.new_id(), name="t", description="", type="Regular", created=rows[ids[0]].created)
    for im in rows.values():
        im.tags = {tag.id: im.created}
    m = train.build_manifest(
        services.repo.get_project(project), layout.new_id(), {tag.id: tag}, list(rows.values()), None
    )
    entries = {e["image_id"]: e for e in m.images}
    assert entries[ids[0]]["camera"] == "NIKON CORPORATION NIKON D750" and entries[ids[0]]["format"] == "JPEG"
    assert "camera" not in entries[ids[1]] and entries[ids[1]]["format"] == "BMP"


def test_exact_duplicates_are_ok_duplicate_with_the_first_image(api, project):
    photo = imgs.photo_jpeg(7)
    first = api.ok("POST", f"projects/{project}/images/files", json=files(photo))["images"][0]
    again = api.ok("POST", f"projects/{project}/images/files", json=files(photo, photo))["images"]
    assert [a["status"] for a in again] == ["OKDuplicate", "OKDuplicate"]
    assert {a["image"]["id"] for a in again} == {first["image"]["id"]}
    assert api.ok("GET", f"projects/{project}/images/count") == 1


def test_tag_from_another_project_and_negative_with_regular(api, project):
    other = api.ok("POST", "projects", params={"name": f"o-{layout.new_id()}"})["id"]
    try:
        foreign = api.ok("POST", f"projects/{other}/tags", params={"name": "foreign"})["id"]
        mine = api.ok("POST", f"projects/{project}/tags", params={"name": "mine"})["id"]
        neg = api.ok("POST", f"projects/{project}/tags", params={"name": "none", "type": "Negative"})["id"]
        out = api.ok(
            "POST",
            f"projects/{project}/images/files",
            json={
                "images": [
                    {
                        "name": "a",
                        "contents": base64.b64encode(imgs.photo_jpeg(11)).decode(),
                        "tagIds": [foreign],
                    },
                    {
                        "name": "b",
                        "contents": base64.b64encode(imgs.photo_jpeg(12)).decode(),
                        "tagIds": [mine, neg],
                    },
                    {
                        "name": "c",
                        "contents": base64.b64encode(imgs.photo_jpeg(13)).decode(),
                        "tagIds": [mine],
                    },
                ]
            },
        )
        assert [im["status"] for im in out["images"]] == [
            "ErrorInvalidTag",
            "ErrorNegativeAndRegularTagOnSameImage",
            "OK",
        ]
    finally:
        api.call("DELETE", f"projects/{other}")


def test_region_outside_unit_square_names_the_field(api):
    p = api.ok("POST", "projects", params={"name": f"d-{layout.new_id()}", "domainId": DETECTION})["id"]
    try:
        t = api.ok("POST", f"projects/{p}/tags", params={"name": "obj"})["id"]
        bad = files(
            imgs.photo_jpeg(20), regions=[{"tagId": t, "left": 0.8, "top": 0.1, "width": 0.3, "height": 0.2}]
        )
        status, body = api.call("POST", f"projects/{p}/images/files", json=bad)
        assert status == 400 and body["code"] == "BadRequestImageRegions"
        assert "images[0].regions[0]" in body["message"] and "left + width" in body["message"]
        good = files(
            imgs.photo_jpeg(20), regions=[{"tagId": t, "left": 0.1, "top": 0.1, "width": 0.3, "height": 0.2}]
        )
        image = api.ok("POST", f"projects/{p}/images/files", json=good)["images"][0]["image"]
        assert image["regions"][0]["tagName"] == "obj" and image["tags"][0]["tagId"] == t
    finally:
        api.call("DELETE", f"projects/{p}")


def test_octet_stream_and_multipart_uploads(api, project):
    status, out = api.call(
        "POST",
        f"projects/{project}/images",
        body=imgs.photo_jpeg(30),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert status == 200  # all went through and out["images"][0]["status"] == "OK"
    boundary = "XyZ"
    parts = b"".join(
        b'--XyZ\r\nContent-Disposition: form-data; name="imageData"; filename="f%d.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n" % i + imgs.photo_jpeg(31 + i) + b"\r\n"
        for i in range(3)
    )
    status, out = api.call(
        "POST",
        f"projects/{project}/images",
        body=parts + b"--XyZ--\r\n",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert status == 200 and [i["status"] for i in out["images"]] == ["OK"] * 3
    status, body = api.call(
        "POST", f"projects/{project}/images", body=b"{}", headers={"Content-Type": "text/plain"}
    )
    assert status == 400 and body["code"] == "UnsupportedMediaType"


def test_image_urls_are_fetched_only_from_allowed_places(api, project, services):
    name = layout.image_original(project, layout.new_id())
    services.blobs.put(layout.IMAGES, name, imgs.photo_jpeg(40), "image/jpeg")
    out = api.ok(
        "POST",
        f"projects/{project}/images/urls",
        json={
            "images": [
                {"url": services.blobs.url(layout.IMAGES, name)},  # the local storage endpoint is allowed
                {"url": "http://127.0.0.1:7071/anything"},  # loopback elsewhere is not
                {"url": "http://169.254.169.254/latest/meta-data"},
                {"url": "file:///etc/passwd"},
            ]
        },
    )
    assert [im["status"] for im in out["images"]] == ["OK", "ErrorSource", "ErrorSource", "ErrorSource"]


def test_delete_project_removes_blobs_and_rows(api, services):
    p = api.ok("POST", "projects", params={"name": f"gone-{layout.new_id()}"})["id"]
    image = api.ok("POST", f"projects/{p}/images/files", json=files(imgs.photo_jpeg(50)))["images"][0][
        "image"
    ]
    assert services.blobs.get(layout.IMAGES, layout.image_original(p, image["id"]))
    api.ok("DELETE", f"projects/{p}")
    # Gone for the API at once; the rows and blobs go in the background, through the project-imports queue.
    assert api.call("GET", f"projects/{p}")[0] == 404
    assert p not in [x["id"] for x in api.ok("GET", "projects")]
    assert api.call("POST", f"projects/{p}/images/files", json=files(imgs.photo_jpeg(51)))[0] == 404
    assert api.ok("GET", f"projects/{p}/deletion")["status"] == "Deleting"
    container = services.clients.blob.get_container_client(layout.IMAGES)
    assert list(container.list_blobs(name_starts_with=p)) != []
    run_queued_deletion(services, p)
    assert list(container.list_blobs(name_starts_with=p)) == []
    assert services.repo.list_images(p) == [] and services.repo.get_project(p) is None
    done = api.ok("GET", f"projects/{p}/deletion")
    assert done["status"] == "Deleted" and done["blobs"] >= 2 and done["images"] == 1
    assert api.call("GET", f"projects/{layout.new_id()}/deletion")[0] == 404


def run_queued_deletion(services, project_id: str) -> None:
    """Hand the deletion job of `project_id` to the queue trigger, as the host does."""
    from azure.functions.queue import QueueMessage

    from functions import queue_imports

    queue, message = queued_message(
        services,
        layout.PROJECT_IMPORTS,
        lambda job: job.get("kind") == "deleteProject" and job.get("projectId") == project_id,
    )
    mine = [message]
    queue_imports.project_imports(
        QueueMessage(id=mine[0].id, body=mine[0].content.encode(), dequeue_count=mine[0].dequeue_count)
    )
    queue.delete_message(mine[0])
