"""Binding expressions (`{name}`, `{rand-guid}`, `{DateTime}`), `func.Out` values and the queue / blob
output and blob input bindings."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime

import azure.functions as func
from azure.core.exceptions import ResourceNotFoundError

from .storage import Clients, b64

_EXPR = re.compile(r"\{\{|\}\}|\{([^{}]+)\}")


class Out(func.Out):
    """What an output-binding parameter receives; the host writes the value after a successful run."""

    def __init__(self) -> None:
        self._value = None

    def set(self, val) -> None:
        self._value = val

    def get(self):
        return self._value


def _lookup(data: dict, key: str):
    head, *rest = key.split(".")
    lowered = {k.lower(): v for k, v in data.items()}
    if head.lower() not in lowered:
        raise KeyError(f"no binding data named {key!r} (have: {', '.join(sorted(data)) or 'none'})")
    value = lowered[head.lower()]
    for part in rest:
        value = {k.lower(): v for k, v in value.items()}[part.lower()]
    return value


def resolve(template: str, data: dict) -> str:
    """Fill a binding template from the trigger's binding data (keys matched without case)."""

    def sub(m):
        if m.group(0) in ("{{", "}}"):
            return m.group(0)[0]
        key = m.group(1).strip()
        if key.lower() in ("rand-guid", "sys.randguid"):
            return str(uuid.uuid4())
        if key.lower() in ("datetime", "sys.utcnow"):
            return datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%SZ")
        return str(_lookup(data, key))

    return _EXPR.sub(sub, template)


def json_binding_data(body: bytes) -> dict:
    """Top-level properties of a JSON object body become binding data, as the host does."""
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    return obj if isinstance(obj, dict) else {}


def _bytes(value) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if hasattr(value, "read"):
        return _bytes(value.read())
    if isinstance(value, (dict, list)):
        return json.dumps(value).encode("utf-8")
    raise TypeError(f"cannot write a {type(value).__name__} to a blob")


def _messages(value) -> list[bytes]:
    if isinstance(value, func.QueueMessage):
        return [value.get_body()]
    if isinstance(value, (str, bytes, bytearray)):
        return [_bytes(value)]
    if isinstance(value, dict):
        return [json.dumps(value).encode("utf-8")]
    if isinstance(value, (list, tuple)):
        return [m for item in value for m in _messages(item)]
    raise TypeError(f"cannot send a {type(value).__name__} as a queue message")


class BindingIO:
    """Reads input bindings and writes output bindings against real storage."""

    def __init__(self, clients: Clients):
        self.clients = clients

    def write(self, binding: dict, value, data: dict) -> None:
        kind = binding.get("type")
        if value is None:
            return
        if kind == "queue":
            queue = self.clients.queue(binding.get("connection"), resolve(binding["queueName"], data).lower())
            for body in _messages(value):
                queue.send_message(b64(body))
        elif kind == "blob":
            container, _, name = resolve(binding["path"], data).partition("/")
            self.clients.container(binding.get("connection"), container).upload_blob(
                name, _bytes(value), overwrite=True
            )
        else:
            raise NotImplementedError(f"devhost does not write {kind!r} output bindings")

    def read(self, binding: dict, data: dict, annotation=None):
        if binding.get("type") != "blob":
            raise NotImplementedError(f"devhost does not read {binding.get('type')!r} input bindings")
        path = resolve(binding["path"], data)
        container, _, name = path.partition("/")
        container_client = self.clients.container(binding.get("connection"), container, create=False)
        client = container_client.get_blob_client(name)
        try:
            body = client.download_blob().readall()
        except ResourceNotFoundError:
            return None
        return as_annotated(body, annotation, binding, name=path, uri=client.url)


def as_annotated(body: bytes, annotation, binding: dict, **meta):
    """bytes / str / func.InputStream, as the parameter's annotation or the binding's dataType asks."""
    data_type = str(binding.get("dataType") or "").lower()
    if annotation is bytes or data_type == "binary":
        return body
    if annotation is str or data_type == "string":
        return body.decode("utf-8")
    return func.blob.InputStream(data=body, length=len(body), **meta)
