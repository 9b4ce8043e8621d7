"""The tool's view of a Custom Vision endpoint: SDK clients, keys, and finding projects and iterations by the
names people type. Everything goes through the official SDK (CustomVisionTrainingClient /
CustomVisionPredictionClient), so the same commands work against Azure Custom Vision."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from msrest.authentication import ApiKeyCredentials

from cvcore.settings import LOCAL_PREDICTION_KEY, LOCAL_TRAINING_KEY

DEFAULT_ENDPOINT = "http://127.0.0.1:7071"
CONNECT_RETRIES = 1  # msrest retries a refused connection 3 times with back-off (~5 s): one try is enough
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


class CliError(Exception):
    """A failure the user can act on: printed as one line, exit code `code` (1 by default)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def is_guid(value: str) -> bool:
    return bool(_GUID.match(value or ""))


def is_local(endpoint: str) -> bool:
    """A loopback endpoint is this project's local stack, whose keys are public (cvcore.settings)."""
    host = urlsplit(endpoint).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Service:
    endpoint: str
    training_key: str | None = None
    prediction_key: str | None = None
    _trainer: CustomVisionTrainingClient | None = field(default=None, repr=False)
    _predictor: CustomVisionPredictionClient | None = field(default=None, repr=False)

    def __post_init__(self):
        self.endpoint = self.endpoint.rstrip("/")

    def _key(self, given: str | None, local: str, kind: str) -> str:
        if given:
            return given
        if is_local(self.endpoint):
            return local
        flag, env = f"--{kind}-key", f"CUSTOMVISION_{kind.upper()}_KEY"
        raise CliError(f"no {kind} key for {self.endpoint}: pass {flag} or set {env}", code=2)

    @property
    def trainer(self) -> CustomVisionTrainingClient:
        if self._trainer is None:
            key = self._key(self.training_key, LOCAL_TRAINING_KEY, "training")
            self._trainer = _quick_to_fail(
                CustomVisionTrainingClient(self.endpoint, ApiKeyCredentials(in_headers={"Training-key": key}))
            )
        return self._trainer

    @property
    def predictor(self) -> CustomVisionPredictionClient:
        if self._predictor is None:
            key = self._key(self.prediction_key, LOCAL_PREDICTION_KEY, "prediction")
            self._predictor = _quick_to_fail(
                CustomVisionPredictionClient(
                    self.endpoint, ApiKeyCredentials(in_headers={"Prediction-key": key})
                )
            )
        return self._predictor

    # ---- finding things by what people type ----------------------------------------------------------------
    def find_project(self, name_or_id: str):
        """The project with this id, or else this name (exact, then without case); None when there is none."""
        if is_guid(name_or_id):
            for p in self.trainer.get_projects():
                if p.id.lower() == name_or_id.lower():
                    return p
        projects = self.trainer.get_projects()
        for same in (lambda p: p.name == name_or_id, lambda p: p.name.casefold() == name_or_id.casefold()):
            found = [p for p in projects if same(p)]
            if len(found) > 1:
                ids = ", ".join(p.id for p in found)
                raise CliError(f"{len(found)} projects are named {name_or_id!r} ({ids}): pass the id")
            if found:
                return found[0]
        return None

    def project(self, name_or_id: str):
        found = self.find_project(name_or_id)
        if found is None:
            raise CliError(f"no project {name_or_id!r} at {self.endpoint} (see `customvision projects`)")
        return found

    def domain(self, project):
        return self.trainer.get_domain(project.settings.domain_id)

    def is_detection(self, project) -> bool:
        return self.domain(project).type == "ObjectDetection"

    def find_domain(self, name_or_id: str, kind: str):
        """A domain by id, or by name within `kind` (Classification / ObjectDetection: names repeat)."""
        domains = self.trainer.get_domains()
        for d in domains:
            if d.id.lower() == name_or_id.lower():
                return d
        for d in domains:
            if d.type == kind and d.name.casefold() == name_or_id.casefold():
                return d
        names = ", ".join(sorted(d.name for d in domains if d.type == kind))
        raise CliError(f"no {kind} domain {name_or_id!r}; the {kind} domains are: {names}")

    def iteration(self, project, iteration_id: str | None):
        """The iteration `iteration_id` (id or name), else the newest Completed one."""
        iterations = self.trainer.get_iterations(project.id)
        if iteration_id:
            for it in iterations:
                if it.id.lower() == iteration_id.lower() or it.name == iteration_id:
                    return it
            raise CliError(f"project {project.name!r} has no iteration {iteration_id!r}")
        done = [it for it in iterations if it.status == "Completed"]
        if not done:
            running = [
                f"{it.name} is {it.status}" for it in iterations if it.status not in ("Completed", "Failed")
            ]
            hint = f" ({', '.join(running)})" if running else ": run `customvision train`"
            raise CliError(f"project {project.name!r} has no trained iteration yet{hint}")
        return max(done, key=lambda it: it.trained_at or it.created)

    def published_name(self, project, name: str | None) -> str:
        """`name`, else the newest published iteration's publish name (a hint to publish when none is)."""
        if name:
            return name
        published = [it for it in self.trainer.get_iterations(project.id) if it.publish_name]
        if not published:
            raise CliError(
                f"project {project.name!r} has no published iteration: run "
                f"`customvision publish --project {project.name} --name NAME` or pass --iteration-name"
            )
        return max(published, key=lambda it: it.last_modified or it.created).publish_name


def _quick_to_fail(client):
    """A refused connection should be reported at once, not after msrest's back-off; other retries stay."""
    client.config.retry_policy.policy.connect = CONNECT_RETRIES
    return client
