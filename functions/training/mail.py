"""notificationEmailAddress on train: the address is checked and kept on the iteration; when the training
ends, a short mail goes out through the configured SMTP server (CUSTOMVISION_SMTP_URL, e.g.
`smtp://user:password@mail.example.com:587` with STARTTLS, or `smtps://...:465`). With no transport
configured, the iteration says so (notificationEmail.status "NotSent" with the reason) at once: the
address is never silently dropped. Delivery is attempted once per training end; a failure is recorded
on the iteration with the server's reason."""

from __future__ import annotations

import re
import smtplib
import ssl
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from cvcore.errors import BadRequest

FIELD = "notificationEmailAddress"
_ADDRESS = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
NOT_CONFIGURED = (
    "no mail transport is configured (set CUSTOMVISION_SMTP_URL); follow the iteration with "
    "get_iteration or a project notification queue instead"
)
PENDING, SENT, NOT_SENT, FAILED = "Pending", "Sent", "NotSent", "Failed"


def check_address(address: str | None) -> str:
    address = (address or "").strip()
    if address and (len(address) > 254 or not _ADDRESS.fullmatch(address)):
        raise BadRequest("BadRequestInvalid", f"{FIELD}: {address[:80]!r} is not an email address")
    return address


class Mailer:
    def __init__(self, smtp_url: str = "", sender: str = "", timeout: float = 20.0):
        self.url, self.sender, self.timeout = smtp_url, sender or "customvision@localhost", timeout

    @property
    def configured(self) -> bool:
        return bool(self.url)

    def send(self, to: str, subject: str, body: str) -> None:
        """Send one mail; raises OSError / smtplib.SMTPException with the server's reason."""
        parts = urlsplit(self.url)
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self.sender, to, subject
        message.set_content(body)
        secure = parts.scheme == "smtps"
        port = parts.port or (465 if secure else 587 if parts.username else 25)
        # No host: "" (falsy, so smtplib connects nowhere and the send fails, as with None)
        client = (
            smtplib.SMTP_SSL(
                parts.hostname or "", port, timeout=self.timeout, context=ssl.create_default_context()
            )
            if secure
            else smtplib.SMTP(parts.hostname or "", port, timeout=self.timeout)
        )
        with client:
            client.ehlo()
            if not secure and client.has_extn("starttls"):
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if parts.username:
                client.login(unquote(parts.username), unquote(parts.password or ""))
            client.send_message(message)


def training_mail(
    project_name: str, iteration_name: str, status: str, details: str | None
) -> tuple[str, str]:
    ended = "completed" if status == "Completed" else "failed"
    subject = f"Custom Vision: {project_name} {iteration_name} {ended}"
    body = f"Training of {iteration_name} in project {project_name} {ended}.\n"
    if details:
        body += f"\n{details}\n"
    return subject, body


def deliver_training_mail(repo, mailer: Mailer | None, project_id: str, iteration_id: str) -> str | None:
    """After a training ended: mail the iteration's notificationEmailAddress if it is Pending; record Sent or
    Failed (with the reason) on the iteration. Returns the new status, or None when there was nothing to do."""
    from ..domain.ports import ConcurrencyError
    from . import serialize

    project = repo.get_project(project_id)
    it = repo.get_iteration(project_id, iteration_id)
    if project is None or it is None or not it.notification_email or it.notification_status != PENDING:
        return None
    if mailer is None or not mailer.configured:
        status, detail = NOT_SENT, NOT_CONFIGURED
    else:
        subject, body = training_mail(
            project.name, it.name, it.status, serialize.iteration_json(project.id, it)["trainingErrorDetails"]
        )
        try:
            mailer.send(it.notification_email, subject, body)
            status, detail = SENT, ""
        except (OSError, smtplib.SMTPException) as exc:
            status, detail = FAILED, f"{type(exc).__name__}: {str(exc)[:300]}"
    for _ in range(5):
        it.notification_status, it.notification_detail = status, detail
        try:
            repo.update_iteration(project_id, it)
            return status
        except ConcurrencyError:
            it = repo.get_iteration(project_id, iteration_id)
    return status
