"""Who is calling what: service, region, AWS operation name and key parameters.

Every request to the server is classified once, before moto sees it, so that
call recording, fault injection and the transient effects all speak AWS's own
vocabulary:

* service and region come from the SigV4 ``Authorization`` header's credential
  scope (``.../REGION/SERVICE/aws4_request``), the same thing AWS routes on;
* the operation is the Query ``Action`` (ec2, autoscaling, iam, sts), the
  ``X-Amz-Target`` suffix for JSON services (``AWSEvents.PutRule`` ->
  ``PutRule``; a CloudWatch RPC v2 CBOR call arrives here already rewritten into its
  JSON twin by ``cbor_protocol``), or, for REST services such as Lambda, the operation whose
  botocore ``requestUri`` template matches the method and path. Deriving that
  table from botocore's service model (instead of writing it by hand) keeps it
  complete and right for every Lambda operation;
* "key parameters" are the identifiers a test wants to see or match on: ids,
  names, ARNs, tokens and a few others (see ``_KEY_PARAM``), never payloads.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

# Wire protocol per service (signing name); decides the error format too.
PROTOCOLS = {
    "ec2": "ec2",
    "autoscaling": "query",
    "iam": "query",
    "sts": "query",
    "elasticloadbalancing": "query",
    "sns": "query",
    "cloudformation": "query",
    "events": "json",
    "logs": "json",
    "ssm": "json",
    "kms": "json",
    "sqs": "json",
    "lambda": "rest-json",
}

# Names of parameters worth recording / matching: identifiers, not payloads.
_KEY_PARAM = re.compile(
    r"(Id|Ids|Name|Names|Arn|ARN|ARNs|Arns|Token|Qualifier|Device|Result|"
    r"Transition|Capacity|PublicIp|Rule|Resource|InvocationType|Size|Zone|"
    r"Type|State|Key|Keys)$"
)
_IGNORED = {"Action", "Version", "NextToken", "nextToken", "MaxResults", "MaxRecords", "Marker", "ClientToken"}
_MAX_VALUE = 200


@dataclass
class RequestInfo:
    service: str
    region: str
    operation: str
    protocol: str
    params: dict[str, Any] = field(default_factory=dict)  # key parameters only
    all_params: dict[str, Any] = field(default_factory=dict)  # flattened, for lookups
    path_params: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    # The SigV4 credential's access key id: who signed the call (CloudTrail's userIdentity).
    access_key_id: str | None = None
    # Set by IAM evaluation (iam_enforce) when an authorization the service makes on the
    # caller's behalf after accepting the call is denied: why, for the patch that acts on it.
    deferred_denial: str | None = None

    def get(self, name: str, default: Any = None) -> Any:
        for source in (self.path_params, self.all_params):
            if name in source:
                return source[name]
        return default


def credential_scope(environ: dict[str, Any]) -> tuple[str | None, str | None]:
    """(region, service) from a SigV4 Authorization header, or (None, None)."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    m = re.search(r"Credential=([^,\s]+)", auth)
    if not m:
        return None, None
    parts = m.group(1).split("/")
    if len(parts) >= 5:
        return parts[-3], parts[-2].lower()
    return None, None


def access_key_id(environ: dict[str, Any]) -> str | None:
    """The access key id of a SigV4 Authorization header's credential, or None."""
    m = re.search(r"Credential=([^/,\s]+)/", environ.get("HTTP_AUTHORIZATION", ""))
    return m.group(1) if m else None


def classify(environ: dict[str, Any], body: bytes, default_region: str) -> RequestInfo:
    region, service = credential_scope(environ)
    method = environ.get("REQUEST_METHOD", "GET").upper()
    path = environ.get("PATH_INFO", "") or "/"
    query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    content_type = environ.get("CONTENT_TYPE", "")

    form: dict[str, str] = {}
    if "x-www-form-urlencoded" in content_type and body:
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    form_all = {**query, **form}

    if service is None:
        # Unsigned request: guess like moto does (Action -> query, Target -> json).
        if target:
            service = target.split("_")[0].split(".")[0].lower()
        elif "Action" in form_all:
            service = "ec2"
        else:
            service = "unknown"
    service = {"eventbridge": "events", "graniteserviceversion20100801": "monitoring"}.get(service, service)
    region = region or default_region

    if target:
        protocol = "json"
    elif "Action" in form_all:
        protocol = PROTOCOLS.get(service, "query")
        if protocol not in ("ec2", "query"):
            protocol = "query"
    else:
        protocol = PROTOCOLS.get(service, "rest-json")

    info = RequestInfo(
        service=service, region=region, operation="Unknown", protocol=protocol, query=query, body=body,
        access_key_id=access_key_id(environ),
    )

    if target:
        info.operation = target.rsplit(".", 1)[-1]
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            data = {}
        if isinstance(data, dict):
            info.all_params = {k: v for k, v in data.items()}
            info.params = _key_params(_flatten_json(data))
    elif "Action" in form_all:
        info.operation = form_all["Action"]
        info.all_params = _unflatten_query(form_all)
        info.params = _key_params(info.all_params)
    else:
        op, path_params = rest_operation(service, method, path, query)
        info.operation = op or f"{method} {path}"
        info.path_params = path_params
        data: Any = {}
        # An Invoke body is the function's payload, not parameters.
        if op != "Invoke" and body and ("json" in content_type or body[:1] == b"{"):
            try:
                data = json.loads(body)
            except ValueError:
                data = {}
        if isinstance(data, dict):
            info.all_params = {k: v for k, v in data.items()}
        flat = {**_flatten_json(data if isinstance(data, dict) else {}), **query, **path_params}
        info.params = _key_params(flat)
        if op == "Invoke":
            invocation_type = environ.get("HTTP_X_AMZ_INVOCATION_TYPE", "RequestResponse")
            info.params["InvocationType"] = invocation_type
            info.all_params["InvocationType"] = invocation_type
    return info


def _unflatten_query(form: dict[str, str]) -> dict[str, Any]:
    """Query params with list members folded: ``InstanceId.1`` and
    ``InstanceIds.member.1`` become ``InstanceId``/``InstanceIds`` lists."""
    out: dict[str, Any] = {}
    for key, value in form.items():
        m = re.match(r"^([A-Za-z0-9]+)(?:\.member)?\.(\d+)$", key)
        if m:
            out.setdefault(m.group(1), [])
            if isinstance(out[m.group(1)], list):
                out[m.group(1)].append(value)
        else:
            out[key] = value
    return out


def _flatten_json(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, (str, int, float, bool)) or value is None:
            out[prefix + key] = value
        elif isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
            out[prefix + key] = value
    return out


def _key_params(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key in _IGNORED or not _KEY_PARAM.search(key):
            continue
        if isinstance(value, str) and len(value) > _MAX_VALUE:
            value = value[:_MAX_VALUE] + "..."
        out[key] = value
    return out


@functools.lru_cache(maxsize=None)
def _rest_table(service: str) -> list[tuple[str, re.Pattern[str], dict[str, str], int, str]]:
    import botocore.session

    try:
        model = botocore.session.get_session().get_service_model(service)
    except Exception:
        return []
    if model.protocol not in ("rest-json", "rest-xml"):
        return []
    table = []
    for op in model.operation_names:
        http = model.operation_model(op).http
        uri = http["requestUri"]
        path, _, q = uri.partition("?")
        required_query = dict(parse_qsl(q, keep_blank_values=True)) if q else {}
        regex = ""
        literal_len = 0
        for piece in re.split(r"(\{[^}]+\})", path.rstrip("/")):
            if piece.startswith("{"):
                name = piece[1:-1]
                if name.endswith("+"):
                    regex += f"(?P<{name[:-1]}>.+)"
                else:
                    regex += f"(?P<{name}>[^/]+)"
            else:
                regex += re.escape(piece)
                literal_len += len(piece)
        pattern = re.compile("^" + regex + "/?$")
        # More literal text and query constraints = more specific.
        table.append((http["method"].upper(), pattern, required_query, literal_len * 10 + len(required_query), op))
    table.sort(key=lambda row: -row[3])
    return table


def rest_operation(service: str, method: str, path: str, query: dict[str, str]) -> tuple[str | None, dict[str, str]]:
    for m, pattern, required_query, _, op in _rest_table(service):
        if m != method:
            continue
        match = pattern.match(path)
        if not match:
            continue
        if any(k not in query or (v and query[k] != v) for k, v in required_query.items()):
            continue
        return op, {k: unquote(v) for k, v in match.groupdict().items()}
    return None, {}
