"""The Table and Blob adapters against a real Azurite."""

import urllib.request

import pytest

from cvcore import layout
from functions.domain.ports import ConcurrencyError
from functions.domain.records import ImageRecord, Project, Region, Tag, utcnow

pytestmark = pytest.mark.integration


def _project(name="p"):
    now = utcnow()
    return Project(
        id=layout.new_id(),
        name=name,
        description="d",
        domain_id="ee85a74c-405e-4adc-bb47-ffa8ca0c9f31",
        classification_type="Multiclass",
        target_export_platforms=[],
        created=now,
        last_modified=now,
    )


def _image(i: int, **kw):
    return ImageRecord(
        id=layout.new_id(), created=utcnow(), width=640 + i, height=480, content_type="image/jpeg", **kw
    )


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
        repo.save_tag(
            proj.id, Tag(id=layout.new_id(), name="t", description="", type="Regular", created=utcnow())
        )
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


# --- image counters and the listing cache (functions/adapters/image_rows.py) -------------------------------


def _tagged(tag_ids, **kw):
    return _image(0, tags={t: utcnow() for t in tag_ids}, **kw)


def _other_process(azurite):
    from cvcore import settings
    from functions import bootstrap

    return bootstrap.build(settings.load({"AzureWebJobsStorage": azurite}))


def test_counts_follow_every_write_and_agree_with_the_rows(services):
    from functions.domain.records import ImageCounts

    repo = services.repo
    p = _project()
    a, b = layout.new_id(), layout.new_id()
    images = (
        [_tagged([a]) for _ in range(150)]
        + [_tagged([a, b]) for _ in range(20)]
        + [_image(1) for _ in range(7)]
    )
    repo.add_images(p.id, images)
    got = repo.image_counts(p.id)
    assert (got.images, got.tagged, got.untagged, got.per_tag) == (177, 170, 7, {a: 170, b: 20})
    im = repo.get_images(p.id, [images[0].id])[images[0].id]
    im.tags = {b: utcnow()}
    repo.update_image(p.id, im)
    repo.delete_images(p.id, [x.id for x in images[150:160]] + [images[-1].id, layout.new_id()])
    repo.add_images(p.id, images[:3])  # already there: nothing counted twice
    got = repo.image_counts(p.id)
    assert got == ImageCounts.of(repo.list_images(p.id)) and (got.images, got.untagged) == (166, 6)
    assert got.per_tag == {a: 159, b: 11}


def test_a_project_from_before_the_counters_is_counted_once_from_its_rows(services):
    from functions.adapters.entities import image_entity

    repo = services.repo
    p, t = _project(), layout.new_id()
    table = services.clients.table.get_table_client(layout.IMAGES_TABLE)
    for im in [_tagged([t]) for _ in range(12)] + [_image(2)]:
        table.create_entity(image_entity(p.id, im))  # rows written by a version without counters
    assert repo.image_counts(p.id).per_tag == {t: 12}
    repo.add_images(p.id, [_tagged([t])])
    got = repo.image_counts(p.id)
    assert (got.images, got.tagged, got.per_tag) == (14, 13, {t: 13})


def test_concurrent_writers_leave_exact_counts(services, azurite):
    from concurrent.futures import ThreadPoolExecutor

    from functions.domain.records import ImageCounts

    other = _other_process(azurite)
    p, t = _project(), layout.new_id()
    services.repo.add_images(p.id, [_image(0) for _ in range(40)])
    ids = [im.id for im in services.repo.list_images(p.id)]

    def upload(k):
        (services.repo if k % 2 else other.repo).add_images(p.id, [_tagged([t]) for _ in range(25)])

    def tag(k):
        i = ids[k]
        repo = services.repo if k % 2 else other.repo
        for _ in range(20):
            im = repo.get_images(p.id, [i])[i]
            im.tags = {t: utcnow()}
            try:
                repo.update_image(p.id, im)
                return
            except ConcurrencyError:
                continue

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(upload, range(8)))
        list(pool.map(tag, range(30)))
    got = services.repo.image_counts(p.id)
    assert got == ImageCounts.of(other.repo.list_images(p.id))
    assert (got.images, got.tagged) == (240, 230)
    other.pool.shutdown(wait=False)


def test_listings_come_from_memory_until_someone_else_writes(services, azurite, monkeypatch):
    from functions.adapters.image_rows import ImageRows

    repo, other = services.repo, _other_process(azurite)
    p, t = _project(), layout.new_id()
    repo.add_images(p.id, [_image(i) for i in range(30)])
    scans = []
    real = ImageRows._scan
    monkeypatch.setattr(ImageRows, "_scan", lambda self, pid: scans.append(pid) or real(self, pid))
    first = repo.list_images(p.id)
    assert len(first) == 30 and len(scans) == 1
    assert {im.id for im in repo.list_images(p.id)} == {im.id for im in first} and len(scans) == 1
    mine = _tagged([t])
    repo.add_images(p.id, [mine])  # this process's own write is applied to its copy
    listed = {im.id: im for im in repo.list_images(p.id)}
    assert len(listed) == 31 and set(listed[mine.id].tags) == {t} and len(scans) == 1
    im = repo.get_images(p.id, [first[0].id])[first[0].id]
    im.tags = {t: utcnow()}
    other.repo.update_image(p.id, im)  # another process: the version moves, the rows are read again
    again = {x.id: x for x in repo.list_images(p.id)}
    assert set(again[first[0].id].tags) == {t} and len(scans) == 2
    assert repo.image_counts(p.id).per_tag == {t: 2}
    repo.delete_images(p.id, [mine.id])
    assert mine.id not in {x.id for x in repo.list_images(p.id)} and len(scans) == 2
    other.pool.shutdown(wait=False)
