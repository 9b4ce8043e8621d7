"""COCO drops, imports, exports and project transfer on the in-memory fakes: all or nothing, idempotent,
round trips through pycocotools."""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from cvcore import coco, layout
from cvcore.errors import CustomVisionError
from functions.training import coco_export, coco_import, drops, project_transfer, projects, tags
from functions.training.ingest import Candidate, ingest
from tests.support import images as imgs
from tests.unit.fakes import FakeBlobStore, FakeRepository
from tests.unit.test_coco_corpus import CORPUS, ENDPOINT, base_document

DETECTION = "da2e3a8a-40a5-4171-82f4-58522f70fbc1"


class AccountBlobs(FakeBlobStore):
    """Fake blobs whose read URLs look like the storage account's, as the Azure adapter's do."""

    def url(self, container, name):
        return f"{ENDPOINT}/{container}/{name}?sv=2024&sig=secret"


@pytest.fixture(scope="module")
def pool():
    with ThreadPoolExecutor(4) as p:
        yield p


def setup(domain=DETECTION, ctype=None, blobs=None):
    repo, blobs = FakeRepository(), blobs or AccountBlobs()
    p = projects.create_project(repo, "p", None, domain, ctype, [])["id"]
    for i, n in enumerate("abcd"):
        blobs.put(layout.UPLOADS, f"{p}/_coco/{n}.jpg", imgs.photo_jpeg(i, (80, 60)), "image/jpeg")
    return repo, blobs, p


def drop(repo, blobs, pool, p, doc, name="set.coco.json"):
    data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    blobs.put(layout.UPLOADS, f"{p}/_coco/{name}", data, "application/json")
    return drops.ingest_drop(repo, blobs, pool, f"{p}/_coco/{name}", data, blob_endpoint=ENDPOINT)


def status(blobs, p, name="set.coco.json"):
    return json.loads(blobs.get(layout.MODELS, layout.coco_import_status(p, f"_coco/{name}")))


def regions_by_image(repo, p):
    names = {t.id: t.name for t in repo.list_tags(p)}
    return {
        im.id: sorted(
            (names[r.tag_id], round(r.left, 6), round(r.top, 6), round(r.width, 6), round(r.height, 6))
            for r in im.regions
        )
        for im in repo.list_images(p)
    }


def test_drop_imports_tags_images_and_regions_and_keeps_a_receipt(pool):
    repo, blobs, p = setup()
    result = drop(repo, blobs, pool, p, base_document())
    assert result.outcome == "imported", result.detail
    assert {t.name: t.id for t in repo.list_tags(p)} == {n: layout.tag_id_for(p, n) for n in ("cat", "dog")}
    images = repo.list_images(p)
    assert len(images) == 4 and all(im.source == "coco" and im.content_type == "image/jpeg" for im in images)
    assert all(blobs.exists(layout.IMAGES, layout.image_thumbnail(p, im.id)) for im in images)
    assert (
        sorted(regions_by_image(repo, p).values())
        == [[("cat", 0.1, 0.1, 0.5, 0.5)]] * 2 + [[("dog", 0.1, 0.1, 0.5, 0.5)]] * 2
    )
    assert not blobs.exists(layout.UPLOADS, f"{p}/_coco/set.coco.json")  # imported: the drop is gone
    assert blobs.exists(layout.UPLOADS, f"{p}/_coco/a.jpg")  # the dataset's images stay for other files
    receipt = status(blobs, p)
    assert receipt["state"] == "completed" and receipt["processed"] == receipt["total"] == 4
    assert receipt["summary"]["imagesCreated"] == 4 and receipt["summary"]["bboxFormat"] == "pixels"
    assert any("converted" in n for n in receipt["summary"]["notes"])


def test_the_same_file_twice_imports_once(pool):
    repo, blobs, p = setup()
    assert drop(repo, blobs, pool, p, base_document()).outcome == "imported"
    before = regions_by_image(repo, p)
    assert drop(repo, blobs, pool, p, base_document()).outcome == "duplicate"  # same name, same bytes
    again = drop(
        repo, blobs, pool, p, base_document(), name="copy.coco.json"
    )  # another name: merged, no new rows
    assert again.outcome == "imported" and again.detail == "0 images created, 4 merged"
    assert regions_by_image(repo, p) == before and len(repo.list_tags(p)) == 2


def test_a_rejected_file_lists_every_problem_and_nothing_is_written(pool):
    repo, blobs, p = setup()
    data = (CORPUS / "many_problems_listed.json").read_bytes()
    result = drop(repo, blobs, pool, p, data)
    assert result.outcome == "rejected"
    name = f"{p}/_coco/set.coco.json"
    assert not blobs.exists(layout.UPLOADS, name) and blobs.get(layout.REJECTED, name) == data
    report = json.loads(blobs.get(layout.REJECTED, layout.rejected_error_name(name)))
    assert report["status"] == "ErrorCocoValidation" and len(report["errors"]) >= 5
    assert {(e["code"], e["path"]) for e in report["errors"]} >= {
        ("UnknownImage", "annotations[0].image_id"),
        ("BadBbox", "annotations[1].bbox"),
        ("UnsafePath", "images[2].file_name"),
        ("ImageNotFound", "images[3].file_name"),
        ("DuplicateId", "categories[2].id"),
    }
    assert repo.list_tags(p) == [] and repo.list_images(p) == []
    assert status(blobs, p)["state"] == "rejected"


def test_images_kept_for_coco_files_are_not_ingested_alone(pool):
    repo, blobs, p = setup()
    assert (
        drops.ingest_drop(repo, blobs, pool, f"{p}/_coco/a.jpg", imgs.photo_jpeg(0, (80, 60))).outcome
        == "skipped"
    )
    assert repo.list_images(p) == [] and blobs.exists(layout.UPLOADS, f"{p}/_coco/a.jpg")


def test_unsafe_coco_drop_names_and_unknown_projects_are_rejected(pool):
    repo, blobs, p = setup()
    assert drop(repo, blobs, pool, p, base_document(), name="x/../y.coco.json").outcome == "rejected"
    ghost = layout.new_id()
    result = drops.ingest_drop(repo, blobs, pool, f"{ghost}/a.coco.json", b"{}", blob_endpoint=ENDPOINT)
    assert result.outcome == "rejected" and "NotFoundProject" in result.detail


def test_import_merges_into_an_image_the_project_already_has(pool):
    repo, blobs, p = setup()
    project = repo.get_project(p)
    first = ingest(repo, blobs, pool, project, [Candidate("a.jpg", imgs.photo_jpeg(0, (80, 60)))])[0]
    assert first.status == "OK" and not first.record.regions
    result = drop(repo, blobs, pool, p, base_document())
    assert result.detail == "3 images created, 1 merged"
    assert regions_by_image(repo, p)[first.record.id] == [("cat", 0.1, 0.1, 0.5, 0.5)]


def test_multiclass_image_already_tagged_otherwise_is_rejected_before_any_write(pool):
    repo, blobs, p = setup(domain=None, ctype="Multiclass")
    other = tags.create_tag(repo, p, "other", None, None)["id"]
    ingest(
        repo,
        blobs,
        pool,
        repo.get_project(p),
        [Candidate("a.jpg", imgs.photo_jpeg(0, (80, 60)), tag_ids=[other])],
    )
    doc = base_document()
    for a in doc["annotations"]:
        del a["bbox"]
    result = drop(repo, blobs, pool, p, doc)
    assert result.outcome == "rejected"
    errors = json.loads(blobs.get(layout.REJECTED, layout.rejected_error_name(f"{p}/_coco/set.coco.json")))[
        "errors"
    ]
    assert [(e["code"], e["path"]) for e in errors] == [("MultipleCategoriesOnImage", "images[0]")]
    assert [t.name for t in repo.list_tags(p)] == ["other"] and len(repo.list_images(p)) == 1


def test_a_category_named_like_the_negative_tag_cannot_take_regions(pool):
    repo, blobs, p = setup()
    tags.create_tag(repo, p, "Cat", None, "Negative")
    result = drop(repo, blobs, pool, p, base_document())
    assert result.outcome == "rejected" and repo.list_images(p) == []
    errors = json.loads(blobs.get(layout.REJECTED, layout.rejected_error_name(f"{p}/_coco/set.coco.json")))[
        "errors"
    ]
    assert [(e["code"], e["path"]) for e in errors] == [
        ("NegativeTagRegion", "images[0]"),
        ("NegativeTagRegion", "images[1]"),
    ]


class FlakyBlobs(AccountBlobs):
    """Fails every image write after the first `budget` ones, until healed."""

    def __init__(self, budget):
        super().__init__()
        self.budget = budget

    def put(self, container, name, data, content_type):
        if container == layout.IMAGES:
            if self.budget <= 0:
                raise OSError("storage went away")
            self.budget -= 1
        super().put(container, name, data, content_type)


def test_a_write_failing_half_way_is_completed_by_running_it_again(pool):
    blobs = FlakyBlobs(budget=4)  # two images (original + thumbnail each)
    repo, blobs, p = setup(blobs=blobs)
    with pytest.raises(RuntimeError, match="ErrorStorage"):
        drop(repo, blobs, pool, p, base_document())
    assert status(blobs, p)["state"] == "failed"
    assert blobs.exists(layout.UPLOADS, f"{p}/_coco/set.coco.json")  # kept for the retry
    blobs.budget = 10**6
    result = drops.ingest_drop(
        repo,
        blobs,
        pool,
        f"{p}/_coco/set.coco.json",
        json.dumps(base_document()).encode(),
        blob_endpoint=ENDPOINT,
    )
    assert result.outcome == "imported"
    regions = regions_by_image(repo, p)
    assert len(regions) == 4 and all(len(r) == 1 for r in regions.values())
    assert status(blobs, p)["state"] == "completed"


def test_an_image_changed_after_validation_stops_the_write(pool):
    repo, blobs, p = setup()
    project = repo.get_project(p)
    resolver = coco_import.blob_resolver(blobs, f"{p}/_coco", ENDPOINT)
    report = coco.validate(json.dumps(base_document()), resolver, coco_import.rules_for(project))
    blobs.put(layout.UPLOADS, f"{p}/_coco/b.jpg", imgs.photo_jpeg(9, (80, 60)), "image/jpeg")
    with pytest.raises(coco_import.ImportChanged):
        coco_import.import_report(repo, blobs, pool, project, report, resolver)


def load_with_pycocotools(doc, tmp_path):
    from pycocotools.coco import COCO

    path = tmp_path / "export.json"
    path.write_text(json.dumps(doc))
    return COCO(str(path))


def test_export_pixels_and_normalized_load_in_pycocotools_and_round_trip(pool, tmp_path):
    repo, blobs, p = setup()
    doc = base_document()
    doc["annotations"][0]["bbox"] = [4.5, 3, 20, 15.5]
    assert drop(repo, blobs, pool, p, doc).outcome == "imported"

    pixels = coco_export.export_coco(repo, blobs, p)
    api = load_with_pycocotools(pixels, tmp_path)
    assert len(api.getImgIds()) == 4 and sorted(c["name"] for c in api.loadCats(api.getCatIds())) == [
        "cat",
        "dog",
    ]
    boxes = sorted(tuple(a["bbox"]) for a in api.loadAnns(api.getAnnIds()))
    assert boxes[0] == pytest.approx((4.5, 3, 20, 15.5)) and all(b == (8, 6, 40, 30) for b in boxes[1:])
    assert all(
        a["area"] == pytest.approx(a["bbox"][2] * a["bbox"][3]) and a["iscrowd"] == 0
        for a in api.loadAnns(api.getAnnIds())
    )

    normalized = coco_export.export_coco(repo, blobs, p, boxes="normalized")
    assert normalized["info"]["bbox_format"] == "normalized_ltwh"
    assert len(load_with_pycocotools(normalized, tmp_path).getAnnIds()) == 4
    for exported in (pixels, normalized):  # dropped into a fresh project, each gives the same dataset
        repo2 = repo
        p2 = projects.create_project(repo2, f"copy-{layout.new_id()}", None, DETECTION, None, [])["id"]
        assert drop(repo2, blobs, pool, p2, exported, name="export.coco.json").outcome == "imported"
        assert sorted(regions_by_image(repo2, p2).values()) == sorted(regions_by_image(repo, p).values())


def test_iteration_export_reads_the_frozen_dataset(pool, tmp_path):
    from functions.training import train
    from tests.unit.fakes import FakeJobQueue

    repo, blobs, p = setup()
    for i in range(8):
        blobs.put(layout.UPLOADS, f"{p}/_coco/x{i}.jpg", imgs.photo_jpeg(20 + i, (80, 60)), "image/jpeg")
    doc = base_document()
    doc["images"] += [{"id": 10 + i, "file_name": f"x{i}.jpg", "width": 80, "height": 60} for i in range(8)]
    doc["annotations"] += [
        {"id": 10 + i, "image_id": 10 + i, "category_id": 1 + i % 2, "bbox": [0, 0, 80, 60]} for i in range(8)
    ]
    assert drop(repo, blobs, pool, p, doc).outcome == "imported"
    train.MIN_IMAGES_DETECTION, saved = 1, train.MIN_IMAGES_DETECTION
    try:
        it = train.train_project(
            repo,
            blobs,
            FakeJobQueue(),
            p,
            training_type=None,
            budget_hours=0,
            force=False,
            selected_tags=None,
        )
    finally:
        train.MIN_IMAGES_DETECTION = saved
    ingest(repo, blobs, pool, repo.get_project(p), [Candidate("late.jpg", imgs.photo_jpeg(50, (80, 60)))])
    frozen = coco_export.export_coco(repo, blobs, p, iteration_id=it["id"])
    assert frozen["info"]["iteration_id"] == it["id"] and len(frozen["images"]) == 12  # not the late image
    assert len(coco_export.export_coco(repo, blobs, p)["images"]) == 13
    assert len(load_with_pycocotools(frozen, tmp_path).getAnnIds()) == 12


def fetch_from(source: FakeBlobStore):
    """project_transfer.fetch over the source deployment's blobs (the unit tests have no HTTP)."""
    from cvcore.urlfetch import Fetched, UrlFetchError

    def fetch(url, *, max_bytes, timeout, allow_origins):
        container, name = coco.account_blob(url, ENDPOINT)
        if not source.exists(container, name):
            raise UrlFetchError("http-status", "404 Not Found", url, 404)
        return Fetched(source.get(container, name)[: max_bytes + 1], "application/octet-stream", url)

    return fetch


def test_export_token_moves_a_project_to_another_deployment(pool, monkeypatch):
    repo, blobs, p = setup(domain=None, ctype="Multilabel")
    project = repo.get_project(p)
    cat = tags.create_tag(repo, p, "cat", "small felines", None)["id"]
    none = tags.create_tag(repo, p, "none", None, "Negative")["id"]
    tags.create_tag(repo, p, "unused", None, None)
    ingest(
        repo,
        blobs,
        pool,
        project,
        [Candidate("a", imgs.photo_jpeg(0, (80, 60)), tag_ids=[cat])],
        metadata={"camera": "front"},
    )
    ingest(
        repo,
        blobs,
        pool,
        project,
        [
            Candidate("b", imgs.photo_png(1, (80, 60)), tag_ids=[none]),
            Candidate("c", imgs.photo_jpeg(2, (80, 60))),
        ],
    )
    exported = project_transfer.export_project(repo, blobs, p)
    assert {k: exported[k] for k in ("iterationCount", "imageCount", "tagCount", "regionCount")} == {
        "iterationCount": 0,
        "imageCount": 3,
        "tagCount": 3,
        "regionCount": 0,
    }

    monkeypatch.setattr(project_transfer, "fetch", fetch_from(blobs))
    dest_repo, dest_blobs = FakeRepository(), AccountBlobs()
    made = project_transfer.import_project(dest_repo, dest_blobs, pool, exported["token"], None)
    assert made["name"] == "p" and made["settings"]["classificationType"] == "Multilabel"
    moved = {t.name: t for t in dest_repo.list_tags(made["id"])}
    assert {n: (t.type, t.description) for n, t in moved.items()} == {
        "cat": ("Regular", "small felines"),
        "none": ("Negative", ""),
        "unused": ("Regular", ""),
    }
    images = dest_repo.list_images(made["id"])
    by_tag = sorted(tuple(sorted(moved[n].name for n in moved if moved[n].id in im.tags)) for im in images)
    assert by_tag == [(), ("cat",), ("none",)]
    assert [im.metadata for im in images if moved["cat"].id in im.tags] == [{"camera": "front"}]
    assert all(dest_blobs.exists(layout.IMAGES, layout.image_original(made["id"], im.id)) for im in images)

    renamed = project_transfer.import_project(dest_repo, dest_blobs, pool, exported["token"], "second")
    assert renamed["name"] == "second"
    assert (
        project_transfer.import_project(dest_repo, dest_blobs, pool, exported["token"], None)["name"]
        == "p (imported)"
    )


def test_bad_tokens_and_broken_snapshots_leave_nothing_behind(pool, monkeypatch):
    repo, blobs, p = setup()
    drop(repo, blobs, pool, p, base_document())
    exported = project_transfer.export_project(repo, blobs, p)
    dest_repo, dest_blobs = FakeRepository(), AccountBlobs()
    for token in ("", "not-a-token", "eyJ2IjogOX0"):  # the last: {"v": 9}
        with pytest.raises(CustomVisionError) as err:
            project_transfer.import_project(dest_repo, dest_blobs, pool, token, None)
        assert err.value.code == "BadRequestInvalidImportToken"
    monkeypatch.setattr(project_transfer, "fetch", fetch_from(blobs))
    victim = repo.list_images(p)[0].id
    blobs.delete(layout.IMAGES, layout.image_original(p, victim))
    with pytest.raises(CustomVisionError) as err:
        project_transfer.import_project(dest_repo, dest_blobs, pool, exported["token"], None)
    assert err.value.code == "ErrorProjectImportRequestFailed" and "does not exist" in err.value.message
    assert dest_repo.list_projects() == [] and not dest_blobs.blobs


def _exported(pool, monkeypatch):
    repo, blobs, p = setup()
    drop(repo, blobs, pool, p, base_document())
    monkeypatch.setattr(project_transfer, "fetch", fetch_from(blobs))
    monkeypatch.setattr(project_transfer, "INLINE_IMAGES", 2)  # the base document has 4 images: background
    return repo, blobs, p, project_transfer.export_project(repo, blobs, p)


def test_a_large_import_answers_importing_and_the_queued_job_finishes_it(pool, monkeypatch):
    from functions.training import train
    from tests.unit.fakes import FakeJobQueue

    repo, blobs, p, exported = _exported(pool, monkeypatch)
    dest_repo, dest_blobs, jobs = FakeRepository(), AccountBlobs(), FakeJobQueue()
    made = project_transfer.import_project(dest_repo, dest_blobs, pool, exported["token"], "big", jobs=jobs)
    assert made["status"] == "Importing" and dest_repo.list_images(made["id"]) == [] and len(jobs.sent) == 1
    with pytest.raises(CustomVisionError) as err:  # no training on half a project
        train.train_project(
            dest_repo,
            dest_blobs,
            jobs,
            made["id"],
            training_type=None,
            budget_hours=0,
            force=False,
            selected_tags=None,
        )
    assert err.value.code == "BadRequestProjectImporting"
    project_id, snapshot = project_transfer.parse_job(jobs.sent[0])
    assert project_id == made["id"]
    assert project_transfer.run_import(dest_repo, dest_blobs, pool, project_id, snapshot) == "Succeeded"
    assert dest_repo.get_project(made["id"]).status == "Succeeded"
    moved = dest_repo.list_images(made["id"])
    assert len(moved) == 4 and sum(len(im.regions) for im in moved) == sum(
        len(im.regions) for im in repo.list_images(p)
    )
    # the same message again (a duplicate delivery) changes nothing
    assert project_transfer.run_import(dest_repo, dest_blobs, pool, project_id, snapshot) == "Succeeded"
    assert len(dest_repo.list_images(made["id"])) == 4 and len(dest_repo.list_tags(made["id"])) == len(
        repo.list_tags(p)
    )
    # small snapshots, or no queue: inline as before
    monkeypatch.setattr(project_transfer, "INLINE_IMAGES", 500)
    inline = project_transfer.import_project(
        dest_repo, dest_blobs, pool, exported["token"], "small", jobs=jobs
    )
    assert (
        inline["status"] == "Succeeded"
        and len(dest_repo.list_images(inline["id"])) == 4
        and len(jobs.sent) == 1
    )


def test_a_background_import_that_cannot_finish_ends_failed_with_the_reason(pool, monkeypatch):
    from tests.unit.fakes import FakeJobQueue

    repo, blobs, p, exported = _exported(pool, monkeypatch)
    dest_repo, dest_blobs, jobs = FakeRepository(), AccountBlobs(), FakeJobQueue()
    # a snapshot whose image vanished before the job ran: Failed, every problem named, nothing retried
    broken = project_transfer.import_project(
        dest_repo, dest_blobs, pool, exported["token"], "broken", jobs=jobs
    )
    blobs.delete(layout.IMAGES, layout.image_original(p, repo.list_images(p)[0].id))
    assert (
        project_transfer.run_import(dest_repo, dest_blobs, pool, *project_transfer.parse_job(jobs.sent[0]))
        == "Failed"
    )
    failed = dest_repo.get_project(broken["id"])
    assert failed.status == "Failed" and "does not exist" in failed.status_message
    from functions.training import serialize

    assert serialize.project_json(failed)["statusMessage"] == failed.status_message

    # storage trouble: raised for the queue to retry, until the last attempt marks it Failed
    repo2, blobs2, p2, exported2 = _exported(pool, monkeypatch)
    flaky = project_transfer.import_project(
        dest_repo, dest_blobs, pool, exported2["token"], "flaky", jobs=jobs
    )
    job = project_transfer.parse_job(jobs.sent[1])

    def down(*args, **kwargs):
        raise OSError("table storage unavailable")

    monkeypatch.setattr(project_transfer, "import_report", down)
    with pytest.raises(OSError):
        project_transfer.run_import(dest_repo, dest_blobs, pool, *job)
    assert dest_repo.get_project(flaky["id"]).status == "Importing"
    assert project_transfer.run_import(dest_repo, dest_blobs, pool, *job, last_attempt=True) == "Failed"
    assert "table storage unavailable" in dest_repo.get_project(flaky["id"]).status_message
    for bad in (b"{}", b"not json", json.dumps({"v": 1, "projectId": "x", "snapshot": "u"}).encode()):
        with pytest.raises(ValueError):
            project_transfer.parse_job(bad)


def test_a_project_deleted_during_its_background_import_leaves_nothing(pool, monkeypatch):
    from tests.unit.fakes import FakeJobQueue

    repo, blobs, p, exported = _exported(pool, monkeypatch)
    dest_repo, dest_blobs, jobs = FakeRepository(), AccountBlobs(), FakeJobQueue()
    made = project_transfer.import_project(dest_repo, dest_blobs, pool, exported["token"], "gone", jobs=jobs)
    real = project_transfer.import_report

    def deleted_first(repo_, blobs_, pool_, project, *args, **kwargs):
        projects.delete_project(repo_, blobs_, project.id)  # the user deletes it as the import starts writing
        return real(repo_, blobs_, pool_, project, *args, **kwargs)

    monkeypatch.setattr(project_transfer, "import_report", deleted_first)
    assert (
        project_transfer.run_import(dest_repo, dest_blobs, pool, *project_transfer.parse_job(jobs.sent[0]))
        == "deleted"
    )
    assert dest_repo.get_project(made["id"]) is None
    assert dest_repo.list_images(made["id"]) == [] and dest_repo.list_tags(made["id"]) == []
    assert not [k for k in dest_blobs.blobs if made["id"] in str(k)]
