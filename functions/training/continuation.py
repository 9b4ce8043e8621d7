"""Continuation tokens of the review queries (query_predictions, query_suggested_images): opaque to clients,
checked when they come back.

A token is `v1.` + base64url(JSON) of what the next page needs (a cursor and, for Suggested, the ranking
session), the fingerprint of the query it continues, and a checksum over both and the project id. A token
that does not decode, fails its checksum, names another project or continues a different query (other
order, filters, window) is refused with the caller's error code, naming the field. The checksum is not a
secret: a forged token can only move a cursor within results the caller's key already lets it read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from cvcore.errors import BadRequest

_PREFIX = "v1."
MAX_TOKEN = 2048


def fingerprint(query: dict) -> str:
    """A short digest of what a query asks (not of its page size or cursor)."""
    return hashlib.sha256(json.dumps(query, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def _checksum(project_id: str, body: str) -> str:
    return hashlib.sha256(f"{project_id}|{body}".encode()).hexdigest()[:12]


def encode(project_id: str, query_fingerprint: str, state: dict) -> str:
    body = json.dumps({"q": query_fingerprint, "s": state}, sort_keys=True, separators=(",", ":"))
    payload = {"b": body, "c": _checksum(project_id, body)}
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return _PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token, project_id: str, query_fingerprint: str, code: str, field: str = "continuation") -> dict:
    """The state `encode` put in `token`, or BadRequest(code) naming `field`."""
    if not isinstance(token, str) or not token.startswith(_PREFIX) or len(token) > MAX_TOKEN:
        raise BadRequest(
            code,
            f"{field}: not a continuation token this service issued; pass the token of the "
            "previous reply unchanged, or none for the first page",
        )
    try:
        text = token[len(_PREFIX) :]
        payload = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        body, check = payload["b"], payload["c"]
        inner = json.loads(body)
        ok = (
            isinstance(inner, dict)
            and isinstance(inner.get("s"), dict)
            and check == _checksum(project_id, body)
        )
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError):
        ok = False
    if not ok:
        raise BadRequest(
            code,
            f"{field}: the token is damaged or belongs to another project; pass the token of "
            "the previous reply unchanged",
        )
    if inner.get("q") != query_fingerprint:
        raise BadRequest(
            code,
            f"{field}: the token continues a different query; keep the order, filters and "
            "time window of the query that returned it (only maxCount may change)",
        )
    return inner["s"]
