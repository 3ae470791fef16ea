#!/usr/bin/env python3
"""App and server logs for a benchmark capture, so that `make bench` also times the log side.

    python bench/gen_logs.py FLOWS_CSV OUT_DIR [--lines 1000] [--seed 1]

Reads the flows.csv `analyze` wrote for the capture and writes, into OUT_DIR:

  server.log  Go `log` lines (second resolution, UTC): `read tcp SERVER->PHONE: read:
              connection reset by peer`, 0.2 s after a reset flow's teardown
  app.log     logcat threadtime lines (millisecond, UTC): `write tcp PHONE->SERVER: write:
              broken pipe` 0.6 s after a reset flow's teardown, and endpoint-less
              `read failed: EOF` lines 1 s after a FIN'd flow's last packet

About half the lines go to each file (three quarters of the app's name their endpoints).
Every line names a flow of the capture, so a line the matcher leaves without a flow is its
miss, not the generator's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os

import numpy as np
import pandas as pd


def _ep(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc)


def write_logs(flows_csv: str, out_dir: str, lines: int = 1000, seed: int = 1) -> dict:
    """Write app.log and server.log; return their paths and line counts."""
    flows = pd.read_csv(flows_csv, usecols=["proto", "initiator_ip", "initiator_port",
                                            "responder_ip", "responder_port", "phone_role",
                                            "teardown", "teardown_ts", "last_ts"])
    tcp = flows[(flows["proto"] == "tcp") & (flows["phone_role"] == "initiator")]
    rng = np.random.default_rng(seed)
    resets = tcp[tcp["teardown"] == "rst"]
    fins = tcp[tcp["teardown"] == "fin"]
    n_server = min(len(resets), lines // 2)
    n_app = min(len(resets), (lines - n_server) * 3 // 4)
    n_eof = min(len(fins), lines - n_server - n_app)
    server, app = [], []
    for r in resets.iloc[np.sort(rng.choice(len(resets), n_server, replace=False))].itertuples():
        t = _utc(r.teardown_ts + 0.2)
        server.append((t, f"{t:%Y/%m/%d %H:%M:%S} read tcp {_ep(r.responder_ip, r.responder_port)}"
                          f"->{_ep(r.initiator_ip, r.initiator_port)}: read: connection reset by peer"))
    for r in resets.iloc[np.sort(rng.choice(len(resets), n_app, replace=False))].itertuples():
        t = _utc(r.teardown_ts + 0.6)
        app.append((t, f"{t:%m-%d %H:%M:%S}.{t.microsecond // 1000:03d}  4242  4243 E GoLog   : "
                       f"write tcp {_ep(r.initiator_ip, r.initiator_port)}->"
                       f"{_ep(r.responder_ip, r.responder_port)}: write: broken pipe"))
    for r in fins.iloc[np.sort(rng.choice(len(fins), n_eof, replace=False))].itertuples():
        t = _utc(r.last_ts + 1.0)
        app.append((t, f"{t:%m-%d %H:%M:%S}.{t.microsecond // 1000:03d}  4242  4243 E GoLog   : "
                       "read failed: EOF"))
    os.makedirs(out_dir, exist_ok=True)
    out = {}
    for name, rows in (("app", app), ("server", server)):
        rows.sort(key=lambda row: row[0])
        path = os.path.join(out_dir, f"{name}.log")
        with open(path, "w") as fh:
            fh.write("".join(line + "\n" for _, line in rows))
        out[name] = {"path": path, "lines": len(rows)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("flows_csv")
    ap.add_argument("out_dir")
    ap.add_argument("--lines", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    for name, info in write_logs(args.flows_csv, args.out_dir, args.lines, args.seed).items():
        print(f"{info['path']}: {info['lines']:,} lines")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
