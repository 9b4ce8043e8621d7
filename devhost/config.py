"""Host settings: `local.settings.json` Values, `host.json` options, storage connections by app setting."""

from __future__ import annotations

import json
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
HOST_STORAGE = "AzureWebJobsStorage"
DEFAULT_MAX_BODY = 100 * 1024 * 1024  # the Functions host's default request size limit


def dev_storage(host: str = "127.0.0.1", blob: int = 10000, queue: int = 10001, table: int = 10002) -> str:
    """What `UseDevelopmentStorage=true` stands for, spelled out for the Python SDKs."""
    base = f"http://{host}"
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
        f"BlobEndpoint={base}:{blob}/{DEV_ACCOUNT};QueueEndpoint={base}:{queue}/{DEV_ACCOUNT};"
        f"TableEndpoint={base}:{table}/{DEV_ACCOUNT};"
    )


def load_local_settings(script_root: str | os.PathLike, environ=None) -> list[str]:
    """Copy `local.settings.json` Values into the environment without overriding what is set (as
    `func start` does). Returns the names it set."""
    environ = os.environ if environ is None else environ
    path = Path(script_root) / "local.settings.json"
    if not path.exists():
        return []
    values = json.loads(path.read_text(encoding="utf-8-sig")).get("Values") or {}
    added = []
    for key, value in values.items():
        if key not in environ and value is not None:
            environ[key] = str(value)
            added.append(key)
    return added


def connection_string(setting: str | None, environ=None) -> str:
    """Resolve a binding's `connection` (an app setting name) to a usable connection string."""
    environ = os.environ if environ is None else environ
    name = setting or HOST_STORAGE
    value = environ.get(name) or environ.get(f"AzureWebJobs{name}") or ""
    if not value.strip():
        raise LookupError(f"app setting {name!r} (a storage connection string) is not set")
    parts = dict(p.split("=", 1) for p in value.split(";") if "=" in p)
    flags = {k.strip().lower(): v.strip().lower() for k, v in parts.items()}
    if flags.get("usedevelopmentstorage") == "true":
        return dev_storage()
    return value.strip()


def parse_timespan(value, default: float) -> float:
    """host.json time spans: "hh:mm:ss[.fff]" or "d.hh:mm:ss" or a number of seconds."""
    if value is None or value == "":
        return default
    if isinstance(value, (int, float)):
        return float(value)
    m = re.fullmatch(r"(?:(\d+)\.)?(\d+):(\d+):(\d+(?:\.\d+)?)", str(value).strip())
    if not m:
        raise ValueError(f"not a time span: {value!r}")
    days, h, mnt, s = m.groups()
    return int(days or 0) * 86400 + int(h) * 3600 + int(mnt) * 60 + float(s)


@dataclass(frozen=True)
class HostConfig:
    route_prefix: str = "api"
    max_dequeue_count: int = 5
    visibility_timeout: float = 0.0  # seconds before a failed queue message is retried
    batch_size: int = 16
    max_body: int = DEFAULT_MAX_BODY

    @classmethod
    def from_host_json(cls, script_root: str | os.PathLike | None, **overrides) -> HostConfig:
        data = {}
        path = Path(script_root) / "host.json" if script_root else None
        if path and path.exists():
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        ext = data.get("extensions") or {}
        http, queues = ext.get("http") or {}, ext.get("queues") or {}
        prefix = http.get("routePrefix", "api")
        cfg: dict[str, Any] = dict(
            route_prefix=(prefix if prefix is not None else "api").strip("/"),
            max_dequeue_count=int(queues.get("maxDequeueCount", 5)),
            visibility_timeout=parse_timespan(queues.get("visibilityTimeout"), 0.0),
            batch_size=max(1, min(32, int(queues.get("batchSize", 16)))),
        )
        cfg.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**cfg)


def host_id(environ=None) -> str:
    """The id receipts are filed under: `AzureFunctionsWebHost__hostid`, else the machine name."""
    environ = os.environ if environ is None else environ
    explicit = environ.get("AzureFunctionsWebHost__hostid") or environ.get("AzureFunctionsWebHost__hostId")
    if explicit:
        return explicit.lower()
    return re.sub(r"[^a-z0-9-]", "", socket.gethostname().lower())[:32].strip("-") or "devhost"


def expand_settings(value, environ=None):
    """`%Name%` in a binding property is the value of app setting Name, as the host resolves it."""
    environ = os.environ if environ is None else environ
    if not isinstance(value, str) or "%" not in value:
        return value

    def sub(m):
        if m.group(1) not in environ:
            raise LookupError(f"app setting {m.group(1)!r} (used as %{m.group(1)}%) is not set")
        return environ[m.group(1)]

    return re.sub(r"%([^%]+)%", sub, value)
