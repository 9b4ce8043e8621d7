"""training/integration: which container and queue URIs are accepted, and Custom Vision's message shapes."""

import re

import pytest

from cvcore import exports, layout
from cvcore.errors import BadRequest
from functions.training import integration as si

OWN = ("http://127.0.0.1:10000/devstoreaccount1", "https://other.queue.core.windows.net")


@pytest.mark.parametrize(
    "uri, name",
    [
        ("http://127.0.0.1:10000/devstoreaccount1/my-queue", "my-queue"),
        ("HTTP://127.0.0.1:10000/devstoreaccount1/abc/", "abc"),
        ("https://other.queue.core.windows.net/notify-1", "notify-1"),
    ],
)
def test_accepted(uri, name):
    place = si.parse(uri, "queue", OWN, si.QUEUE_FIELD)
    assert place.name == name and place.uri.endswith("/" + name)


@pytest.mark.parametrize(
    "uri, words",
    [
        ("", "required"),
        (42, "required"),
        ("ftp://127.0.0.1:10000/devstoreaccount1/q1", "http(s)"),
        ("http://u:p@127.0.0.1:10000/devstoreaccount1/q1", "credentials"),
        ("http://127.0.0.1:10000/devstoreaccount1/q1?sig=abc", "SAS"),
        ("http://127.0.0.1:10001/devstoreaccount1/q1", "not in this service's storage account"),
        ("https://evil.queue.core.windows.net/q1", "not in this service's storage account"),
        ("http://127.0.0.1:10000/devstoreaccount1/a/b", "one path segment"),
        ("http://127.0.0.1:10000/devstoreaccount1/Upper", "queue name"),
        ("http://127.0.0.1:10000/devstoreaccount1/a--b", "queue name"),
        ("http://127.0.0.1:10000/devstoreaccount1/" + layout.TRAINING_JOBS, "service's own"),
        (
            "http://127.0.0.1:10000/devstoreaccount1/" + layout.TRAINING_EVENTS + layout.POISON_SUFFIX,
            "service's own",
        ),
        ("http://127.0.0.1:10000/devstoreaccount1/" + "q" * 64, "queue name"),
    ],
)
def test_refused_naming_the_field(uri, words):
    with pytest.raises(BadRequest, match=re.escape(words)) as err:
        si.parse(uri, "queue", OWN, si.QUEUE_FIELD)
    assert si.QUEUE_FIELD in err.value.message


def test_the_services_own_containers_are_refused_but_a_name_like_them_elsewhere_is_not():
    with pytest.raises(BadRequest, match="service's own"):
        si.parse(f"{OWN[0]}/{layout.MODELS}", "blob", OWN, si.CONTAINER_FIELD)
    assert si.parse(f"{OWN[1]}/{layout.MODELS}", "blob", OWN, si.CONTAINER_FIELD).name == layout.MODELS


def test_messages_and_backup_names_follow_custom_vision():
    p, i = layout.new_id(), layout.new_id()
    assert si.connection_test(p) == {"version": "1.0", "type": "ConnectionTest", "Content": {"projectId": p}}
    assert si.training_message(p, i, False)["Content"]["trainingStatus"] == "TrainingFailed"
    onnx, int8 = exports.find("ONNX", "ONNX12"), exports.find("ONNX", "ONNXInt8")
    note = si.export_message(p, i, int8, False, None, "broken")["Content"]
    assert (note["exportStatus"], note["modelUri"], note["reason"]) == ("ExportFailed", None, "broken")
    assert (
        si.backup_name(p, i, onnx) == f"{p}-{i}.ONNX"
        and si.backup_name(p, i, int8) == f"{p}-{i}.ONNX-ONNXInt8"
    )
