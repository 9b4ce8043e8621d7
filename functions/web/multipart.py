"""multipart/form-data parsing that keeps every part as bytes.

The SDK's create_images_from_data sends raw bytes as a part without a filename; general-purpose form
parsers turn such parts into text fields and corrupt them, so every part is kept as raw bytes here.
"""

from __future__ import annotations

import re

from cvcore.errors import BadRequest

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_NAME = re.compile(rb'\bname="([^"]*)"', re.IGNORECASE)
_FILENAME = re.compile(rb'\bfilename="([^"]*)"', re.IGNORECASE)


def parse(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    """Return (filename or field name, bytes) for each part, in order."""
    match = _BOUNDARY.search(content_type or "")
    if not match:
        raise BadRequest(
            "BadRequestImageStream", "Content-Type: multipart/form-data needs a boundary parameter"
        )
    delimiter = b"--" + match.group(1).encode("latin-1")
    chunks = body.split(delimiter)
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        raise BadRequest(
            "BadRequestImageStream", "body: the multipart data is incomplete (no closing boundary)"
        )
    parts = []
    for index, chunk in enumerate(chunks[1:-1]):
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise BadRequest(
                "BadRequestImageStream", f"body: multipart part {index} has no header/body separator"
            )
        if data.endswith(b"\r\n"):
            data = data[:-2]
        disposition = next(
            (line for line in head.split(b"\r\n") if line.lower().startswith(b"content-disposition")), b""
        )
        name = _FILENAME.search(disposition) or _NAME.search(disposition)
        parts.append((name.group(1).decode("utf-8", "replace") if name else f"part-{index}", data))
    return parts
