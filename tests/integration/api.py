"""Call the Training API's HTTP function in-process, as the Functions worker would, on real storage."""

from __future__ import annotations

import json as jsonlib
from urllib.parse import urlencode

import azure.functions as func

from cvcore.settings import LOCAL_TRAINING_KEY
from functions import http_training

BASE = "http://localhost/customvision/v3.4-preview/training/"


class Api:
    def __init__(self, key: str = LOCAL_TRAINING_KEY, version: str = "v3.4-preview"):
        self.key, self.version = key, version

    def call(
        self,
        method: str,
        path: str,
        params: dict | None = None,
        json=None,
        body: bytes | None = None,
        headers: dict | None = None,
    ):
        hdrs = {"Training-key": self.key} if self.key else {}
        hdrs.update(headers or {})
        if json is not None:
            body = jsonlib.dumps(json).encode()
            hdrs.setdefault("Content-Type", "application/json")
        params = {k: (",".join(v) if isinstance(v, list) else str(v)) for k, v in (params or {}).items()}
        req = func.HttpRequest(
            method=method,
            url=BASE + path + ("?" + urlencode(params) if params else ""),
            headers=hdrs,
            params=params,
            body=body or b"",
            route_params={"version": self.version, "path": path},
        )
        resp = http_training.handle(req)
        raw = resp.get_body()
        return resp.status_code, (jsonlib.loads(raw) if raw else None)

    def ok(self, method: str, path: str, **kw):
        status, data = self.call(method, path, **kw)
        assert status in (200, 204, 207), (status, data)
        return data


def queued_message(services, queue_name: str, wanted):
    """The one message on `queue_name` whose JSON body satisfies `wanted` (others' jobs may be queued too:
    they are left to reappear after the visibility timeout)."""
    import json

    queue = services.clients.queue(queue_name)
    for _ in range(20):
        batch = list(queue.receive_messages(max_messages=32, visibility_timeout=60))
        mine = [m for m in batch if wanted(json.loads(m.content))]
        if mine or not batch:
            break
    assert len(mine) == 1, f"{len(mine)} matching messages"
    return queue, mine[0]
