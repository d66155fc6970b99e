"""AWS error responses in each service's own wire format.

SDKs decide what an error *is* (its code, whether to retry) by parsing the
service's error format, so an injected or emulated error must look exactly
like the real one, or the provider under test would see "unknown error"
instead of ``Throttling``/``VolumeInUse``. The four formats we speak:

* EC2 (its own Query dialect):
  ``<Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>``
* Query services (autoscaling, iam, sts, ...):
  ``<ErrorResponse><Error><Type>Sender</Type><Code/><Message/></Error><RequestId/></ErrorResponse>``
* JSON 1.1 services (events, logs): ``{"__type": CODE, "message": ...}`` plus the
  ``x-amzn-ErrorType`` header;
* Lambda (REST-JSON): ``{"Type": "User", "message": ...}`` plus ``x-amzn-ErrorType``.

``error_code_of`` does the reverse, reading the code out of any response so
that the call log can show it (a CBOR one's too: see ``cbor_protocol``, which renders
CloudWatch's RPC v2 CBOR errors from these).
"""

from __future__ import annotations

import json
import re
import uuid
from xml.sax.saxutils import escape

QUERY_NAMESPACES = {
    "autoscaling": "http://autoscaling.amazonaws.com/doc/2011-01-01/",
    "iam": "https://iam.amazonaws.com/doc/2010-05-08/",
    "sts": "https://sts.amazonaws.com/doc/2011-06-15/",
}

Response = tuple[int, list[tuple[str, str]], bytes]


def render_error(protocol: str, service: str, code: str, message: str, status: int = 400) -> Response:
    request_id = str(uuid.uuid4())
    sender = "Sender" if status < 500 else "Receiver"
    if protocol == "ec2":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
            f"</Error></Errors><RequestID>{request_id}</RequestID></Response>"
        )
        headers = [("Content-Type", "text/xml;charset=UTF-8")]
    elif protocol == "json":
        body = json.dumps({"__type": code, "message": message})
        headers = [
            ("Content-Type", "application/x-amz-json-1.1"),
            ("x-amzn-ErrorType", code),
        ]
    elif protocol == "rest-json":
        body = json.dumps({"Type": "User" if status < 500 else "Service", "message": message})
        headers = [
            ("Content-Type", "application/json"),
            ("x-amzn-ErrorType", code),
        ]
    else:
        ns = QUERY_NAMESPACES.get(service, f"https://{service}.amazonaws.com/doc/")
        body = (
            f'<ErrorResponse xmlns="{ns}"><Error><Type>{sender}</Type><Code>{escape(code)}</Code>'
            f"<Message>{escape(message)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        headers = [("Content-Type", "text/xml")]
    headers.append(("x-amzn-RequestId", request_id))
    data = body.encode("utf-8")
    headers.append(("Content-Length", str(len(data))))
    return status, headers, data


_XML_CODE = re.compile(rb"<Code>([^<]+)</Code>")


def error_code_of(status: int, headers: list[tuple[str, str]], body: bytes) -> str | None:
    """The AWS error code of a response, or None for a success."""
    if status < 300:
        return None
    if any(n.lower() == "content-type" and v.startswith("application/cbor") for n, v in headers):
        from .cbor_protocol import error_code

        return error_code(headers, body) or f"HTTP{status}"
    for name, value in headers:
        if name.lower() == "x-amzn-errortype" and value:
            return value.split(":")[0]
    m = _XML_CODE.search(body[:4096])
    if m:
        return m.group(1).decode("utf-8", "replace")
    try:
        data = json.loads(body)
        if isinstance(data, dict):
            code = data.get("__type") or data.get("code") or data.get("Code")
            if code:
                return str(code).split("#")[-1]
    except ValueError:
        pass
    return f"HTTP{status}"
