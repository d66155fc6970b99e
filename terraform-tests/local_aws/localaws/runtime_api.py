"""A Lambda Runtime API emulator for one invocation.

A custom runtime (``provided.al2023``: a ``bootstrap`` executable such as a
Rust ``lambda_runtime`` binary) does not get its event on stdin: it polls the
Runtime API at ``http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/...``. We
serve that API, one small threaded HTTP server on 127.0.0.1 and a random port
per invocation attempt (every attempt is a cold start in its own process, so
there is no warm environment to share it with):

* ``GET  /2018-06-01/runtime/invocation/next``: the event, with the headers
  ``Lambda-Runtime-Aws-Request-Id``, ``Lambda-Runtime-Deadline-Ms`` (epoch ms),
  ``Lambda-Runtime-Invoked-Function-Arn`` and ``Lambda-Runtime-Trace-Id``. A
  second call (the runtime is done and asks for more) blocks until the
  process is stopped, as a frozen sandbox would;
* ``POST /2018-06-01/runtime/invocation/{id}/response`` and ``.../error``;
* ``POST /2018-06-01/runtime/init/error``.

Posts answer 202 ``{"status":"OK"}``; an unknown request id, or a second result
for the same invocation, answers 400, as the real API does.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

log = logging.getLogger("localaws.runtime")

PREFIX = "/2018-06-01/runtime"
MAX_RESPONSE_BYTES = 6 * 1024 * 1024


class Invocation:
    """What the runtime sees and says for one event."""

    def __init__(
        self,
        request_id: str,
        payload: bytes,
        function_arn: str,
        timeout_s: float,
        trace_id: str,
        on_taken: Callable[["Invocation"], None] | None = None,
    ) -> None:
        self.request_id = request_id
        self.payload = payload
        self.function_arn = function_arn
        self.timeout_s = timeout_s
        self.trace_id = trace_id
        self.on_taken = on_taken
        self.on_progress: Callable[[], None] | None = None  # called while the runtime talks to us
        self.lock = threading.Lock()
        self.changed = threading.Event()  # set on any progress (taken, result, exit)
        self.released = threading.Event()  # set when the sandbox is torn down
        self.taken_at: float | None = None  # time.monotonic()
        self.taken_epoch_ms: int | None = None
        self.next_calls = 0
        self.outcome: str | None = None  # success | error | init_error
        self.result_at: float | None = None
        self.response: bytes = b""
        self.error_type: str | None = None
        self.error_body: bytes = b""

    def _finish(self, outcome: str, body: bytes, error_type: str | None) -> bool:
        if self.on_progress:
            self.on_progress()
        with self.lock:
            if self.outcome is not None:
                return False
            self.outcome = outcome
            self.result_at = time.monotonic()
            if outcome == "success":
                self.response = body
            else:
                self.error_body = body
                self.error_type = error_type
        self.changed.set()
        return True


def _error_type(headers: Any, body: bytes, default: str) -> str:
    """The function error type Lambda reports: the ``errorType`` of the posted error
    document. The ``Lambda-Runtime-Function-Error-Type`` header is the runtime's own
    classification (Rust's lambda_runtime always sends ``unhandled``), so it only stands
    in when the body has no errorType or is not JSON."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and data.get("errorType"):
        return str(data["errorType"])
    header = headers.get("Lambda-Runtime-Function-Error-Type")
    if header:
        return header
    return default


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet; our logger instead
        log.debug("runtime api %s: " + fmt, self.server.invocation.request_id, *args)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def do_GET(self) -> None:
        inv = self.server.invocation
        if self.path.split("?")[0] != f"{PREFIX}/invocation/next":
            self._send(404, {"errorMessage": "Not found", "errorType": "NotFound"})
            return
        with inv.lock:
            inv.next_calls += 1
            first = inv.taken_at is None and inv.outcome is None
            if first:
                inv.taken_at = time.monotonic()
                inv.taken_epoch_ms = int(time.time() * 1000)
        inv.changed.set()
        if not first:
            # The runtime finished (or gave up on) its event and waits for the
            # next one: a real sandbox is frozen here. Hold until torn down.
            inv.released.wait()
            self.close_connection = True
            return
        if inv.on_taken:
            inv.on_taken(inv)
        deadline_ms = inv.taken_epoch_ms + int(inv.timeout_s * 1000)
        self._send(
            200,
            inv.payload,
            {
                "Lambda-Runtime-Aws-Request-Id": inv.request_id,
                "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": inv.function_arn,
                "Lambda-Runtime-Trace-Id": inv.trace_id,
            },
        )

    def do_POST(self) -> None:
        inv = self.server.invocation
        body = self._read_body()
        path = self.path.split("?")[0]
        if path == f"{PREFIX}/init/error":
            if inv.taken_at is not None or not inv._finish("init_error", body, _error_type(self.headers, body, "Runtime.Unknown")):
                self._send(403, {"errorMessage": "Init error is not allowed now", "errorType": "InvalidStateTransition"})
                return
            self._send(202, {"status": "OK"})
            return
        prefix = f"{PREFIX}/invocation/"
        if path.startswith(prefix) and path.endswith(("/response", "/error")):
            request_id, _, kind = path[len(prefix):].rpartition("/")
            if request_id != inv.request_id or inv.taken_at is None:
                self._send(400, {"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"})
                return
            if kind == "response":
                if len(body) > MAX_RESPONSE_BYTES:
                    inv._finish("error", json.dumps({
                        "errorMessage": f"Response payload size ({len(body)} bytes) exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
                        "errorType": "Function.ResponseSizeTooLarge",
                    }).encode(), "Function.ResponseSizeTooLarge")
                    self._send(413, {"errorMessage": "Response payload too large", "errorType": "RequestEntityTooLarge"})
                    return
                ok = inv._finish("success", body, None)
            else:
                ok = inv._finish("error", body, _error_type(self.headers, body, "Unhandled"))
            if not ok:
                self._send(400, {"errorMessage": "Invalid request ID: already answered", "errorType": "InvalidStateTransition"})
                return
            self._send(202, {"status": "OK"})
            return
        self._send(404, {"errorMessage": "Not found", "errorType": "NotFound"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    invocation: Invocation


class RuntimeAPIServer:
    def __init__(self, invocation: Invocation) -> None:
        self.invocation = invocation
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.invocation = invocation
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"runtime-api-{invocation.request_id[:8]}", daemon=True,
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.invocation.released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)
