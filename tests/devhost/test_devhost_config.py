"""Settings, host.json, binding expressions, blob path patterns and discovery: unit tests, no storage."""

import json
import uuid

import azure.functions as func
import pytest

from devhost import Host, discover, load_app
from devhost.bindings import resolve
from devhost.blob_listener import blob_pattern
from devhost.config import (
    DEV_KEY,
    HostConfig,
    connection_string,
    expand_settings,
    load_local_settings,
    parse_timespan,
)
from tests.devhost.helpers import TOYAPP


def test_local_settings_fill_the_environment_without_overriding_it(tmp_path):
    (tmp_path / "local.settings.json").write_text(
        json.dumps({"IsEncrypted": False, "Values": {"A": "from-file", "B": "from-file", "N": 3}})
    )
    env = {"B": "from-env"}
    assert sorted(load_local_settings(tmp_path, env)) == ["A", "N"]
    assert env == {"A": "from-file", "B": "from-env", "N": "3"}
    assert load_local_settings(tmp_path / "missing", env) == []


def test_development_storage_is_spelled_out_with_explicit_endpoints():
    conn = connection_string("AzureWebJobsStorage", {"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    parts = dict(p.split("=", 1) for p in conn.split(";") if p)
    assert parts["AccountName"] == "devstoreaccount1" and parts["AccountKey"] == DEV_KEY
    assert parts["BlobEndpoint"] == "http://127.0.0.1:10000/devstoreaccount1"
    assert parts["QueueEndpoint"] == "http://127.0.0.1:10001/devstoreaccount1"
    assert parts["TableEndpoint"] == "http://127.0.0.1:10002/devstoreaccount1"
    real = "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=eQ==;EndpointSuffix=core.windows.net"
    assert connection_string("Other", {"Other": real}) == real
    assert connection_string(None, {"AzureWebJobsStorage": real}) == real  # no connection: the host's
    with pytest.raises(LookupError, match="Missing"):
        connection_string("Missing", {})


def test_timespans_and_host_json(tmp_path):
    assert parse_timespan("00:00:30", 0) == 30 and parse_timespan("1.02:00:00.5", 0) == 93600.5
    assert parse_timespan(None, 7) == 7 and parse_timespan(12, 0) == 12
    with pytest.raises(ValueError):
        parse_timespan("soon", 0)
    assert HostConfig.from_host_json(tmp_path) == HostConfig(
        route_prefix="api", max_dequeue_count=5, visibility_timeout=0, batch_size=16
    )
    toy = HostConfig.from_host_json(TOYAPP, max_body=10)
    assert (toy.route_prefix, toy.max_dequeue_count, toy.batch_size, toy.max_body) == ("", 5, 8, 10)


def test_binding_expressions():
    data = {"name": "a/b.png", "Project": "p1", "doc": {"Tag": "cat"}}
    assert resolve("out/{NAME}.copy", data) == "out/a/b.png.copy"
    assert resolve("x/{project}/{doc.tag}", data) == "x/p1/cat"
    assert resolve("{{literal}}", data) == "{literal}"
    guids = {resolve("{rand-guid}", data) for _ in range(3)}
    assert len(guids) == 3 and all(uuid.UUID(g) for g in guids)
    with pytest.raises(KeyError, match="nosuch"):
        resolve("x/{nosuch}", data)
    assert expand_settings("%Q%-poison", {"Q": "jobs"}) == "jobs-poison"
    with pytest.raises(LookupError):
        expand_settings("%Q%", {})


def test_blob_paths_capture_greedily_like_the_webjobs_template():
    container, rx, prefix, names = blob_pattern("uploads/{project}/{rest}")
    assert (container, prefix) == ("uploads", "")
    m = rx.match("p1/a/b.png")
    assert {names[g]: v for g, v in m.groupdict().items()} == {"project": "p1/a", "rest": "b.png"}
    assert rx.match("no-slash") is None
    container, rx, prefix, names = blob_pattern("in/img-{name}.{ext}")
    assert prefix == "img-" and rx.match("img-x.y.png").groupdict() == {"g0": "x.y", "g1": "png"}
    assert rx.match("other-x.png") is None
    with pytest.raises(ValueError):
        blob_pattern("{container}/{name}")


def test_discovery_reads_the_decorators(monkeypatch):
    monkeypatch.setenv("DH_JSON_QUEUE", "dh-q-json")
    specs = {s.name: s for s in discover(load_app("toy_app:app", TOYAPP))}
    assert specs["item_by_id"].trigger["route"] == "items/{id:int}"
    assert specs["item_by_id"].trigger["methods"] == ["GET"]
    assert specs["default_route"].trigger["route"] == "default_route"
    assert specs["blob_copy"].trigger_type == "blobTrigger"
    assert [(b["type"], b["name"], b["path"]) for b in specs["blob_copy"].outputs] == [
        ("blob", "copy", "dh-out/{name}.copy")
    ]
    assert specs["blob_multi"].trigger["source"] == "EventGrid"
    assert specs["queue_to_blob"].trigger["queueName"] == "dh-q-json"  # %DH_JSON_QUEUE% resolved
    assert specs["queue_to_blob"].is_async and not specs["queue_echo"].is_async


def test_a_parameter_without_binding_is_refused():
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="x")
    def bad(req: func.HttpRequest, extra) -> func.HttpResponse:
        return func.HttpResponse("")

    with pytest.raises(TypeError, match="extra"):
        Host(app, port=0)
