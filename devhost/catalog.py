"""Discover functions and bindings from the `azure-functions` decorator objects (no hand-kept list)."""

from __future__ import annotations

import importlib
import inspect
import json
import sys
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import expand_settings

HTTP_TRIGGER, BLOB_TRIGGER, QUEUE_TRIGGER, TIMER_TRIGGER = (
    "httpTrigger",
    "blobTrigger",
    "queueTrigger",
    "timerTrigger",
)


@dataclass
class FunctionSpec:
    """One function as the host indexes it: its trigger and bindings in function.json form."""

    name: str
    func: Callable[..., Any]
    trigger: dict
    bindings: list[dict]
    params: dict = field(default_factory=dict)  # parameter name -> inspect.Parameter

    @property
    def trigger_type(self) -> str:
        return self.trigger.get("type", "")

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.func)

    @property
    def outputs(self) -> list[dict]:
        return [b for b in self.bindings if str(b.get("direction", "")).upper() in ("OUT", "INOUT")]

    @property
    def inputs(self) -> list[dict]:
        return [
            b for b in self.bindings if b is not self.trigger and str(b.get("direction", "")).upper() == "IN"
        ]

    def describe(self, base_url: str = "", route_prefix: str = "") -> str:
        t = self.trigger
        if self.trigger_type == HTTP_TRIGGER:
            methods = ",".join(m.upper() for m in (t.get("methods") or [])) or "ANY"
            route = "/".join(p for p in (route_prefix, t.get("route") or self.name) if p)
            return f"{self.name}: [{methods}] {base_url}/{route}"
        if self.trigger_type == BLOB_TRIGGER:
            source = f" (source {t['source']}, polled locally)" if t.get("source") else ""
            return f"{self.name}: blobTrigger {t.get('path')}{source}"
        if self.trigger_type == QUEUE_TRIGGER:
            return f"{self.name}: queueTrigger {t.get('queueName')}"
        if self.trigger_type == TIMER_TRIGGER:
            return f"{self.name}: timerTrigger {t.get('schedule')}"
        return f"{self.name}: {self.trigger_type} (not supported by devhost; skipped)"


def load_app(spec: str, script_root: str | Path | None = None):
    """Import `module:attribute` (attribute defaults to `app`) with the script root on sys.path."""
    root = str(Path(script_root or ".").resolve())
    if root not in sys.path:
        sys.path.insert(0, root)
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name.removesuffix(".py").replace("/", "."))
    app = getattr(module, attr or "app")
    if not hasattr(app, "get_functions"):
        raise TypeError(f"{spec} is not an azure.functions.FunctionApp")
    return app


_INDEXED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def discover(app) -> list[FunctionSpec]:
    """FunctionSpecs for every function of the app, in registration order. `app.get_functions()` may be
    called once per app (it refuses the second call as duplicate names), so its result is kept."""
    if app not in _INDEXED:
        _INDEXED[app] = app.get_functions()
    specs, seen = [], set()
    for fn in _INDEXED[app]:
        bindings = [json.loads(raw) for raw in fn.get_raw_bindings()]
        for b in bindings:
            b.update({k: expand_settings(b[k]) for k in ("path", "queueName", "route") if b.get(k)})
        trigger_obj = fn.get_trigger()
        trigger = next(
            (
                b
                for b in bindings
                if trigger_obj is not None
                and b.get("name") == trigger_obj.name
                and b.get("type") == trigger_obj.type
            ),
            None,
        )
        if trigger is None:
            raise ValueError(f"function {fn.get_function_name()} has no trigger")
        name = fn.get_function_name()
        if name.lower() in seen:
            raise ValueError(f"two functions are named {name!r}")
        seen.add(name.lower())
        user = fn.get_user_function()
        try:
            params = dict(inspect.signature(user, eval_str=True).parameters)
        except Exception:
            params = dict(inspect.signature(user).parameters)
        specs.append(FunctionSpec(name=name, func=user, trigger=trigger, bindings=bindings, params=params))
    return specs
