#!/usr/bin/env python3
"""Benchmark `analyze` against tshark (-T fields piped into pandas) and a dpkt loop.

    python bench/run.py [--workdir /tmp/analyzer-bench] [--sizes 1m,10m] [--tshark-10m]
                        [--skip-analyze] [--seed 1]

For each size it generates (or reuses, when the capture and its truth file match) a
synthetic capture with bench/gen_capture.py, then measures in the same run:

  analyze   `analyze CAPTURE --out DIR`, the console script as a user runs it; one untimed
            run first (warms the page cache and any JIT cache), then the timed run
  tshark    `tshark -n -r CAPTURE -T fields -e ...` piped into pandas.read_csv
            (skipped on 10M unless --tshark-10m: ~4 minutes at ~45k packets/s)
  dpkt      a plain dpkt loop: Ethernet/IP/IPv6/TCP/UDP decode and per-flow flag counts
  analyze-logs  `analyze CAPTURE --logs app.log --logs server.log --out DIR`, with 1,000
            log lines written by bench/gen_logs.py from the capture's flows (one untimed
            run first); every line must land on a flow

Each measurement runs in a fresh child process: wall time, packets/s, CPU time, and peak
RSS -- both the largest single process (rusage via /usr/bin/time -v, else os.wait4) and
the sum over the child's process tree (psutil, sampled every 50 ms). The reported peak is
the larger of the two. Every tool's packet and SYN/SYN-ACK/FIN/RST counts are checked
against the generator's truth file; analyze's flows.csv / events.csv / summary.json too.

Figures go to WORKDIR/results.json (not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_capture  # noqa: E402
import gen_logs  # noqa: E402

LOG_LINES = 1000      # analyze-logs: lines of app and server log beside the capture
TARGET_PPS = 3_000_000
TARGET_RSS_MB = 300
TSHARK_FIELDS = ["frame.number", "frame.time_epoch", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst",
                 "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport", "tcp.flags",
                 "tcp.stream"]
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10


# --------------------------------------------------------------------------- workers
# Run as `python bench/run.py _worker KIND CAPTURE`; print one JSON line of counts.

def _counts(packets, flags_iter) -> dict:
    c = dict(packets=packets, syn_packets=0, synack_packets=0, fin_packets=0, rst_packets=0)
    for f, n in flags_iter:
        if f & (SYN | ACK) == SYN:
            c["syn_packets"] += n
        if f & (SYN | ACK) == SYN | ACK:
            c["synack_packets"] += n
        if f & FIN:
            c["fin_packets"] += n
        if f & RST:
            c["rst_packets"] += n
    return c


def worker_tshark(capture: str) -> dict:
    import pandas as pd
    cmd = ["tshark", "-n", "-r", capture, "-T", "fields", "-E", "separator=/t",
           "-E", "occurrence=f"]
    for f in TSHARK_FIELDS:
        cmd += ["-e", f]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    df = pd.read_csv(p.stdout, sep="\t", header=None, names=TSHARK_FIELDS,
                     dtype={"frame.number": "int64", "frame.time_epoch": "float64",
                            "tcp.flags": "string"}, na_filter=True)
    rc = p.wait()
    if rc:
        raise SystemExit(f"tshark exited {rc}")
    flags = df["tcp.flags"].dropna().map(lambda s: int(s, 16)).value_counts()
    c = _counts(len(df), flags.items())
    c["tcp_streams"] = int(df["tcp.stream"].nunique())
    return c


def worker_dpkt(capture: str) -> dict:
    import dpkt
    flows: dict = {}
    n = 0
    with open(capture, "rb") as fh:
        for _ts, buf in dpkt.pcap.Reader(fh):
            n += 1
            try:
                eth = dpkt.ethernet.Ethernet(buf)
            except dpkt.dpkt.UnpackError:
                continue
            ip = eth.data
            if not isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)):
                continue
            l4 = ip.data
            if isinstance(l4, dpkt.tcp.TCP):
                proto, fl = 6, l4.flags
            elif isinstance(l4, dpkt.udp.UDP):
                proto, fl = 17, 0
            else:
                continue
            a, b = (ip.src, l4.sport), (ip.dst, l4.dport)
            key = (proto, a, b) if a <= b else (proto, b, a)
            st = flows.get(key)
            if st is None:
                st = flows[key] = [0, 0, 0, 0, 0]   # packets, syn, synack, fin, rst
            st[0] += 1
            if proto == 6:
                if fl & SYN:
                    if fl & ACK:
                        st[2] += 1
                    else:
                        st[1] += 1
                if fl & FIN:
                    st[3] += 1
                if fl & RST:
                    st[4] += 1
    tot = [0, 0, 0, 0]
    for st in flows.values():
        for i in range(4):
            tot[i] += st[i + 1]
    return dict(packets=n, syn_packets=tot[0], synack_packets=tot[1], fin_packets=tot[2],
                rst_packets=tot[3], four_tuples=len(flows))


# --------------------------------------------------------------------------- measuring

def _tree_rss(root) -> int:
    import psutil
    total = 0
    try:
        procs = [root] + root.children(recursive=True)
    except psutil.Error:
        return 0
    for pr in procs:
        try:
            total += pr.memory_info().rss
        except psutil.Error:
            pass
    return total


def measure(cmd: list[str], label: str) -> dict:
    """Run cmd once in a fresh child; wall time, CPU, peak RSS (largest process and tree sum)."""
    try:
        import psutil
    except ImportError:      # tree sampling is optional
        psutil = None
    gnu_time = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
    tf = tempfile.NamedTemporaryFile(prefix="bench-time-", suffix=".txt", delete=False)
    tf.close()
    full = ([gnu_time, "-v", "-o", tf.name] + cmd) if gnu_time else cmd
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    p = subprocess.Popen(full, stdout=out, stderr=err)
    peak_tree = 0
    stop = threading.Event()

    def poll():
        nonlocal peak_tree
        root = psutil.Process(p.pid)
        while not stop.is_set():
            peak_tree = max(peak_tree, _tree_rss(root))
            stop.wait(0.05)

    th = None
    if psutil is not None:
        th = threading.Thread(target=poll, daemon=True)
        th.start()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    stop.set()
    if th:
        th.join()
    res = dict(label=label, cmd=" ".join(cmd), rc=p.returncode, wall_s=round(wall, 3))
    max_rss_kb = ru.ru_maxrss
    cpu = ru.ru_utime + ru.ru_stime
    if gnu_time:
        with open(tf.name) as fh:
            for line in fh:
                line = line.strip()
                if line.startswith("Maximum resident set size"):
                    max_rss_kb = int(line.rsplit(":", 1)[1])
        res["rss_source"] = "/usr/bin/time -v"
    else:
        res["rss_source"] = "os.wait4 rusage"
    os.unlink(tf.name)
    res["cpu_s"] = round(cpu, 2)
    res["max_proc_rss_mb"] = round(max_rss_kb / 1024, 1)
    res["tree_rss_mb"] = round(peak_tree / 2**20, 1) if psutil is not None else None
    res["peak_rss_mb"] = max(res["max_proc_rss_mb"], res["tree_rss_mb"] or 0)
    out.seek(0)
    err.seek(0)
    res["stdout"] = out.read().decode(errors="replace")
    res["stderr_tail"] = err.read().decode(errors="replace")[-2000:]
    return res


def find_analyze() -> str | None:
    """The console script installed beside this interpreter (skips a pyenv shim's
    start-up cost), else whatever `analyze` is on PATH."""
    cand = os.path.join(os.path.dirname(sys.executable), "analyze")
    if os.access(cand, os.X_OK):
        return cand
    return shutil.which("analyze")


# --------------------------------------------------------------------------- checks

def compare(name: str, got: dict, truth: dict, keys) -> list[str]:
    bad = []
    for k in keys:
        if k in got and got[k] != truth[k]:
            bad.append(f"{name}: {k} = {got[k]:,}, truth {truth[k]:,}")
    return bad


def check_analyze_output(outdir: str, truth: dict) -> tuple[dict, list[str], list[str]]:
    """Counts from analyze's output; hard mismatches and softer notes."""
    import pandas as pd
    got: dict = {}
    bad: list[str] = []
    notes: list[str] = []
    sp = os.path.join(outdir, "summary.json")
    if os.path.exists(sp):
        try:
            with open(sp) as fh:
                summ = json.load(fh)
            cap = summ.get("capture", {}) if isinstance(summ, dict) else {}
            if "packets" in cap:
                got["packets"] = int(cap["packets"])
            if cap.get("undecodable"):
                notes.append(f"summary.json: {cap['undecodable']} undecodable frames (expected 0)")
        except (ValueError, OSError) as e:
            bad.append(f"summary.json unreadable: {e}")
    else:
        notes.append("summary.json missing")
    fp = os.path.join(outdir, "flows.csv")
    if os.path.exists(fp):
        fl = pd.read_csv(fp, low_memory=False)
        got["flows"] = len(fl)
        if "proto" in fl:
            pr = fl["proto"].astype(str).str.lower()
            got["tcp_flows"] = int(pr.isin(["tcp", "6"]).sum())
            got["udp_flows"] = int(pr.isin(["udp", "17"]).sum())
        if "teardown" in fl:
            td = fl["teardown"].astype(str).value_counts().to_dict()
            got["teardown"] = {str(k): int(v) for k, v in td.items()}
            exp = truth["expected_teardown"]
            for k in sorted(set(exp) | set(td)):
                if exp.get(k, 0) != td.get(k, 0):
                    notes.append(f"flows.csv teardown {k!r}: {td.get(k, 0):,}, built as "
                                 f"{exp.get(k, 0):,}" + (" (answered UDP counted as 'open' in "
                                                          "the truth)" if k == "open" else ""))
        if "conn_state" in fl:
            cs = fl["conn_state"].astype(str).value_counts().to_dict()
            got["conn_state"] = {str(k): int(v) for k, v in cs.items()}
            exp = truth["expected_conn_state"]
            for k in sorted(set(exp) | set(cs)):
                if exp.get(k, 0) != cs.get(k, 0):
                    notes.append(f"flows.csv conn_state {k}: {cs.get(k, 0):,}, built as "
                                 f"{exp.get(k, 0):,}")
    else:
        bad.append("flows.csv missing")
    ep = os.path.join(outdir, "events.csv")
    if os.path.exists(ep):
        ev = pd.read_csv(ep, usecols=["kind"])["kind"].astype(str).value_counts().to_dict()
        got["events"] = {str(k): int(v) for k, v in ev.items()}
        g = lambda k: int(ev.get(k, 0))  # noqa: E731
        got["syn_packets"] = g("syn") + g("syn_retry")
        got["synack_packets"] = g("synack")
        got["fin_packets"] = g("fin")
        rst = g("rst")
        if rst != truth["rst_packets"] and rst + g("refused") == truth["rst_packets"]:
            notes.append(f"events.csv: rst {rst:,} + refused {g('refused'):,} = RST packets "
                         f"(refusals are not also 'rst' events)")
            rst += g("refused")
        got["rst_packets"] = rst
        if g("syn_retry") != truth["syn_retransmissions"]:
            notes.append(f"events.csv syn_retry: {g('syn_retry'):,}, retransmitted SYNs built: "
                         f"{truth['syn_retransmissions']:,}")
    else:
        bad.append("events.csv missing")
    bad += compare("analyze", got, truth, ["packets", "flows", "tcp_flows", "udp_flows",
                                             "syn_packets", "synack_packets", "fin_packets",
                                             "rst_packets"])
    return got, bad, notes


# --------------------------------------------------------------------------- main

def ensure_capture(workdir: str, label: str, n: int, seed: int) -> tuple[str, dict, dict | None]:
    path = os.path.join(workdir, f"{label}.pcap")
    tp = gen_capture.truth_path(path)
    if os.path.exists(path) and os.path.exists(tp):
        try:
            with open(tp) as fh:
                truth = json.load(fh)
            if (truth.get("generator_version") == gen_capture.GENERATOR_VERSION
                    and truth.get("packets") == n and truth.get("seed") == seed
                    and truth.get("file_size") == os.path.getsize(path)):
                print(f"[{label}] reusing {path} ({truth['file_size'] / 1e6:,.0f} MB)", flush=True)
                return path, truth, None
        except (ValueError, OSError):
            pass
    print(f"[{label}] generating {n:,} packets -> {path}", flush=True)
    gen = measure([sys.executable, os.path.join(HERE, "gen_capture.py"), "--packets", str(n),
                   "--out", path, "--seed", str(seed)], "generate")
    if gen["rc"]:
        raise SystemExit(f"generator failed:\n{gen['stderr_tail']}")
    with open(tp) as fh:
        truth = json.load(fh)
    gen.pop("stdout")
    gen["pps"] = round(n / gen["wall_s"])
    print(f"[{label}] generated in {gen['wall_s']:.1f} s ({gen['pps']:,.0f} packets/s, peak RSS "
          f"{gen['peak_rss_mb']:.0f} MB, {truth['file_size'] / 1e6:,.0f} MB)", flush=True)
    return path, truth, gen


def bench_logs(exe: str, capture: str, label: str, workdir: str) -> tuple[list[str], int]:
    """--logs arguments for analyze-logs, and how many lines they hold: logs written from the
    flows of an earlier analyze run on this capture (one is made when there is none)."""
    flows_csv = next((os.path.join(workdir, f"out-{label}-{t}", "flows.csv")
                      for t in ("analyze-tables", "analyze")
                      if os.path.isfile(os.path.join(workdir, f"out-{label}-{t}", "flows.csv"))), None)
    if flows_csv is None:
        outdir = os.path.join(workdir, f"out-{label}-flows")
        subprocess.run([exe, capture, "--out", outdir, "--no-report", "--quiet"], check=True)
        flows_csv = os.path.join(outdir, "flows.csv")
    written = gen_logs.write_logs(flows_csv, os.path.join(workdir, f"logs-{label}"), LOG_LINES)
    return ([arg for info in written.values() for arg in ("--logs", info["path"])],
            sum(info["lines"] for info in written.values()))


def check_logs_output(outdir: str, lines: int) -> list[str]:
    """Every generated line is in logs.csv, on a flow."""
    import pandas as pd
    logs = pd.read_csv(os.path.join(outdir, "logs.csv"), usecols=["flow_id"])
    bad = []
    if len(logs) != lines:
        bad.append(f"analyze-logs: logs.csv has {len(logs):,} lines, the logs {lines:,}")
    if logs["flow_id"].isna().any():
        bad.append(f"analyze-logs: {int(logs['flow_id'].isna().sum()):,} lines on no flow")
    return bad


def run_tool(tool: str, capture: str, label: str, n: int, workdir: str, truth: dict,
             analyze_exe: str | None = None) -> dict:
    if tool in ("analyze", "analyze-tables", "analyze-logs"):
        exe = analyze_exe
        outdir = os.path.join(workdir, f"out-{label}-{tool}")
        # analyze-tables: flows/events/summary only (--no-report), the capture layer's own work
        cmd = [exe, capture, "--out", outdir] + (["--no-report"] if tool == "analyze-tables" else [])
        if tool == "analyze-logs":
            log_args, log_lines = bench_logs(exe, capture, label, workdir)
            cmd += log_args
        shutil.rmtree(outdir, ignore_errors=True)
        print(f"[{label}] {tool}: warm-up run (untimed)", flush=True)
        warm = measure(cmd, f"{tool}-warmup")
        if warm["rc"]:
            r = dict(warm, error=f"exit {warm['rc']}: {warm['stderr_tail'].strip()[-600:]}")
            r.pop("stdout")
            return r
        shutil.rmtree(outdir, ignore_errors=True)
        print(f"[{label}] {tool}: timed run", flush=True)
        r = measure(cmd, tool)
        r["warmup_wall_s"] = warm["wall_s"]
        r.pop("stdout")
        if r["rc"]:
            r["error"] = f"exit {r['rc']}: {r['stderr_tail'].strip()[-600:]}"
            return r
        got, bad, notes = check_analyze_output(outdir, truth)
        if tool == "analyze-logs":
            bad += check_logs_output(outdir, log_lines)
            notes = []      # the same tables as analyze's: its notes say it once
        r.update(counts=got, mismatches=bad, notes=notes, outdir=outdir)
    else:
        print(f"[{label}] {tool}: timed run", flush=True)
        r = measure([sys.executable, os.path.abspath(__file__), "_worker", tool, capture], tool)
        if r["rc"]:
            r["error"] = f"exit {r['rc']}: {r['stderr_tail'].strip()[-600:]}"
            r.pop("stdout")
            return r
        got = json.loads(r.pop("stdout").strip().splitlines()[-1])
        r.update(counts=got, mismatches=compare(tool, got, truth, ["packets", "syn_packets",
                                                                   "synack_packets", "fin_packets",
                                                                   "rst_packets"]), notes=[])
    r["pps"] = round(n / r["wall_s"])
    print(f"[{label}] {tool}: {r['wall_s']:.2f} s, {r['pps']:,} packets/s, peak RSS "
          f"{r['peak_rss_mb']:.0f} MB", flush=True)
    return r


def tool_versions() -> dict:
    v = {"python": platform.python_version()}
    try:
        v["tshark"] = subprocess.run(["tshark", "--version"], capture_output=True, text=True
                                     ).stdout.splitlines()[0]
    except (OSError, IndexError):
        v["tshark"] = None
    for mod in ("dpkt", "pandas", "numpy"):
        try:
            v[mod] = __import__(mod).__version__
        except ImportError:
            v[mod] = None
    try:
        v["analyzer_commit"] = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"],
                                              capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    # prebuilt kernels or numba's JIT: ~140 MB and ~0.8 s apart (docs/performance.md)
    mode = subprocess.run([sys.executable, "-c", "from analyzer.dissect import kernels; print(kernels.MODE)"],
                          capture_output=True, text=True)
    v["analyzer_kernels"] = mode.stdout.strip() or mode.stderr.strip().splitlines()[-1:]
    return v


def machine() -> dict:
    m = {"cpus": os.cpu_count(), "platform": platform.platform(),
         "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    m["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return m


def fmt_table(results: dict, sizes: list[str], sizes_n: dict) -> str:
    rows = [("capture", "tool", "wall s", "packets/s", "CPU s", "peak RSS MB", "analyze x", "counts")]
    for label in sizes:
        per = results["sizes"].get(label, {}).get("tools", {})
        a = per.get("analyze", {})
        a_pps = a.get("pps")
        for tool in ("analyze", "analyze-tables", "analyze-logs", "tshark", "dpkt"):
            r = per.get(tool)
            if r is None:
                continue
            if r.get("skipped"):
                rows.append((label, tool, "-", "-", "-", "-", "-", "skipped: " + r["skipped"]))
                continue
            if r.get("error"):
                rows.append((label, tool, f"{r['wall_s']:.2f}", "-", "-", "-", "-",
                             "FAILED: " + r["error"].strip().splitlines()[-1][:70]))
                continue
            ratio = "-" if tool in ("analyze", "analyze-logs") or not a_pps else f"{a_pps / r['pps']:.1f}x"
            ok = "ok" if not r["mismatches"] else f"{len(r['mismatches'])} MISMATCH"
            rows.append((label, tool, f"{r['wall_s']:.2f}", f"{r['pps']:,}", f"{r['cpu_s']:.1f}",
                         f"{r['peak_rss_mb']:.0f}", ratio, ok))
    w = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, r in enumerate(rows):
        lines.append("  ".join(str(c).rjust(w[i]) if 1 < i < 7 else str(c).ljust(w[i])
                               for i, c in enumerate(r)))
        if j == 0:
            lines.append("  ".join("-" * x for x in w))
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_worker"]:
        kind, capture = argv[1], argv[2]
        res = {"tshark": worker_tshark, "dpkt": worker_dpkt}[kind](capture)
        print(json.dumps(res))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", default="/tmp/analyzer-bench")
    ap.add_argument("--sizes", default="1m,10m", help="comma-separated, e.g. 1m,10m or 100k")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tshark-10m", action="store_true",
                    help="also run tshark on captures of 10M packets or more (~4 min)")
    ap.add_argument("--skip-analyze", action="store_true",
                    help="measure tshark and dpkt only (e.g. before `analyze` exists)")
    ap.add_argument("--analyze-exe", default=None,
                    help="the analyze executable (default: the console script beside this "
                         "Python, else `analyze` on PATH)")
    ap.add_argument("--tools", default="analyze,analyze-tables,analyze-logs,tshark,dpkt",
                    help="subset of analyze,analyze-tables,analyze-logs,tshark,dpkt to measure")
    args = ap.parse_args(argv)

    os.makedirs(args.workdir, exist_ok=True)
    labels = [s.strip() for s in args.sizes.split(",") if s.strip()]
    sizes_n = {lab: gen_capture.parse_count(lab) for lab in labels}
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    if args.skip_analyze:
        tools = [t for t in tools if not t.startswith("analyze")]
    analyze_exe = args.analyze_exe or find_analyze()
    if any(t.startswith("analyze") for t in tools) and analyze_exe is None:
        print("analyze: console script not found on PATH (pip install -e .); "
              "use --skip-analyze to measure the other tools only", file=sys.stderr)
        return 2
    if "tshark" in tools and shutil.which("tshark") is None:
        print("tshark not found on PATH (apt-get install tshark)", file=sys.stderr)
        return 2

    results = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(),
               "versions": tool_versions(), "targets": {"pps_10m": TARGET_PPS,
                                                        "peak_rss_mb": TARGET_RSS_MB},
               "sizes": {}}
    print(f"analyzer kernels: {results['versions']['analyzer_kernels']}", flush=True)
    out_json = os.path.join(args.workdir, "results.json")
    notes = []
    for label in labels:
        n = sizes_n[label]
        path, truth, gen = ensure_capture(args.workdir, label, n, args.seed)
        entry = {"packets": n, "capture": path, "file_size": truth["file_size"],
                 "truth": {k: truth[k] for k in ("packets", "flows", "tcp_flows", "udp_flows",
                                                 "syn_packets", "synack_packets", "fin_packets",
                                                 "rst_packets")},
                 "generation": gen, "tools": {}}
        results["sizes"][label] = entry
        for tool in tools:
            if tool == "tshark" and n >= 10_000_000 and not args.tshark_10m:
                entry["tools"]["tshark"] = {"skipped": "~4 min at ~45k packets/s; --tshark-10m"}
                notes.append(f"tshark on {label} skipped by default (about 4 minutes at ~45k "
                             "packets/s); pass --tshark-10m to run it")
                continue
            entry["tools"][tool] = run_tool(tool, path, label, n, args.workdir, truth, analyze_exe)
            with open(out_json, "w") as fh:
                json.dump(results, fh, indent=1)

    # ratios
    for label, entry in results["sizes"].items():
        a = entry["tools"].get("analyze", {})
        for tool in ("tshark", "dpkt"):
            r = entry["tools"].get(tool, {})
            if a.get("pps") and r.get("pps"):
                r["analyze_ratio"] = round(a["pps"] / r["pps"], 2)

    print()
    print(fmt_table(results, labels, sizes_n))
    print()
    print(f"targets: analyze >= {TARGET_PPS:,} packets/s end to end on the 10M capture; "
          f"peak RSS < {TARGET_RSS_MB} MB on every capture")
    verdicts = {}
    for label, entry in results["sizes"].items():
        a = entry["tools"].get("analyze")
        if not a or a.get("error") or a.get("skipped"):
            continue
        rss_ok = a["peak_rss_mb"] < TARGET_RSS_MB
        line = f"  {label}: {a['pps']:,} packets/s"
        if entry["packets"] >= 10_000_000:
            pps_ok = a["pps"] >= TARGET_PPS
            line += f" [{'PASS' if pps_ok else 'FAIL'} >= {TARGET_PPS:,}]"
            verdicts[f"{label}_pps"] = pps_ok
        line += f", peak RSS {a['peak_rss_mb']:.1f} MB [{'PASS' if rss_ok else 'FAIL'} < {TARGET_RSS_MB}]"
        verdicts[f"{label}_rss"] = rss_ok
        print(line)
        with_logs = entry["tools"].get("analyze-logs")
        if with_logs and not with_logs.get("error"):
            # the memory target holds for a run with logs too
            logs_ok = with_logs["peak_rss_mb"] < TARGET_RSS_MB
            verdicts[f"{label}_logs_rss"] = logs_ok
            print(f"  {label} with {LOG_LINES:,} log lines: peak RSS {with_logs['peak_rss_mb']:.1f} MB "
                  f"[{'PASS' if logs_ok else 'FAIL'} < {TARGET_RSS_MB}]")
    if "analyze" not in tools:
        print("  analyze not measured (--skip-analyze / --tools)")
    results["verdicts"] = verdicts
    mism = []
    for label, entry in results["sizes"].items():
        for tool, r in entry["tools"].items():
            for m in r.get("mismatches", []):
                mism.append(f"  [{label}] {m}")
            for m in r.get("notes", []):
                mism.append(f"  [{label}] note: {m}")
            if r.get("error"):
                mism.append(f"  [{label}] {tool} FAILED: {r['error']}")
    if mism:
        print("\ncounts vs truth:")
        print("\n".join(mism))
    else:
        print("\ncounts vs truth: every measured tool read every packet and every "
              "SYN / SYN-ACK / FIN / RST")
    for n_ in dict.fromkeys(notes):
        print("note:", n_)
    rss_src = next((r.get("rss_source") for e in results["sizes"].values()
                    for r in e["tools"].values() if r.get("rss_source")), None)
    print(f"peak RSS = max(largest process [{rss_src}], sum over the process tree [psutil, 50 ms])")
    la0 = results["machine"]["loadavg_at_start"][0]
    la1 = round(os.getloadavg()[0], 2)
    results["machine"]["loadavg_at_end"] = la1
    print(f"load average (1 min) at start {la0}, at end {la1}, on {os.cpu_count()} CPUs"
          + ("  -- other work was running: figures are noisy, compare CPU s" if max(la0, la1)
             > 0.5 * (os.cpu_count() or 1) else ""))
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    with open(out_json, "w") as fh:
        json.dump(results, fh, indent=1)
    print(f"figures: {out_json}")
    bad = any(r.get("error") for e in results["sizes"].values() for r in e["tools"].values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
