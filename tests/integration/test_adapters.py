"""The Table and Blob adapters against a real Azurite."""

import urllib.request

import pytest

from cvcore import layout
from functions.training.model import ImageRecord, Project, Region, Tag, utcnow
from functions.training.ports import ConcurrencyError

pytestmark = pytest.mark.integration


def _project(name="p"):
    now = utcnow()
    return Project(id=layout.new_id(), name=name, description="d", domain_id="ee85a74c-405e-4adc-bb47-ffa8ca0c9f31",
                   classification_type="Multiclass", target_export_platforms=[], created=now, last_modified=now)


def _image(i: int, **kw):
    return ImageRecord(id=layout.new_id(), created=utcnow(), width=640 + i, height=480, content_type="image/jpeg",
                       **kw)


def test_project_round_trip_and_listing(services):
    repo = services.repo
    p = _project("round-trip")
    repo.save_project(p)
    got = repo.get_project(p.id)
    assert (got.name, got.classification_type, got.domain_id) == ("round-trip", "Multiclass", p.domain_id)
    assert abs((got.created - p.created).total_seconds()) < 0.001
    assert p.id in [x.id for x in repo.list_projects()]
    assert repo.get_project(layout.new_id()) is None


def test_images_insert_query_by_ids_and_partition_isolation(services):
    repo = services.repo
    p, other = _project(), _project()
    tag = Tag(id=layout.new_id(), name="t", description="", type="Regular", created=utcnow())
    many_regions = [Region(layout.new_id(), tag.id, 0.1, 0.1, 0.2, 0.2, utcnow()) for _ in range(300)]
    imgs = [_image(i, tags={tag.id: utcnow()}) for i in range(130)] + [_image(999, regions=many_regions)]
    assert repo.add_images(p.id, imgs) == set()
    # more than one transaction (100 ops) and more ids than one filter allows (14)
    ids = [im.id for im in imgs]
    found = repo.get_images(p.id, ids)
    assert set(found) == set(ids)
    big = found[imgs[-1].id]
    assert len(big.regions) == 300 and big.regions[5].tag_id == tag.id  # JSON split over several properties
    assert repo.get_images(other.id, ids) == {}
    # inserting again reports which already existed and changes nothing
    assert repo.add_images(p.id, imgs[:3] + [_image(1000)]) == {im.id for im in imgs[:3]}
    assert len(repo.list_images(p.id)) == 132
    repo.delete_images(p.id, ids[:120])
    assert len(repo.list_images(p.id)) == 12


def test_update_image_detects_concurrent_change(services):
    repo = services.repo
    p = _project()
    im = _image(0)
    repo.add_images(p.id, [im])
    first = repo.get_images(p.id, [im.id])[im.id]
    second = repo.get_images(p.id, [im.id])[im.id]
    first.metadata = {"k": "1"}
    repo.update_image(p.id, first)
    second.metadata = {"k": "2"}
    with pytest.raises(ConcurrencyError):
        repo.update_image(p.id, second)
    assert repo.get_images(p.id, [im.id])[im.id].metadata == {"k": "1"}


def test_delete_project_rows_leaves_other_projects(services):
    repo = services.repo
    p, other = _project(), _project()
    for proj in (p, other):
        repo.save_project(proj)
        repo.save_tag(proj.id, Tag(id=layout.new_id(), name="t", description="", type="Regular", created=utcnow()))
        repo.add_images(proj.id, [_image(i) for i in range(3)])
    repo.delete_project(p.id)
    assert repo.get_project(p.id) is None and repo.list_images(p.id) == [] and repo.list_tags(p.id) == []
    assert len(repo.list_images(other.id)) == 3 and len(repo.list_tags(other.id)) == 1


def test_blob_store_put_get_signed_url_and_prefix_delete(services):
    blobs = services.blobs
    pid = layout.new_id()
    name = layout.image_original(pid, layout.new_id())
    blobs.put(layout.IMAGES, name, b"\xff\xd8hello", "image/jpeg")
    assert blobs.get(layout.IMAGES, name) == b"\xff\xd8hello"
    with urllib.request.urlopen(blobs.url(layout.IMAGES, name), timeout=5) as resp:  # SAS works without a key
        assert resp.read() == b"\xff\xd8hello" and resp.headers["Content-Type"] == "image/jpeg"
    unsigned = blobs.url(layout.IMAGES, name).split("?")[0]
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(unsigned, timeout=5)
    blobs.put(layout.IMAGES, layout.image_thumbnail(pid, layout.new_id()), b"t", "image/jpeg")
    assert blobs.delete_prefix(layout.IMAGES, layout.project_prefix(pid)) == 2
    blobs.delete(layout.IMAGES, name)  # already gone: no error
