"""A minimal SMTP server on a free loopback port (EHLO, MAIL, RCPT, DATA, QUIT; no TLS, no AUTH) that keeps
the messages it is given, for tests of mail delivery through the real smtplib client."""

from __future__ import annotations

import email
import email.policy
import socketserver
import threading
from contextlib import contextmanager


class _Handler(socketserver.StreamRequestHandler):
    def _say(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self):
        self._say("220 test-smtp ready")
        envelope = {"from": None, "to": []}
        while line := self.rfile.readline():
            command = line.decode(errors="replace").strip()
            verb = command[:4].upper()
            if verb in ("EHLO", "HELO"):
                self._say("250 test-smtp")
            elif verb == "MAIL":
                envelope = {"from": command.split(":", 1)[1].strip(" <>"), "to": []}
                self._say("250 OK")
            elif verb == "RCPT":
                envelope["to"].append(command.split(":", 1)[1].strip(" <>"))
                self._say("250 OK")
            elif verb == "DATA":
                self._say("354 end with <CRLF>.<CRLF>")
                data = b""
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data += chunk[1:] if chunk.startswith(b"..") else chunk
                self.server.messages.append(
                    {**envelope, "message": email.message_from_bytes(data, policy=email.policy.default)}
                )
                self._say("250 queued")
            elif verb == "QUIT":
                self._say("221 bye")
                return
            else:
                self._say("250 OK")


@contextmanager
def smtp_server():
    """Yield (url, messages): smtp://127.0.0.1:port, and the list the received mails are appended to."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.messages = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"smtp://127.0.0.1:{server.server_address[1]}", server.messages
    finally:
        server.shutdown()
        server.server_close()
