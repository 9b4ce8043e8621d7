import pytest

from cvcore import domains
from cvcore.errors import BadRequest, NotFound
from functions.domain.records import ImageRecord, Region, utcnow
from functions.training import projects, tags
from tests.unit.fakes import FakeBlobStore, FakeRepository

DETECTION = "da2e3a8a-40a5-4171-82f4-58522f70fbc1"


@pytest.fixture
def repo():
    return FakeRepository()


def test_create_project_defaults_to_general_multiclass(repo):
    p = projects.create_project(repo, "fruit", None, None, None, [])
    assert p["settings"]["domainId"] == domains.DEFAULT_CLASSIFICATION.id
    assert p["settings"]["classificationType"] == "Multiclass"
    assert projects.get_project(repo, p["id"])["name"] == "fruit"


def test_project_names_are_unique_without_case(repo):
    projects.create_project(repo, "Fruit", None, None, None, [])
    with pytest.raises(BadRequest) as err:
        projects.create_project(repo, "fruit", None, None, None, [])
    assert err.value.code == "BadRequestProjectNameNotUnique"


@pytest.mark.parametrize(
    "kwargs, code",
    [
        ({"domain_id": "00000000-0000-0000-0000-000000000000"}, "BadRequestProjectUnknownDomain"),
        ({"classification_type": "Multiheaded"}, "BadRequestProjectUnknownClassification"),
        (
            {"target_export_platforms": ["ONNX"]},
            "BadRequestProjectUnsupportedExportPlatform",
        ),  # General is not compact
        ({"name": ""}, "BadRequestProjectName"),
    ],
)
def test_create_project_refusals(repo, kwargs, code):
    args = {
        "name": "x",
        "description": None,
        "domain_id": None,
        "classification_type": None,
        "target_export_platforms": [],
        **kwargs,
    }
    with pytest.raises(BadRequest) as err:
        projects.create_project(repo, **args)
    assert err.value.code == code


def test_compact_domain_exports_onnx_and_detection_has_no_classification_type(repo):
    p = projects.create_project(
        repo, "c", None, "0732100f-1a38-4e49-a514-c9b44c697ab5", "Multilabel", ["ONNX"]
    )
    assert p["settings"]["targetExportPlatforms"] == ["ONNX"]
    d = projects.create_project(repo, "d", None, DETECTION, "Multiclass", [])
    assert d["settings"]["classificationType"] is None


def test_domain_type_cannot_change(repo):
    p = projects.create_project(repo, "c", None, None, None, [])
    with pytest.raises(BadRequest) as err:
        projects.update_project(repo, p["id"], {"settings": {"domainId": DETECTION}})
    assert err.value.code == "BadRequestProjectUnsupportedDomainTypeChange"
    updated = projects.update_project(
        repo, p["id"], {"name": "renamed", "settings": {"classificationType": "Multilabel"}}
    )
    assert updated["name"] == "renamed" and updated["settings"]["classificationType"] == "Multilabel"


def test_unknown_or_malformed_project_is_not_found(repo):
    for bad in ("nope", "../x", "6f6b2b52-9d0e-4f0c-9a8e-3c1f4d2b7a10"):
        with pytest.raises(NotFound) as err:
            projects.get_project(repo, bad)
        assert err.value.code == "NotFoundProject"


def test_tags_unique_single_negative_and_counts(repo):
    p = projects.create_project(repo, "p", None, None, "Multilabel", [])["id"]
    a = tags.create_tag(repo, p, "apple", None, None)
    with pytest.raises(BadRequest, match="already exists"):
        tags.create_tag(repo, p, "APPLE", None, None)
    tags.create_tag(repo, p, "none", None, "Negative")
    with pytest.raises(BadRequest) as err:
        tags.create_tag(repo, p, "none2", None, "negative")
    assert err.value.code == "BadRequestMultipleNegativeTag"
    with pytest.raises(BadRequest) as err:
        tags.create_tag(repo, p, "x", None, "Fancy")
    assert err.value.code == "BadRequestTagType"
    repo.add_images(
        p,
        [
            ImageRecord(
                id=f"00000000-0000-0000-0000-00000000000{i}",
                created=utcnow(),
                width=100,
                height=100,
                content_type="image/jpeg",
                tags={a["id"]: utcnow()} if i < 3 else {},
            )
            for i in range(5)
        ],
    )
    listed = {t["name"]: t["imageCount"] for t in tags.list_tags(repo, p)}
    assert listed == {"apple": 3, "none": 0}


def test_deleting_a_tag_removes_it_from_images_and_regions(repo):
    p = projects.create_project(repo, "d", None, DETECTION, None, [])["id"]
    keep, gone = (
        tags.create_tag(repo, p, "keep", None, None)["id"],
        tags.create_tag(repo, p, "gone", None, None)["id"],
    )
    img = ImageRecord(
        id="00000000-0000-0000-0000-000000000001",
        created=utcnow(),
        width=10,
        height=10,
        content_type="image/jpeg",
        regions=[
            Region("r1", keep, 0, 0, 0.5, 0.5, utcnow()),
            Region("r2", gone, 0.5, 0.5, 0.5, 0.5, utcnow()),
        ],
    )
    repo.add_images(p, [img])
    tags.delete_tag(repo, p, gone)
    left = repo.list_images(p)[0]
    assert [r.tag_id for r in left.regions] == [keep]
    assert [t["name"] for t in tags.list_tags(repo, p)] == ["keep"]


def test_delete_project_removes_rows_and_blobs(repo):
    blobs = FakeBlobStore()
    p = projects.create_project(repo, "gone", None, None, None, [])["id"]
    other = projects.create_project(repo, "stays", None, None, None, [])["id"]
    blobs.put("images", f"{p}/originals/x", b"1", "image/jpeg")
    blobs.put("models", f"{p}/it/model.onnx", b"1", "application/octet-stream")
    blobs.put("images", f"{other}/originals/x", b"1", "image/jpeg")
    projects.delete_project(repo, blobs, p)
    assert list(blobs.blobs) == [("images", f"{other}/originals/x")]
    with pytest.raises(NotFound):
        projects.get_project(repo, p)


def test_a_background_deletion_hides_the_project_at_once_and_finishes_from_its_job(repo):
    import json

    from functions.training import deletion
    from tests.unit.fakes import FakeJobQueue

    blobs, jobs = FakeBlobStore(), FakeJobQueue()
    p = projects.create_project(repo, "big", None, None, None, [])["id"]
    blobs.put("images", f"{p}/originals/x", b"1", "image/jpeg")
    projects.delete_project(repo, blobs, p, jobs=jobs)
    with pytest.raises(NotFound):
        projects.get_project(repo, p)
    assert p not in [x["id"] for x in projects.list_projects(repo)]
    assert projects.create_project(repo, "big", None, None, None, [])["name"] == "big"  # the name is free
    assert list(blobs.blobs) and deletion.status(repo, p)["status"] == "Deleting"
    [message] = jobs.sent
    assert deletion.parse_job(message) == p and deletion.parse_job(json.dumps({"v": 1})) is None
    assert deletion.run(repo, blobs, None, p) == "Deleted"
    assert list(blobs.blobs) == [] and repo.get_project(p) is None
    done = deletion.status(repo, p)
    assert done["status"] == "Deleted" and done["blobs"] == 1 and done["images"] == 0
    assert deletion.run(repo, blobs, None, p) == "Deleted"  # a message delivered twice changes nothing


def test_a_large_deletion_runs_in_chunks_each_sending_the_job_again_with_progress_counted(repo, monkeypatch):
    from functions.training import deletion
    from tests.unit.fakes import FakeJobQueue

    monkeypatch.setattr(deletion, "PROGRESS_EVERY", 3)  # a progress note every 3 blobs, chunks of 4
    blobs, jobs = FakeBlobStore(), FakeJobQueue()
    notes = []
    save = repo.save_deletion
    monkeypatch.setattr(
        repo, "save_deletion", lambda p, record: (notes.append(record.get("blobs")), save(p, record))
    )
    p = projects.create_project(repo, "many", None, None, None, [])["id"]
    for i in range(5):
        blobs.put("images", f"{p}/originals/{i}", b"1", "image/jpeg")
        blobs.put("models", f"{p}/it/{i}", b"1", "application/octet-stream")
    projects.delete_project(repo, blobs, p, jobs=jobs)
    runs = []
    while len(jobs.sent) > len(runs):
        assert deletion.parse_job(jobs.sent[len(runs)]) == p
        runs.append(deletion.run(repo, blobs, None, p, jobs=jobs, chunk=4))
        if runs[-1] == "Deleting":
            assert repo.get_project(p) is not None  # rows go last
            assert deletion.status(repo, p)["blobs"] == 4 * len(runs)
    assert runs == ["Deleting", "Deleting", "Deleted"] and list(blobs.blobs) == []
    assert {3, 5} <= set(notes)  # counted as it goes (3 and 5 fall inside the chunks 0-4 and 4-8)
    assert deletion.status(repo, p)["blobs"] == 10 and repo.get_project(p) is None


def test_a_deletion_on_slow_storage_stops_when_its_time_is_up_and_sends_the_job_again(repo, monkeypatch):
    from functions.training import deletion
    from tests.unit.fakes import FakeJobQueue

    monkeypatch.setattr(deletion, "PROGRESS_EVERY", 2)
    blobs, jobs, now = FakeBlobStore(), FakeJobQueue(), [0.0]
    p = projects.create_project(repo, "slow", None, None, None, [])["id"]
    for i in range(7):
        blobs.put("images", f"{p}/originals/{i}", b"1", "image/jpeg")
    delete_prefix = blobs.delete_prefix

    def slow(container, prefix, limit=None):  # each step of 2 blobs takes 50 s of the clock
        gone = delete_prefix(container, prefix, limit)
        now[0] += 50.0 if gone else 0.0
        return gone

    monkeypatch.setattr(blobs, "delete_prefix", slow)
    projects.delete_project(repo, blobs, p, jobs=jobs)
    runs = []
    while len(jobs.sent) > len(runs):
        runs.append(deletion.run(repo, blobs, None, p, jobs=jobs, seconds=120, clock=lambda: now[0]))
    # 120 s: the step that ends past it is the third (150 s), so 6 blobs, then the job again for the last one
    assert runs == ["Deleting", "Deleted"] and list(blobs.blobs) == []
    assert deletion.status(repo, p)["blobs"] == 7


def test_a_deletion_that_keeps_failing_is_retried_then_marked_failed_with_the_reason(repo, monkeypatch):
    from functions.training import deletion
    from tests.unit.fakes import FakeJobQueue

    blobs = FakeBlobStore()
    p = projects.create_project(repo, "stuck", None, None, None, [])["id"]
    projects.delete_project(repo, blobs, p, jobs=FakeJobQueue())

    def broken(container, prefix, limit=None):
        raise OSError("storage unreachable")

    monkeypatch.setattr(blobs, "delete_prefix", broken)
    with pytest.raises(OSError):
        deletion.run(repo, blobs, None, p)  # raised: the queue delivers it again
    assert deletion.run(repo, blobs, None, p, last_attempt=True) == "Failed"
    failed = deletion.status(repo, p)
    assert failed["status"] == "Failed" and "storage unreachable" in failed["reason"]
