"""EventBridge event pattern matching, as documented by AWS.

Moto ships a matcher, but it is an implementation detail that changes between
versions and has gaps (numeric comparisons accept booleans, ``anything-but``
semantics on missing fields and arrays, ...). The autoheal chain hinges on a
rule matching the lifecycle event, so we match with our own, small,
documented implementation of
https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns.html
and https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-pattern-operators.html:

* A pattern is a JSON object; every key in it must match (AND). A nested
  object descends into the event's object of the same key.
* A leaf is an array of matchers; the field matches if ANY matcher matches
  (OR). If the event's value is an array, the field matches if ANY element
  matches.
* Matchers: a literal (string, number, boolean, null; exact, case-sensitive,
  numbers compared numerically), ``{"prefix": s}``, ``{"suffix": s}`` (both
  also with ``{"equals-ignore-case": s}`` inside), ``{"equals-ignore-case": s}``,
  ``{"wildcard": "a*b"}``, ``{"anything-but": literal | [literals] |
  {"prefix"|"suffix"|"equals-ignore-case"|"wildcard": ...}}``,
  ``{"numeric": [op, n, (op, n)]}``, ``{"exists": true|false}``,
  ``{"cidr": "10.0.0.0/24"}``.
* ``"$or": [pattern, ...]`` matches if any sub-pattern matches.
* Only ``exists: false`` matches a missing field; ``exists`` only sees leaf
  values (an object is not a leaf, as on AWS).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

_MISSING = object()
_NUMERIC_OPS = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "=": lambda a, b: a == b,
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
}


def matches(pattern: dict[str, Any] | None, event: Any) -> bool:
    """True if ``event`` (a decoded JSON object) matches ``pattern``."""
    if not pattern:
        return True
    return _match_object(pattern, event if isinstance(event, dict) else {})


def _match_object(pattern: dict[str, Any], obj: dict[str, Any]) -> bool:
    for key, spec in pattern.items():
        if key == "$or":
            if not any(_match_object(p, obj) for p in spec):
                return False
            continue
        value = obj.get(key, _MISSING) if isinstance(obj, dict) else _MISSING
        if isinstance(spec, dict):
            if value is _MISSING:
                value = {}
            if isinstance(value, list):
                if not any(isinstance(v, dict) and _match_object(spec, v) for v in value):
                    return False
            elif not isinstance(value, dict) or not _match_object(spec, value):
                return False
        elif isinstance(spec, list):
            if not _match_leaf(spec, value):
                return False
        else:
            return False  # patterns must be objects or arrays (PutRule validates this)
    return True


def _match_leaf(matchers: list[Any], value: Any) -> bool:
    for matcher in matchers:
        if isinstance(matcher, dict) and "exists" in matcher:
            present = value is not _MISSING and not isinstance(value, dict)
            if isinstance(value, list) and not value:
                present = False
            if bool(matcher["exists"]) == present:
                return True
            continue
        if value is _MISSING or isinstance(value, dict):
            continue
        values = value if isinstance(value, list) else [value]
        if any(_match_one(matcher, v) for v in values):
            return True
    return False


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _literal_equal(lit: Any, v: Any) -> bool:
    if lit is None or v is None:
        return lit is None and v is None
    if isinstance(lit, bool) or isinstance(v, bool):
        return isinstance(lit, bool) and isinstance(v, bool) and lit == v
    if _is_number(lit) and _is_number(v):
        return float(lit) == float(v)
    if isinstance(lit, str) and isinstance(v, str):
        return lit == v
    return False


def _string_op(kind: str, arg: Any, v: Any) -> bool:
    if not isinstance(v, str):
        return False
    ignore_case = isinstance(arg, dict) and "equals-ignore-case" in arg
    if ignore_case:
        arg = arg["equals-ignore-case"]
    args = arg if isinstance(arg, list) else [arg]
    for a in args:
        if not isinstance(a, str):
            continue
        s, t = (v.lower(), a.lower()) if ignore_case else (v, a)
        if kind == "prefix" and s.startswith(t):
            return True
        if kind == "suffix" and s.endswith(t):
            return True
    return False


def _wildcard(pattern: str, v: Any) -> bool:
    if not isinstance(v, str) or not isinstance(pattern, str):
        return False
    regex = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "*\\":
            regex += re.escape(pattern[i + 1])
            i += 2
            continue
        regex += ".*" if c == "*" else re.escape(c)
        i += 1
    return re.fullmatch(regex, v, flags=re.DOTALL) is not None


def _match_one(matcher: Any, v: Any) -> bool:
    if not isinstance(matcher, dict):
        return _literal_equal(matcher, v)
    if len(matcher) != 1:
        return False
    (op, arg), = matcher.items()
    if op in ("prefix", "suffix"):
        return _string_op(op, arg, v)
    if op == "equals-ignore-case":
        args = arg if isinstance(arg, list) else [arg]
        return isinstance(v, str) and any(isinstance(a, str) and a.lower() == v.lower() for a in args)
    if op == "wildcard":
        args = arg if isinstance(arg, list) else [arg]
        return any(_wildcard(a, v) for a in args)
    if op == "numeric":
        if not _is_number(v) or not isinstance(arg, list) or len(arg) % 2:
            return False
        for i in range(0, len(arg), 2):
            fn = _NUMERIC_OPS.get(arg[i])
            if fn is None or not _is_number(arg[i + 1]) or not fn(float(v), float(arg[i + 1])):
                return False
        return True
    if op == "anything-but":
        if isinstance(arg, dict):
            return not _match_one(arg, v)
        args = arg if isinstance(arg, list) else [arg]
        return not any(_literal_equal(a, v) for a in args)
    if op == "cidr":
        try:
            return isinstance(v, str) and ipaddress.ip_address(v) in ipaddress.ip_network(arg, strict=False)
        except ValueError:
            return False
    return False
