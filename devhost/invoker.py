"""Call a user function the way the Python worker does: bind parameters by binding name, run sync functions
in the thread pool (or on the HTTP connection's thread) and await async ones on the host loop, then write
output bindings after success."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import azure.functions as func

from .bindings import BindingIO, Out
from .catalog import FunctionSpec

log = logging.getLogger("devhost")


class Context(func.Context):
    def __init__(self, spec: FunctionSpec, invocation_id: str, directory: str):
        self._spec, self._id, self._dir = spec, invocation_id, directory
        self._tls = threading.local()

    invocation_id = property(lambda self: self._id)
    function_name = property(lambda self: self._spec.name)
    function_directory = property(lambda self: self._dir)
    thread_local_storage = property(lambda self: self._tls)
    trace_context = property(lambda self: None)
    retry_context = property(lambda self: None)


def unbound_params(spec: FunctionSpec) -> list[str]:
    """Parameters no binding (nor `context`) will fill: the real worker refuses such functions."""
    names = {b.get("name") for b in spec.bindings} | {"context"}
    return [
        p.name
        for p in spec.params.values()
        if p.name not in names and p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def _executed(spec: FunctionSpec, invocation_id: str, started: float, reason: str, failed: bool = False):
    """The host's "Executed 'Functions.X' (...)" line; a failure's with the traceback being handled."""
    ms = (time.perf_counter() - started) * 1000
    (log.exception if failed else log.info)(
        "Executed 'Functions.%s' (%s, Id=%s, Duration=%.0fms)%s",
        spec.name,
        "Failed" if failed else "Succeeded",
        invocation_id,
        ms,
        f" {reason}" if reason else "",
    )


class Invoker:
    def __init__(self, io: BindingIO, pool: ThreadPoolExecutor, workers: int, script_root: str | None = None):
        """`workers`: the worker's PYTHON_THREADPOOL_THREAD_COUNT, the sync functions that run at once, on
        the pool (trigger listeners) or on an HTTP connection's thread alike (the pool's size)."""
        self.io, self.pool = io, pool
        self.slots = threading.BoundedSemaphore(workers)
        self.directory = str(Path(script_root or ".").resolve())
        self.loop: asyncio.AbstractEventLoop | None = None

    def _prepare(self, spec: FunctionSpec, trigger_value, data: dict, invocation_id: str):
        kwargs, outs = {}, {}
        inputs = {b["name"]: b for b in spec.inputs}
        out_names = {b["name"] for b in spec.outputs}
        for name, param in spec.params.items():
            if name == spec.trigger["name"]:
                kwargs[name] = trigger_value
            elif name in out_names:
                kwargs[name] = outs[name] = Out()
            elif name in inputs:
                kwargs[name] = self.io.read(inputs[name], data, param.annotation)
            elif name == "context":
                kwargs[name] = Context(spec, invocation_id, self.directory)
        return kwargs, outs

    def _finish(self, spec: FunctionSpec, result, outs: dict, data: dict) -> None:
        """Write output bindings (HTTP ones are the HTTP layer's) once the function has succeeded."""
        for binding in spec.outputs:
            if binding.get("type") == "http":
                continue
            name = binding["name"]
            value = result if name == "$return" else outs[name].get() if name in outs else None
            self.io.write(binding, value, data)

    def _run_sync(self, spec, trigger_value, data, invocation_id):
        with self.slots:
            kwargs, outs = self._prepare(spec, trigger_value, data, invocation_id)
            result = spec.func(**kwargs)
            self._finish(spec, result, outs, data)
        return result, outs

    async def _run_async(self, spec: FunctionSpec, trigger_value, data: dict, invocation_id: str):
        loop = asyncio.get_running_loop()
        kwargs, outs = (
            await loop.run_in_executor(self.pool, self._prepare, spec, trigger_value, data, invocation_id)
            if spec.inputs
            else self._prepare(spec, trigger_value, data, invocation_id)
        )
        result = await spec.func(**kwargs)
        if any(b.get("type") != "http" for b in spec.outputs):
            await loop.run_in_executor(self.pool, self._finish, spec, result, outs, data)
        return result, outs

    async def run(self, spec: FunctionSpec, trigger_value, data: dict, reason: str = ""):
        """Invoke once on the host loop (sync functions on the pool); returns (return value, {output name:
        Out}). Raises what the function raised."""
        invocation_id, started = str(uuid.uuid4()), time.perf_counter()
        try:
            if spec.is_async:
                result, outs = await self._run_async(spec, trigger_value, data, invocation_id)
            else:
                result, outs = await asyncio.get_running_loop().run_in_executor(
                    self.pool, self._run_sync, spec, trigger_value, data, invocation_id
                )
        except Exception:
            _executed(spec, invocation_id, started, reason, failed=True)
            raise
        _executed(spec, invocation_id, started, reason)
        return result, outs

    def call(self, spec: FunctionSpec, trigger_value, data: dict, reason: str = ""):
        """Invoke once from a server thread, as `run` does: a sync function on this thread (it holds one
        of the worker's slots meanwhile), an async one on the host loop."""
        if spec.is_async:
            return self.submit(spec, trigger_value, data, reason).result()
        invocation_id, started = str(uuid.uuid4()), time.perf_counter()
        try:
            result, outs = self._run_sync(spec, trigger_value, data, invocation_id)
        except Exception:
            _executed(spec, invocation_id, started, reason, failed=True)
            raise
        _executed(spec, invocation_id, started, reason)
        return result, outs

    def submit(self, spec: FunctionSpec, trigger_value, data: dict, reason: str = "") -> Future:
        """From a listener thread: schedule an invocation on the host loop; a concurrent Future."""
        if self.loop is None or not self.loop.is_running():
            raise RuntimeError("the host loop is not running")
        return asyncio.run_coroutine_threadsafe(self.run(spec, trigger_value, data, reason), self.loop)
