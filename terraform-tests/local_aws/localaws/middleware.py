"""The WSGI layer in front of moto: control API, faults, call log, locking.

Every HTTP request to the server passes through ``LocalAWSMiddleware``:

1. ``/_localaws/...`` is our control API (JSON), answered here (see
   ``ControlAPI``); ``/moto-api/...`` goes to moto, except that
   ``POST /moto-api/reset`` resets localaws' state along with moto's.
2. Anything else is an AWS call. One in the Smithy RPC v2 CBOR protocol (CloudWatch as the
   AWS SDK for Rust calls it) is first rewritten into its awsJson1_0 twin, and its answer,
   whoever gives it (moto, a fault, a refusal), back into CBOR (``cbor_protocol``). It is
   classified (``requestinfo``), faults
   are consulted (latency is slept *before* taking the world lock, so a slow
   call never blocks the others), and an error fault answers in the service's
   own format without reaching moto.
3. Calls that moto cannot serve are answered here: Lambda ``Invoke`` runs the
   real code (``lambda_runner``); reserved environment variable keys are
   refused as Lambda refuses them; so are a function configuration naming a
   role, and a function's own calls, while IAM propagates a change of that
   role (``iam_propagation``), and a function's calls its role does not allow
   (``iam_enforce``, profile setting ``iam_evaluation``); the "function update in progress"
   transient answers ResourceConflictException / shows
   ``LastUpdateStatus: InProgress``; GetFunction's ``Code.Location`` points at
   this server, which serves the stored zip.
4. Everything else goes to moto's own WSGI app with the world lock held. The
   response is buffered (so the lock covers moto's serialisation, which reads
   the models, and so the call log can see the status and error code).
5. The call is appended to the call log.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import struct
import time
from http import HTTPStatus
from typing import Any, Callable, Iterable
from urllib.parse import parse_qsl

from . import cbor_protocol
from .awserrors import error_code_of, render_error
from .clock import rfc3339_ms
from .context import view
from .faults import BadRequest
from .requestinfo import RequestInfo, classify

log = logging.getLogger("localaws.http")

Response = tuple[int, list[tuple[str, str]], bytes]


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


def _json_response(status: int, data: Any) -> Response:
    body = json.dumps(data, default=str).encode("utf-8")
    return status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))], body


def _aws_time(clock: Any, virtual: float | None = None) -> dict[str, Any]:
    """AWS time (``clock``) now, or at ``virtual``: ``aws_time`` RFC 3339 and ``aws_time_ms``."""
    epoch = clock.aws_epoch(virtual)
    return {"aws_time": rfc3339_ms(epoch), "aws_time_ms": round(epoch * 1000)}


def _read_body(environ: dict[str, Any]) -> bytes:
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked" or environ.get("wsgi.input_terminated"):
        data = stream.read()
    else:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        data = stream.read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(data)
    environ["CONTENT_LENGTH"] = str(len(data))
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    return data


class LocalAWSMiddleware:
    def __init__(self, world: Any, moto_app: Callable[..., Iterable[bytes]]) -> None:
        self.world = world
        self.moto_app = moto_app
        self.control = ControlAPI(world)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        try:
            if path == "/_localaws" or path.startswith("/_localaws/"):
                status, headers, body = self.control.handle(environ)
            elif path.rstrip("/") == "/moto-api/reset" and environ.get("REQUEST_METHOD") == "POST":
                # moto's own reset resets ours too: the two must never disagree.
                self.world.reset()
                status, headers, body = _json_response(200, {"status": "ok"})
            elif path.startswith("/moto-api"):
                with self.world.lock:
                    status, headers, body = self._call_moto(environ)
            else:
                status, headers, body = self._aws_call(environ)
        except Exception as exc:  # never let a bug in here look like a hang
            log.exception("internal error serving %s %s", environ.get("REQUEST_METHOD"), path)
            status, headers, body = _json_response(500, {"error": f"localaws internal error: {exc}"})
        if environ.get("localaws.lose_response"):
            return _LostResponse(environ.get("werkzeug.socket"))
        start_response(_status_line(status), headers)
        return [body]

    # -- AWS calls -----------------------------------------------------------------

    def _aws_call(self, environ: dict[str, Any]) -> Response:
        world = self.world
        started = time.monotonic()
        body = _read_body(environ)
        # An RPC v2 CBOR call (CloudWatch, the Rust SDK) becomes the awsJson1_0 request that
        # everything below and moto know; its answer is turned back into CBOR at the end.
        cbor = cbor_protocol.recognise(environ)
        refused = None
        if cbor is not None:
            body, refused = cbor.to_json_request(environ, body)
        info = classify(environ, body, world.region)
        delay, fault, fired, lose = world.faults.pick(info) if refused is None else (0.0, None, [], False)
        if delay > 0:
            time.sleep(delay)
        fault_id = fault.id if fault else (fired[0] if fired else None)
        caller = world.lambdas.identity(info.access_key_id)
        if refused is not None:
            response = refused  # already CBOR: a body CloudWatch could not read
        elif fault is not None:
            log.info("fault %s answers %s %s with %s", fault.id, info.service, info.operation, fault.error_code)
            response = render_error(info.protocol, info.service, fault.error_code, fault.message, fault.status)
        else:
            # A function's call while its role's new permissions propagate (iam_propagation).
            response = world.iam_propagation.refuse_call(info, caller)
            if response is None:
                # A function's call its execution role does not allow (iam_enforce).
                response = world.iam.refuse_call(info, caller)
            if response is None and caller is None:
                # An IAM user's call its policies do not allow (iam_enforce: a deployer).
                response = world.iam.refuse_user_call(info, info.access_key_id, _default_account())
            if response is None:
                response = self._special(info, environ)
            if response is None:
                with world.lock:
                    # A repeated ClientToken gets the first answer (see idempotency).
                    response = world.tokens.replay(info, _default_account())
                    if response is None:
                        view.clear()
                        view.operation = info.operation
                        view.deferred_denial = info.deferred_denial
                        try:
                            response = self._call_moto(environ)
                            if view.status_override is not None and response[0] >= 400:
                                response = (view.status_override, response[1], response[2])
                            response = self._post_process(info, response)
                        finally:
                            view.clear()
                        world.tokens.keep(info, _default_account(), response)
        if cbor is not None and refused is None:
            response = cbor.to_cbor_response(response)
        status, headers, data = response
        world.calls.record(info, status, error_code_of(status, headers, data), fault_id, started, caller, lose)
        if lose:
            log.info("fault %s: %s %s performed, its response is lost", fault_id, info.service, info.operation)
            environ["localaws.lose_response"] = True
        if status >= 400:
            log.debug("%s %s -> %s %s", info.service, info.operation, status, data[:300])
        return response

    def _call_moto(self, environ: dict[str, Any]) -> Response:
        captured: dict[str, Any] = {}
        chunks: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            captured["status"] = int(status.split(" ", 1)[0])
            captured["headers"] = list(headers)
            return chunks.append

        result = self.moto_app(environ, start_response)
        try:
            for chunk in result:
                if chunk:
                    chunks.append(chunk)
        finally:
            close = getattr(result, "close", None)
            if close:
                close()
        data = b"".join(chunks)
        headers = [(k, v) for k, v in captured.get("headers", []) if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(data))))
        return captured.get("status", 500), headers, data

    def _special(self, info: RequestInfo, environ: dict[str, Any]) -> Response | None:
        """Calls answered here rather than by moto (None: let moto answer)."""
        if info.service != "lambda":
            return None
        if info.operation == "Invoke":
            return self._invoke(info, environ)
        if info.operation in ("CreateFunction", "UpdateFunctionConfiguration"):
            variables = (info.all_params.get("Environment") or {}).get("Variables") or {}
            reserved = [k for k in variables if k in RESERVED_ENV_KEYS]
            if reserved:
                return render_error(
                    "rest-json", "lambda", "InvalidParameterValueException",
                    "Lambda was unable to configure your environment variables because the environment variables "
                    "you have provided contains reserved keys that are currently not supported for modification. "
                    f"Reserved keys used in this request: {', '.join(reserved)}",
                    400,
                )
        if info.operation in ("UpdateFunctionConfiguration", "UpdateFunctionCode"):
            name = _function_name(info.path_params.get("FunctionName", ""))
            if self.world.transients.consume("function_update_in_progress", name):
                account = _default_account()
                arn = f"arn:aws:lambda:{info.region}:{account}:function:{name}"
                return render_error(
                    "rest-json", "lambda", "ResourceConflictException",
                    f"The operation cannot be performed at this time. An update is in progress for resource: {arn}",
                    409,
                )
        if info.operation in ("CreateFunction", "UpdateFunctionConfiguration"):
            # Lambda cannot use a role that has not propagated yet (iam_propagation).
            return self.world.iam_propagation.refuse_function_config(info)
        return None

    def _post_process(self, info: RequestInfo, response: Response) -> Response:
        """Adjust a moto answer (lock held): GetFunction's code location and
        the "update in progress" transient; note when roles are made and functions
        configured (see ``LambdaRunner.grant_is_stale``) and which roles must propagate
        (``iam_propagation``)."""
        if response[0] < 400:
            if info.service == "iam":
                self.world.iam_propagation.role_changed(info, _default_account())
            if info.service == "iam" and info.operation == "CreateRole":
                self.world.lambdas.role_created(str(info.get("RoleName", "")))
            elif info.service == "lambda" and info.operation in ("CreateFunction", "UpdateFunctionConfiguration"):
                name = info.get("FunctionName") or info.path_params.get("FunctionName", "")
                self.world.lambdas.function_configured(info.region, _function_name(str(name)))
        if info.service == "lambda" and info.operation in ("GetFunction", "GetFunctionConfiguration"):
            status, headers, data = response
            if status != 200:
                return response
            name = _function_name(info.path_params.get("FunctionName", ""))
            doc = json.loads(data)
            changed = False
            if info.operation == "GetFunction" and isinstance(doc.get("Code"), dict) and "Location" in doc["Code"]:
                # Moto points at an S3 URL that does not exist; serve the zip from here.
                doc["Code"]["Location"] = f"{self.world.endpoint}/_localaws/lambda-code/{info.region}/{name}"
                changed = True
            if self.world.transients.consume("function_update_in_progress", name):
                config = doc.get("Configuration", doc) if info.operation == "GetFunction" else doc
                config["LastUpdateStatus"] = "InProgress"
                config.pop("LastUpdateStatusReason", None)
                config.pop("LastUpdateStatusReasonCode", None)
                changed = True
            if changed:
                data = json.dumps(doc).encode("utf-8")
                headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
                headers.append(("Content-Length", str(len(data))))
                return status, headers, data
        return response

    def _invoke(self, info: RequestInfo, environ: dict[str, Any]) -> Response:
        world = self.world
        raw = info.path_params.get("FunctionName", "")
        account, region, name, qualifier = _split_function_ref(raw, info.region)
        qualifier = info.query.get("Qualifier") or qualifier
        invocation_type = environ.get("HTTP_X_AMZ_INVOCATION_TYPE", "RequestResponse")
        if invocation_type == "RequestResponse":
            return world.lambdas.invoke_sync(
                account, region, name, qualifier, info.body,
                log_tail=environ.get("HTTP_X_AMZ_LOG_TYPE", "") == "Tail",
            )
        with world.lock:
            snap = world.lambdas._snapshot(account, region, name, qualifier)
        if snap is None:
            arn = f"arn:aws:lambda:{region}:{account}:function:{name}"
            return render_error("rest-json", "lambda", "ResourceNotFoundException", f"Function not found: {arn}", 404)
        if invocation_type == "DryRun":
            return 204, [("Content-Length", "0")], b""
        if invocation_type == "Event":
            request_id = world.lambdas.submit_async(account, region, name, qualifier, info.body)
            return 202, [("x-amzn-RequestId", request_id), ("Content-Length", "0")], b""
        return render_error(
            "rest-json", "lambda", "InvalidParameterValueException",
            f"Unsupported InvocationType: {invocation_type}", 400,
        )


# Lambda refuses these in a function's Environment.Variables.
RESERVED_ENV_KEYS = frozenset({
    "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
})


class _LostResponse:
    """The answer to a call whose response is lost: before anything is written, the
    connection is shut down both ways (the client reads end-of-stream where the status line
    should be; with SO_LINGER 0 the final close, when werkzeug lets go of the socket, sends
    RST), and werkzeug is told the client went away. ``close()`` alone would not do: the
    request handler's buffered reader and writer keep the socket open."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock

    def __iter__(self) -> Any:
        return self

    def __next__(self) -> bytes:
        if self.sock is not None:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        raise ConnectionResetError("localaws: response lost on purpose (lose_response fault)")


def _default_account() -> str:
    from moto.core import DEFAULT_ACCOUNT_ID

    return DEFAULT_ACCOUNT_ID


def _function_name(ref: str) -> str:
    return _split_function_ref(ref, "")[2]


def _split_function_ref(ref: str, region: str) -> tuple[str, str, str, str | None]:
    """(account, region, name, qualifier) of a FunctionName parameter: a name,
    ``name:qualifier``, a partial ARN (``ACCOUNT:function:NAME``) or a full ARN."""
    account = _default_account()
    parts = ref.split(":")
    if ref.startswith("arn:") and len(parts) >= 7:
        return parts[4], parts[3], parts[6], parts[7] if len(parts) > 7 else None
    if len(parts) >= 3 and parts[1] == "function":
        return parts[0], region, parts[2], parts[3] if len(parts) > 3 else None
    if len(parts) == 2:
        return account, region, parts[0], parts[1]
    return account, region, ref, None


class ControlAPI:
    """``/_localaws/...``: health, faults, transients, call log, invocations,
    events, clock and reset. JSON in, JSON out; 400 for a bad request."""

    def __init__(self, world: Any) -> None:
        self.world = world

    def handle(self, environ: dict[str, Any]) -> Response:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = (environ.get("PATH_INFO", "") or "").rstrip("/")
        query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
        body = _read_body(environ)
        try:
            data = json.loads(body) if body.strip() else {}
        except ValueError:
            return _json_response(400, {"error": "body is not JSON"})
        route = path[len("/_localaws"):] or "/"
        try:
            return self._route(method, route, data, query)
        except BadRequest as exc:
            return _json_response(400, {"error": str(exc)})
        except (TypeError, ValueError) as exc:
            return _json_response(400, {"error": str(exc)})

    def _route(self, method: str, route: str, data: Any, query: dict[str, str]) -> Response:
        w = self.world
        if route == "/health" and method == "GET":
            return _json_response(200, {"ok": True, **w.snapshot(), **_aws_time(w.clock)})
        if route == "/faults":
            if method == "POST":
                fault = w.faults.add(data)
                return _json_response(200, {"id": fault.id})
            if method == "GET":
                return _json_response(200, w.faults.list())
            if method == "DELETE":
                w.faults.clear()
                return _json_response(200, {"ok": True})
        if route in ("/transient", "/transients"):
            if method == "POST":
                if not isinstance(data, dict):
                    raise BadRequest("expected a JSON object")
                with w.lock:
                    if data.get("kind") == "volume_detaching" and data.get("id"):
                        w.ec2.check_detaching_transient(str(data["id"]))
                    if data.get("kind") == "interface_detaching" and data.get("id"):
                        w.enis.check_detaching_transient(str(data["id"]))
                    return _json_response(200, w.transients.add(data))
            if method == "GET":
                return _json_response(200, w.transients.list())
            if method == "DELETE":
                w.transients.clear()
                return _json_response(200, {"ok": True})
        if route == "/calls":
            if method == "GET":
                calls = w.calls.list()
                for key in ("operation", "service", "function"):
                    if key in query:
                        calls = [c for c in calls if c[key] == query[key]]
                return _json_response(200, calls)
            if method == "DELETE":
                w.calls.clear()
                return _json_response(200, {"ok": True})
        if route == "/invocations":
            if method == "GET":
                records = w.lambdas.list()
                if "function" in query:
                    records = [r for r in records if r["function"] == query["function"]]
                return _json_response(200, records)
            if method == "DELETE":
                w.lambdas.clear()
                return _json_response(200, {"ok": True})
        if route == "/schedules" and method == "GET":
            with w.lock:
                return _json_response(200, w.events.schedules())
        if route == "/events":
            if method == "GET":
                return _json_response(200, w.events.list())
            if method == "DELETE":
                with w.lock:
                    w.events.clear_records()  # the records only: armed schedules keep firing
                return _json_response(200, {"ok": True})
        if route == "/lifecycle-actions" and method == "GET":
            with w.lock:
                return _json_response(200, w.lifecycle.list())
        if route == "/clock":
            if method == "POST":
                if not isinstance(data, dict) or "scale" not in data:
                    raise BadRequest('expected {"scale": <float > 0>}')
                w.clock.set_scale(float(data["scale"]))
                return _json_response(200, {"scale": w.clock.scale})
            if method == "GET":
                now = w.clock.now()
                return _json_response(200, {"scale": w.clock.scale, "virtual_now": now, **_aws_time(w.clock, now)})
        if route.startswith("/lambda-code/") and method == "GET":
            # GetFunction's Code.Location: the deployment package as stored.
            parts = route.split("/")
            if len(parts) == 4:
                from moto.awslambda import lambda_backends

                with w.lock:
                    try:
                        fn = lambda_backends[_default_account()][parts[2]].get_function(parts[3])
                        data = getattr(fn, "code_bytes", b"") or b""
                    except Exception:
                        return _json_response(404, {"error": f"no function {parts[3]} in {parts[2]}"})
                return 200, [("Content-Type", "application/zip"), ("Content-Length", str(len(data)))], data
        if route == "/breaks":
            # Deliberate infidelities for control cases (see ec2ext): never for other tests.
            if method == "POST":
                if not isinstance(data, dict):
                    raise BadRequest('expected {"breaks": [...]}')
                with w.lock:
                    return _json_response(200, {"breaks": w.ec2.set_breaks(data.get("breaks"))})
            if method == "GET":
                return _json_response(200, {"breaks": sorted(w.ec2.breaks)})
        if route == "/profile":
            # How hard the emulated AWS is (profile.py): a name and/or single settings.
            if method == "POST":
                return _json_response(200, w.profile.update(data))
            if method == "GET":
                return _json_response(200, w.profile.current.describe())
        if route == "/launch-failures":
            # AWS-side launch failures of Auto Scaling groups (launches.py).
            with w.lock:
                if method == "POST":
                    return _json_response(200, w.launches.inject(data))
                if method == "GET":
                    return _json_response(200, w.launches.list_injected())
                if method == "DELETE":
                    w.launches.clear_injected()
                    return _json_response(200, {"ok": True})
        if route == "/snapshot-failures":
            # EBS snapshots that end in `error` instead of `completed` (ec2ext.py).
            with w.lock:
                if method == "POST":
                    return _json_response(200, w.ec2.inject_snapshot_failure(data))
                if method == "GET":
                    return _json_response(200, w.ec2.list_snapshot_failures())
                if method == "DELETE":
                    w.ec2.clear_snapshot_failures()
                    return _json_response(200, {"ok": True})
        if route == "/zone-outage":
            # The loss of a whole Availability Zone (zoneoutage.py).
            with w.lock:
                if method == "POST":
                    return _json_response(200, w.zones.start(data))
                if method == "GET":
                    return _json_response(200, w.zones.list())
                if method == "DELETE":
                    zone = query.get("zone") or (data.get("zone") if isinstance(data, dict) else None)
                    return _json_response(200, {"ended": w.zones.end(zone)})
        if route == "/iam-evaluation":
            # The IAM decisions on functions' calls (iam_enforce), newest last.
            if method == "GET":
                return _json_response(200, w.iam.list())
            if method == "DELETE":
                w.iam.reset()
                return _json_response(200, {"ok": True})
        if route == "/iam-propagation" and method == "GET":
            # Roles whose change IAM is still propagating, with the virtual seconds left.
            return _json_response(200, w.iam_propagation.list())
        if route == "/reset" and method == "POST":
            w.reset()
            return _json_response(200, {"ok": True})
        return _json_response(404, {"error": f"no control endpoint {method} /_localaws{route}"})
