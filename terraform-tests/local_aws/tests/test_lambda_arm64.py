"""A function's Architectures: arm64 code runs in an arm64 function only, natively on an
AArch64 host and through the configured emulator (qemu-user) on an x86_64 one; code of the
other architecture fails as Lambda fails (``Runtime.InvalidEntrypoint``, ``fork/exec
.../bootstrap: exec format error``); an arm64 function with no emulator fails with an error
that names the option.

The tests that run arm64 code need qemu-aarch64 and an arm64 sysroot (tools/install-tools
puts them in ``.tools/qemu``; ``AUTOHEAL_QEMU_AARCH64`` and ``AUTOHEAL_AARCH64_SYSROOT``
override the paths) and skip, saying so (also in the tools/test summary), without them. The
tiny arm64 runtime is compiled with zig (``python -m ziglang cc``, the venv's); the real
handler's zip is ``target/handler/arm64/bootstrap.zip`` (``tools/build-handler --arch
arm64``), unless ``AUTOHEAL_NO_ARM64_HANDLER`` says why there is none for this code (tools/test
sets it when it did not build one).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, NoReturn

import pytest

from conftest import PACKAGE_ROOT, ROLE_TRUST, Server, invocations, start_server
from localaws.lambda_runner import EMULATOR_ENV, HOST_ARCHITECTURE, NO_EMULATOR, elf_architecture

REPO = PACKAGE_ROOT.parent.parent
TOOLS = Path(os.environ.get("AUTOHEAL_TOOLS_DIR") or REPO / ".tools")
QEMU = Path(os.environ.get("AUTOHEAL_QEMU_AARCH64") or TOOLS / "qemu" / "bin" / "qemu-aarch64-static")
SYSROOT = Path(os.environ.get("AUTOHEAL_AARCH64_SYSROOT") or TOOLS / "qemu" / "aarch64-sysroot")
HANDLER_ZIP_ARM64 = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target") / "handler" / "arm64" / "bootstrap.zip"

pytestmark = pytest.mark.skipif(
    HOST_ARCHITECTURE != "x86_64",
    reason=f"written for an x86_64 host (this one is {HOST_ARCHITECTURE}): arm64 code would run natively",
)

# The first bytes of an ELF64 executable for AArch64 (e_machine 183): enough for the runner
# to tell what it is, never run.
AARCH64_ELF_HEADER = (
    b"\x7fELF\x02\x01\x01\x00" + bytes(8) + (2).to_bytes(2, "little") + (183).to_bytes(2, "little")
    + (1).to_bytes(4, "little") + bytes(40)
)
# A native x86_64 executable that exits 0 at once.
X86_64_PROGRAM = Path(shutil.which("true") or "/bin/true")

TINY_RUNTIME_C = r"""
#define _GNU_SOURCE
/* A tiny custom runtime: each event from the Lambda Runtime API is answered with the
   machine uname(2) reports (under qemu-user: aarch64). */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

static int request(const char *api, const char *head, const char *body, char *out, size_t cap) {
  char host[256];
  const char *colon = strrchr(api, ':');
  if (!colon || colon - api >= (long)sizeof host) return -1;
  memcpy(host, api, colon - api);
  host[colon - api] = 0;
  struct addrinfo hints = {0}, *res;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(host, colon + 1, &hints, &res)) return -1;
  int fd = socket(res->ai_family, res->ai_socktype, 0);
  if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen)) return -1;
  freeaddrinfo(res);
  char req[1024];
  int n = snprintf(req, sizeof req, "%sHost: %s\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n%s",
                   head, api, strlen(body), body);
  if (write(fd, req, n) != n) return -1;
  size_t got = 0;
  ssize_t r;
  while (got + 1 < cap && (r = read(fd, out + got, cap - 1 - got)) > 0) got += r;
  out[got] = 0;
  close(fd);
  return 0;
}

int main(void) {
  const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
  static char buf[65536];
  char head[512], id[128], body[256];
  struct utsname u;
  if (!api || uname(&u)) return 2;
  printf("tiny runtime on %s\n", u.machine);
  fflush(stdout);
  for (;;) {
    if (request(api, "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n", "", buf, sizeof buf)) return 3;
    char *h = strcasestr(buf, "Lambda-Runtime-Aws-Request-Id:");
    if (!h || sscanf(h + 30, " %127[^\r\n]", id) != 1) return 4;
    snprintf(head, sizeof head, "POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\n", id);
    snprintf(body, sizeof body, "{\"machine\": \"%s\"}", u.machine);
    if (request(api, head, body, buf, sizeof buf)) return 5;
  }
}
"""


def skip(what: str, why: str) -> NoReturn:
    """Skips the test, and says so in the tools/test summary (``$AUTOHEAL_SKIP_FILE``, as the
    Rust tests' ``report_skip``)."""
    if os.environ.get("AUTOHEAL_SKIP_FILE"):
        with open(os.environ["AUTOHEAL_SKIP_FILE"], "a") as f:
            f.write(f"{what}: {why}\n")
    pytest.skip(f"NOT VERIFIED HERE: {what}: {why}")


def zip_of(bootstrap: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o100755 << 16
        info.create_system = 3
        zf.writestr(info, bootstrap)
    return buf.getvalue()


def deploy(server: Server, name: str, code: bytes, architecture: str | None, env: dict[str, str] | None = None) -> None:
    iam = server.client("iam")
    try:
        role_arn = iam.get_role(RoleName="fn-role")["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        role_arn = iam.create_role(RoleName="fn-role", AssumeRolePolicyDocument=ROLE_TRUST)["Role"]["Arn"]
    kwargs: dict[str, Any] = {}
    if architecture is not None:
        kwargs["Architectures"] = [architecture]
    server.client("lambda").create_function(
        FunctionName=name, Runtime="provided.al2023", Handler="bootstrap", Role=role_arn,
        Code={"ZipFile": code}, Timeout=20, MemorySize=128, Environment={"Variables": env or {}}, **kwargs,
    )


def invoke(server: Server, name: str) -> tuple[str | None, dict[str, Any], dict[str, Any]]:
    """(FunctionError, the answer's JSON, the invocation record) of one synchronous Invoke."""
    resp = server.client("lambda").invoke(FunctionName=name, Payload=b'{"k": "v"}')
    body = json.loads(resp["Payload"].read())
    (record,) = invocations(server, name)
    return resp.get("FunctionError"), body, record


def log_lines(server: Server, name: str) -> list[str]:
    events = server.client("logs").filter_log_events(logGroupName=f"/aws/lambda/{name}")["events"]
    return [e["message"] for e in events]


def stop(srv: Server) -> None:
    srv.proc.terminate()
    try:
        code = srv.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        srv.proc.kill()
        raise AssertionError("localaws did not stop on SIGTERM")
    assert code == 0, srv.stderr()[-3000:]


def start_with_emulator(tmp: Path, emulator: str | None) -> Server:
    """A server whose arm64 emulator is `emulator` (through LOCALAWS_AARCH64_EMULATOR), or
    none even if the caller's environment names one."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(EMULATOR_ENV, raising=False)
        if emulator is not None:
            mp.setenv(EMULATOR_ENV, emulator)
        return start_server(tmp)


def qemu_missing() -> str | None:
    if not os.access(QEMU, os.X_OK):
        return f"no qemu-aarch64 at {QEMU} (tools/install-tools installs it; or set AUTOHEAL_QEMU_AARCH64)"
    if not (SYSROOT / "lib" / "ld-linux-aarch64.so.1").exists():
        return f"no arm64 sysroot at {SYSROOT} (tools/install-tools; or set AUTOHEAL_AARCH64_SYSROOT)"
    return None


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A server with no emulator."""
    srv = start_with_emulator(tmp_path_factory.mktemp("plain"), None)
    yield srv
    stop(srv)


@pytest.fixture(scope="module")
def emulated(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A server that runs arm64 code through qemu-aarch64."""
    why = qemu_missing()
    if why:
        skip("arm64 code under the local AWS's emulator (test_lambda_arm64.py)", why)
    srv = start_with_emulator(tmp_path_factory.mktemp("emulated"), f"{QEMU} -L {SYSROOT}")
    yield srv
    stop(srv)


@pytest.fixture(scope="module")
def tiny_arm64_runtime(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """TINY_RUNTIME_C compiled for aarch64 (static, musl) by the venv's zig."""
    try:
        import ziglang  # noqa: F401
    except ImportError:
        skip("a tiny arm64 runtime under the emulator (test_lambda_arm64.py)",
             "no ziglang in this Python to compile it (tools/install-tools)")
    tmp = tmp_path_factory.mktemp("tiny")
    (tmp / "rt.c").write_text(TINY_RUNTIME_C)
    env = dict(os.environ)
    if TOOLS.is_dir():
        env["XDG_CACHE_HOME"] = str(TOOLS / "cache")  # zig's cache, shared with tools/build-handler
    subprocess.run(
        [sys.executable, "-m", "ziglang", "cc", "-target", "aarch64-linux-musl", "-static", "-Os",
         "-o", str(tmp / "rt"), str(tmp / "rt.c")],
        check=True, env=env, timeout=600,
    )
    binary = (tmp / "rt").read_bytes()
    assert elf_architecture(str(tmp / "rt")) == "arm64"
    return binary


@pytest.fixture
def fresh_plain(plain: Server) -> Server:
    plain.reset()
    return plain


@pytest.fixture
def fresh_emulated(emulated: Server) -> Server:
    emulated.reset()
    return emulated


# --- no emulator needed ------------------------------------------------------------------------


def test_elf_architecture_reads_the_machine(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(AARCH64_ELF_HEADER)
    (tmp_path / "s").write_text("#!/bin/sh\necho hi\n")
    (tmp_path / "riscv").write_bytes(AARCH64_ELF_HEADER[:18] + (243).to_bytes(2, "little") + AARCH64_ELF_HEADER[20:])
    assert elf_architecture(str(tmp_path / "a")) == "arm64"
    assert elf_architecture(str(X86_64_PROGRAM)) == "x86_64"
    assert elf_architecture(str(tmp_path / "s")) is None
    assert elf_architecture(str(tmp_path / "riscv")) == "elf-machine-243"
    assert elf_architecture(str(tmp_path / "missing")) is None


def test_the_option_wins_over_the_environment_and_must_name_an_executable(monkeypatch: pytest.MonkeyPatch) -> None:
    from localaws.__main__ import parse_args

    monkeypatch.setenv(EMULATOR_ENV, "true -L /env")
    assert parse_args([]).aarch64_emulator == [os.path.abspath(shutil.which("true") or ""), "-L", "/env"]
    assert parse_args(["--aarch64-emulator", "'/bin/true' -L '/a b'"]).aarch64_emulator == ["/bin/true", "-L", "/a b"]
    monkeypatch.delenv(EMULATOR_ENV)
    assert parse_args([]).aarch64_emulator is None
    with pytest.raises(SystemExit):
        parse_args(["--aarch64-emulator", "/no/such/qemu -L /x"])
    monkeypatch.setenv(EMULATOR_ENV, "/no/such/qemu")
    with pytest.raises(SystemExit):
        parse_args([])


def test_x86_64_code_in_an_arm64_function_fails_as_lambda_does(fresh_plain: Server) -> None:
    """Lambda answers an x86_64 bootstrap in an arm64 function (and the reverse) with
    Runtime.InvalidEntrypoint, "fork/exec /var/task/bootstrap: exec format error"
    (awsdocs/aws-lambda-developer-guide issue 460, aws/aws-lambda-go issue 554)."""
    server = fresh_plain
    code = zip_of(X86_64_PROGRAM.read_bytes())
    deploy(server, "x86-in-arm", code, "arm64")
    deploy(server, "x86-in-x86", code, None)  # Lambda's default architecture: x86_64
    lam = server.client("lambda")
    assert lam.get_function(FunctionName="x86-in-arm")["Configuration"]["Architectures"] == ["arm64"]
    assert lam.get_function(FunctionName="x86-in-x86")["Configuration"]["Architectures"] == ["x86_64"]

    error, body, record = invoke(server, "x86-in-arm")
    assert error == "Unhandled"
    assert body["errorType"] == "Runtime.InvalidEntrypoint", body
    assert re.fullmatch(r"RequestId: [0-9a-f-]{36} Error: fork/exec /\S+/bootstrap: exec format error",
                        body["errorMessage"]), body
    assert record["request_id"] in body["errorMessage"]
    assert (record["outcome"], record["error_type"]) == ("init_error", "Runtime.InvalidEntrypoint")
    assert (record["architecture"], record["emulator"]) == ("arm64", None)
    lines = log_lines(server, "x86-in-arm")
    assert [line.split("\t")[1:4] for line in lines if line.startswith("INIT_REPORT")] == [
        ["Phase: init", "Status: error", "Error Type: Runtime.InvalidEntrypoint"],
        ["Phase: invoke", "Status: error", "Error Type: Runtime.InvalidEntrypoint"],
    ]
    assert f"{body['errorMessage']}\nRuntime.InvalidEntrypoint" in lines
    assert any(line.startswith(f"REPORT RequestId: {record['request_id']}\t") for line in lines)

    # Control: the same zip in an x86_64 function is started (`true` exits at once, without
    # taking the event: Lambda's Runtime.ExitError).
    error, body, record = invoke(server, "x86-in-x86")
    assert error == "Unhandled"
    assert (record["outcome"], record["error_type"], record["architecture"]) == ("init_error", "Runtime.ExitError", "x86_64")
    assert body["errorMessage"].endswith("Runtime exited with error: exit status 0"), body


def test_arm64_code_in_an_x86_64_function_fails_as_lambda_does(fresh_plain: Server) -> None:
    server = fresh_plain
    deploy(server, "arm-in-x86", zip_of(AARCH64_ELF_HEADER), "x86_64")
    error, body, record = invoke(server, "arm-in-x86")
    assert error == "Unhandled"
    assert body["errorType"] == "Runtime.InvalidEntrypoint", body
    assert body["errorMessage"].endswith("/bootstrap: exec format error"), body
    assert (record["architecture"], record["emulator"]) == ("x86_64", None)


def test_an_arm64_function_without_an_emulator_fails_naming_the_option(fresh_plain: Server) -> None:
    server = fresh_plain
    deploy(server, "arm", zip_of(AARCH64_ELF_HEADER), "arm64")
    error, body, record = invoke(server, "arm")
    assert error == "Unhandled"
    assert body["errorType"] == NO_EMULATOR, body
    message = body["errorMessage"]
    for words in ("arm64", "x86_64 host", "--aarch64-emulator", EMULATOR_ENV, "limitation of the local AWS"):
        assert words in message, message
    assert (record["outcome"], record["error_type"]) == ("init_error", NO_EMULATOR)
    assert (record["architecture"], record["emulator"]) == ("arm64", None)
    assert f"{message}\n{NO_EMULATOR}" in log_lines(server, "arm")
    assert "--aarch64-emulator" in server.stderr()  # the server's log says it too


def test_update_function_code_changes_the_architecture_with_the_code(fresh_plain: Server) -> None:
    # UpdateFunctionCode's Architectures moves the function to the other instruction set (the
    # provider sends it when lambda_architecture changes in place); moto ignored it.
    server = fresh_plain
    lam = server.client("lambda")
    deploy(server, "moves", zip_of(AARCH64_ELF_HEADER), "x86_64")
    assert lam.get_function_configuration(FunctionName="moves")["Architectures"] == ["x86_64"]
    lam.update_function_code(FunctionName="moves", ZipFile=zip_of(AARCH64_ELF_HEADER), Architectures=["arm64"])
    assert lam.get_function_configuration(FunctionName="moves")["Architectures"] == ["arm64"]
    # Without an emulator the arm64 function now fails as arm64, not with exec format error.
    error, body, record = invoke(server, "moves")
    assert (error, body["errorType"], record["architecture"]) == ("Unhandled", NO_EMULATOR, "arm64"), body
    # Code alone keeps the architecture.
    lam.update_function_code(FunctionName="moves", ZipFile=zip_of(AARCH64_ELF_HEADER))
    assert lam.get_function_configuration(FunctionName="moves")["Architectures"] == ["arm64"]


# --- through qemu-aarch64 ------------------------------------------------------------------------


def test_an_arm64_program_runs_through_the_emulator_and_talks_to_the_runtime_api(
    fresh_emulated: Server, tiny_arm64_runtime: bytes
) -> None:
    server = fresh_emulated
    code = zip_of(tiny_arm64_runtime)
    deploy(server, "tiny", code, "arm64")
    error, body, record = invoke(server, "tiny")
    assert error is None, body
    assert body == {"machine": "aarch64"}  # uname(2) under qemu-user
    assert (record["outcome"], record["architecture"]) == ("success", "arm64")
    assert record["emulator"] == f"{QEMU.resolve()} -L {SYSROOT}"
    lines = log_lines(server, "tiny")
    assert "tiny runtime on aarch64" in lines
    report = next(line for line in lines if line.startswith(f"REPORT RequestId: {record['request_id']}\t"))
    # Max Memory Used is the emulator process's peak RSS (about 11 MB here), not the
    # program's (natively under 1 MB, which the REPORT line would show as 1 MB).
    used = int(re.search(r"Max Memory Used: (\d+) MB", report).group(1))  # type: ignore[union-attr]
    assert used >= 4, report

    # The emulator is for arm64 functions only: the same code in an x86_64 one fails as on AWS.
    deploy(server, "tiny-x86", code, "x86_64")
    error, body, record = invoke(server, "tiny-x86")
    assert (error, body["errorType"]) == ("Unhandled", "Runtime.InvalidEntrypoint"), body
    assert body["errorMessage"].endswith("exec format error") and record["emulator"] is None


def test_the_arm64_handler_starts_under_the_emulator(fresh_emulated: Server) -> None:
    """The real arm64 handler (glibc, dynamically linked: its loader and libraries come from
    the sysroot) starts, reads its settings and, missing them, reports its own init error to
    the Runtime API, as it would on Lambda."""
    what = "the arm64 handler under the emulator (test_lambda_arm64.py)"
    if os.environ.get("AUTOHEAL_NO_ARM64_HANDLER"):
        skip(what, f"no arm64 handler: {os.environ['AUTOHEAL_NO_ARM64_HANDLER']}")
    if not HANDLER_ZIP_ARM64.is_file():
        skip(what, f"no {HANDLER_ZIP_ARM64} (tools/build-handler --arch arm64)")
    server = fresh_emulated
    deploy(server, "handler", HANDLER_ZIP_ARM64.read_bytes(), "arm64")
    error, body, record = invoke(server, "handler")
    assert error == "Unhandled"
    assert (record["outcome"], record["error_type"]) == ("init_error", "Autoheal.InvalidSettings"), record
    assert record["emulator"] and "qemu-aarch64" in record["emulator"]
    assert body["errorType"] == "Autoheal.InvalidSettings", body
