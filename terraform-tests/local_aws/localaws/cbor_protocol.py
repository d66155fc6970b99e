"""CloudWatch's Smithy RPC v2 CBOR protocol, translated to and from awsJson1_0 for moto.

CloudWatch serves three protocols (botocore's model lists ``smithy-rpc-v2-cbor``, ``json``,
``query``); the AWS SDK for Rust (aws-sdk-cloudwatch 1.140, what the provider uses) speaks
only the first. moto 5.2.5 speaks the other two. A CBOR request (Smithy 2.0 spec,
"RPC v2 CBOR protocol"):

* ``POST /service/GraniteServiceVersion20100801/operation/<Operation>`` with
  ``smithy-protocol: rpc-v2-cbor`` (required by the spec; it is what this module recognises,
  along with the path), ``Content-Type: application/cbor`` (botocore leaves it out with an empty body),
  ``Accept: application/cbor``, SigV4 scope ``.../monitoring/aws4_request``, and, for this
  ``awsQueryCompatible`` service, ``x-amzn-query-mode: true``;
* a CBOR (RFC 8949) map of the input's members: timestamps are tag 1 with epoch seconds
  (integer or float), blobs byte strings, the rest as JSON would have them.

``CborCall.to_json_request`` turns it, in the WSGI environ, into the equivalent awsJson1_0
request (``X-Amz-Target: GraniteServiceVersion20100801.<Operation>``,
``Content-Type: application/x-amz-json-1.0``, a JSON body with timestamps as epoch-second
numbers and blobs base64, as the JSON protocol has them), so that classification, IAM
evaluation, fault injection, the call log, localaws' own CloudWatch (``alarms``) and moto
all see a request they know. ``to_cbor_response`` turns the JSON answer back by walking the
operation's output shape in botocore's service model:

* success: the output structure's members as a CBOR map (timestamps as tag 1, blobs as byte
  strings, ``double``/``float`` members always as CBOR floats and ``integer``/``long`` as
  integers: the Rust SDK's decoder accepts nothing else); members the model does not know
  and ``null`` members are left out; an operation without output answers an empty body;
* error: a CBOR map ``{"__type": "com.amazonaws.cloudwatch#<ErrorShape>", "message": ...}``
  (plus the error shape's other members) with the same HTTP status and the
  ``x-amzn-query-error: <Query code>;<Sender|Receiver>`` header of awsQueryCompatible
  services, from which the SDKs take the error code. The Query code is the one the JSON
  answer carried in that header (moto's errors, IAM refusals), else the JSON ``__type``
  itself (an injected fault's ``error_code``, which is what the client is meant to see).

Every response carries ``smithy-protocol: rpc-v2-cbor`` and ``Content-Type:
application/cbor``. A body that is not a CBOR map, or a member of the wrong CBOR type, is
answered 400 ``SerializationException``; an operation CloudWatch does not have, 404
``UnknownOperationException``.

The codec is ``cbor2`` (PyPI, pinned in tools/requirements.in).
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import json
import math
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import cbor2

Response = tuple[int, list[tuple[str, str]], bytes]

# Smithy service shape name (the request path's service, botocore's ``targetPrefix``) ->
# (botocore service name, Smithy namespace of its shapes, as error ``__type`` names them).
SERVICES = {
    "GraniteServiceVersion20100801": ("cloudwatch", "com.amazonaws.cloudwatch"),
}

_PATH = re.compile(r"^/service/([^/]+)/operation/([^/]+)$")
CBOR_CONTENT_TYPE = "application/cbor"


class SerializationError(ValueError):
    """The request body does not match the operation's input shape."""


@functools.lru_cache(maxsize=None)
def service_model(name: str) -> Any:
    import botocore.loaders
    from botocore.model import ServiceModel

    return ServiceModel(botocore.loaders.Loader().load_service_model(name, "service-2"), service_name=name)


def recognise(environ: dict[str, Any]) -> CborCall | None:
    """The RPC v2 CBOR call this request is, or None (another protocol, or a service whose
    CBOR protocol is not emulated: moto answers it as it can)."""
    if environ.get("HTTP_SMITHY_PROTOCOL", "").strip().lower() != "rpc-v2-cbor":
        return None
    m = _PATH.match(environ.get("PATH_INFO", "") or "")
    if not m or m.group(1) not in SERVICES or environ.get("REQUEST_METHOD", "").upper() != "POST":
        return None
    name, namespace = SERVICES[m.group(1)]
    return CborCall(m.group(1), m.group(2), service_model(name), namespace)


@dataclass
class CborCall:
    target_prefix: str
    operation: str
    model: Any  # botocore.model.ServiceModel
    namespace: str

    @property
    def operation_model(self) -> Any:
        return self.model.operation_model(self.operation) if self.operation in self.model.operation_names else None

    # -- request ---------------------------------------------------------------------------

    def to_json_request(self, environ: dict[str, Any], body: bytes) -> tuple[bytes, Response | None]:
        """Rewrite ``environ`` into the awsJson1_0 request; (its body, None), or (``{}``, the
        CBOR error answer) when the request cannot be served (the environ is still rewritten,
        so the call is classified and logged under its operation)."""
        refused: Response | None = None
        data: Any = {}
        op = self.operation_model
        if op is None:
            refused = self.error_response(404, "UnknownOperationException",
                                          f"Operation {self.operation} is not supported by this service.")
        else:
            try:
                decoded = cbor2.loads(body) if body else {}
                if not isinstance(decoded, dict):
                    raise SerializationError("the request body is not a CBOR map")
                shape = op.input_shape
                data = _to_json(decoded, shape, shape.name) if shape is not None else {}
            except (SerializationError, cbor2.CBORDecodeError, ValueError, OverflowError) as exc:
                refused = self.error_response(400, "SerializationException", f"Could not read the request: {exc}")
                data = {}
        payload = json.dumps(data).encode("utf-8")
        environ["PATH_INFO"] = "/"
        for key in ("RAW_URI", "REQUEST_URI"):
            if key in environ:
                environ[key] = "/"
        environ["HTTP_X_AMZ_TARGET"] = f"{self.target_prefix}.{self.operation}"
        environ["CONTENT_TYPE"] = "application/x-amz-json-1.0"
        environ["HTTP_ACCEPT"] = "application/json"
        environ["wsgi.input"] = io.BytesIO(payload)
        environ["CONTENT_LENGTH"] = str(len(payload))
        return payload, refused

    # -- response --------------------------------------------------------------------------

    def to_cbor_response(self, response: Response) -> Response:
        status, headers, data = response
        if status >= 300:
            return self._error_from_json(status, headers, data)
        op = self.operation_model
        shape = op.output_shape if op is not None else None
        if shape is None:
            body = b""
        else:
            doc = json.loads(data) if data.strip() else {}
            body = cbor2.dumps(_to_cbor(doc, shape, shape.name))
        return status, _headers(headers, body), body

    def _error_from_json(self, status: int, headers: list[tuple[str, str]], data: bytes) -> Response:
        doc: dict[str, Any] = {}
        try:
            parsed = json.loads(data) if data.strip() else {}
            if isinstance(parsed, dict):
                doc = parsed
        except ValueError:
            pass
        header = {k.lower(): v for k, v in headers}
        raw = str(doc.get("__type") or header.get("x-amzn-errortype") or "")
        if not raw:
            from .awserrors import error_code_of

            raw = error_code_of(status, headers, data) or f"HTTP{status}"
        raw = raw.split(":", 1)[0].rsplit("#", 1)[-1]
        message = doc.get("message", doc.get("Message"))
        if message is None and not doc and data.strip():
            message = data[:1000].decode("utf-8", "replace")
        query = header.get("x-amzn-query-error", "")
        code, _, fault = query.partition(";")
        members = {k: v for k, v in doc.items() if k not in ("__type", "message", "Message")}
        return self.error_response(status, raw, message or "", query_code=code or None, fault=fault or None,
                                   members=members, headers=headers)

    def error_response(self, status: int, code: str, message: str, *, query_code: str | None = None,
                       fault: str | None = None, members: dict[str, Any] | None = None,
                       headers: list[tuple[str, str]] | None = None) -> Response:
        """A CBOR error answer. ``code`` is an error shape's name or its Query code (or any
        code: an unmodeled error keeps it in both places)."""
        shape = self._error_shape(code)
        shape_name = shape.name if shape is not None else code
        error = shape.metadata.get("error", {}) if shape is not None else {}
        query_code = query_code or code
        if fault is None:
            fault = "Sender" if error.get("senderFault") or status < 500 else "Receiver"
        doc: dict[str, Any] = {"__type": f"{self.namespace}#{shape_name}"}
        if message:
            doc["message"] = message
        if shape is not None and members:
            for name, value in members.items():
                if name in shape.members and value is not None and name.lower() != "message":
                    doc[name] = _to_cbor(value, shape.members[name], name)
        body = cbor2.dumps(doc)
        out = _headers(headers or [("x-amzn-RequestId", str(uuid.uuid4()))], body)
        out.append(("x-amzn-query-error", f"{query_code};{fault}"))
        return status, out, body

    def _error_shape(self, code: str) -> Any:
        return _error_shapes(self.model.service_name).get(code)


@functools.lru_cache(maxsize=None)
def _error_shapes(service: str) -> dict[str, Any]:
    """Error shapes by shape name and by Query code (awsQueryError)."""
    model = service_model(service)
    out: dict[str, Any] = {}
    for shape in model.error_shapes:
        out.setdefault(shape.name, shape)
    for shape in model.error_shapes:
        qcode = shape.metadata.get("error", {}).get("code")
        if qcode:
            out.setdefault(qcode, shape)
    return out


_DROP = {"content-type", "content-length", "x-amzn-errortype", "x-amzn-query-error", "smithy-protocol"}


def _headers(headers: list[tuple[str, str]], body: bytes) -> list[tuple[str, str]]:
    out = [(k, v) for k, v in headers if k.lower() not in _DROP]
    out.append(("smithy-protocol", "rpc-v2-cbor"))
    out.append(("Content-Type", CBOR_CONTENT_TYPE))
    out.append(("Content-Length", str(len(body))))
    return out


def error_code(headers: list[tuple[str, str]], body: bytes) -> str | None:
    """The code an SDK reads from a CBOR error answer: the ``x-amzn-query-error`` code of an
    awsQueryCompatible service, else ``__type`` without its namespace."""
    for name, value in headers:
        if name.lower() == "x-amzn-query-error" and value.split(";")[0]:
            return value.split(";")[0]
    try:
        doc = cbor2.loads(body)
    except Exception:
        return None
    if isinstance(doc, dict) and isinstance(doc.get("__type"), str):
        return doc["__type"].split(":", 1)[0].rsplit("#", 1)[-1]
    return None


# -- shape walking ---------------------------------------------------------------------------

_JSON_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _to_json(value: Any, shape: Any, where: str) -> Any:
    """A decoded CBOR value of ``shape`` as the JSON protocol has it."""
    kind = shape.type_name
    if kind == "structure":
        _expect(isinstance(value, dict), where, "a map", value)
        out = {}
        for name, item in value.items():
            if name in shape.members and item is not None:  # unknown members are ignored
                out[name] = _to_json(item, shape.members[name], f"{where}.{name}")
        return out
    if kind == "list":
        _expect(isinstance(value, list), where, "an array", value)
        return [_to_json(v, shape.member, f"{where}[{i}]") for i, v in enumerate(value) if v is not None]
    if kind == "map":
        _expect(isinstance(value, dict), where, "a map", value)
        return {str(k): _to_json(v, shape.value, f"{where}.{k}") for k, v in value.items() if v is not None}
    if kind == "timestamp":
        # cbor2 decodes tag 1 into an aware datetime; the JSON protocol sends epoch seconds.
        if isinstance(value, datetime):
            return value.timestamp()
        _expect(False, where, "a timestamp (tag 1)", value)
    if kind == "blob":
        _expect(isinstance(value, (bytes, bytearray)), where, "a byte string", value)
        return base64.b64encode(bytes(value)).decode("ascii")
    if kind in ("double", "float"):
        _expect(isinstance(value, (int, float)) and not isinstance(value, bool), where, "a number", value)
        f = float(value)
        if math.isnan(f):
            return "NaN"
        if math.isinf(f):
            return "Infinity" if f > 0 else "-Infinity"
        return f
    if kind in ("integer", "long", "short", "byte"):
        _expect(isinstance(value, int) and not isinstance(value, bool), where, "an integer", value)
        return value
    if kind == "boolean":
        _expect(isinstance(value, bool), where, "a boolean", value)
        return value
    _expect(isinstance(value, str), where, "a text string", value)
    return value


def _to_cbor(value: Any, shape: Any, where: str) -> Any:
    """A JSON protocol value of ``shape`` as RPC v2 CBOR has it (for cbor2.dumps)."""
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object, got {type(value).__name__}")
        return {name: _to_cbor(item, shape.members[name], f"{where}.{name}")
                for name, item in value.items() if name in shape.members and item is not None}
    if kind == "list":
        return [_to_cbor(v, shape.member, f"{where}[]") for v in value if v is not None]
    if kind == "map":
        return {str(k): _to_cbor(v, shape.value, f"{where}.{k}") for k, v in value.items() if v is not None}
    if kind == "timestamp":
        epoch = _epoch(value)
        return cbor2.CBORTag(1, int(epoch) if float(epoch).is_integer() else float(epoch))
    if kind == "blob":  # base64 in JSON
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError, TypeError):
            return str(value).encode("utf-8")
    if kind in ("double", "float"):
        return _JSON_FLOATS[value] if isinstance(value, str) and value in _JSON_FLOATS else float(value)
    if kind in ("integer", "long", "short", "byte"):
        return int(value)
    if kind == "boolean":
        return bool(value)
    return str(value)


def _epoch(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()


def _expect(ok: bool, where: str, what: str, value: Any) -> None:
    if not ok:
        raise SerializationError(f"{where}: expected {what}, got {type(value).__name__}")
