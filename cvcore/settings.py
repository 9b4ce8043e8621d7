"""One typed settings object, read from the environment. Every setting the code reads is named here.

Storage follows the Functions host's own `AzureWebJobsStorage` convention: a connection string
(`UseDevelopmentStorage=true` locally) or identity-based `AzureWebJobsStorage__*ServiceUri` settings in
Azure. Keys fall back to documented local defaults only when storage is local; anywhere else a missing
or default key is refused at start-up.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

STORAGE = "AzureWebJobsStorage"
BLOB_SERVICE_URI = "AzureWebJobsStorage__blobServiceUri"
QUEUE_SERVICE_URI = "AzureWebJobsStorage__queueServiceUri"
TABLE_SERVICE_URI = "AzureWebJobsStorage__tableServiceUri"
CREDENTIAL = "AzureWebJobsStorage__credential"
CLIENT_ID = "AzureWebJobsStorage__clientId"
TRAINING_KEY = "CUSTOMVISION_TRAINING_KEY"
PREDICTION_KEY = "CUSTOMVISION_PREDICTION_KEY"
# Storage integration (project exportModelContainerUri / notificationQueueUri): storage accounts beyond the
# service's own that a project may name, comma-separated account names, reached with the app's identity.
INTEGRATION_ACCOUNTS = "CUSTOMVISION_INTEGRATION_ACCOUNTS"
SMTP_URL = "CUSTOMVISION_SMTP_URL"  # notificationEmailAddress: smtp[s]://[user:password@]host[:port]
MAIL_FROM = "CUSTOMVISION_MAIL_FROM"
# Webhook origins allowed over plain http or to non-public addresses (local development, tests only).
WEBHOOK_ALLOW_ORIGINS = "CUSTOMVISION_WEBHOOK_ALLOW_ORIGINS"
# Every environment variable the application reads; infra must set each one (issue 5 checks this).
APP_SETTINGS = (
    STORAGE,
    BLOB_SERVICE_URI,
    QUEUE_SERVICE_URI,
    TABLE_SERVICE_URI,
    CREDENTIAL,
    CLIENT_ID,
    TRAINING_KEY,
    PREDICTION_KEY,
)

# Optional trainer settings (defaults apply when unset): seconds a Quick (Regular) training may spend on a CPU
# (classification 45, detection 150); a GPU is not limited by it.
TRAINER_QUICK_CPU_SECONDS = "TRAINER_QUICK_CPU_SECONDS"
# The most memory (MiB) a classification job's decoded images may take; a larger dataset is streamed (each image
# read and decoded whenever used, none kept) instead of decoded once and held (gpu_trainer/dataset.holds_decoded).
TRAINER_DECODED_MB = "TRAINER_DECODED_MB"
DECODED_MB_DEFAULT = 4096.0
TRAINER_SETTINGS = (TRAINER_QUICK_CPU_SECONDS, TRAINER_DECODED_MB)


def _positive(name: str, default: float, env: Mapping[str, str] | None, unit: str) -> float:
    raw = (os.environ if env is None else env).get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: {raw!r} is not a number of {unit}") from None
    if not value > 0:
        raise ConfigError(f"{name}: must be positive, got {raw!r}")
    return value


def quick_cpu_seconds(default: float, env: Mapping[str, str] | None = None) -> float:
    """The Quick-training CPU budget: TRAINER_QUICK_CPU_SECONDS when set (a positive number), else `default`."""
    return _positive(TRAINER_QUICK_CPU_SECONDS, default, env, "seconds")


def decoded_limit_mb(env: Mapping[str, str] | None = None) -> float:
    """TRAINER_DECODED_MB when set (a positive number of MiB), else DECODED_MB_DEFAULT."""
    return _positive(TRAINER_DECODED_MB, DECODED_MB_DEFAULT, env, "MiB")


LOCAL_TRAINING_KEY = "local-training-key"
LOCAL_PREDICTION_KEY = "local-prediction-key"

DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class ConfigError(RuntimeError):
    """The environment does not describe a runnable configuration."""


def dev_connection_string(
    host: str = "127.0.0.1", blob: int = 10000, queue: int = 10001, table: int = 10002
) -> str:
    """Azurite's well-known account, spelled out (what `UseDevelopmentStorage=true` stands for)."""
    base = f"http://{host}"
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
        f"BlobEndpoint={base}:{blob}/{DEV_ACCOUNT};QueueEndpoint={base}:{queue}/{DEV_ACCOUNT};"
        f"TableEndpoint={base}:{table}/{DEV_ACCOUNT};"
    )


def _parse_connection_string(conn: str) -> dict[str, str]:
    parts = {}
    for item in conn.split(";"):
        if "=" in item:
            key, value = item.split("=", 1)
            parts[key.strip()] = value.strip()
    return parts


@dataclass(frozen=True)
class StorageSettings:
    connection_string: str | None = None
    blob_service_uri: str | None = None
    queue_service_uri: str | None = None
    table_service_uri: str | None = None
    credential: str | None = None
    client_id: str | None = None

    @property
    def endpoints(self) -> dict[str, str]:
        """Service endpoints, from the connection string or the identity-based settings."""
        if self.connection_string:
            parts = _parse_connection_string(self.connection_string)
            out = {}
            for svc in ("blob", "queue", "table"):
                explicit = parts.get(svc.capitalize() + "Endpoint")
                if explicit:
                    out[svc] = explicit.rstrip("/")
                elif "AccountName" in parts:
                    suffix = parts.get("EndpointSuffix", "core.windows.net")
                    proto = parts.get("DefaultEndpointsProtocol", "https")
                    out[svc] = f"{proto}://{parts['AccountName']}.{svc}.{suffix}"
            return out
        return {
            k: v.rstrip("/")
            for k, v in (
                ("blob", self.blob_service_uri),
                ("queue", self.queue_service_uri),
                ("table", self.table_service_uri),
            )
            if v
        }

    @property
    def is_local(self) -> bool:
        """True when every storage endpoint is on a loopback address (Azurite)."""
        endpoints = self.endpoints
        return bool(endpoints) and all(
            (urlsplit(url).hostname or "") in ("127.0.0.1", "localhost", "::1") for url in endpoints.values()
        )


@dataclass(frozen=True)
class Settings:
    storage: StorageSettings
    training_key: str
    prediction_key: str
    integration_accounts: tuple[str, ...] = ()
    smtp_url: str = ""
    mail_from: str = ""
    webhook_allow_origins: tuple[str, ...] = ()

    @property
    def is_local(self) -> bool:
        return self.storage.is_local


def _storage(env: Mapping[str, str]) -> tuple[StorageSettings, list[str]]:
    conn = env.get(STORAGE, "").strip()
    if conn.replace(" ", "").lower() == "usedevelopmentstorage=true":
        conn = dev_connection_string()
    storage = StorageSettings(
        connection_string=conn or None,
        blob_service_uri=env.get(BLOB_SERVICE_URI) or None,
        queue_service_uri=env.get(QUEUE_SERVICE_URI) or None,
        table_service_uri=env.get(TABLE_SERVICE_URI) or None,
        credential=env.get(CREDENTIAL) or None,
        client_id=env.get(CLIENT_ID) or None,
    )
    problems = []
    if not storage.connection_string and not (
        storage.blob_service_uri and storage.queue_service_uri and storage.table_service_uri
    ):
        problems.append(
            f"set {STORAGE} (a connection string) or {BLOB_SERVICE_URI}, {QUEUE_SERVICE_URI} "
            f"and {TABLE_SERVICE_URI}"
        )
    return storage, problems


def load_storage(env: Mapping[str, str] | None = None) -> StorageSettings:
    """Storage settings alone (the trainer needs no API keys)."""
    storage, problems = _storage(os.environ if env is None else env)
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    return storage


def load(env: Mapping[str, str] | None = None) -> Settings:
    """Read and check the settings; raise ConfigError with every problem named."""
    env = os.environ if env is None else env
    storage, problems = _storage(env)
    local = storage.is_local
    keys = {}
    for name, default in ((TRAINING_KEY, LOCAL_TRAINING_KEY), (PREDICTION_KEY, LOCAL_PREDICTION_KEY)):
        value = env.get(name, "").strip()
        if not value and local:
            value = default
        if not value:
            problems.append(f"{name} is not set")
        elif value == default and not local:
            problems.append(f"{name} is the local default key; set a secret key outside local development")
        elif len(value) < 8:
            problems.append(f"{name} must be at least 8 characters")
        keys[name] = value
    smtp = env.get(SMTP_URL, "").strip()
    if smtp and (urlsplit(smtp).scheme not in ("smtp", "smtps") or not urlsplit(smtp).hostname):
        problems.append(f"{SMTP_URL} must look like smtp://[user:password@]host[:port] or smtps://...")
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    accounts = tuple(a.strip().lower() for a in env.get(INTEGRATION_ACCOUNTS, "").split(",") if a.strip())
    return Settings(
        storage=storage,
        training_key=keys[TRAINING_KEY],
        prediction_key=keys[PREDICTION_KEY],
        integration_accounts=accounts,
        smtp_url=smtp,
        mail_from=env.get(MAIL_FROM, "").strip(),
        webhook_allow_origins=tuple(
            o.strip() for o in env.get(WEBHOOK_ALLOW_ORIGINS, "").split(",") if o.strip()
        ),
    )
