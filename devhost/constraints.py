"""Route constraints (`{id:int}`, `{g:guid}`, `{n:int:range(1,9)}`, `{v:regex(^a+$)}`) as predicates."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)


def _integer(bounds):
    def check(value: str) -> bool:
        if not re.fullmatch(r"[+-]?\d+", value.strip()):
            return False
        return bounds[0] <= int(value) <= bounds[1]

    return check


def _number(value: str) -> bool:
    try:
        float(value)
        return re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", value.strip()) is not None
    except ValueError:
        return False


def _guid(value: str) -> bool:
    try:
        uuid.UUID(value)
        return re.fullmatch(r"[{(]?[0-9a-fA-F-]{32,36}[})]?", value) is not None
    except ValueError:
        return False


def _datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
        return True
    except ValueError:
        return False


SIMPLE = {
    "int": _integer(INT32),
    "long": _integer(INT64),
    "float": _number,
    "double": _number,
    "decimal": _number,
    "bool": lambda v: v.lower() in ("true", "false"),
    "guid": _guid,
    "datetime": _datetime,
    "alpha": lambda v: re.fullmatch(r"[a-zA-Z]+", v) is not None,
    "required": lambda v: v != "",
    "nonfile": lambda v: "." not in v.rsplit("/", 1)[-1],
    "file": lambda v: "." in v.rsplit("/", 1)[-1],
}


def _ints(args: str) -> list[int]:
    return [int(a.strip()) for a in args.split(",")]


def _with_args(name: str, args: str):
    if name == "regex":
        rx = re.compile(args, re.IGNORECASE)
        return lambda v: rx.search(v) is not None
    nums = _ints(args)

    def num(v):
        return int(v) if _integer(INT64)(v) else None

    if name == "min":
        return lambda v: num(v) is not None and num(v) >= nums[0]
    if name == "max":
        return lambda v: num(v) is not None and num(v) <= nums[0]
    if name == "range":
        return lambda v: num(v) is not None and nums[0] <= num(v) <= nums[1]
    if name == "minlength":
        return lambda v: len(v) >= nums[0]
    if name == "maxlength":
        return lambda v: len(v) <= nums[0]
    if name == "length":
        return (lambda v: len(v) == nums[0]) if len(nums) == 1 else (lambda v: nums[0] <= len(v) <= nums[1])
    raise ValueError(f"unknown route constraint {name}({args})")


def make_check(spec: str):
    """A predicate for one constraint spec such as `int`, `min(3)` or `regex(^\\d+$)`."""
    m = re.fullmatch(r"(\w+)(?:\((.*)\))?", spec.strip(), re.DOTALL)
    if not m:
        raise ValueError(f"bad route constraint {spec!r}")
    name, args = m.group(1).lower(), m.group(2)
    if args is None:
        if name not in SIMPLE:
            raise ValueError(f"unknown route constraint {spec!r}")
        return SIMPLE[name]
    return _with_args(name, args)
