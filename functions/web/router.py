"""A small method + path-template router for the catch-all Custom Vision routes.

Templates use `{name}` segments; a literal segment beats a parameter at the same position, so
`images/tagged` wins over `images/{imageId}`. Literal segments match without case.
"""

from __future__ import annotations

from collections.abc import Callable

from cvcore.errors import CustomVisionError, NotFound

Handler = Callable[..., object]


class MethodNotAllowed(CustomVisionError):
    status = 405


class Router:
    def __init__(self) -> None:
        self._routes: list[tuple[str, tuple[str, ...], Handler]] = []

    def route(self, method: str, template: str) -> Callable[[Handler], Handler]:
        segments = tuple(s for s in template.strip("/").split("/") if s)

        def register(fn: Handler) -> Handler:
            self._routes.append((method.upper(), segments, fn))
            return fn

        return register

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        parts = [p for p in path.strip("/").split("/") if p]
        best, allowed = None, set()
        for verb, segments, fn in self._routes:
            params = _match(segments, parts)
            if params is None:
                continue
            rank = tuple(s.startswith("{") for s in segments)
            if verb != method.upper():
                allowed.add(verb)
                continue
            if best is None or rank < best[0]:
                best = (rank, fn, params)
        if best is None:
            if allowed:
                raise MethodNotAllowed(
                    "BadRequestNotSupported",
                    f"{method} is not supported on /{path}; allowed: {', '.join(sorted(allowed))}",
                )
            raise NotFound("NotFound", f"no operation at /{path}")
        return best[1], best[2]


def _match(segments: tuple[str, ...], parts: list[str]) -> dict[str, str] | None:
    if len(segments) != len(parts):
        return None
    params = {}
    for seg, part in zip(segments, parts, strict=True):
        if seg.startswith("{") and seg.endswith("}"):
            params[seg[1:-1]] = part
        elif seg.lower() != part.lower():
            return None
    return params
