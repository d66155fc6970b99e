"""Running the deployed Lambda code, natively, with Lambda's semantics.

Moto can only run Lambda code in Docker (absent here) or echo the payload.
The autoheal handler is a ``provided.al2023`` function: a Linux x86_64
``bootstrap`` executable that speaks the Lambda Runtime API, and such a binary
runs fine on this machine. So an invocation here is:

1. Take the zip moto stored at CreateFunction/UpdateFunctionCode
   (``LambdaFunction.code_bytes``), unpack it once per CodeSha256 into a cache
   directory (zip unix modes kept: a bootstrap without its exec bit fails, as
   on Lambda) and use that as ``LAMBDA_TASK_ROOT``.
2. Start a Runtime API emulator (``runtime_api``) for this one event.
3. Start ``bootstrap`` in the task root with exactly the function's
   environment variables plus the ones Lambda sets (``AWS_LAMBDA_RUNTIME_API``,
   ``AWS_LAMBDA_FUNCTION_NAME``, ..., dummy credentials) and, because there is
   no other way for it to reach this local AWS, ``AWS_ENDPOINT_URL`` pointing
   here: the runner injects it as Lambda injects credentials, so the provider
   never has to copy endpoints into the function's configuration.
4. Wait for the result, the process's exit, or the function's Timeout in
   *real* seconds (kill -> ``Sandbox.Timedout``). Exiting before taking the
   event, or posting ``init/error``, is an init failure.
5. Write its stdout/stderr lines, with START/END/REPORT lines like Lambda's
   (Max Memory Used: the process's peak RSS, VmHWM, sampled while it runs), to CloudWatch Logs group
   ``/aws/lambda/NAME`` in moto's logs backend (created if absent), stream
   ``YYYY/MM/DD/[$LATEST]<32 hex>``. With the profile's ``iam_evaluation`` on, only
   if the execution role may (``logs:CreateLogStream`` and ``logs:PutLogEvents`` on the
   stream, and ``logs:CreateLogGroup`` when the group does not exist yet, also when it
   was deleted while the function runs): Lambda writes
   logs with the role's permissions and drops them otherwise (Lambda Developer Guide,
   "Sending Lambda function logs to CloudWatch Logs": the execution role needs these
   permissions).

Every attempt is a fresh process: every invocation is a cold start (there
are no warm sandboxes), which is slower but keeps attempts independent.

Architectures. A function's ``Architectures`` (CreateFunction; moto keeps it on
``LambdaFunction.architectures``, ``["x86_64"]`` when not given, as Lambda's
default) says which instruction set its code runs on, and Lambda runs nothing else:
an ELF ``bootstrap`` built for the other architecture fails at init with
``Runtime.InvalidEntrypoint``, ``RequestId: <id> Error: fork/exec
/var/task/bootstrap: exec format error`` (what Lambda answers and logs for an
x86_64 binary in an arm64 function and the reverse: awsdocs/aws-lambda-developer-guide
issue 460, aws/aws-lambda-go issue 554, aws/aws-sam-cli issue 3338). So the runner
reads the bootstrap's ELF header (``e_machine``) before it starts it: a mismatch
fails that way whatever this host could run (a host with binfmt_misc would
otherwise run the wrong code through it). A function whose architecture is this
host's runs natively; an ``arm64`` function on an x86_64 host runs through the
emulator given with ``--aarch64-emulator`` or ``LOCALAWS_AARCH64_EMULATOR``
(``qemu-aarch64-static -L SYSROOT``: Debian's qemu-user, no binfmt_misc needed),
``EMULATOR ARGS... TASK_ROOT/bootstrap``. Without one the attempt fails at init with
``LocalAWS.NoEmulator``, a limitation of this local AWS that names the option (on
AWS the function would run). A bootstrap that is not an ELF (a ``#!`` script) runs
with this host's interpreter whatever the architecture. Under an emulator the
REPORT line's Max Memory Used is the emulator process's peak RSS (qemu's own
memory, translated code included, plus the program's), not what the arm64
program would use on Lambda; the invocation record names the ``architecture``
and the ``emulator`` used (null when native).

Asynchronous invocations (EventBridge targets, ``InvocationType=Event``)
follow Lambda's async rules: a failed attempt (function error, timeout, init
failure) is retried twice, after 60 s and 120 s of virtual time ("If the
function returns an error, Lambda attempts to run it two more times, with a
one-minute wait between the first two attempts, and two minutes between the
second and third attempts", Lambda Developer Guide, "Error handling and
automatic retries"); ``MaximumRetryAttempts`` (``event_invoke_config``) caps
the retries. ``MaximumEventAgeInSeconds`` (default 6 h) caps how long the
event is kept, counted in virtual seconds from when it was first queued: a
retry or throttled event that would run later is discarded when it reaches
that age ("When an event ... stays in the asynchronous invocation queue for
too long, Lambda discards it", PutFunctionEventInvokeConfig) and recorded as
``expired``. Reserved concurrency (PutFunctionConcurrency) is enforced: with 0
nothing runs and the event is throttled and retried with backoff (1 s doubling
to 5 min, virtual), with N at most N attempts run at once and the others wait
for a slot.

EventBridge may only invoke a function whose resource policy (AddPermission,
kept by moto) allows principal ``events.amazonaws.com`` the action
``lambda:InvokeFunction`` with an ``AWS:SourceArn`` condition matching the
rule's ARN (or no such condition); otherwise the delivery is recorded as
``denied`` and nothing runs.

Synchronous ``Invoke`` (RequestResponse) runs the same way in the request's
thread and answers like Lambda (``X-Amz-Function-Error``, 429 when throttled).
"""

from __future__ import annotations

import base64
import errno
import fnmatch
import json
import logging
import math
import os
import platform
import secrets
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
import zipfile
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .event_invoke_config import async_settings
from .runtime_api import Invocation, RuntimeAPIServer

if TYPE_CHECKING:
    from .world import World

log = logging.getLogger("localaws.lambda")

PROVIDED_RUNTIMES = ("provided.al2023", "provided.al2", "provided")
LAMBDA_PATH = "/usr/local/bin:/usr/bin/:/bin:/opt/bin"
RETRY_DELAYS = (60.0, 120.0)  # virtual seconds before the 2nd and 3rd attempt
INIT_LIMIT_S = 10.0  # Lambda's init phase limit (real seconds)
THROTTLE_BACKOFF_MAX = 300.0

# Lambda's instruction set architectures by the ELF e_machine of the code each runs
# (EM_X86_64, EM_AARCH64), and this host's, in Lambda's words.
ELF_MACHINES = {62: "x86_64", 183: "arm64"}
HOST_ARCHITECTURE = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(
    platform.machine().lower(), platform.machine().lower())
EMULATOR_OPTION = "--aarch64-emulator"
EMULATOR_ENV = "LOCALAWS_AARCH64_EMULATOR"
NO_EMULATOR = "LocalAWS.NoEmulator"


def elf_architecture(path: str) -> str | None:
    """The Lambda architecture an ELF executable is built for (``x86_64``, ``arm64``, or
    ``elf-machine-N`` for any other machine); None when the file is not an ELF (a script,
    or missing: exec says why)."""
    try:
        with open(path, "rb") as f:
            header = f.read(20)
    except OSError:
        return None
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    machine = int.from_bytes(header[18:20], "big" if header[5] == 2 else "little")
    return ELF_MACHINES.get(machine, f"elf-machine-{machine}")


def parse_emulator(text: str) -> list[str]:
    """``"PATH [ARGS...]"`` (shell words, e.g. ``qemu-aarch64-static -L /usr/aarch64-linux-gnu``)
    as an argv prefix whose program is an absolute path; ValueError when it names no
    executable."""
    words = shlex.split(text)
    if not words:
        raise ValueError("empty emulator command")
    program = shutil.which(words[0])
    if program is None:
        raise ValueError(f"{words[0]!r} is not an executable file (nor found on PATH)")
    return [os.path.abspath(program), *words[1:]]


def iso_ms(epoch: float) -> str:
    dt = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_function_arn(arn: str) -> tuple[str, str, str, str | None]:
    """(account, region, name, qualifier) of a function ARN."""
    parts = arn.split(":")
    if len(parts) < 7 or parts[2] != "lambda" or parts[5] != "function":
        raise ValueError(f"not a Lambda function ARN: {arn}")
    qualifier = parts[7] if len(parts) > 7 else None
    return parts[4], parts[3], parts[6], qualifier


@dataclass
class FunctionSnapshot:
    """What one attempt needs, copied from moto's model under the lock."""

    name: str
    arn: str
    account: str
    region: str
    runtime: str | None
    handler: str | None
    role: str  # the execution role's ARN
    env: dict[str, str]
    timeout: float
    memory: int
    code_bytes: bytes
    code_sha: str
    reserved: int | None
    max_retries: int
    max_event_age: float
    # CreateFunction's Architectures (one of them): "x86_64" or "arm64".
    architecture: str = "x86_64"
    # The role was made after the function's configuration was last written: see
    # ``LambdaRunner.grant_is_stale``.
    stale_grant: bool = False


@dataclass
class AsyncJob:
    request_id: str
    account: str
    region: str
    name: str
    qualifier: str | None
    payload: bytes
    event_id: str | None
    rule_arn: str | None
    source: str
    generation: int
    first_seen: float  # virtual seconds
    attempt: int = 1
    throttles: int = 0


@dataclass
class AttemptResult:
    outcome: str  # success | error | timeout | init_error
    error_type: str | None
    response: bytes
    error_body: bytes
    duration_ms: float
    log_stream: str
    logs: list[str] = field(default_factory=list)


def events_may_invoke(policy_statements: list[dict[str, Any]], rule_arn: str, account: str) -> bool:
    """Does the function's resource policy let EventBridge's rule invoke it?"""

    def as_list(v: Any) -> list[Any]:
        return v if isinstance(v, list) else [v]

    def statement_applies(st: dict[str, Any]) -> bool:
        actions = as_list(st.get("Action", []))
        if not any(a in ("lambda:InvokeFunction", "lambda:*", "*") for a in actions):
            return False
        principal = st.get("Principal")
        if principal != "*":
            if not isinstance(principal, dict):
                return False
            services = as_list(principal.get("Service", []))
            if "events.amazonaws.com" not in services and principal.get("AWS") != "*":
                return False
        for op, conditions in (st.get("Condition") or {}).items():
            for key, values in conditions.items():
                values = as_list(values)
                key_l = key.lower()
                if key_l == "aws:sourcearn":
                    if op in ("ArnLike", "StringLike"):
                        if not any(fnmatch.fnmatchcase(rule_arn, v) for v in values):
                            return False
                    elif op in ("ArnEquals", "StringEquals"):
                        if rule_arn not in values:
                            return False
                    else:
                        return False
                elif key_l == "aws:sourceaccount":
                    if op not in ("StringEquals", "StringLike") or not any(
                        fnmatch.fnmatchcase(account, v) for v in values
                    ):
                        return False
                else:
                    return False  # a condition we cannot evaluate: not granted
        return True

    allowed = False
    for st in policy_statements:
        if not statement_applies(st):
            continue
        if st.get("Effect", "Allow") == "Deny":
            return False
        allowed = True
    return allowed


class LambdaRunner:
    def __init__(self, world: World) -> None:
        self.world = world
        self.records: list[dict[str, Any]] = []
        self._records_lock = threading.Lock()
        self._slots = threading.Condition()
        self._running: dict[tuple[str, str, str], int] = defaultdict(int)
        self._waiting: dict[tuple[str, str, str], deque[AsyncJob]] = defaultdict(deque)
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._procs_lock = threading.Lock()
        self._root = tempfile.mkdtemp(prefix="localaws-lambda-")
        self._unpack_locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        # Access key id -> the attempt it was issued to (see ``identity``).
        self._issued: dict[str, dict[str, str]] = {}
        self._issued_lock = threading.Lock()
        # Role name -> when it was made; (region, function) -> when its configuration was
        # last written (see ``grant_is_stale``). Touched with the world lock held.
        self._roles_made: dict[str, float] = {}
        self._configured: dict[tuple[str, str], float] = {}
        # (log stream, its group missing) -> may the function's role write it (iam_enforce.lambda_may_log).
        self._log_permission: dict[tuple[str, bool], bool] = {}
        # The argv prefix that runs arm64 code on a host that is not arm64 (``--aarch64-emulator``,
        # ``LOCALAWS_AARCH64_EMULATOR``; set by __main__); None: arm64 code runs only natively.
        self.aarch64_emulator: list[str] | None = None

    # -- which program runs the bootstrap -------------------------------------------

    def launch_command(self, snap: FunctionSnapshot, bootstrap: str) -> tuple[list[str] | None, str | None, str | None]:
        """``(argv, None, None)`` to start the bootstrap, else ``(None, error_type, reason)``
        for an attempt that fails at init: Lambda's exec format error for code of the other
        architecture, or this local AWS's own limit (no emulator for it here)."""
        code = elf_architecture(bootstrap)
        if code is None:
            return [bootstrap], None, None  # a script (or nothing to run: exec says why)
        if code != snap.architecture:
            # Lambda exec's the bootstrap on the function's architecture: the kernel refuses it.
            return None, "Runtime.InvalidEntrypoint", "exec format error"
        if code == HOST_ARCHITECTURE:
            return [bootstrap], None, None
        if code == "arm64" and self.aarch64_emulator:
            if not os.access(bootstrap, os.X_OK):
                return None, "Runtime.InvalidEntrypoint", "permission denied"  # as exec would say
            return [*self.aarch64_emulator, bootstrap], None, None
        option = f" with {EMULATOR_OPTION} 'qemu-aarch64-static -L SYSROOT' (or {EMULATOR_ENV})" if code == "arm64" else ""
        return None, NO_EMULATOR, (
            f"localaws cannot run this {snap.architecture} function's bootstrap on its {HOST_ARCHITECTURE} host: "
            f"no emulator for {snap.architecture} is configured; start the local AWS{option}. This is a "
            f"limitation of the local AWS, not a Lambda error: on AWS the function would run."
        )

    # -- the environment variables' KMS grant -----------------------------------
    #
    # Lambda encrypts a function's environment variables and grants the function's role
    # access to the key when the function is created or its configuration updated. The grant
    # names the role's principal, not its name: a role deleted and made again under the same
    # name is a new principal, and the function fails at init ("Lambda was unable to decrypt
    # the environment variables because KMS access was denied", KMSAccessDeniedException)
    # until its configuration is updated, which makes a new grant. Times are this server's
    # monotonic clock, noted for the calls that succeeded (lock held).

    def role_created(self, role_name: str) -> None:
        self._roles_made[role_name] = time.monotonic()

    def function_configured(self, region: str, name: str) -> None:
        self._configured[(region, name)] = time.monotonic()

    def grant_is_stale(self, region: str, name: str, role_arn: str) -> bool:
        role_name = role_arn.rsplit("/", 1)[-1]
        made = self._roles_made.get(role_name)
        configured = self._configured.get((region, name))
        return made is not None and configured is not None and made > configured

    # -- bookkeeping ---------------------------------------------------------------

    def list(self) -> list[dict[str, Any]]:
        with self._records_lock:
            return list(self.records)

    def clear(self) -> None:
        with self._records_lock:
            self.records.clear()

    def reset(self) -> None:
        """Forget everything; running processes are killed (called with the lock held)."""
        self.kill_all()
        with self._slots:
            self._waiting.clear()
        with self._issued_lock:
            self._issued.clear()
        self._roles_made.clear()
        self._configured.clear()
        self._log_permission.clear()
        self.clear()

    def issue_credentials(self, function: str, request_id: str, role: str) -> str:
        """A fresh access key id for one attempt. Lambda gives each execution environment
        its own temporary credentials of the function's role, so CloudTrail names the
        function behind every call; the call log does the same through ``identity``, and
        ``iam_propagation`` judges the call by the role."""
        key = "ASIA" + secrets.token_hex(8).upper()
        with self._issued_lock:
            self._issued[key] = {"function": function, "request_id": request_id, "role": role}
        return key

    def identity(self, access_key_id: str | None) -> dict[str, str] | None:
        """The function, attempt and role an access key id was issued to, or None."""
        if not access_key_id:
            return None
        with self._issued_lock:
            return self._issued.get(access_key_id)

    def kill_all(self) -> None:
        with self._procs_lock:
            procs = list(self._procs.values())
        for proc in procs:
            _kill_group(proc)

    def close(self) -> None:
        self.kill_all()
        shutil.rmtree(self._root, ignore_errors=True)

    def _record(self, job_generation: int, entry: dict[str, Any]) -> None:
        if job_generation != self.world.generation:
            return
        with self._records_lock:
            self.records.append(entry)

    def _base_record(self, job: AsyncJob, outcome: str, error_type: str | None = None) -> dict[str, Any]:
        now = time.time()
        return {
            "function": job.name,
            "request_id": job.request_id,
            "event_id": job.event_id,
            "rule_arn": job.rule_arn,
            "attempt": job.attempt,
            "outcome": outcome,
            "error_type": error_type,
            "duration_ms": 0.0,
            "started": iso_ms(now),
            "ended": iso_ms(now),
            "log_stream": None,
            "source": job.source,
        }

    # -- moto lookups (lock held) ------------------------------------------------

    def _snapshot(self, account: str, region: str, name: str, qualifier: str | None) -> FunctionSnapshot | None:
        from moto.awslambda import lambda_backends

        try:
            fn = lambda_backends[account][region].get_function(name, qualifier)
        except Exception:
            return None
        reserved = fn.reserved_concurrency
        max_retries, max_age = async_settings(fn)
        return FunctionSnapshot(
            name=fn.function_name,
            arn=fn.function_arn,
            account=account,
            region=region,
            runtime=fn.run_time,
            handler=fn.handler,
            role=str(fn.role or ""),
            env=dict(fn.environment_vars or {}),
            timeout=float(fn.timeout or 3),
            memory=int(fn.memory_size or 128),
            code_bytes=getattr(fn, "code_bytes", b"") or b"",
            code_sha=getattr(fn, "code_sha_256", "") or "",
            reserved=int(reserved) if reserved is not None else None,
            max_retries=max_retries,
            max_event_age=max_age,
            architecture=(list(getattr(fn, "architectures", None) or []) or ["x86_64"])[0],
            stale_grant=self.grant_is_stale(region, fn.function_name, str(fn.role or "")),
        )

    # -- asynchronous invocations -------------------------------------------------

    def submit_event(self, function_arn: str, payload: bytes, event_id: str, rule_arn: str) -> None:
        """An EventBridge rule delivers ``payload`` to a function (lock held)."""
        from moto.awslambda import lambda_backends

        account, region, name, qualifier = parse_function_arn(function_arn)
        job = AsyncJob(
            request_id=str(uuid.uuid4()), account=account, region=region, name=name, qualifier=qualifier,
            payload=payload, event_id=event_id, rule_arn=rule_arn, source="events",
            generation=self.world.generation, first_seen=self.world.clock.now(),
        )
        try:
            fn = lambda_backends[account][region].get_function(name, qualifier)
        except Exception:
            self._record(job.generation, self._base_record(job, "error", "ResourceNotFoundException"))
            log.warning("rule %s targets missing function %s", rule_arn, function_arn)
            return
        rule_account = rule_arn.split(":")[4] if rule_arn.count(":") >= 4 else account
        if not events_may_invoke(list(fn.policy.statements), rule_arn, rule_account):
            self._record(job.generation, self._base_record(job, "denied", "AccessDeniedException"))
            log.warning("rule %s may not invoke %s: no matching resource policy statement", rule_arn, name)
            return
        self._dispatch(job)

    def submit_async(self, account: str, region: str, name: str, qualifier: str | None, payload: bytes) -> str:
        """Invoke with InvocationType=Event (IAM-authorised caller, no resource policy needed)."""
        job = AsyncJob(
            request_id=str(uuid.uuid4()), account=account, region=region, name=name, qualifier=qualifier,
            payload=payload, event_id=None, rule_arn=None, source="Invoke(Event)",
            generation=self.world.generation, first_seen=self.world.clock.now(),
        )
        self._dispatch(job)
        return job.request_id

    def _dispatch(self, job: AsyncJob) -> None:
        with self.world.lock:
            if job.generation != self.world.generation:
                return
            snap = self._snapshot(job.account, job.region, job.name, job.qualifier)
        if snap is None:
            self._record(job.generation, self._base_record(job, "error", "ResourceNotFoundException"))
            return
        if self.world.clock.now() - job.first_seen > snap.max_event_age:
            self._expire(job)  # it waited for a concurrency slot for too long
            return
        key = (job.account, job.region, job.name)
        if snap.reserved == 0:
            self._throttled(job, snap)
            return
        with self._slots:
            if snap.reserved is not None and self._running[key] >= snap.reserved:
                self._waiting[key].append(job)
                return
            self._running[key] += 1
        threading.Thread(target=self._run_async, args=(job, snap), name=f"lambda-{job.request_id[:8]}", daemon=True).start()

    def _throttled(self, job: AsyncJob, snap: FunctionSnapshot) -> None:
        self._record(job.generation, self._base_record(job, "throttled", "TooManyRequestsException"))
        delay = min(2.0 ** job.throttles, THROTTLE_BACKOFF_MAX)
        job.throttles += 1
        self._requeue(job, snap, delay, "throttle retry")

    def _requeue(self, job: AsyncJob, snap: FunctionSnapshot, delay: float, why: str) -> None:
        """Run the event again in ``delay`` virtual seconds, unless it is older than
        MaximumEventAgeInSeconds by then: then it is discarded when it reaches that age."""
        age = self.world.clock.now() - job.first_seen
        if age + delay > snap.max_event_age:
            self.world.scheduler.call_later(max(0.0, snap.max_event_age - age), lambda: self._expire(job),
                                            name=f"expire {job.request_id}")
            return
        self.world.scheduler.call_later(delay, lambda: self._dispatch(job), name=f"{why} {job.request_id}")

    def _expire(self, job: AsyncJob) -> None:
        """The event reached its maximum age unprocessed: Lambda discards it. ``attempt`` is
        the attempt not made; ``condition`` is what Lambda's invocation record for an
        on-failure destination says ("EventAgeExceeded", Lambda Developer Guide, "Capturing
        records of Lambda asynchronous invocations")."""
        self._record(job.generation, {**self._base_record(job, "expired"), "condition": "EventAgeExceeded"})
        log.info("event %s for %s discarded: older than its maximum event age", job.request_id, job.name)

    def _release_slot(self, key: tuple[str, str, str]) -> None:
        nxt = None
        with self._slots:
            self._running[key] -= 1
            if self._waiting[key]:
                nxt = self._waiting[key].popleft()
        if nxt is not None:
            self._dispatch(nxt)

    def _run_async(self, job: AsyncJob, snap: FunctionSnapshot) -> None:
        key = (job.account, job.region, job.name)
        try:
            result = self._attempt(snap, job.request_id, job.payload, job.generation,
                                   meta={"event_id": job.event_id, "rule_arn": job.rule_arn,
                                         "attempt": job.attempt, "source": job.source})
        except Exception:
            log.exception("invocation %s of %s crashed", job.request_id, job.name)
            result = None
        finally:
            self._release_slot(key)
        if result is None or result.outcome == "success":
            return
        retries_done = job.attempt - 1
        if retries_done >= snap.max_retries or job.generation != self.world.generation:
            log.info("invocation %s of %s failed for good (%s)", job.request_id, job.name, result.error_type)
            return
        delay = RETRY_DELAYS[min(retries_done, len(RETRY_DELAYS) - 1)]
        job.attempt += 1
        log.info("invocation %s of %s failed (%s): attempt %d in %ss (virtual)",
                 job.request_id, job.name, result.error_type, job.attempt, delay)
        self._requeue(job, snap, delay, "retry")

    # -- synchronous Invoke -----------------------------------------------------

    def invoke_sync(self, account: str, region: str, name: str, qualifier: str | None, payload: bytes,
                    log_tail: bool) -> tuple[int, list[tuple[str, str]], bytes]:
        from .awserrors import render_error

        with self.world.lock:
            snap = self._snapshot(account, region, name, qualifier)
        if snap is None:
            arn = f"arn:aws:lambda:{region}:{account}:function:{name}" + (f":{qualifier}" if qualifier else "")
            return render_error("rest-json", "lambda", "ResourceNotFoundException", f"Function not found: {arn}", 404)
        key = (account, region, snap.name)
        with self._slots:
            if snap.reserved is not None and self._running[key] >= snap.reserved:
                return _throttle_response()
            self._running[key] += 1
        request_id = str(uuid.uuid4())
        generation = self.world.generation
        try:
            result = self._attempt(snap, request_id, payload, generation,
                                   meta={"event_id": None, "rule_arn": None, "attempt": 1, "source": "Invoke"})
        finally:
            self._release_slot(key)
        headers = [("Content-Type", "application/json"), ("X-Amz-Executed-Version", "$LATEST"),
                   ("x-amzn-RequestId", request_id)]
        if log_tail:
            tail = "\n".join(result.logs).encode("utf-8")[-4096:]
            headers.append(("X-Amz-Log-Result", base64.b64encode(tail).decode()))
        if result.outcome == "success":
            body = result.response
        else:
            headers.append(("X-Amz-Function-Error", "Unhandled"))
            body = result.error_body or json.dumps({"errorType": result.error_type, "errorMessage": result.error_type}).encode()
        headers.append(("Content-Length", str(len(body))))
        return 200, headers, body

    # -- one attempt ---------------------------------------------------------------

    def _task_root(self, snap: FunctionSnapshot) -> str:
        sha = snap.code_sha or "nocode"
        safe = "".join(c for c in sha if c.isalnum())[:64] or "nocode"
        target = os.path.join(self._root, "code", safe)
        with self._unpack_locks[safe]:
            if os.path.isdir(target):
                return target
            tmp = tempfile.mkdtemp(prefix="unpack-", dir=self._root)
            if snap.code_bytes:
                with zipfile.ZipFile(_bytes_io(snap.code_bytes)) as zf:
                    for info in zf.infolist():
                        path = zf.extract(info, tmp)
                        mode = (info.external_attr >> 16) & 0o7777
                        if info.is_dir():
                            continue
                        # No unix mode recorded (zip made elsewhere): readable+executable,
                        # as unpackers do; a recorded mode is kept as it is.
                        os.chmod(path, mode if mode else 0o755)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.rename(tmp, target)
            return target

    def _logs(self, snap: FunctionSnapshot, stream: str, lines: list[tuple[int, str]], generation: int) -> None:
        """Append lines to /aws/lambda/NAME (lock taken here)."""
        from moto.logs import logs_backends

        if not lines:
            return
        group = f"/aws/lambda/{snap.name}"
        backend = logs_backends[snap.account][snap.region]
        # Twice at most: a group deleted between the permission check and the write (a
        # destroy deleting it while the function still runs) is checked again, now with
        # logs:CreateLogGroup, which a role that may write to an existing group may lack.
        for _ in range(2):
            group_missing = group not in backend.groups
            # Decided once per stream and per "the group exists or not": a group deleted
            # after the first lines needs the CreateLogGroup decision too.
            key = (stream, group_missing)
            allowed = self._log_permission.get(key)
            if allowed is None:
                allowed = self.world.iam.lambda_may_log(snap.account, snap.region, snap.role, snap.name, group, stream)
                self._log_permission[key] = allowed
            if not allowed:
                return  # Lambda drops the logs of a role that may not write them
            with self.world.lock:
                if generation != self.world.generation:
                    return  # a reset came in between: this AWS is gone
                if group not in backend.groups:
                    if not group_missing:
                        continue  # deleted since the check: decide again
                    backend.create_log_group(group, {})
                if stream not in backend.groups[group].streams:
                    backend.create_log_stream(group, stream)
                backend.put_log_events(group, stream, [{"timestamp": ts, "message": msg} for ts, msg in lines])
                # CloudWatch Logs extracts the metrics of EMF events it received (alarms).
                self.world.alarms.ingest_log_lines(snap.account, snap.region, group, lines)
                return

    def _attempt(self, snap: FunctionSnapshot, request_id: str, payload: bytes, generation: int,
                 meta: dict[str, Any]) -> AttemptResult:
        started_epoch = time.time()
        now_utc = datetime.now(timezone.utc)
        stream = f"{now_utc:%Y/%m/%d}/[$LATEST]{secrets.token_hex(16)}"
        collected: list[str] = []
        log_lock = threading.Lock()

        def emit(message: str) -> None:
            with log_lock:
                collected.append(message)
            try:
                self._logs(snap, stream, [(int(time.time() * 1000), message)], generation)
            except Exception:
                log.exception("writing logs of %s failed", snap.name)

        def on_taken(inv: Invocation) -> None:
            emit(f"START RequestId: {request_id} Version: $LATEST")

        trace_id = (
            f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};"
            f"Parent={secrets.token_hex(8)};Sampled=0;Lineage=1:{secrets.token_hex(4)}:0"
        )
        inv = Invocation(request_id, payload, snap.arn, snap.timeout, trace_id, on_taken=on_taken)
        emulator: list[str] | None = None  # the argv prefix the bootstrap runs under, if any

        def finish(outcome: str, error_type: str | None, duration_ms: float, error_body: bytes = b"") -> AttemptResult:
            result = AttemptResult(
                outcome=outcome, error_type=error_type, response=inv.response,
                error_body=error_body or inv.error_body, duration_ms=duration_ms, log_stream=stream,
            )
            with log_lock:
                result.logs = list(collected)
            record = {
                "function": snap.name,
                "request_id": request_id,
                "event_id": meta.get("event_id"),
                "rule_arn": meta.get("rule_arn"),
                "attempt": meta.get("attempt", 1),
                "outcome": outcome,
                "error_type": error_type,
                "duration_ms": round(duration_ms, 3),
                "started": iso_ms(started_epoch),
                "ended": iso_ms(time.time()),
                "log_stream": stream,
                "source": meta.get("source"),
                "function_arn": snap.arn,
                "architecture": snap.architecture,
                "emulator": shlex.join(emulator) if emulator else None,
            }
            if outcome == "success":
                record["response"] = inv.response[:4096].decode("utf-8", "replace")
            elif result.error_body:
                record["error"] = result.error_body[:4096].decode("utf-8", "replace")
            self._record(generation, record)
            log.info("%s attempt %s of %s: %s%s", meta.get("source"), meta.get("attempt", 1), snap.name,
                     outcome, f" ({error_type})" if error_type else "")
            return result

        if snap.stale_grant:
            kind = "KMSAccessDeniedException"
            emit(f"INIT_REPORT Init Duration: 0.00 ms\tPhase: init\tStatus: error\tError Type: {kind}")
            return finish("init_error", kind, 0.0, json.dumps({
                "errorType": kind,
                "errorMessage": "Lambda was unable to decrypt the environment variables because KMS access was "
                                "denied. Please check the function's KMS key settings. KMS Exception: "
                                "InvalidGrantTokenException KMS Message: the grant is for a role principal "
                                "that no longer exists",
            }).encode())

        if snap.runtime not in PROVIDED_RUNTIMES:
            emit("INIT_REPORT Init Duration: 0.00 ms\tPhase: init\tStatus: error\tError Type: Runtime.Unsupported")
            return finish("init_error", "Runtime.Unsupported", 0.0, json.dumps({
                "errorType": "Runtime.Unsupported",
                "errorMessage": f"localaws runs only custom runtimes {PROVIDED_RUNTIMES}, not {snap.runtime}",
            }).encode())

        task_root = self._task_root(snap)
        api = RuntimeAPIServer(inv)
        api.start()
        env = dict(snap.env)
        env.update({
            "AWS_LAMBDA_RUNTIME_API": api.address,
            "AWS_LAMBDA_FUNCTION_NAME": snap.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(snap.memory),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{snap.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": stream,
            "AWS_REGION": snap.region,
            "AWS_DEFAULT_REGION": snap.region,
            "_HANDLER": snap.handler or "",
            "LAMBDA_TASK_ROOT": task_root,
            "AWS_EXECUTION_ENV": "AWS_Lambda_" + (snap.runtime or "provided.al2023"),
            "AWS_ACCESS_KEY_ID": self.issue_credentials(snap.name, request_id, snap.role),
            "AWS_SECRET_ACCESS_KEY": "localaws-secret-access-key",
            "AWS_SESSION_TOKEN": "localaws-session-token",
            "AWS_ENDPOINT_URL": self.world.endpoint,
            "PATH": LAMBDA_PATH,
        })
        emit(f"INIT_START Runtime Version: {snap.runtime}.localaws\tRuntime Version ARN: "
             f"arn:aws:lambda:{snap.region}::runtime:localaws")
        bootstrap = os.path.join(task_root, "bootstrap")

        def entrypoint_failure(error_type: str, reason: str) -> AttemptResult:
            """Nothing started. Lambda's answer and logs for a bootstrap it cannot exec:
            ``Runtime.InvalidEntrypoint``, ``RequestId: <id> Error: fork/exec
            /var/task/bootstrap: exec format error`` (or ``permission denied``); init fails,
            is tried again in the invoke phase, then START, the error, END and REPORT
            (aws/aws-lambda-go issue 554, cdklabs/cdk-ecr-deployment issue 651,
            awslabs/aws-lambda-dart-runtime issue 20). ``LocalAWS.NoEmulator`` takes the
            same shape with its own type: nothing AWS would say."""
            api.stop()
            elapsed_ms = (time.monotonic() - attempt_start) * 1000.0
            if error_type == NO_EMULATOR:
                message = f"RequestId: {request_id} Error: {reason}"
                log.warning("%s: %s", snap.name, reason)
            elif reason == "no such file or directory":
                message = f"RequestId: {request_id} Error: Couldn't find valid bootstrap(s): [{bootstrap}]: {reason}"
            else:
                message = f"RequestId: {request_id} Error: fork/exec {bootstrap}: {reason}"
            for phase in ("init", "invoke"):
                emit(f"INIT_REPORT Init Duration: {elapsed_ms:.2f} ms\tPhase: {phase}\tStatus: error\t"
                     f"Error Type: {error_type}")
            emit(f"START RequestId: {request_id} Version: $LATEST")
            emit(f"{message}\n{error_type}")
            emit(f"END RequestId: {request_id}")
            emit(f"REPORT RequestId: {request_id}\tDuration: {elapsed_ms:.2f} ms\tBilled Duration: "
                 f"{max(1, math.ceil(elapsed_ms))} ms\tMemory Size: {snap.memory} MB\tMax Memory Used: 1 MB")
            return finish("init_error", error_type, 0.0,
                          json.dumps({"errorType": error_type, "errorMessage": message}).encode())

        attempt_start = time.monotonic()
        command, refused_type, refused_reason = self.launch_command(snap, bootstrap)
        if command is None:
            return entrypoint_failure(refused_type or "Runtime.InvalidEntrypoint", refused_reason or "")
        if len(command) > 1:
            emulator = command[:-1]
            log.info("%s (%s) runs through %s", snap.name, snap.architecture, shlex.join(emulator))
        proc_start = time.monotonic()
        try:
            proc = subprocess.Popen(
                command, cwd=task_root, env=env,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            reason = {errno.ENOENT: "no such file or directory", errno.EACCES: "permission denied",
                      errno.ENOEXEC: "exec format error"}.get(exc.errno or 0, str(exc))
            if emulator:
                # The emulator itself would not start (it was checked at startup: gone since).
                return entrypoint_failure(NO_EMULATOR, f"localaws could not start its {snap.architecture} emulator "
                                                       f"{shlex.join(emulator)}: {reason}. This is a limitation "
                                                       f"of the local AWS, not a Lambda error.")
            return entrypoint_failure("Runtime.InvalidEntrypoint", reason)

        with self._procs_lock:
            self._procs[proc.pid] = proc
        exit_info: dict[str, Any] = {}
        peak_kb = [0]

        def sample_memory() -> None:
            # VmHWM: peak RSS of the exec'd program only (under an emulator: the
            # emulator's, program included). (ru_maxrss is no use here: Linux folds the
            # forking parent's RSS into it at exec.)
            kb = _vm_hwm_kb(proc.pid)
            if kb > peak_kb[0]:
                peak_kb[0] = kb

        inv.on_progress = sample_memory

        def reader() -> None:
            assert proc.stdout is not None
            for raw in iter(proc.stdout.readline, b""):
                emit(raw.decode("utf-8", "replace").rstrip("\r\n"))

        def waiter() -> None:
            try:
                _, status, rusage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                exit_info["rusage"] = rusage
            except ChildProcessError:
                proc.returncode = proc.returncode if proc.returncode is not None else -1
            exit_info["at"] = time.monotonic()
            inv.changed.set()

        reader_thread = threading.Thread(target=reader, daemon=True, name=f"lambda-out-{request_id[:8]}")
        waiter_thread = threading.Thread(target=waiter, daemon=True, name=f"lambda-wait-{request_id[:8]}")
        reader_thread.start()
        waiter_thread.start()

        outcome: str | None = None
        error_type: str | None = None
        error_body = b""
        while True:
            if inv.outcome is not None:
                break
            if "at" in exit_info:
                break
            now = time.monotonic()
            if inv.taken_at is None:
                remaining = proc_start + INIT_LIMIT_S - now
            else:
                remaining = inv.taken_at + snap.timeout - now
            if remaining <= 0:
                outcome = "timeout"
                error_type = "Sandbox.Timedout"
                break
            sample_memory()
            inv.changed.wait(min(remaining, 0.05))
            inv.changed.clear()

        # Let a finished runtime reach its next /next (its logs are flushed by then).
        if inv.outcome is not None and "at" not in exit_info:
            settle = time.monotonic() + 0.5
            while inv.next_calls < 2 and "at" not in exit_info and time.monotonic() < settle:
                inv.changed.wait(0.02)
                inv.changed.clear()
        ended = time.monotonic()
        sample_memory()
        _kill_group(proc)
        waiter_thread.join(timeout=5)
        reader_thread.join(timeout=2)
        api.stop()
        with self._procs_lock:
            self._procs.pop(proc.pid, None)

        init_ms = ((inv.taken_at or ended) - proc_start) * 1000.0
        if outcome == "timeout":
            if inv.taken_at is None:
                outcome, error_type = "init_error", "Sandbox.Timedout"
        elif inv.outcome is not None:
            outcome, error_type = inv.outcome, inv.error_type
        elif inv.taken_at is None:
            outcome, error_type = "init_error", "Runtime.ExitError"
        else:
            outcome, error_type = "error", "Runtime.ExitError"

        duration_ms = 0.0
        if inv.taken_at is not None:
            end_at = inv.result_at if inv.result_at is not None else ended
            duration_ms = max(0.0, (end_at - inv.taken_at) * 1000.0)
        max_mem_mb = max(1, math.ceil(peak_kb[0] / 1024))
        exit_code = proc.returncode

        if outcome == "init_error":
            emit(f"INIT_REPORT Init Duration: {init_ms:.2f} ms\tPhase: init\tStatus: "
                 f"{'timeout' if error_type == 'Sandbox.Timedout' else 'error'}\tError Type: {error_type}")
            if error_type == "Runtime.ExitError":
                error_body = json.dumps({
                    "errorType": "Runtime.ExitError",
                    "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: exit status {exit_code}",
                }).encode()
            elif error_type == "Sandbox.Timedout":
                error_body = json.dumps({
                    "errorType": "Sandbox.Timedout",
                    "errorMessage": f"RequestId: {request_id} Error: Task timed out after {INIT_LIMIT_S:.2f} seconds",
                }).encode()
        else:
            if inv.taken_at is None:
                emit(f"START RequestId: {request_id} Version: $LATEST")
            if outcome == "timeout":
                emit(f"{iso_ms(time.time())} {request_id} Task timed out after {snap.timeout:.2f} seconds")
                error_body = json.dumps({
                    "errorType": "Sandbox.Timedout",
                    "errorMessage": f"RequestId: {request_id} Error: Task timed out after {snap.timeout:.2f} seconds",
                }).encode()
            elif outcome == "error" and error_type == "Runtime.ExitError":
                emit(f"RequestId: {request_id} Error: Runtime exited with error: exit status {exit_code}\nRuntime.ExitError")
                error_body = json.dumps({
                    "errorType": "Runtime.ExitError",
                    "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: exit status {exit_code}",
                }).encode()
            emit(f"END RequestId: {request_id}")
            billed = math.ceil(duration_ms + init_ms)
            report = (
                f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\tBilled Duration: {billed} ms\t"
                f"Memory Size: {snap.memory} MB\tMax Memory Used: {max_mem_mb} MB\tInit Duration: {init_ms:.2f} ms"
            )
            if outcome == "timeout":
                report += "\tStatus: timeout"
            elif outcome == "error":
                report += "\tStatus: error\tError Type: " + str(error_type)
            emit(report)
        return finish(outcome, error_type, duration_ms, error_body)


def _throttle_response() -> tuple[int, list[tuple[str, str]], bytes]:
    body = json.dumps({
        "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
        "Type": "User",
        "message": "Rate Exceeded.",
    }).encode()
    return 429, [
        ("Content-Type", "application/json"),
        ("x-amzn-ErrorType", "TooManyRequestsException"),
        ("x-amzn-RequestId", str(uuid.uuid4())),
        ("Content-Length", str(len(body))),
    ], body


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    # The whole process group: a bootstrap script's children (curl, ...) too,
    # even when the bootstrap itself has already exited.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _vm_hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _bytes_io(data: bytes) -> Any:
    import io

    return io.BytesIO(data)
