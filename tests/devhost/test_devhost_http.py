"""HTTP triggers through the real host (its threaded server on a free port) on the toy app, storage on real Azurite."""

import base64
import hashlib
import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient

from devhost import Host
from tests.devhost.helpers import TOYAPP

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def host(toy_app):
    with Host(toy_app, port=0, script_root=TOYAPP, poll_interval=0.2) as h:
        yield h


@pytest.fixture(scope="module")
def get(host):
    session = requests.Session()
    return lambda path, **kw: session.get(host.base_url + path, timeout=10, **kw)


@pytest.mark.parametrize(
    "path,fn,route",
    [
        ("/items/12", "item_by_id", {"id": "12"}),
        ("/items/twelve", "item_by_name", {"name": "twelve"}),
        ("/ITEMS/Special", "item_special", {}),
        ("/files/a/b/c.txt", "files", {"path": "a/b/c.txt"}),
        ("/files", "files", {}),
        ("/files/a%2Fb/%C3%A9t%C3%A9.txt", "files", {"path": "a%2Fb/\u00e9t\u00e9.txt"}),  # %2F stays encoded
        ("/files/docs/index", "files_index", {"dir": "docs"}),
        ("/opt", "optional", {}),
        ("/opt/given", "optional", {"a": "given"}),
        (
            "/things/0f8fad5b-d9cb-469f-a165-70867728950e/abc",
            "things",
            {"id": "0f8fad5b-d9cb-469f-a165-70867728950e", "x": "abc"},
        ),
        ("/codes/123", "codes", {"v": "123"}),
    ],
)
def test_routes_reach_the_most_specific_function(get, path, fn, route):
    r = get(path)
    assert r.status_code == 200, r.text
    assert r.json() == {"fn": fn, "route": route}
    assert r.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    "path",
    [
        "/things/not-a-guid/abc",
        "/things/0f8fad5b-d9cb-469f-a165-70867728950e/a1",
        "/codes/1234",
        "/nothing",
        "/opt/a/b",
    ],
)
def test_paths_no_route_matches_are_404(get, path):
    assert get(path).status_code == 404


def test_host_status_answers_when_no_function_claims_the_path(get):
    assert get("/admin/host/status").json() == {"state": "Running"}


def test_wrong_method_is_405_with_allow(host, get):
    r = requests.patch(host.base_url + "/items/3", timeout=10)
    assert r.status_code == 405
    assert r.headers["allow"] == "DELETE, GET"
    assert requests.delete(host.base_url + "/items/3", timeout=10).status_code == 204
    assert get("/echo").status_code == 405


def test_request_is_built_like_the_host_builds_it(host):
    body = json.dumps({f"k{i}": "v" * 40 for i in range(5)}).encode()
    r = requests.put(
        host.base_url + "/echo?a=1&a=2&empty=",
        data=body,
        timeout=10,
        headers={"Content-Type": "application/json", "X-TOKEN": "secret"},
    )
    assert r.status_code == 200
    got = r.json()
    assert got["method"] == "PUT" and got["params"] == {"a": "1,2", "empty": ""}
    assert got["url"] == host.base_url + "/echo?a=1&a=2&empty="
    assert got["token"] == got["token_lower"] == "secret"  # headers without case
    assert got["length"] == len(body) and got["sha256"] == hashlib.sha256(body).hexdigest()
    assert got["keys"] == 5


def test_a_5_mb_json_post_is_quick(host):
    body = json.dumps({f"k{i}": "x" * 40 for i in range(100_000)}).encode()
    assert len(body) > 5_000_000
    started = time.perf_counter()
    r = requests.post(
        host.base_url + "/echo", data=body, headers={"Content-Type": "application/json"}, timeout=30
    )
    elapsed = time.perf_counter() - started
    assert r.status_code == 200 and r.json()["sha256"] == hashlib.sha256(body).hexdigest()
    assert r.json()["keys"] == 100_000
    assert elapsed < 2.0, f"5 MB POST took {elapsed:.2f} s"


def test_responses_keep_status_headers_mimetype_and_charset(get):
    r = get("/custom")
    assert r.status_code == 201 and r.content == b"<b>made</b>"
    assert r.headers["content-type"] == "text/html; charset=latin-1"
    assert r.headers["x-custom"] == "yes" and r.headers["location"] == "/items/7"
    r = get("/default_route")  # a plain str return and the function name as the default route
    assert (r.status_code, r.text, r.headers["content-type"]) == (
        200,
        "plain text from GET",
        "text/plain; charset=utf-8",
    )


def test_async_functions_are_awaited_and_get_a_context(get):
    r = get("/async/ada")
    assert r.status_code == 200
    assert r.json()["hello"] == "ada" and r.json()["function"] == "async_hello"
    assert len(r.json()["invocation"]) == 36


def test_an_exception_is_a_500_with_a_short_json_body_and_a_logged_traceback(get, caplog):
    with caplog.at_level(logging.INFO, logger="devhost"):
        r = get("/boom")
    assert r.status_code == 500
    assert r.json() == {"error": "function failed", "function": "boom", "type": "RuntimeError"}
    failed = [rec for rec in caplog.records if "Functions.boom" in rec.getMessage()]
    assert failed and "Failed" in failed[0].getMessage()
    assert failed[0].exc_info and "fails on purpose" in str(failed[0].exc_info[1])


def test_sync_functions_run_concurrently(host):
    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda _: requests.get(host.base_url + "/slow?s=0.5", timeout=10), range(4)))
    elapsed = time.perf_counter() - started
    assert [r.text for r in replies] == ["done"] * 4
    assert elapsed < 1.5, f"4 x 0.5 s took {elapsed:.2f} s: requests were serialised"


def test_body_limit_413_and_route_prefix(toy_app):
    with Host(toy_app, port=0, script_root=TOYAPP, max_body=1024, route_prefix="api", poll_interval=5) as h:
        assert requests.post(h.base_url + "/api/echo", data=b"x" * 1024, timeout=10).status_code == 200
        r = requests.post(h.base_url + "/api/echo", data=b"x" * 1025, timeout=10)
        assert r.status_code == 413 and "1024" in r.json()["error"]
        chunks = (b"y" * 600 for _ in range(3))  # chunked upload, no Content-Length
        assert requests.post(h.base_url + "/api/echo", data=chunks, timeout=10).status_code == 413
        assert requests.get(h.base_url + "/API/items/1", timeout=10).json()["fn"] == "item_by_id"
        assert requests.get(h.base_url + "/items/1", timeout=10).status_code == 404


def test_blob_input_and_queue_output_bindings_on_http_functions(host, get, toy_env):
    name = f"{uuid.uuid4()}.txt"
    service = BlobServiceClient.from_connection_string(toy_env)
    try:
        service.create_container("dh-in")
    except ResourceExistsError:
        pass
    service.get_blob_client("dh-in", name).upload_blob(b"stored bytes")
    r = get(f"/blobs/{name}")
    assert (r.status_code, r.content, r.headers["x-blob-name"]) == (200, b"stored bytes", f"dh-in/{name}")
    assert get("/blobs/missing.txt").status_code == 404

    tag = uuid.uuid4().hex
    assert requests.post(f"{host.base_url}/enqueue/{tag}", data=b"payload", timeout=10).status_code == 202
    queue = QueueClient.from_connection_string(toy_env, "dh-http-out")
    sent = [base64.b64decode(m.content).decode() for m in queue.peek_messages(max_messages=32)]
    assert f"{tag}:payload" in sent  # written (Base64, like the host) before the response
