"""Project webhooks (functions/training/webhooks.py) with the storage ports faked and the HTTP call replaced:
what a URI / secret must be, how a delivery is recorded, retried with its back-off and given up."""

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from cvcore.errors import BadRequest
from cvcore.urlfetch import UrlFetchError
from functions.domain.records import Project
from functions.training import webhooks
from tests.unit.fakes import FakeBlobStore, FakeJobQueue, FakeRepository

SECRET = "0123456789abcdef-secret"
PID = "6c3f4a7e-1b2d-4e5f-8a9b-0c1d2e3f4a5b"


def project(uri="https://hooks.example.com/cv", secret=SECRET):
    now = datetime.now(UTC)
    return Project(
        id=PID,
        name="fruit",
        description="",
        domain_id="",
        classification_type="Multiclass",
        target_export_platforms=[],
        created=now,
        last_modified=now,
        webhook_uri=uri,
        webhook_secret=secret,
    )


@pytest.fixture
def world():
    repo, blobs, queue = FakeRepository(), FakeBlobStore(), FakeJobQueue()
    repo.save_project(project())
    return repo, blobs, queue


def answers(monkeypatch, *outcomes):
    """webhooks.send answers with the outcomes in turn (an int status, or an UrlFetchError); the calls are kept."""
    calls, left = [], list(outcomes)

    def send(uri, secret, event, delivery_id, allow_origins=()):
        calls.append((uri, secret, event, delivery_id))
        got = left.pop(0)
        if isinstance(got, Exception):
            raise got
        return got

    monkeypatch.setattr(webhooks, "send", send)
    return calls


def failure(status=500):
    return UrlFetchError("http-status", f"https://hooks.example.com/cv answered HTTP {status}", "", status)


EVENT = {
    "version": "1.0",
    "type": "Training",
    "Content": {"projectId": PID, "iterationId": "i1", "trainingStatus": "TrainingCompleted"},
}


def test_the_signature_is_an_hmac_of_the_exact_body():
    body = b'{"a":1}'
    assert (
        webhooks.sign(SECRET, body) == "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    )
    assert webhooks.sign(SECRET, body) != webhooks.sign(SECRET, b'{"a": 1}')


@pytest.mark.parametrize(
    ("uri", "secret", "words"),
    [
        ("http://hooks.example.com/cv", SECRET, "must be an https URI"),
        ("ftp://hooks.example.com/cv", SECRET, "must be an https URI"),
        ("https://hooks.example.com/" + "x" * 2100, SECRET, "at most 2048"),
        (42, SECRET, "webhookUri"),
        ("https://hooks.example.com/cv", "short", "webhookSecret: a secret of at least 16"),
    ],
)
def test_a_bad_uri_or_secret_is_refused_naming_the_field_before_anything_is_sent(
    monkeypatch, uri, secret, words
):
    calls = answers(monkeypatch)
    with pytest.raises(BadRequest) as err:
        webhooks.check(project(uri="", secret=""), uri, secret)
    assert words in err.value.message and calls == []


def test_setting_a_webhook_sends_a_connection_test_and_refuses_one_that_does_not_answer(monkeypatch):
    calls = answers(monkeypatch, 204, failure(404))
    assert webhooks.check(project(uri="", secret=""), " https://hooks.example.com/cv ", SECRET) == (
        "https://hooks.example.com/cv",
        SECRET,
    )
    assert calls[0][2] == {"version": "1.0", "type": "ConnectionTest", "Content": {"projectId": PID}}
    with pytest.raises(BadRequest) as err:
        webhooks.check(project(uri="", secret=""), "https://hooks.example.com/cv", SECRET)
    assert "ConnectionTest was not accepted" in err.value.message and "404" in err.value.message


def test_the_stored_secret_is_kept_when_only_the_uri_changes_and_clearing_the_uri_clears_both(monkeypatch):
    answers(monkeypatch, 204)
    assert webhooks.check(project(), "https://other.example.com/x", None) == (
        "https://other.example.com/x",
        SECRET,
    )
    assert webhooks.check(project(), "", None) == ("", "")


def test_plain_http_only_for_an_allowed_origin(monkeypatch):
    answers(monkeypatch, 204)
    assert (
        webhooks.check(
            project(uri="", secret=""), "http://127.0.0.1:8081/hook", SECRET, ("http://127.0.0.1:8081",)
        )[0]
        == "http://127.0.0.1:8081/hook"
    )
    with pytest.raises(BadRequest):
        webhooks.check(
            project(uri="", secret=""), "http://127.0.0.1:8082/hook", SECRET, ("http://127.0.0.1:8081",)
        )


def test_nothing_is_queued_for_a_project_without_a_webhook(world):
    _, blobs, queue = world
    assert webhooks.enqueue(blobs, queue, project(uri=""), EVENT) is None
    assert queue.sent == [] and blobs.blobs == {}


def test_a_delivery_is_recorded_and_delivered_signed_with_the_projects_secret(world, monkeypatch):
    repo, blobs, queue = world
    calls = answers(monkeypatch, 204)
    delivery = webhooks.enqueue(blobs, queue, repo.get_project(PID), EVENT)
    (pending,) = webhooks.deliveries(blobs, PID)
    assert pending["status"] == "Pending" and pending["event"] == EVENT and pending["attempts"] == []
    assert webhooks.attempt(repo, blobs, queue, queue.sent[0]) == "Delivered"
    assert calls == [("https://hooks.example.com/cv", SECRET, EVENT, delivery)]
    (done,) = webhooks.deliveries(blobs, PID)
    assert done["status"] == "Delivered" and [a["status"] for a in done["attempts"]] == [204]
    assert (
        webhooks.attempt(repo, blobs, queue, queue.sent[0]) == "Delivered"
    )  # a duplicate message sends nothing
    assert len(calls) == 1 and len(queue.sent) == 1


def test_failures_are_retried_with_the_back_off_then_the_delivery_fails_with_every_reason(world, monkeypatch):
    repo, blobs, queue = world
    answers(monkeypatch, *[failure(500 + i) for i in range(webhooks.MAX_ATTEMPTS)])
    webhooks.enqueue(blobs, queue, repo.get_project(PID), EVENT)
    statuses = [webhooks.attempt(repo, blobs, queue, queue.sent[-1]) for _ in range(webhooks.MAX_ATTEMPTS)]
    assert statuses == ["Pending"] * (webhooks.MAX_ATTEMPTS - 1) + ["Failed"]
    assert queue.delays == [0, *webhooks.BACKOFF_S[1 : webhooks.MAX_ATTEMPTS]]  # first send, then each retry
    (record,) = webhooks.deliveries(blobs, PID)
    assert record["status"] == "Failed"
    assert [a["status"] for a in record["attempts"]] == [500 + i for i in range(webhooks.MAX_ATTEMPTS)]
    assert all("answered HTTP" in a["error"] for a in record["attempts"])


def test_a_retry_that_succeeds_ends_delivered_and_stops_retrying(world, monkeypatch):
    repo, blobs, queue = world
    answers(monkeypatch, failure(503), 200)
    webhooks.enqueue(blobs, queue, repo.get_project(PID), EVENT)
    assert webhooks.attempt(repo, blobs, queue, queue.sent[-1]) == "Pending"
    assert webhooks.attempt(repo, blobs, queue, queue.sent[-1]) == "Delivered"
    assert queue.delays == [0, webhooks.BACKOFF_S[1]]


def test_a_delivery_for_a_deleted_project_or_a_vanished_record_is_dropped_without_a_call(world, monkeypatch):
    repo, blobs, queue = world
    calls = answers(monkeypatch)
    webhooks.enqueue(blobs, queue, repo.get_project(PID), EVENT)
    message = queue.sent[0]
    blobs.blobs.clear()
    assert webhooks.attempt(repo, blobs, queue, message) == "Gone"
    repo.delete_project(PID)
    assert webhooks.attempt(repo, blobs, queue, json.dumps({"project_id": PID, "delivery_id": "x"})) == "Gone"
    assert calls == [] and len(queue.sent) == 1


def test_deliveries_are_listed_newest_first_and_capped(world, monkeypatch):
    repo, blobs, queue = world
    clock = iter(range(1_700_000_000, 1_700_000_100))
    monkeypatch.setattr(webhooks.time, "time", lambda: next(clock))
    ids = [webhooks.enqueue(blobs, queue, repo.get_project(PID), {**EVENT, "n": n}) for n in range(3)]
    assert [d["id"] for d in webhooks.deliveries(blobs, PID)] == ids[::-1]
    monkeypatch.setattr(webhooks, "LISTED", 2)
    assert len(webhooks.deliveries(blobs, PID)) == 2
