"""End to end: notificationEmailAddress on train through the official SDK, and project webhooks. With an SMTP
server configured (a real SMTP conversation with a minimal server here), the mail arrives when the training
ends and the iteration says Sent; a bad address is refused naming the field. A webhook is refused unless it is
https (or an allowed origin), has a long enough secret and answers its ConnectionTest; events arrive signed,
a failed delivery is retried after its back-off, and the deliveries are listed with every attempt."""

import hashlib
import hmac
import http.server
import json
import threading
import time

import pytest
import requests
from azure.cognitiveservices.vision.customvision.training.models import CustomVisionErrorException

from cvcore import layout, settings
from tests.support.smtp import smtp_server
from tests.support.training import add_cats_and_cups, local_stack, wait_trained

pytestmark = pytest.mark.e2e


class Receiver:
    """A webhook endpoint on loopback that records what it is sent and fails the first `fail` requests."""

    def __init__(self):
        self.got, self.fail = [], 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.got.append((dict(self.headers), body))
                code = 500 if outer.fail > 0 else 204
                outer.fail -= 1
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture(scope="module")
def notifying(azurite):
    """One stack for the module (two would both poll the same queues), with SMTP and the receiver's origin."""
    receiver = Receiver()
    origin = receiver.url.rsplit("/", 1)[0]
    with (
        smtp_server() as (smtp_url, inbox),
        local_stack(
            azurite,
            cpu_seconds=15,
            host_env={
                settings.SMTP_URL: smtp_url,
                settings.MAIL_FROM: "vision@example.test",
                settings.WEBHOOK_ALLOW_ORIGINS: origin,
            },
        ) as (url, trainer, _),
    ):
        yield url, trainer, inbox, receiver
    receiver.server.shutdown()


@pytest.fixture
def mailing(notifying):
    return notifying[:3]


@pytest.fixture
def hooked(notifying):
    return notifying[0], notifying[1], notifying[3]


def test_the_mail_arrives_when_training_ends_and_the_iteration_says_sent(mailing):
    url, trainer, inbox = mailing
    project = trainer.create_project(f"mail-{layout.new_id()[:8]}")
    try:
        add_cats_and_cups(trainer, project.id, per_tag=5)
        queued = trainer.train_project(project.id, notification_email_address="owner@example.test")
        it = wait_trained(trainer, project.id, queued.id)
        assert it.status == "Completed"
        raw = f"{url}/customvision/v3.3/Training/projects/{project.id}/iterations/{it.id}"
        headers = {"Training-Key": settings.LOCAL_TRAINING_KEY}
        deadline = time.monotonic() + 60
        while (note := requests.get(raw, headers=headers, timeout=10).json()["notificationEmail"])[
            "status"
        ] == "Pending":
            assert time.monotonic() < deadline
            time.sleep(0.3)
        assert note == {"address": "owner@example.test", "status": "Sent", "detail": None}
        (mail,) = inbox
        assert mail["to"] == ["owner@example.test"] and mail["from"] == "vision@example.test"
        assert mail["message"]["Subject"] == f"Custom Vision: {project.name} {it.name} completed"
    finally:
        trainer.delete_project(project.id)


def test_a_bad_address_is_refused_naming_the_field(mailing):
    _, trainer, _ = mailing
    project = trainer.create_project(f"mail-{layout.new_id()[:8]}")
    try:
        add_cats_and_cups(trainer, project.id, per_tag=5)
        with pytest.raises(CustomVisionErrorException) as err:
            trainer.train_project(project.id, notification_email_address="not an address")
        assert "notificationEmailAddress" in err.value.error.message
        assert trainer.get_iterations(project.id) == []
    finally:
        trainer.delete_project(project.id)


def test_webhook_is_tested_signed_retried_and_its_deliveries_are_visible(hooked):
    url, trainer, receiver = hooked
    project = trainer.create_project(f"hook-{layout.new_id()[:8]}")
    base = f"{url}/customvision/v3.4-preview/training/projects/{project.id}"
    headers = {"Training-Key": settings.LOCAL_TRAINING_KEY}
    secret = "s3cret-for-signing-0123"

    def patch(**values):
        return requests.patch(
            base, headers=headers, timeout=30, json={"name": project.name, "settings": values}
        )

    try:
        for values, words in (
            ({"webhookUri": "http://example.com/hook", "webhookSecret": secret}, "https"),
            ({"webhookUri": receiver.url, "webhookSecret": "short"}, "webhookSecret"),
            ({"webhookUri": "https://127.0.0.1:9/hook", "webhookSecret": secret}, "ConnectionTest"),
        ):
            refused = patch(**values)
            assert refused.status_code == 400 and words in refused.json()["message"], refused.text
        assert receiver.got == []
        reply = patch(webhookUri=receiver.url, webhookSecret=secret)
        assert reply.status_code == 200, reply.text
        assert (
            reply.json()["settings"]["webhookUri"] == receiver.url
            and reply.json()["settings"]["webhookSecretSet"]
        )
        assert secret not in reply.text and secret not in requests.get(base, headers=headers, timeout=10).text
        ((sent, body),) = receiver.got
        assert json.loads(body) == {
            "version": "1.0",
            "type": "ConnectionTest",
            "Content": {"projectId": project.id},
        }
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        assert (
            sent["X-CustomVision-Signature"] == expected and sent["X-CustomVision-Event"] == "ConnectionTest"
        )

        receiver.fail = 1  # the first delivery of the Training event fails: it is retried after a back-off
        add_cats_and_cups(trainer, project.id, per_tag=5)
        it = wait_trained(trainer, project.id, trainer.train_project(project.id).id)
        deadline = time.monotonic() + 90
        while len(receiver.got) < 3:
            assert time.monotonic() < deadline, receiver.got
            time.sleep(0.3)
        (_, first), (sent, second) = receiver.got[1:3]
        assert first == second and json.loads(second)["Content"] == {
            "projectId": project.id,
            "iterationId": it.id,
            "trainingStatus": "TrainingCompleted",
        }
        assert (
            sent["X-CustomVision-Signature"]
            == "sha256=" + hmac.new(secret.encode(), second, hashlib.sha256).hexdigest()
        )
        (delivery,) = requests.get(f"{base}/webhook/deliveries", headers=headers, timeout=10).json()
        assert delivery["status"] == "Delivered" and [a["status"] for a in delivery["attempts"]] == [500, 204]
        assert delivery["event"]["type"] == "Training" and "HTTP 500" in delivery["attempts"][0]["error"]
    finally:
        trainer.delete_project(project.id)
