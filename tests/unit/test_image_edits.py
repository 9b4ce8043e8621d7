from concurrent.futures import ThreadPoolExecutor

import pytest

from cvcore.errors import BadRequest, NotFound
from functions.domain.records import ImageRecord, utcnow
from functions.training import images, projects, tags
from tests.unit.fakes import FakeRepository

DETECTION = "da2e3a8a-40a5-4171-82f4-58522f70fbc1"
POOL = ThreadPoolExecutor(4)
IMG = [f"00000000-0000-0000-0000-00000000000{i}" for i in range(6)]


def setup(domain=None, ctype="Multilabel"):
    repo = FakeRepository()
    p = projects.create_project(repo, "p", None, domain, ctype, [])["id"]
    repo.add_images(
        p, [ImageRecord(id=i, created=utcnow(), width=100, height=80, content_type="image/jpeg") for i in IMG]
    )
    return repo, p


@pytest.mark.parametrize(
    "region, field",
    [
        ({"left": -0.1, "top": 0, "width": 0.5, "height": 0.5}, "left"),
        ({"left": 0, "top": 1.0, "width": 0.5, "height": 0.5}, "top"),
        ({"left": 0, "top": 0, "width": 0, "height": 0.5}, "width"),
        ({"left": 0.6, "top": 0, "width": 0.5, "height": 0.5}, "left + width"),
        ({"left": 0, "top": 0.7, "width": 0.5, "height": 0.5}, "top + height"),
        ({"left": "0", "top": 0, "width": 0.5, "height": 0.5}, "left"),
        ({"left": float("nan"), "top": 0, "width": 0.5, "height": 0.5}, "left"),
    ],
)
def test_regions_outside_unit_square_are_refused_naming_the_field(region, field):
    repo, p = setup(DETECTION, None)
    t = tags.create_tag(repo, p, "a", None, None)["id"]
    with pytest.raises(BadRequest) as err:
        images.create_image_regions(repo, p, {"regions": [{"imageId": IMG[0], "tagId": t, **region}]}, POOL)
    assert err.value.code == "BadRequestImageRegions"
    assert f"regions[0].{field}" in err.value.message or f"regions[0]: {field}" in err.value.message


def test_regions_add_dedupe_and_delete():
    repo, p = setup(DETECTION, None)
    t = tags.create_tag(repo, p, "a", None, None)["id"]
    box = {"imageId": IMG[0], "tagId": t, "left": 0.1, "top": 0.2, "width": 0.3, "height": 0.4}
    first = images.create_image_regions(repo, p, {"regions": [box]}, POOL)
    assert len(first["created"]) == 1 and first["created"][0]["tagName"] == "a"
    again = images.create_image_regions(repo, p, {"regions": [box]}, POOL)
    assert again["created"] == [] and len(again["duplicated"]) == 1
    assert images.count_images(repo, p, tagging_status="Tagged") == 1
    images.delete_image_regions(repo, p, [first["created"][0]["regionId"]], POOL)
    assert images.count_images(repo, p, tagging_status="Tagged") == 0


def test_regions_refused_in_classification_projects():
    repo, p = setup()
    t = tags.create_tag(repo, p, "a", None, None)["id"]
    with pytest.raises(BadRequest, match="object detection"):
        images.create_image_regions(
            repo,
            p,
            {"regions": [{"imageId": IMG[0], "tagId": t, "left": 0, "top": 0, "width": 1, "height": 1}]},
            POOL,
        )


def test_image_tags_created_duplicated_and_negative_rules():
    repo, p = setup()
    a = tags.create_tag(repo, p, "a", None, None)["id"]
    neg = tags.create_tag(repo, p, "neg", None, "Negative")["id"]
    out = images.create_image_tags(
        repo, p, {"tags": [{"imageId": IMG[0], "tagId": a}, {"imageId": IMG[1], "tagId": a}]}, POOL
    )
    assert len(out["created"]) == 2 and out["duplicated"] == []
    out = images.create_image_tags(repo, p, {"tags": [{"imageId": IMG[0], "tagId": a}]}, POOL)
    assert out["created"] == [] and out["duplicated"] == [{"imageId": IMG[0], "tagId": a}]
    with pytest.raises(BadRequest) as err:
        images.create_image_tags(repo, p, {"tags": [{"imageId": IMG[0], "tagId": neg}]}, POOL)
    assert err.value.code == "BadRequestNegativeAndRegularTagOnSameImage"
    images.delete_image_tags(repo, p, [IMG[0]], [a], POOL)
    assert images.count_images(repo, p, tagging_status="Tagged") == 1


def test_tag_from_another_project_is_refused():
    repo, p = setup()
    other = projects.create_project(repo, "other", None, None, None, [])["id"]
    foreign = tags.create_tag(repo, other, "foreign", None, None)["id"]
    with pytest.raises(BadRequest) as err:
        images.create_image_tags(repo, p, {"tags": [{"imageId": IMG[0], "tagId": foreign}]}, POOL)
    assert err.value.code == "BadRequestImageTags"


def test_image_from_another_project_is_not_found():
    repo, p = setup()
    other = projects.create_project(repo, "other", None, None, None, [])["id"]
    t = tags.create_tag(repo, other, "t", None, None)["id"]
    with pytest.raises(NotFound):
        images.create_image_tags(repo, other, {"tags": [{"imageId": IMG[0], "tagId": t}]}, POOL)
    assert images.images_by_ids(repo, _Blobs(), other, [IMG[0]]) == []


class _Blobs:
    def url(self, container, name):
        return f"fake://{container}/{name}"


def test_metadata_merge_limits_and_missing_images():
    repo, p = setup()
    out = images.update_metadata(
        repo, p, [IMG[0], "00000000-0000-0000-0000-0000000000ff"], {"camera": "a"}, POOL
    )
    assert [e["status"] for e in out["images"]] == ["OK", "ErrorImageNotFound"]
    assert not out["isBatchSuccessful"]
    many = {f"k{i}": "v" for i in range(10)}
    out = images.update_metadata(repo, p, [IMG[0]], many, POOL)
    assert out["images"][0]["status"] == "ErrorLimitExceed"
    with pytest.raises(BadRequest) as err:
        images.update_metadata(repo, p, [IMG[0]], {"k": 5}, POOL)
    assert err.value.code == "BadRequestImageMetadataValue"


def test_listing_order_paging_and_filters():
    repo, p = setup()
    a = tags.create_tag(repo, p, "a", None, None)["id"]
    images.create_image_tags(repo, p, {"tags": [{"imageId": IMG[2], "tagId": a}]}, POOL)
    newest = [im["id"] for im in images.query_images(repo, _Blobs(), p, order_by="Newest", take=256)]
    oldest = [im["id"] for im in images.query_images(repo, _Blobs(), p, order_by="Oldest", take=256)]
    assert newest == oldest[::-1] and len(newest) == 6
    page = images.query_images(repo, _Blobs(), p, order_by="Oldest", take=2, skip=2)
    assert [im["id"] for im in page] == oldest[2:4]
    tagged = images.query_images(repo, _Blobs(), p, tagging_status="Tagged")
    assert [im["id"] for im in tagged] == [IMG[2]] and tagged[0]["tags"][0]["tagName"] == "a"
    assert images.count_images(repo, p, tagging_status="Untagged") == 5
    assert images.count_images(repo, p, tag_ids=[a]) == 1
    with pytest.raises(BadRequest):
        images.query_images(repo, _Blobs(), p, order_by="Sideways")


def test_concurrent_edit_is_retried_not_lost():
    repo, p = setup()
    a = tags.create_tag(repo, p, "a", None, None)["id"]
    b = tags.create_tag(repo, p, "b", None, None)["id"]
    real_update = repo.update_image
    calls = {"n": 0}

    def racing_update(project_id, image):
        calls["n"] += 1
        if calls["n"] == 1:  # someone else tags the image with b between our read and our write
            other = repo.get_images(project_id, [image.id])[image.id]
            other.tags[b] = utcnow()
            real_update(project_id, other)
        return real_update(project_id, image)

    repo.update_image = racing_update
    images.create_image_tags(repo, p, {"tags": [{"imageId": IMG[0], "tagId": a}]}, None)
    assert repo.get_images(p, [IMG[0]])[IMG[0]].tags.keys() == {a, b}
    assert calls["n"] == 2  # our first write hit the ETag conflict and was retried once
