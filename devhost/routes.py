"""HTTP route templates as the Functions host (ASP.NET Core routing) reads them.

Literal segments match without case; `{p}`, optional `{p?}`, defaults `{p=x}`, catch-all `{*p}`, complex
segments `{name}.{ext}` and inline constraints `{id:int}`, `{g:guid}`, `{x:alpha}`, `{v:regex(...)}`,
`{n:int:min(1)}`. More specific templates win: per segment literal (1) < complex (2) < constrained
parameter (3) < parameter (4) < catch-all (5), compared left to right, as ASP.NET's inbound precedence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .constraints import make_check


@dataclass
class Param:
    name: str
    checks: list = field(default_factory=list)
    optional: bool = False
    catch_all: bool = False
    default: str | None = None


def _split_param(body: str) -> Param:
    """`*name:c1:c2(arg)=default?` -> Param. ':' and '=' inside constraint parentheses are not separators."""
    catch_all = body.startswith("*")
    body = body.lstrip("*")
    optional = body.endswith("?")
    body = body[:-1] if optional else body
    parts, default, depth, cur = [], None, 0, ""
    for i, ch in enumerate(body):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0 and ch == "=":
            default = body[i + 1 :]
            break
        if depth == 0 and ch == ":":
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    name = parts[0]
    if not re.fullmatch(r"[^{}/?*=:]+", name):
        raise ValueError(f"bad route parameter {{{body}}}")
    optional = optional or catch_all or default is not None
    return Param(name, [make_check(c) for c in parts[1:]], optional, catch_all, default)


def _tokenize(template: str) -> list[list]:
    """Segments, each a list of literal strings and Params; `{{` / `}}` stand for literal braces."""
    segments: list[list] = []
    parts: list[str | Param] = []
    lit, i, n = "", 0, len(template)
    while i < n:
        ch = template[i]
        if template.startswith("{{", i) or template.startswith("}}", i):
            lit, i = lit + ch, i + 2
        elif ch == "{":
            j, body = i + 1, ""
            while j < n and not (template[j] == "}" and not template.startswith("}}", j)):
                step = 2 if template.startswith(("{{", "}}"), j) else 1
                body, j = body + template[j], j + step
            if j >= n:
                raise ValueError(f"unclosed '{{' in route {template!r}")
            if lit:
                parts.append(lit)
            parts.append(_split_param(body))
            lit, i = "", j + 1
        elif ch == "/":
            segments.append(parts + ([lit] if lit else []))
            parts, lit, i = [], "", i + 1
        else:
            lit, i = lit + ch, i + 1
    segments.append(parts + ([lit] if lit else []))
    return [s for s in segments if s]


@dataclass
class Route:
    template: str
    methods: frozenset | None  # None: any method
    target: object = None

    def __post_init__(self):
        self.params: list[Param] = []
        rank, pattern = [], ""
        for seg in _tokenize(self.template.strip("/")):
            snippet = ""
            for part in seg:
                if isinstance(part, str):
                    snippet += re.escape(part)
                else:
                    snippet += f"(?P<p{len(self.params)}>{'.*' if part.catch_all else '[^/]+'})"
                    self.params.append(part)
            last = seg[-1]
            single = len(seg) == 1 and isinstance(last, Param)
            rank.append(
                1
                if all(isinstance(p, str) for p in seg)
                else 2
                if not single
                else 5
                if last.catch_all
                else 3
                if last.checks
                else 4
            )
            if single and last.optional:
                pattern += f"(?:/{snippet})?"
            else:
                pattern += "/" + snippet
        self.rank = tuple(rank)
        self.regex = re.compile(f"^{pattern}/?$", re.IGNORECASE | re.DOTALL)

    def match(self, path: str) -> dict | None:
        """Route values for `path` (no prefix, leading '/'), or None."""
        m = self.regex.match(path if path.startswith("/") else "/" + path)
        if not m:
            return None
        values = {}
        for i, param in enumerate(self.params):
            value = m.group(f"p{i}")
            if value is None or value == "":
                if param.default is not None:
                    values[param.name] = param.default
                continue
            if not all(check(value) for check in param.checks):
                return None
            values[param.name] = value
        return values


class Router:
    """Picks the most specific route that matches the path and allows the method."""

    def __init__(self, routes: list[Route], prefix: str = ""):
        self.prefix = prefix.strip("/")
        self.routes = sorted(routes, key=lambda r: (r.rank, r.template.lower()))

    def strip_prefix(self, path: str) -> str | None:
        if not self.prefix:
            return path
        head = "/" + self.prefix
        if path.lower() == head.lower() or path.lower().startswith(head.lower() + "/"):
            return path[len(head) :] or "/"
        return None

    def resolve(self, method: str, path: str):
        """(route, values) for a hit; (None, allowed_methods) when only the method is wrong; (None, None)."""
        rest = self.strip_prefix(path)
        if rest is None:
            return None, None
        allowed: set[str] = set()
        for route in self.routes:
            values = route.match(rest)
            if values is None:
                continue
            if route.methods is None or method.upper() in route.methods:
                return route, values
            allowed |= route.methods
        return None, (sorted(allowed) or None)
