# The shebang above this line is written by tools/bench_handler.py when it packs the zip.
"""`bootstrap` of the Python peer: a minimal Lambda custom runtime.

A provided.al2023 function runs an executable called `bootstrap` that speaks
the Runtime API at $AWS_LAMBDA_RUNTIME_API: import the handler (the init
phase; a failure is posted to /runtime/init/error), then for ever GET
/invocation/next, call the handler, POST its result to .../response or the
exception to .../error.

The interpreter is not in the zip. Lambda's provided.al2023 image has no
Python with boto3, so on AWS this peer would need the python3.x managed
runtime (which brings its own runtime loop and boto3) or a bundled
interpreter. Here the local AWS runs `bootstrap` natively, so the packer puts
the absolute path of the project's venv python (which has boto3) in the
shebang: the zip only works on the machine that packed it, and its size does
not count the interpreter or boto3 (tools/bench-handler reports those apart).

Standard library only (http.client, the lightest HTTP client there is), so the
runtime itself adds little to the cold start that is being measured.
"""

import http.client
import json
import os
import sys
import traceback

API = os.environ["AWS_LAMBDA_RUNTIME_API"]
PREFIX = "/2018-06-01/runtime"


def call(method, path, body=None, headers=None):
    conn = http.client.HTTPConnection(API, timeout=None)
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, PREFIX + path, body=data, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def error_document(exc):
    return {
        "errorType": type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_exception(exc),
    }


def main():
    # Lambda forwards stdout line by line; a pipe would otherwise buffer it.
    sys.stdout.reconfigure(line_buffering=True)
    try:
        import device_attachment  # noqa: PLC0415 - the init phase is the import
    except Exception as exc:  # noqa: BLE001 - any init failure is reported, then fatal
        traceback.print_exc()
        call("POST", "/init/error", error_document(exc),
             {"Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError"})
        sys.exit(1)

    while True:
        _, headers, body = call("GET", "/invocation/next")
        headers = {k.lower(): v for k, v in headers.items()}
        request_id = headers["lambda-runtime-aws-request-id"]
        try:
            result = device_attachment.handler(json.loads(body), headers)
        except Exception as exc:  # noqa: BLE001 - reported to Lambda, which retries
            traceback.print_exc()
            call("POST", f"/invocation/{request_id}/error", error_document(exc),
                 {"Lambda-Runtime-Function-Error-Type": "Unhandled"})
        else:
            call("POST", f"/invocation/{request_id}/response", result)


main()
