"""The layout `terraform fmt` writes, checked without the terraform CLI (which cannot be installed from a
package registry): two spaces per open bracket, the `=` of consecutive one-line attributes aligned one
space after the longest name, exactly `name = value` for an attribute whose value spans lines, one space
after `=`, no trailing whitespace, one newline at the end. Heredoc bodies are left as they are.

terraform fmt's rules that this follows (checked against terraform 1.x on the samples in
tests/infra/test_parse.py): a comment line, a blank line, a block header, a closing bracket or an
attribute whose value spans lines ends a run of aligned attributes; a heredoc attribute belongs to the run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ATTRIBUTE = re.compile(r'^(\s*)("[^"]*"|[A-Za-z_][A-Za-z0-9_-]*)(\s*)=(?![=>])(\s*)(.*)$')
_HEREDOC = re.compile(r"<<-?([A-Za-z_][A-Za-z0-9_]*)\s*$")
_OPEN, _CLOSE = "{[(", "}])"


@dataclass
class _Line:
    number: int
    text: str
    level: int  # its indentation level, as terraform fmt counts it
    opens: int  # net brackets it leaves open (negative: it closes more than it opens)
    heredoc: str | None  # the marker whose body follows


def _scan(text: str) -> tuple[int, str | None]:
    """(net depth change of the line's code, outside strings and comments; its heredoc marker)."""
    code, i, in_string = [], 0, False
    while i < len(text):
        ch = text[i]
        if in_string:
            if ch == "\\":
                i += 2
                continue
            if ch == '"':
                in_string = False
            elif text.startswith("${", i) or text.startswith("%{", i):
                code.append("{")  # an interpolation's braces nest like any other
                i += 2
                depth, j = 1, i
                while j < len(text) and depth:
                    depth += {"{": 1, "}": -1}.get(text[j], 0)
                    j += 1
                code.append("}")
                i = j
                continue
            i += 1
            continue
        if ch == '"':
            in_string = True
            code.append('""')
        elif ch == "#" or text.startswith("//", i):
            break
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = len(text) if end < 0 else end + 2
            continue
        else:
            code.append(ch)
        i += 1
    stripped = "".join(code)
    net = sum(1 for c in stripped if c in _OPEN) - sum(1 for c in stripped if c in _CLOSE)
    marker = _HEREDOC.search(stripped)
    return net, marker.group(1) if marker else None


def problems(source: str, name: str = "<tf>") -> list[str]:
    """Where `source` differs from terraform fmt's layout: "file:line: what"."""
    out: list[str] = []
    if source and not source.endswith("\n") or source.endswith("\n\n"):
        out.append(f"{name}: must end with exactly one newline")
    raw = source.split("\n")
    lines: list[_Line] = []
    # A line that opens brackets adds one level (however many it opens); a line that closes more than it
    # opens is itself indented at the level it returns to (so `"b"]` under `a = ["a",` is not indented).
    stack: list[int] = []
    i = 0
    while i < len(raw):
        text = raw[i]
        if text != text.rstrip():
            out.append(f"{name}:{i + 1}: trailing whitespace")
        net, marker = _scan(text)
        closing = -net
        while closing > 0 and stack:
            if stack[-1] <= closing:
                closing -= stack.pop()
            else:
                stack[-1] -= closing
                closing = 0
        lines.append(_Line(i + 1, text, len(stack), net, marker))
        if net > 0:
            stack.append(net)
        i += 1
        if marker:  # skip the body, up to the line that is the marker alone
            while i < len(raw) and raw[i].strip() != marker:
                i += 1
            i += 1
    for line in lines:
        if not line.text.strip():
            continue
        want = 2 * line.level
        got = len(line.text) - len(line.text.lstrip(" "))
        if got != want or line.text.startswith("\t"):
            out.append(f"{name}:{line.number}: indented {got} spaces, terraform fmt indents {want}")
    run: list[tuple[_Line, re.Match]] = []

    def close_run() -> None:
        if run:
            column = max(len(m.group(1)) + len(m.group(2)) for _, m in run) + 1
            for line, m in run:
                at = len(m.group(1)) + len(m.group(2)) + len(m.group(3))
                if at != column:
                    out.append(f"{name}:{line.number}: `=` at column {at + 1}, aligned it is at {column + 1}")
        run.clear()

    for line in lines:
        m = _ATTRIBUTE.match(line.text)
        if m and m.group(4) != " " and m.group(5):
            out.append(f"{name}:{line.number}: one space after `=`")
        if m and (line.opens == 0 or line.heredoc):
            run.append((line, m))
            continue
        close_run()
        if m and line.opens > 0 and m.group(3) != " ":
            out.append(f"{name}:{line.number}: `{m.group(2)} =` (a value over several lines is not aligned)")
    close_run()
    return out
