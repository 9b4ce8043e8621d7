"""A small local Azure Functions host (Core Tools' `func start` cannot be installed offline).

It indexes an `azure.functions.FunctionApp` from its decorators and serves HTTP triggers with a threaded
HTTP/1.1 server (devhost.http_server: a sync function runs on its connection's thread), blob triggers and
queue triggers by polling real storage (Azurite locally), with queue and blob output bindings, and timer
triggers on their schedule (or now, through `POST /admin/functions/{name}`).
CLI: `python -m devhost --app function_app:app --port 7071`; API: `with Host(app, port=0) as h`.
"""

from .catalog import FunctionSpec, discover, load_app
from .config import HostConfig, load_local_settings
from .host import Host
from .routes import Route, Router

__all__ = [
    "FunctionSpec",
    "Host",
    "HostConfig",
    "Route",
    "Router",
    "discover",
    "load_app",
    "load_local_settings",
]
