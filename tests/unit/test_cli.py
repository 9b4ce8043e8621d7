"""The `customvision` command line (cvcli) with click's CliRunner and a fake SDK client: what each command
sends through the SDK, what it prints, and its exit codes. The real thing against the local stack is
tests/e2e/test_cli.py."""

from __future__ import annotations

import json
import uuid
from types import SimpleNamespace as NS

import pytest
import requests
from click.testing import CliRunner
from msrest.exceptions import ClientRequestError, HttpOperationError

from cvcli import main as cli_main
from cvcli import upload
from cvcli.service import Service
from tests.support import images as imgs

JPEG = imgs.photo_jpeg(3, (160, 120))
COMPACT, DETECTOR = "0732100f-1a38-4e49-a514-c9b44c697ab5", "da2e3a8a-40a5-4171-82f4-58522f70fbc1"
GENERAL = "ee85a74c-405e-4adc-bb47-ffa8ca0c9f31"
DOMAINS = [
    NS(id=GENERAL, name="General", type="Classification"),
    NS(id=COMPACT, name="General (compact)", type="Classification"),
    NS(id=DETECTOR, name="General", type="ObjectDetection"),
]


class FakeTrainer:
    """The SDK calls the CLI makes, in memory. Images are judged like the service judges them: bytes that do
    not start like a JPEG are ErrorImageFormat, the same bytes twice OKDuplicate."""

    def __init__(self, detection: bool = False):
        self.projects, self.tags, self.batches, self.iterations = [], [], [], []
        self.seen: set[bytes] = set()
        self.detection = detection
        self.performance = NS(
            precision=0.9,
            recall=0.8,
            average_precision=0.85,
            per_tag_performance=[
                NS(id="t1", name="cup", precision=0.75, recall=0.5, average_precision=0.625),
                NS(id="t2", name="cat", precision=1.0, recall=1.0, average_precision=1.0),
            ],
        )
        self.asked_threshold = None
        self.polls: list[str] = []

    def get_domains(self):
        return DOMAINS

    def get_domain(self, domain_id):
        return next(d for d in DOMAINS if d.id == domain_id)

    def get_projects(self):
        return list(self.projects)

    def create_project(self, name, domain_id=None, classification_type=None):
        p = NS(
            id=str(uuid.uuid4()),
            name=name,
            description="",
            created=None,
            settings=NS(domain_id=domain_id, classification_type=classification_type),
        )
        self.projects.append(p)
        return p

    def get_tags(self, project_id):
        return list(self.tags)

    def create_tag(self, project_id, name):
        tag = NS(id=str(uuid.uuid4()), name=name)
        self.tags.append(tag)
        return tag

    def create_images_from_files(self, project_id, batch):
        self.batches.append(batch.images)
        results = []
        for entry in batch.images:
            if not entry.contents.startswith(b"\xff\xd8"):
                status = "ErrorImageFormat"
            elif entry.contents in self.seen:
                status = "OKDuplicate"
            else:
                status = "OK"
                self.seen.add(entry.contents)
            results.append(NS(status=status, source_url=entry.name))
        return NS(is_batch_successful=all(r.status == "OK" for r in results), images=results)

    def train_project(self, project_id, **kwargs):
        it = NS(id=str(uuid.uuid4()), name="Iteration 1", status="Queued", training_error_details=None)
        self.iterations.append(it)
        self.steps = iter(self.script)
        return it

    script = ("Training", "Completed")

    def get_iteration(self, project_id, iteration_id):
        it = next(i for i in self.iterations if i.id == iteration_id)
        it.status = next(self.steps, it.status)
        if it.status == "Failed":
            it.training_error_details = "the trainer ran out of memory"
        self.polls.append(it.status)
        return it

    def get_iterations(self, project_id):
        return list(self.iterations)

    def get_iteration_performance(self, project_id, iteration_id, threshold=None, overlap_threshold=None):
        self.asked_threshold = threshold
        return self.performance


class FakePredictor:
    def __init__(self):
        self.calls = []

    def __getattr__(self, method):
        def call(project_id, name, source=None, url=None):
            self.calls.append((method, name))
            box = NS(left=0.1, top=0.2, width=0.3, height=0.4) if method.startswith("detect") else None
            return NS(
                predictions=[
                    NS(tag_name="cup", probability=0.2, bounding_box=box),
                    NS(tag_name="cat", probability=0.7, bounding_box=box),
                ]
            )

        return call


@pytest.fixture
def fakes(monkeypatch):
    trainer, predictor = FakeTrainer(), FakePredictor()
    monkeypatch.setattr(
        cli_main,
        "Service",
        lambda endpoint, tk, pk: Service(endpoint, tk, pk, _trainer=trainer, _predictor=predictor),
    )
    return trainer, predictor


def run(*args):
    return CliRunner().invoke(cli_main.cli, list(args), catch_exceptions=False, env={"COLUMNS": "200"})


def a_project(trainer, detection=False, name="fruit"):
    return trainer.create_project(
        name, domain_id=DETECTOR if detection else COMPACT, classification_type="Multiclass"
    )


def coco_file(folder, boxes=None, per_category=2):
    images, annotations = [], []
    for category in (1, 2):
        for _ in range(per_category):
            i = len(images) + 1
            (folder / "_coco").mkdir(parents=True, exist_ok=True)
            (folder / f"_coco/{i}.jpg").write_bytes(imgs.photo_jpeg(40 + i, (160, 120)))
            images.append({"id": i, "file_name": f"_coco/{i}.jpg", "width": 160, "height": 120})
            box = {} if boxes is None else {"bbox": boxes}
            annotations.append({"id": i, "image_id": i, "category_id": category, **box})
    body = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "Cat"}, {"id": 2, "name": "shelf"}],
    }
    (folder / "data.json").write_text(json.dumps(body))


# ---- upload ----------------------------------------------------------------------------------------------
def test_upload_tags_by_folder_batches_by_64_imports_coco_and_reports_each_failure(fakes, tmp_path):
    trainer, _ = fakes
    a_project(trainer)
    trainer.create_tag("p", "cat")  # existing: the "Cat" folder and COCO category reuse it
    (tmp_path / "Cat").mkdir()
    for n in range(70):
        (tmp_path / "Cat" / f"{n}.jpg").write_bytes(b"\xff\xd8" + n.to_bytes(2, "big"))
    (tmp_path / "Cat" / "broken.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "loose.jpg").write_bytes(b"\xff\xd8loose")
    (tmp_path / "Cat" / "huge.jpg").write_bytes(b"\xff\xd8" + bytes(upload.MAX_TRAINING_IMAGE_BYTES))
    (tmp_path / "readme.txt").write_text("not an image")
    coco_file(tmp_path)

    result = run("upload", str(tmp_path), "--project", "fruit")

    assert result.exit_code == 1
    assert [len(b) for b in trainer.batches] == [64, 12]  # 70 + broken + loose + 4 from the COCO file
    sent = {e.name: e for b in trainer.batches for e in b}
    assert "huge.jpg" not in sent and "readme.txt" not in sent
    tag_of = {t.id: t.name for t in trainer.tags}
    assert [t.name for t in trainer.tags] == ["cat", "shelf"]  # "Cat" matched without case, "shelf" created
    assert [tag_of[i] for i in sent["3.jpg"].tag_ids] == ["cat"] and sent["loose.jpg"].tag_ids is None
    coco_sent = [e for b in trainer.batches for e in b if e.contents.startswith(b"\xff\xd8\xff")]
    assert sorted(tag_of[e.tag_ids[0]] for e in coco_sent) == ["cat", "cat", "shelf", "shelf"]
    assert "75 created, 0 duplicates, 2 failed, 1 skipped (not images)" in result.output
    failed = {line.split("│")[1].strip(): line for line in result.output.splitlines() if "Error" in line}
    assert set(failed) == {"Cat/broken.jpg", "Cat/huge.jpg"}
    assert "ErrorImageFormat" in failed["Cat/broken.jpg"] and "ErrorImageSize" in failed["Cat/huge.jpg"]
    assert "over the 6 MB limit: not sent" in failed["Cat/huge.jpg"]


def test_upload_again_counts_duplicates_and_exits_0_when_nothing_failed(fakes, tmp_path):
    trainer, _ = fakes
    (tmp_path / "cup").mkdir()
    (tmp_path / "cup" / "a.jpg").write_bytes(JPEG)
    first = json.loads(run("--json", "upload", str(tmp_path), "-p", "new-one").stdout)
    second = json.loads(run("upload", str(tmp_path), "-p", "new-one", "--json").stdout)
    assert (first["created"], first["duplicates"], second["created"], second["duplicates"]) == (1, 0, 0, 1)
    assert first["failed"] == second["failed"] == []
    assert [p.name for p in trainer.projects] == ["new-one"]  # created once, found by name the second time
    assert trainer.projects[0].settings.domain_id == GENERAL  # --domain's default, of the Classification ones


def test_upload_creates_a_detection_project_with_the_named_domain(fakes, tmp_path):
    trainer, _ = fakes
    (tmp_path / "a.jpg").write_bytes(JPEG)
    result = run("upload", str(tmp_path), "-p", "boxes", "--type", "ObjectDetection")
    assert result.exit_code == 0, result.output
    assert trainer.projects[0].settings.domain_id == DETECTOR  # "General" of the ObjectDetection domains
    assert trainer.projects[0].settings.classification_type is None


def test_a_bad_coco_file_is_refused_whole_with_its_problem_and_its_images_are_not_sent(fakes, tmp_path):
    trainer, _ = fakes
    a_project(trainer)
    coco_file(tmp_path, per_category=1)  # the validator wants 2 images per category
    result = run("upload", str(tmp_path), "-p", "fruit")
    assert result.exit_code == 1
    assert trainer.batches == []
    line = next(line for line in result.output.splitlines() if "data.json" in line)
    assert "ErrorCocoFile" in line


def test_coco_pixel_boxes_become_normalised_regions_in_a_detector(tmp_path):
    coco_file(tmp_path, boxes=[16, 12, 80, 60])
    items, problems, notes = upload.read_coco(tmp_path / "data.json", detection=True, multiclass=False)
    assert problems == [] and any("pixels" in n for n in notes)
    assert len(items) == 4 and all(item.tags == () for item in items)
    name, left, top, width, height = items[0].regions[0]
    assert name == "Cat" and (left, top, width, height) == pytest.approx((0.1, 0.1, 0.5, 0.5))


def test_tag_folders_in_a_detection_project_go_untagged_with_a_note(tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "a.jpg").write_bytes(JPEG)
    plan = upload.plan_folder(tmp_path, detection=True, multiclass=False)
    assert [i.tags for i in plan.items] == [()]
    assert any("object detection project needs boxes" in n for n in plan.notes)


# ---- train and performance -------------------------------------------------------------------------------
def test_train_wait_follows_the_iteration_then_prints_the_per_tag_table(fakes):
    trainer, _ = fakes
    a_project(trainer)
    result = run("train", "-p", "fruit", "--wait", "--poll", "0", "--threshold", "0.7")
    assert result.exit_code == 0, result.output
    assert trainer.polls == ["Training", "Completed"] and trainer.asked_threshold == 0.7
    rows = {
        line.split("│")[1].strip(): line.split("│")[2:5] for line in result.output.splitlines() if "%" in line
    }
    assert [c.strip() for c in rows["cup"]] == ["75.0%", "50.0%", "62.5%"]
    assert [c.strip() for c in rows["all tags"]] == ["90.0%", "80.0%", "85.0%"]
    assert list(rows) == ["cat", "cup", "all tags"]


def test_a_failed_training_says_why_and_exits_1(fakes):
    trainer, _ = fakes
    a_project(trainer)
    trainer.script = ("Training", "Failed")
    result = run("train", "-p", "fruit", "--wait", "--poll", "0")
    assert result.exit_code == 1
    assert "error: training failed: the trainer ran out of memory" in result.output


def test_train_wait_while_training_follows_the_running_iteration(fakes, monkeypatch):
    trainer, _ = fakes
    a_project(trainer)
    running = trainer.train_project("p")
    running.status = "Training"

    def refuse(*a, **k):
        raise _http_error(
            400, "https://x/customvision/v3.4-preview/training/projects/p/train", code=cli_main.IN_PROGRESS
        )

    monkeypatch.setattr(trainer, "train_project", refuse)
    result = run("train", "-p", "fruit", "--wait", "--poll", "0")
    assert result.exit_code == 0, result.output
    assert trainer.iterations == [running] and running.status == "Completed"
    assert run("train", "-p", "fruit").exit_code == 1  # without --wait the refusal is the answer


def test_performance_json_is_the_service_figures(fakes):
    trainer, _ = fakes
    p = a_project(trainer)
    it = trainer.train_project(p.id)
    it.status, it.trained_at, it.created = "Completed", None, 1
    data = json.loads(run("--json", "performance", "-p", "fruit").stdout)
    assert data["iteration"]["id"] == it.id and data["precision"] == 0.9
    assert {t["name"]: t["recall"] for t in data["perTag"]} == {"cup": 0.5, "cat": 1.0}


# ---- predict ---------------------------------------------------------------------------------------------
def test_predict_uses_the_newest_published_iteration_and_the_detect_call_in_a_detector(fakes, tmp_path):
    trainer, predictor = fakes
    a_project(trainer, detection=True)
    trainer.iterations = [
        NS(id="1", publish_name="old", last_modified=1, created=1, status="Completed"),
        NS(id="2", publish_name="new", last_modified=2, created=2, status="Completed"),
        NS(id="3", publish_name=None, last_modified=3, created=3, status="Completed"),
    ]
    (tmp_path / "a.jpg").write_bytes(JPEG)
    rows = json.loads(run("predict", str(tmp_path / "a.jpg"), "-p", "fruit", "--top", "1", "--json").stdout)
    assert predictor.calls == [("detect_image", "new")]
    assert rows == [
        {
            "file": str(tmp_path / "a.jpg"),
            "tag": "cat",
            "probability": 0.7,
            "box": {"left": 0.1, "top": 0.2, "width": 0.3, "height": 0.4},
        }
    ]
    table = run(
        "predict", "https://example.com/a.jpg", "-p", "fruit", "--url", "--no-store", "--iteration-name", "x"
    )
    assert predictor.calls[-1] == ("detect_image_url_with_no_store", "x")
    assert "0.100,0.200,0.300,0.400" in table.output


def test_predict_without_a_published_iteration_says_how_to_publish(fakes, tmp_path):
    trainer, predictor = fakes
    a_project(trainer)
    (tmp_path / "a.jpg").write_bytes(JPEG)
    result = run("predict", str(tmp_path / "a.jpg"), "-p", "fruit")
    assert result.exit_code == 1 and "customvision publish --project fruit" in result.output
    assert predictor.calls == []


def test_predict_refuses_an_image_over_the_prediction_limit_before_sending(fakes, tmp_path):
    trainer, predictor = fakes
    a_project(trainer)
    trainer.iterations = [NS(id="1", publish_name="prod", last_modified=1, created=1)]
    (tmp_path / "big.jpg").write_bytes(bytes(cli_main.MAX_PREDICTION_IMAGE_BYTES + 1))
    result = run("predict", str(tmp_path / "big.jpg"), "-p", "fruit")
    assert result.exit_code == 1 and "over the 4 MB limit" in result.output and predictor.calls == []


# ---- errors and keys -------------------------------------------------------------------------------------
def _http_error(status: int, url: str, code: str = "Unauthorized") -> HttpOperationError:
    response = requests.Response()
    response.status_code, response.url = status, url
    response._content = json.dumps({"code": code, "message": "the message"}).encode()
    err = HttpOperationError.__new__(HttpOperationError)
    err.response, err.error, err.message = response, None, "failed"
    return err


@pytest.mark.parametrize(
    "url, kind",
    [
        ("http://h/customvision/v3.4-preview/training/projects", "training"),
        ("http://h/customvision/v3.1/Prediction/p/classify/iterations/x/image", "prediction"),
    ],
)
def test_a_rejected_key_is_one_line_and_exit_code_2(fakes, monkeypatch, url, kind):
    trainer, _ = fakes

    def refuse():
        raise _http_error(401, url)

    monkeypatch.setattr(trainer, "get_projects", refuse)
    result = run("--endpoint", "https://cv.example.com", "--training-key", "k", "projects")
    assert result.exit_code == 2
    assert result.output == f"error: {kind} key rejected by https://cv.example.com\n"


def test_other_service_errors_show_the_code_and_message(fakes, monkeypatch):
    trainer, _ = fakes

    def refuse():
        raise _http_error(404, "http://h/x", code="NotFoundProject")

    monkeypatch.setattr(trainer, "get_projects", refuse)
    result = run("projects")
    assert result.exit_code == 1 and "NotFoundProject: the message (HTTP 404)" in result.output


def test_an_unreachable_endpoint_is_one_line_exit_2_and_debug_shows_the_traceback(fakes, monkeypatch):
    trainer, _ = fakes
    refused = requests.ConnectionError(
        "HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded (Caused by NewConnectionError("
        "'<urllib3.connection.HTTPConnection object>: Failed to establish a new connection: "
        "[Errno 111] Connection refused'))"
    )

    def unreachable():
        raise ClientRequestError("Error occurred in request.", inner_exception=refused)

    monkeypatch.setattr(trainer, "get_projects", unreachable)
    result = run("projects")
    assert result.exit_code == 2
    assert result.output == "error: cannot reach http://127.0.0.1:7071: Connection refused\n"
    with pytest.raises(ClientRequestError):
        run("--debug", "projects")


def test_keys_come_from_flags_or_the_environment_and_only_loopback_has_defaults(monkeypatch):
    monkeypatch.delenv("CUSTOMVISION_TRAINING_KEY", raising=False)
    result = CliRunner().invoke(cli_main.cli, ["--endpoint", "https://cv.example.com", "projects"])
    assert result.exit_code == 2
    assert (
        "no training key for https://cv.example.com: pass --training-key or set CUSTOMVISION_TRAINING_KEY"
        in (result.output)
    )
    from_env = Service("https://cv.example.com", "from-env", "p-key")
    assert from_env.trainer.config.credentials.in_headers == {"Training-key": "from-env"}
    assert from_env.predictor.config.credentials.in_headers == {"Prediction-key": "p-key"}
    local = Service("http://localhost:7071")
    assert local.trainer.config.credentials.in_headers == {"Training-key": cli_main_local_key()}
    assert from_env.trainer.config.retry_policy.policy.connect == 1


def cli_main_local_key():
    from cvcore.settings import LOCAL_TRAINING_KEY

    return LOCAL_TRAINING_KEY


def test_version_works_installed_or_not():
    result = CliRunner().invoke(cli_main.cli, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("customvision, version ")


def test_every_command_has_help():
    for name, command in cli_main.cli.commands.items():
        result = CliRunner().invoke(cli_main.cli, [name, "--help"])
        assert (
            result.exit_code == 0 and command.get_short_help_str() and "Usage: customvision" in result.output
        )


def test_the_console_script_names_the_entry_point_and_the_package_is_installed():
    import importlib
    import tomllib

    from tests.support.azurite import ROOT

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    module, _, attr = pyproject["project"]["scripts"]["customvision"].partition(":")
    assert getattr(importlib.import_module(module), attr) is cli_main.main
    assert "cvcli*" in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]


def test_export_waits_for_the_flavour_the_service_chose_then_downloads_it(fakes, monkeypatch, tmp_path):
    trainer, _ = fakes
    p = a_project(trainer)
    it = trainer.train_project(p.id)
    it.status, it.trained_at = "Completed", 1
    states = iter(["Exporting", "Exporting", "Done"])
    asked = []

    def export_iteration(project_id, iteration_id, platform, flavor=None):
        asked.append((platform, flavor))
        return NS(platform=platform, flavor="ONNX12", status="Exporting")

    def get_exports(project_id, iteration_id):
        state = next(states)
        other = NS(platform="ONNX", flavor="ONNXInt8", status="Done", download_uri="int8.zip")
        return [other, NS(platform="ONNX", flavor="ONNX12", status=state, download_uri="models/x/onnx.zip")]

    monkeypatch.setattr(trainer, "export_iteration", export_iteration, raising=False)
    monkeypatch.setattr(trainer, "get_exports", get_exports, raising=False)
    monkeypatch.setattr(
        trainer, "get_artifact", lambda project_id, path: [path.encode(), b"-bytes"], raising=False
    )
    result = run("export", "-p", "fruit", "-o", str(tmp_path / "out" / "m.zip"), "--poll", "0")
    assert result.exit_code == 0, result.output
    assert asked == [("ONNX", None)] and next(states, None) is None  # polled until Done
    assert (
        tmp_path / "out" / "m.zip"
    ).read_bytes() == b"models/x/onnx.zip-bytes"  # a relative URI: get_artifact
    assert not (tmp_path / "out" / "m.zip.part").exists()


def test_a_failed_export_says_so_and_writes_nothing(fakes, monkeypatch, tmp_path):
    trainer, _ = fakes
    p = a_project(trainer)
    it = trainer.train_project(p.id)
    it.status, it.trained_at = "Completed", 1
    monkeypatch.setattr(
        trainer, "export_iteration", lambda *a, **k: NS(platform="OpenVino", flavor=None), raising=False
    )
    monkeypatch.setattr(
        trainer,
        "get_exports",
        lambda *a: [NS(platform="OpenVino", flavor=None, status="Failed")],
        raising=False,
    )
    result = run("export", "-p", "fruit", "--platform", "OpenVino", "-o", str(tmp_path / "m.zip"))
    assert result.exit_code == 1 and "error: the OpenVino export ended Failed" in result.output
    assert not (tmp_path / "m.zip").exists()


def test_suggest_asks_about_the_untagged_images_with_the_newest_trained_iteration(fakes, monkeypatch):
    trainer, _ = fakes
    p = a_project(trainer)
    old, new = trainer.train_project(p.id), trainer.train_project(p.id)
    old.status, old.trained_at, new.status, new.trained_at = "Completed", 1, "Completed", 2
    asked = []
    monkeypatch.setattr(
        trainer,
        "get_untagged_images",
        lambda project_id, take: [NS(id="im1"), NS(id="im2")][:take],
        raising=False,
    )

    def suggest(project_id, iteration_id, image_ids):
        asked.append((iteration_id, image_ids))
        cup, cat = (NS(tag_name=t, probability=x, bounding_box=None) for t, x in (("cup", 0.2), ("cat", 0.7)))
        return [NS(id=i, predictions=[cup, cat]) for i in image_ids]

    monkeypatch.setattr(trainer, "suggest_tags_and_regions", suggest, raising=False)
    result = run("suggest", "-p", "fruit", "--take", "1")
    assert result.exit_code == 0, result.output
    assert asked == [(new.id, ["im1"])]
    row = next(line for line in result.output.splitlines() if "im1" in line)
    assert "cat" in row and "70.0%" in row and "cup" not in result.output.split("Image id")[1]


def test_names_and_problems_with_brackets_are_printed_as_they_are(fakes, tmp_path):
    trainer, _ = fakes
    a_project(trainer, name="fruit [v2]")
    coco_file(tmp_path, per_category=1)
    result = run("upload", str(tmp_path), "-p", "fruit [v2]")
    assert "categories[0]" in result.output  # the validator's JSON path, not eaten as markup
    assert "fruit [v2]" in run("projects").output
