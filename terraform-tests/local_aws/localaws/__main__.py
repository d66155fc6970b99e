"""localaws: the local AWS the autoheal tests and demo run against.

Usage::

    python -m localaws [--host 127.0.0.1] [--port 0] [--clock-scale 1.0]
                       [--profile realistic|fast] [--region ap-southeast-2]
                       [--log-level info] [--aarch64-emulator "qemu-aarch64-static -L SYSROOT"]

When it is ready it prints exactly one line on stdout,
``LOCALAWS_READY http://127.0.0.1:PORT``, and flushes it; everything else
(logs, moto's chatter) goes to stderr. SIGTERM or SIGINT stop it cleanly,
killing any Lambda process it started.

Design
======

moto, extended, in its own process. Moto server already speaks the AWS wire
protocols for EC2, Auto Scaling, EventBridge, Lambda, CloudWatch Logs and IAM
and keeps their state; what it lacks for the autoheal pattern (a
one-instance Auto Scaling group whose launch lifecycle hook sends an
EventBridge event to a Lambda that attaches an EBS volume and an Elastic IP
to the new instance, then completes the hook) is added around it, in this
process, in three ways:

* a WSGI middleware in front of moto's own WSGI app
  (``moto.server.DomainDispatcherApplication`` over ``create_backend_app``),
  served by werkzeug's threaded server bound to 127.0.0.1 only
  (``middleware``): the ``/_localaws/`` control API, fault injection in each
  service's error format, the call log, Lambda ``Invoke``, IAM's propagation
  delay (``iam_propagation``), and one lock (``world``) that serialises every
  access to moto's unlocked models;
* patches of moto's model and response classes where AWS behaviour must
  live inside a moto call (``patches``): launch lifecycle hooks and
  CompleteLifecycleAction (``lifecycle``), launch failures with their
  retries and the scaling activity history (``launches``, ``activities``),
  instance states pending and shutting-down and what a termination releases
  (``instancelife``), AttachVolume's zone/in-use checks, DetachVolume by
  VolumeId and the time a detach takes (``ec2ext``), network interfaces' attach and
  detach times, in-use and dependency refusals (``eniext``), snapshots that stay pending
  for a while, at most one started per volume every 15 s, and can end in ``error``
  (``ec2ext``), the loss of an Availability Zone (``zoneoutage``), EventBridge delivery to Lambda with AWS's pattern semantics and
  rate-scheduled rules (``events``, ``patterns``), Lambda's
  asynchronous invocation configuration (``event_invoke_config``);
* background machinery moto has none of: a scaled clock and timer thread
  (``clock``) for heartbeat timeouts, Lambda retry delays, detach and snapshot
  durations and scheduled rules' firings; an event router thread; and a Lambda runner (``lambda_runner``,
  ``runtime_api``) that unpacks the function's zip and runs its ``bootstrap``
  natively behind a Runtime API emulator, with Lambda's environment, timeout,
  asynchronous retries, reserved concurrency, resource-policy check and
  CloudWatch Logs output.

Why not a separate proxy in front of an unmodified ``moto_server``: the
hooks, EIP and volume rules and event emission must change moto's state in
the same step as the AWS call that causes them (a launch must *be* Pending:Wait
in the response that launched it), which only works in moto's process.
Why not LocalStack: it needs a Docker engine, which this machine has not.

``--clock-scale F`` multiplies every AWS delay we emulate (0.01 turns a 30 s
heartbeat timeout into 0.3 s); it can be changed at run time with
``POST /_localaws/clock``. ``--region`` is the region assumed for requests
that carry no SigV4 credential scope. ``--aarch64-emulator`` (else the environment's
``LOCALAWS_AARCH64_EMULATOR``) is the command, in shell words with absolute paths, that
runs an AArch64 program on a host that is not one (``qemu-aarch64-static -L
/usr/aarch64-linux-gnu``): ``arm64`` functions' bootstraps run through it
(``lambda_runner``). Control API: see ``middleware.ControlAPI`` and
terraform-tests/local_aws/README.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m localaws", description="Local AWS (moto, extended) for the autoheal tests.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; keep it on loopback)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default 0)")
    parser.add_argument("--clock-scale", type=float, default=1.0,
                        help="multiplier for emulated AWS delays (0.01: 30 s -> 0.3 s; default 1.0)")
    parser.add_argument("--profile", default="realistic", choices=["realistic", "fast"],
                        help="how hard the emulated AWS is (localaws/profile.py; default realistic)")
    parser.add_argument("--region", default="ap-southeast-2", help="default region (default ap-southeast-2)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                        help="stderr log level (default info)")
    parser.add_argument("--aarch64-emulator", default=None, metavar="COMMAND",
                        help="runs arm64 functions' bootstraps on a host that is not AArch64, as COMMAND "
                             "BOOTSTRAP (shell words, e.g. 'qemu-aarch64-static -L /usr/aarch64-linux-gnu'); "
                             "default: $LOCALAWS_AARCH64_EMULATOR; without one such a function fails at init")
    args = parser.parse_args(argv)
    if args.clock_scale <= 0:
        parser.error("--clock-scale must be > 0")
    if not (args.host == "localhost" or args.host.startswith("127.")):
        parser.error("--host must be a loopback IPv4 address (127.x.x.x) or localhost: nothing else may reach it")
    from .lambda_runner import EMULATOR_ENV, parse_emulator

    given, source = args.aarch64_emulator, "--aarch64-emulator"
    if given is None and os.environ.get(EMULATOR_ENV):
        given, source = os.environ[EMULATOR_ENV], EMULATOR_ENV
    args.aarch64_emulator = None
    if given is not None:
        try:
            args.aarch64_emulator = parse_emulator(given)
        except ValueError as exc:
            parser.error(f"{source}: {exc}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    ready_out = sys.stdout
    sys.stdout = sys.stderr  # stdout carries the READY line and nothing else

    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.log_level != "debug":
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    log = logging.getLogger("localaws")

    from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    from . import patches
    from .middleware import LocalAWSMiddleware
    from .world import World

    world = World(clock_scale=args.clock_scale, region=args.region, profile=args.profile)
    world.lambdas.aarch64_emulator = args.aarch64_emulator
    patches.install()
    app = LocalAWSMiddleware(world, DomainDispatcherApplication(create_backend_app))
    server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    port = server.server_port
    world.port = port
    world.endpoint = f"http://{args.host}:{port}"
    os.environ["MOTO_PORT"] = str(port)

    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="localaws-http", daemon=True)
    serving.start()
    log.info("serving on http://%s:%d (clock scale %s, region %s, profile %s)", args.host, port, args.clock_scale, args.region, args.profile)
    if args.aarch64_emulator:
        log.info("arm64 functions run through %s", " ".join(args.aarch64_emulator))
    ready_out.write(f"LOCALAWS_READY http://{args.host}:{port}\n")
    ready_out.flush()

    while not stop.wait(0.5):
        if not serving.is_alive():
            log.error("HTTP server thread died")
            break
    world.shutdown()  # kills Lambda processes first: they may be calling us
    server.shutdown()
    server.server_close()
    log.info("stopped")
    # Skip the interpreter's slow teardown of moto's large heap (over a second);
    # everything that matters is closed above.
    logging.shutdown()
    sys.stderr.flush()
    os._exit(0 if stop.is_set() else 1)


if __name__ == "__main__":
    sys.exit(main())
