"""A Custom Vision edge container's prediction server: the exported model, answering like the cloud.

    python server.py [--host 0.0.0.0] [--port 8080] [--model-dir .]

Routes (the ones Custom Vision's exported containers answer, plus the cloud-style paths):
    POST /image                  the image bytes (application/octet-stream), or multipart with `imageData`
    POST /url                    {"url": "https://..."} (fetched with SSRF guards: public addresses only)
    POST /{anything}/image, /{anything}/url, .../image/nostore, .../url/nostore   the same
    GET  /                       {"status": "ok", ...}: health and what the model is
The reply is the cloud Prediction API's: {"id", "project", "iteration", "created", "predictions": [...]},
computed by cvcore.inference.predict, the cloud route's own code, on the same onnxruntime version.
Errors are {"code", "message"} with the cloud's codes (400 BadRequestImageFormat, 413 BadRequestImageSizeBytes).
Standard library HTTP only; one model session, shared by the request threads.
"""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import json
import os
import sys
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cvcore import artifacts, inference
from cvcore.errors import BadRequest, CustomVisionError
from cvcore.imaging import MAX_PREDICTION_IMAGE_BYTES, ImageError

MAX_BODY = MAX_PREDICTION_IMAGE_BYTES + 64 * 1024  # an image plus multipart framing


class Model:
    def __init__(self, folder: Path, threads: int = 0):
        self.sidecar = artifacts.ModelSidecar.from_json(json.loads((folder / "model.json").read_text()))
        info = json.loads((folder / "export.json").read_text()) if (folder / "export.json").exists() else {}
        self.project, self.iteration = info.get("projectId", ""), info.get("iterationId", "")
        # The cloud route's session settings (threads: the container's CPUs unless given).
        self.session = inference.open_session(str(folder / "model.onnx"), threads or inference.host_cpus())

    def answer(self, data: bytes) -> dict:
        try:
            image = inference.decode(data, self.sidecar)
        except ImageError as exc:
            raise inference.image_error(exc) from None
        return {
            "id": str(uuid.uuid4()),
            "project": self.project,
            "iteration": self.iteration,
            "created": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "predictions": inference.predict(self.session, self.sidecar, image),
        }


def _payload(part) -> bytes:
    """A part's bytes, transfer-decoded (a text part's payload is read back as bytes too)."""
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _multipart_image(content_type: str, body: bytes) -> bytes:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    parts = [p for p in message.iter_parts()] if message.is_multipart() else []
    for part in parts:
        if part.get_param("name", header="content-disposition") in ("imageData", "image", "file"):
            return _payload(part)
    if parts:
        return _payload(parts[0])
    raise BadRequest("BadRequestImageFormat", "imageData: the multipart body has no image part")


def handler_for(model: Model, allow_origins: tuple[str, ...]):
    class Handler(BaseHTTPRequestHandler):
        server_version = "CustomVisionEdge/1.0"
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # one line per request on stderr, like a container log
            sys.stderr.write(f"{self.address_string()} {fmt % args}\n")

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path.split("?")[0] in ("/", "/health", "/status"):
                self._send(
                    200,
                    {
                        "status": "ok",
                        "project": model.project,
                        "iteration": model.iteration,
                        "task": model.sidecar.task,
                        "tags": [lab.name for lab in model.sidecar.labels],
                    },
                )
            else:
                self._send(
                    404, {"code": "NotFound", "message": f"GET {self.path}: use POST /image or POST /url"}
                )

        def do_POST(self):
            path = self.path.split("?")[0].rstrip("/")
            if path.endswith("/nostore"):
                path = path[: -len("/nostore")]
            try:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    self.close_connection = True
                    self._send(
                        413,
                        {
                            "code": "BadRequestImageSizeBytes",
                            "message": f"the body is {length} bytes; at most {MAX_PREDICTION_IMAGE_BYTES}",
                        },
                    )
                    return
                body = self.rfile.read(length)
                if path.endswith("/image") or path == "/image":
                    kind = self.headers.get("Content-Type", "")
                    data = _multipart_image(kind, body) if kind.startswith("multipart/") else body
                elif path.endswith("/url") or path == "/url":
                    try:
                        given = json.loads(body or b"{}")
                    except ValueError:
                        raise BadRequest("BadRequestImageUrl", "url: the body is not JSON") from None
                    url = given.get("url", given.get("Url")) if isinstance(given, dict) else None
                    data = inference.fetch_image(url, allow_origins)
                else:
                    self._send(404, {"code": "NotFound", "message": f"POST {self.path}: use /image or /url"})
                    return
                self._send(200, model.answer(data))
            except CustomVisionError as exc:
                self._send(exc.status, exc.body())
            except Exception as exc:
                self._send(500, {"code": "InternalServerError", "message": f"{type(exc).__name__}: {exc}"})

    return Handler


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("HOST", "0.0.0.0"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument("--model-dir", default=str(Path(__file__).resolve().parent))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("THREADS", "0")))
    args = parser.parse_args(argv)
    allow = tuple(o for o in os.environ.get("ALLOW_URL_ORIGINS", "").split(",") if o)
    model = Model(Path(args.model_dir), args.threads)
    server = ThreadingHTTPServer((args.host, args.port), handler_for(model, allow))
    host, port = str(server.server_address[0]), server.server_address[1]
    print(f"listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
