"""An IAM policy evaluator for the subset of the policy language this project uses.

A pure library (no moto, no server state): ``evaluate(identity, boundary, request)`` says
whether a principal whose identity-based policies are ``identity`` and whose permissions
boundary is ``boundary`` (``None``: it has none) may make ``request``, and which statement
decided. ``iam_context`` builds requests from real calls; ``iam_enforce`` answers a
denied call as the service would.

**What it proves, and what not.** It implements our reading of AWS's documentation, not
AWS: agreement with it shows that our policies do what the documentation says they do,
for the request contexts ``iam_context`` builds from the Service Authorization Reference.
It cannot show that AWS builds the same contexts, nor find a difference between the
documentation and AWS. The pages it follows (IAM User Guide unless named):

* "Policy evaluation logic" and "Determining whether a request is allowed or denied within
  an account" (reference_policies_evaluation-logic.html): an explicit Deny in any policy
  wins; otherwise the identity-based policies must allow, and when the principal has a
  permissions boundary, the boundary must allow too ("Permissions boundaries for IAM
  entities", access_policies_boundaries.html: the effective permissions are the
  intersection).
* "IAM JSON policy elements: Action / NotAction / Resource / NotResource": actions are
  case-insensitive and take ``*`` and ``?``; resource ARNs are case-sensitive, matched per
  colon-separated segment, ``*`` and ``?`` inside any segment (the sixth, the resource,
  may itself contain colons and slashes, which ``*`` spans). A request whose action
  supports no resource-level permission is made on resource ``*``, so only ``"*"``
  matches it.
* A call on several resources (AttachVolume: the instance and the volume) is authorized
  resource by resource: every resource must be allowed, each with its own resource
  condition keys ("Actions, resources, and condition keys for AWS services": each resource
  type of an action has its own row of condition keys).
* "IAM JSON policy elements: Condition operators": String*, Numeric*, Bool, Arn*, Null,
  the ``...IfExists`` suffix, and ``ForAnyValue:`` / ``ForAllValues:`` ("Single-valued vs.
  multivalued context keys"). Several values for one key: any may match (OR); several keys
  or operators in one Condition: all must match (AND). A key missing from the request
  context makes a positive operator false and a negated one (``StringNotEquals``,
  ``ArnNotLike``...) true; ``...IfExists`` makes it true; ``ForAllValues`` with a missing
  or empty key is true, ``ForAnyValue`` false. Condition key names are case-insensitive
  (we lower-case the whole key, tag-key part included); String values are case-sensitive
  except with the IgnoreCase operators; Bool compares ``true``/``false`` case-insensitively.
* "IAM policy elements: Variables and tags": ``${key}`` in Resource and in String/Arn
  condition values is the request context's value (``${aws:PrincipalAccount}``), with
  ``${key, 'default'}``; a variable whose key is missing makes that element not match;
  ``${*}``, ``${?}``, ``${$}`` are the literal characters.

Not supported (``UnsupportedPolicy`` is raised rather than guessing): Date*, IpAddress,
Binary operators, a Principal/NotPrincipal in an identity policy, policy version
2008-10-17 (no variables), a multivalued key under a single-valued operator is treated as
``ForAnyValue`` (the documentation calls that unpredictable). Not modelled at all:
resource-based policies (key policies, bucket policies), SCPs/RCPs, session policies, and
the condition keys a request does not carry here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

ALLOW = "Allow"
EXPLICIT_DENY = "ExplicitDeny"
IMPLICIT_DENY = "ImplicitDeny"

IDENTITY = "identity-based policy"
BOUNDARY = "permissions boundary"


class UnsupportedPolicy(ValueError):
    """A policy uses something this evaluator does not implement."""


@dataclass(frozen=True)
class Resource:
    """One resource of a request: its ARN (``*`` when the action takes none) and the
    condition keys that belong to it (``aws:ResourceTag/...``, ``ec2:VolumeID``...)."""

    arn: str
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    """One authorization: an action on its resources, with the request-wide keys."""

    action: str  # "ec2:AttachVolume"
    resources: Sequence[Resource]
    context: Mapping[str, Any] = field(default_factory=dict)
    # Why this authorization happens, for messages ("EC2 on the caller's behalf").
    note: str = ""
    # Made by the service after it accepted the call (EBS using a volume's KMS key while it
    # creates the volume): a denial does not refuse the call (see iam_enforce).
    after_call: bool = False


@dataclass(frozen=True)
class Policy:
    """A policy document with the name messages show (inline name or managed ARN)."""

    name: str
    document: Mapping[str, Any]


@dataclass(frozen=True)
class StatementRef:
    policy: str
    index: int
    sid: str | None

    def __str__(self) -> str:
        sid = f" ({self.sid})" if self.sid else ""
        return f"{self.policy} statement {self.index}{sid}"


@dataclass(frozen=True)
class Decision:
    decision: str  # ALLOW | EXPLICIT_DENY | IMPLICIT_DENY
    action: str
    # The resource the decision is about: the denied one, or None when allowed.
    resource: str | None = None
    # Which kind of policy denied: IDENTITY or BOUNDARY (None when allowed).
    policy_type: str | None = None
    # The deciding statement: the Deny that matched; for an Allow, the allowing identity
    # statement of the last resource. None for an implicit deny.
    statement: StatementRef | None = None
    note: str = ""
    # For an Allow: (resource, allowing identity statement) for each resource.
    allowed_by: tuple[tuple[str, StatementRef], ...] = ()

    @property
    def allowed(self) -> bool:
        return self.decision == ALLOW

    def reason(self) -> str:
        """The tail of AWS's access-denied message ("Troubleshoot access denied error
        messages"): "because no identity-based policy allows the ec2:AttachVolume action"
        or "with an explicit deny in a permissions boundary"."""
        if self.decision == EXPLICIT_DENY:
            article = "an" if self.policy_type == IDENTITY else "a"
            return f"with an explicit deny in {article} {self.policy_type}"
        if self.decision == IMPLICIT_DENY:
            return f"because no {self.policy_type} allows the {self.action} action"
        return ""

    def describe(self) -> str:
        where = f" on {self.resource}" if self.resource else ""
        by = f" by {self.statement}" if self.statement else ""
        note = f" [{self.note}]" if self.note else ""
        return f"{self.decision} {self.action}{where}{by}{note}"


# -- evaluation -----------------------------------------------------------------------------

PolicyLike = Policy | Mapping[str, Any] | str | tuple[str, Any]


def evaluate(identity: Iterable[PolicyLike], boundary: Iterable[PolicyLike] | None, request: Request) -> Decision:
    """The decision on one request. ``identity``: the principal's identity-based policies
    (inline and attached); ``boundary``: its permissions boundary (a list of one policy),
    or None when it has none. Every resource must be allowed; an explicit Deny on any
    resource decides first."""
    ids = [_as_policy(p, f"identity policy {i}") for i, p in enumerate(identity)]
    bounds = None if boundary is None else [_as_policy(p, f"boundary {i}") for i, p in enumerate(boundary)]
    if not request.resources:
        raise ValueError(f"request for {request.action} names no resource")
    implicit: Decision | None = None
    allowed_by: list[tuple[str, StatementRef]] = []
    for resource in request.resources:
        ctx = _context(request.context, resource.context)
        deny, allow = _match(ids, request.action, resource.arn, ctx)
        if deny is not None:
            return Decision(EXPLICIT_DENY, request.action, resource.arn, IDENTITY, deny, request.note)
        bdeny, ballow = (None, None) if bounds is None else _match(bounds, request.action, resource.arn, ctx)
        if bdeny is not None:
            return Decision(EXPLICIT_DENY, request.action, resource.arn, BOUNDARY, bdeny, request.note)
        if implicit is None:
            if allow is None:
                implicit = Decision(IMPLICIT_DENY, request.action, resource.arn, IDENTITY, None, request.note)
            elif bounds is not None and ballow is None:
                implicit = Decision(IMPLICIT_DENY, request.action, resource.arn, BOUNDARY, None, request.note)
        if allow is not None:
            allowed_by.append((resource.arn, allow))
    if implicit is not None:
        return implicit
    last = allowed_by[-1][1] if allowed_by else None
    return Decision(ALLOW, request.action, None, None, last, request.note, tuple(allowed_by))


def evaluate_all(identity: Iterable[PolicyLike], boundary: Iterable[PolicyLike] | None,
                 requests: Iterable[Request]) -> Decision | None:
    """The first denial among ``requests`` (a call authorized as several actions), or the
    last Allow; None for no requests."""
    identity = list(identity)
    boundary = None if boundary is None else list(boundary)
    last = None
    for request in requests:
        last = evaluate(identity, boundary, request)
        if not last.allowed:
            return last
    return last


def _as_policy(p: PolicyLike, default_name: str) -> Policy:
    if isinstance(p, Policy):
        return Policy(p.name, _as_document(p.document))
    if isinstance(p, tuple):
        return Policy(str(p[0]), _as_document(p[1]))
    return Policy(default_name, _as_document(p))


def _as_document(doc: Any) -> Mapping[str, Any]:
    if isinstance(doc, (str, bytes)):
        doc = json.loads(doc)
    if not isinstance(doc, Mapping):
        raise UnsupportedPolicy(f"a policy document must be a JSON object, got {type(doc).__name__}")
    version = doc.get("Version")
    if version not in (None, "2012-10-17"):
        raise UnsupportedPolicy(f"policy Version {version!r}: only 2012-10-17 is supported")
    return doc


def _statements(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    st = doc.get("Statement", [])
    if isinstance(st, Mapping):
        return [st]
    return list(st)


def _context(request_ctx: Mapping[str, Any], resource_ctx: Mapping[str, Any]) -> dict[str, Any]:
    out = {k.lower(): v for k, v in request_ctx.items()}
    out.update({k.lower(): v for k, v in resource_ctx.items()})
    return out


def _match(policies: list[Policy], action: str, resource: str,
           ctx: Mapping[str, Any]) -> tuple[StatementRef | None, StatementRef | None]:
    """(first matching Deny, first matching Allow) among the policies' statements."""
    deny = allow = None
    for policy in policies:
        for i, st in enumerate(_statements(policy.document)):
            if not statement_applies(st, action, resource, ctx):
                continue
            ref = StatementRef(policy.name, i, st.get("Sid"))
            effect = st.get("Effect")
            if effect == "Deny":
                if deny is None:
                    deny = ref
            elif effect == "Allow":
                if allow is None:
                    allow = ref
            else:
                raise UnsupportedPolicy(f"{ref}: Effect {effect!r}")
    return deny, allow


def statement_applies(st: Mapping[str, Any], action: str, resource: str, ctx: Mapping[str, Any]) -> bool:
    """Does the statement apply to this action on this resource in this context?"""
    for element in ("Principal", "NotPrincipal"):
        if element in st:
            raise UnsupportedPolicy(f"{element} in an identity-based policy or boundary")
    if "Action" in st:
        if not any(action_matches(p, action) for p in _list(st["Action"])):
            return False
    elif "NotAction" in st:
        if any(action_matches(p, action) for p in _list(st["NotAction"])):
            return False
    else:
        raise UnsupportedPolicy("a statement without Action or NotAction")
    if "Resource" in st:
        if not any(arn_matches(p, resource, ctx) for p in _list(st["Resource"])):
            return False
    elif "NotResource" in st:
        if any(arn_matches(p, resource, ctx) for p in _list(st["NotResource"])):
            return False
    else:
        raise UnsupportedPolicy("a statement without Resource or NotResource")
    return conditions_hold(st.get("Condition") or {}, ctx)


def _list(v: Any) -> list[Any]:
    return list(v) if isinstance(v, (list, tuple)) else [v]


# -- actions and resources ------------------------------------------------------------------


def action_matches(pattern: str, action: str) -> bool:
    """Case-insensitive, ``*`` and ``?`` (IAM JSON policy elements: Action)."""
    regex = _glob_regex(pattern.lower(), {}, allow_variables=False)
    return regex is not None and re.fullmatch(regex, action.lower()) is not None


def arn_matches(pattern: str, arn: str, ctx: Mapping[str, Any]) -> bool:
    """ARN matching as Resource and the Arn* operators do it: segment by segment,
    case-sensitive, wildcards inside segments, policy variables substituted."""
    if pattern == "*":
        return True
    psegs = _split_arn(pattern)
    vsegs = arn.split(":", 5)
    if len(psegs) < 6:
        regex = _glob_regex(pattern, ctx)
        return regex is not None and re.fullmatch(regex, arn, re.DOTALL) is not None
    if len(vsegs) < 6:
        return False
    for p, v in zip(psegs, vsegs):
        regex = _glob_regex(p, ctx)
        if regex is None or re.fullmatch(regex, v, re.DOTALL) is None:
            return False
    return True


def _split_arn(pattern: str) -> list[str]:
    """Split on the first five colons that are not inside ``${...}``."""
    segs: list[str] = []
    cur = ""
    depth = 0
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("${", i):
            depth += 1
            cur += "${"
            i += 2
            continue
        if c == "}" and depth:
            depth -= 1
        if c == ":" and depth == 0 and len(segs) < 5:
            segs.append(cur)
            cur = ""
        else:
            cur += c
        i += 1
    segs.append(cur)
    return segs


_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def substitute(value: str, ctx: Mapping[str, Any]) -> str | None:
    """A value with its policy variables replaced (no wildcards), or None when a variable's
    key is missing from the context and has no default."""
    out = []
    for kind, text in _tokens(value, ctx):
        if kind is None:
            return None
        out.append(text)
    return "".join(out)


def _tokens(value: str, ctx: Mapping[str, Any]) -> list[tuple[str | None, str]]:
    """("lit"|"wild"|"var", text) pieces of a pattern; (None, "") when a variable cannot
    be resolved."""
    tokens: list[tuple[str | None, str]] = []
    pos = 0
    for m in _VARIABLE.finditer(value):
        for c in value[pos:m.start()]:
            tokens.append(("wild", c) if c in "*?" else ("lit", c))
        pos = m.end()
        inner = m.group(1).strip()
        if inner in ("*", "?", "$"):
            tokens.append(("lit", inner))
            continue
        default = None
        dm = re.fullmatch(r"([^,]+?)\s*,\s*'([^']*)'", inner)
        if dm:
            inner, default = dm.group(1).strip(), dm.group(2)
        found = ctx.get(inner.lower())
        if isinstance(found, (list, tuple)):
            found = found[0] if len(found) == 1 else None  # multivalued keys cannot be variables
        if found is None:
            if default is None:
                return [(None, "")]
            found = default
        tokens.append(("var", _text(found)))
    for c in value[pos:]:
        tokens.append(("wild", c) if c in "*?" else ("lit", c))
    return tokens


def _glob_regex(pattern: str, ctx: Mapping[str, Any], allow_variables: bool = True) -> str | None:
    if not allow_variables:
        return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    parts = []
    for kind, text in _tokens(pattern, ctx):
        if kind is None:
            return None
        if kind == "wild":
            parts.append(".*" if text == "*" else ".")
        else:
            parts.append(re.escape(text))
    return "".join(parts)


# -- conditions -----------------------------------------------------------------------------

_STRING_OPS = {
    "stringequals": ("eq", False, False),
    "stringnotequals": ("eq", True, False),
    "stringequalsignorecase": ("eq", False, True),
    "stringnotequalsignorecase": ("eq", True, True),
    "stringlike": ("like", False, False),
    "stringnotlike": ("like", True, False),
}
_ARN_OPS = {
    "arnequals": False,
    "arnlike": False,
    "arnnotequals": True,
    "arnnotlike": True,
}
_NUMERIC_OPS = {
    "numericequals": (lambda a, b: a == b, False),
    "numericnotequals": (lambda a, b: a == b, True),
    "numericlessthan": (lambda a, b: a < b, False),
    "numericlessthanequals": (lambda a, b: a <= b, False),
    "numericgreaterthan": (lambda a, b: a > b, False),
    "numericgreaterthanequals": (lambda a, b: a >= b, False),
}


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def conditions_hold(condition: Mapping[str, Any], ctx: Mapping[str, Any]) -> bool:
    """Every operator block and every key in it must hold (AND); values of a key are ORed."""
    for operator, block in condition.items():
        if not isinstance(block, Mapping):
            raise UnsupportedPolicy(f"condition {operator}: expected an object of keys")
        for key, values in block.items():
            if not condition_holds(operator, key, _list(values), ctx):
                return False
    return True


def condition_holds(operator: str, key: str, values: list[Any], ctx: Mapping[str, Any]) -> bool:
    op = operator
    qualifier = None
    if ":" in op:
        qualifier, op = op.split(":", 1)
        if qualifier.lower() not in ("foranyvalue", "forallvalues"):
            raise UnsupportedPolicy(f"condition operator qualifier {qualifier!r}")
        qualifier = qualifier.lower()
    base = op.lower()
    if_exists = base.endswith("ifexists")
    if if_exists:
        base = base[: -len("ifexists")]
    present = key.lower() in ctx
    actual = ctx.get(key.lower())

    if base == "null":
        if qualifier or if_exists:
            raise UnsupportedPolicy(f"{operator}: Null takes no qualifier")
        missing = actual is None or actual == [] or actual == ()
        return any((_text(v).lower() == "true") == missing for v in values)

    single = _single_matcher(base, operator, values, ctx)
    negated = _is_negated(base)
    if not present or actual is None:
        if qualifier == "forallvalues":
            return True
        if qualifier == "foranyvalue":
            return False
        return True if (if_exists or negated) else False
    items = list(actual) if isinstance(actual, (list, tuple, set)) else [actual]
    if qualifier == "forallvalues":
        return all(single(v) for v in items)
    if qualifier == "foranyvalue":
        return any(single(v) for v in items)
    if len(items) == 0:
        return True if (if_exists or negated) else False
    # A multivalued key under a single-valued operator: as ForAnyValue (see module doc).
    return any(single(v) for v in items)


def _is_negated(base: str) -> bool:
    if base in _STRING_OPS:
        return _STRING_OPS[base][1]
    if base in _ARN_OPS:
        return _ARN_OPS[base]
    if base in _NUMERIC_OPS:
        return _NUMERIC_OPS[base][1]
    return False


def _single_matcher(base: str, operator: str, values: list[Any], ctx: Mapping[str, Any]) -> Any:
    """A predicate on one context value: does it satisfy ``operator`` against ``values``?"""
    if base in _STRING_OPS:
        kind, negated, ignore_case = _STRING_OPS[base]
        if kind == "eq":
            subs = [substitute(_text(v), ctx) for v in values]
            wanted = [s.lower() if ignore_case else s for s in subs if s is not None]

            def eq(v: Any) -> bool:
                t = _text(v)
                hit = (t.lower() if ignore_case else t) in wanted
                return hit != negated

            return eq
        regexes = [r for r in (_glob_regex(_text(v), ctx) for v in values) if r is not None]

        def like(v: Any) -> bool:
            hit = any(re.fullmatch(r, _text(v), re.DOTALL) for r in regexes)
            return hit != negated

        return like
    if base in _ARN_OPS:
        negated = _ARN_OPS[base]

        def arn(v: Any) -> bool:
            hit = any(arn_matches(_text(p), _text(v), ctx) for p in values)
            return hit != negated

        return arn
    if base == "bool":
        wanted_b = {_text(v).lower() for v in values}

        def boolean(v: Any) -> bool:
            return _text(v).lower() in wanted_b

        return boolean
    if base in _NUMERIC_OPS:
        compare, negated = _NUMERIC_OPS[base]
        try:
            numbers = [float(_text(v)) for v in values]
        except ValueError as exc:
            raise UnsupportedPolicy(f"{operator}: {exc}") from None

        def numeric(v: Any) -> bool:
            try:
                x = float(_text(v))
            except ValueError:
                return False
            hit = any(compare(x, n) for n in numbers)
            return hit != negated

        return numeric
    raise UnsupportedPolicy(f"condition operator {operator!r} is not supported")
