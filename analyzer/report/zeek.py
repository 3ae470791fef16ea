"""A Zeek-style conn.log of the flows, for people who already have Zeek tooling.

The layout is Zeek's TSV log format (header lines, tab-separated fields, "-" for unset);
fields we do not measure (service, IP-level byte counts, tunnels) are "-", and missed_bytes
is 0 since we do not reassemble streams.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from analyzer.frames import text

FIELDS = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service",
          "duration", "orig_bytes", "resp_bytes", "conn_state", "local_orig", "local_resp",
          "missed_bytes", "history", "orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes",
          "tunnel_parents"]
TYPES = ["time", "string", "addr", "port", "addr", "port", "enum", "string", "interval", "count",
         "count", "string", "bool", "bool", "count", "string", "count", "count", "count", "count",
         "set[string]"]


def _seconds(ns: np.ndarray) -> np.ndarray:
    return np.array([f"{v // 1_000_000_000}.{(v % 1_000_000_000) // 1000:06d}" for v in ns], dtype=object)


def write_conn_log(flows: pd.DataFrame, path: Path) -> None:
    first = flows["first_ts_ns"].to_numpy(np.int64)
    last = flows["last_ts_ns"].to_numpy(np.int64)
    proto = text(flows["proto"]).replace({"icmp6": "icmp"})
    history = text(flows["history"]).replace({"": "-"})
    table = pd.DataFrame({
        "ts": _seconds(first),
        "uid": ["C" + format(int(i), "011d") for i in flows["flow_id"]],
        "id.orig_h": text(flows["initiator_ip"]), "id.orig_p": flows["initiator_port"],
        "id.resp_h": text(flows["responder_ip"]), "id.resp_p": flows["responder_port"],
        "proto": proto, "service": "-",
        "duration": _seconds(last - first),
        "orig_bytes": flows["bytes_i2r"], "resp_bytes": flows["bytes_r2i"],
        "conn_state": text(flows["conn_state"]), "local_orig": "-", "local_resp": "-",
        "missed_bytes": 0, "history": history,
        "orig_pkts": flows["packets_i2r"], "orig_ip_bytes": "-",
        "resp_pkts": flows["packets_r2i"], "resp_ip_bytes": "-", "tunnel_parents": "-",
    })
    opened = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime())
    with open(path, "w") as out:
        out.write("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n")
        out.write(f"#path\tconn\n#open\t{opened}\n")
        out.write("#fields\t" + "\t".join(FIELDS) + "\n#types\t" + "\t".join(TYPES) + "\n")
        table.to_csv(out, sep="\t", header=False, index=False, lineterminator="\n")
        out.write(f"#close\t{opened}\n")
