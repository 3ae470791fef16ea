"""Platform behaviours as data, and the verdict.

The behaviours live in analyzer/data/signatures.toml (a user adds or overrides them with a
file of their own). This module measures a fixed set of facts about the session (FEATURES),
scores every signature's cues against them, and names the best one, with the evidence and
the remedy. It also regenerates the field report's table (`seed_table`): per socket kind,
what the app and the server saw and what a reconnect got.
"""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from analyzer import frames
from analyzer.frames import labels, lowered, text
from analyzer.spill import row_steps
from analyzer.correlate import lifecycle as lifecycle_mod

KINDS = ("udp", "tcp_client", "tcp_server")
# Facts a cue may test (name -> what it measures); kept in one place for signature authors.
FEATURES = {
    "phone_rst_flows": "TCP flows the phone ended with RST",
    "phone_fin_flows": "TCP flows the phone ended with FIN",
    "phone_teardowns": "flows the phone ended (RST or FIN)",
    "server_rst_flows": "TCP flows the server side ended with RST",
    "server_fin_flows": "TCP flows the server side ended with FIN",
    "server_teardowns": "flows the server side ended (RST, FIN, refused, ICMP unreachable)",
    "server_rst_after_idle": "server-side RSTs on flows quiet for >= IDLE_S between packets",
    "listener_syn_unanswered": "connects to the phone's listener nobody answered",
    "listener_syn_refused": "connects to the phone's listener the phone refused",
    "listener_failures": "both of the above",
    "dial_refused": "the phone's connects refused by the server",
    "dial_unanswered": "the phone's connects nobody answered",
    "udp_icmp_unreachable": "UDP flows answered with ICMP unreachable by the server",
    "server_wrote_after_fin": "server writes after the phone's FIN",
    "rst_flows": "flows ended by RST (either side)",
    "teardown_flows": "flows with any teardown (not open)",
    "clean_close_share": "share of FIN-closed TCP flows that closed both ways (SF)",
    "phone_teardown_burst": "the phone tore down several flows at once (capture alone)",
    "lifecycle_periods": "background periods found (logs or capture)",
    "lifecycle_from_logs": "the periods come from log lines",
    "phone_teardowns_in_background": "share of the phone's teardowns inside background periods",
    "app_errno": "canonical errnos in app log lines",
    "server_errno": "canonical errnos in server log lines",
    "error_lines": "log lines carrying an errno",
    "app_platform": "android | ios | None, from the app log's format",
    "app_log_text": "app log messages (op 'matches')",
    "server_log_text": "server log messages (op 'matches')",
}
IDLE_S = 30.0
BACKGROUND_SLACK_S = 5.0     # a flow that went quiet this soon before a period counts as in it
MAX_SESSION_EVIDENCE = 30
MAX_FLOW_VERDICTS = 5000     # summary.json stays readable on a soak test

_DIAL_OPS = {"dial", "connect", "bind"}
_LOG_COLUMNS = ("ts_ns", "role", "message", "errno", "op", "proto", "local_ip", "local_port",
                "remote_ip", "remote_port", "flow_id", "format", "source", "raw_time")


# --------------------------------------------------------------------------- loading


def load_signatures(extra_path: str | Path | None = None) -> dict:
    """The built-in signatures, then the user's file: same id replaces, new id appends.
    Returns {"settings": {...}, "signatures": [...]} (order = tie-break order)."""
    text = resources.files("analyzer").joinpath("data/signatures.toml").read_text("utf-8")
    base = tomllib.loads(text)
    settings = dict(base.get("settings", {}))
    sigs = list(base.get("signature", []))
    if extra_path is not None:
        try:
            with open(extra_path, "rb") as f:
                extra = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"signature file {extra_path}: {exc}") from exc
        settings.update(extra.get("settings", {}))
        index = {s["id"]: i for i, s in enumerate(sigs)}
        for sig in extra.get("signature", []):
            if sig.get("id") in index:
                sigs[index[sig["id"]]] = sig
            else:
                sigs.append(sig)
    for sig in sigs:
        _validate(sig, extra_path)
    return {"settings": settings, "signatures": sigs}


def _validate(sig: dict, origin) -> None:
    where = f"signature {sig.get('id', '?')!r}" + (f" ({origin})" if origin else "")
    if not sig.get("id"):
        raise ValueError(f"{where}: no id")
    for cue in sig.get("cue", []):
        if cue.get("feature") not in FEATURES:
            raise ValueError(f"{where}: unknown feature {cue.get('feature')!r}")
        if cue.get("op") not in _OPS:
            raise ValueError(f"{where}: unknown op {cue.get('op')!r}")
        if cue.get("op") == "matches":
            re.compile(cue["value"])


# --------------------------------------------------------------------------- socket kinds


def socket_kinds(flows: pd.DataFrame) -> pd.Series:
    """udp | tcp_client (the phone dialled) | tcp_server (dialled to the phone) | other,
    as a categorical (four codes, whatever the number of flows)."""
    if flows is None or len(flows) == 0:
        return pd.Series([], dtype=object)
    proto = lowered(flows["proto"])
    role = labels(flows["phone_role"])
    tcp = (proto == "tcp").to_numpy()
    codes = np.zeros(len(flows), dtype=np.int8)
    codes[(proto == "udp").to_numpy()] = 1
    codes[tcp & (role == "initiator").to_numpy()] = 2
    codes[tcp & (role == "responder").to_numpy()] = 3
    return pd.Series(pd.Categorical.from_codes(codes, categories=_KIND_LABELS), index=flows.index)


_KIND_LABELS = ["other", "udp", "tcp_client", "tcp_server"]


def _norm_logs(logs: pd.DataFrame | None) -> pd.DataFrame:
    """A logs frame with every column this module reads (an empty one when there are none)."""
    if logs is None or len(logs) == 0:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in _LOG_COLUMNS})
    out = logs.copy()
    for c in _LOG_COLUMNS:
        if c not in out:
            out[c] = None
    return out


def log_kinds(logs: pd.DataFrame, flows: pd.DataFrame) -> pd.Series:
    """The socket kind each log line is about: its matched flow's kind, else from the
    protocol, the operation and the ports the capture shows listening."""
    logs = _norm_logs(logs)
    if len(logs) == 0:
        return pd.Series([], dtype=object)
    kinds = socket_kinds(flows)
    by_flow = {}
    if len(flows):
        # only the flows the lines name: not a dict of every flow of a million-flow capture
        named = pd.to_numeric(logs["flow_id"], errors="coerce").dropna().astype("int64").unique()
        hit = flows["flow_id"].isin(named).to_numpy()
        by_flow = dict(zip(flows["flow_id"].to_numpy(np.int64)[hit].tolist(), kinds[hit].tolist()))
    is_tcp = lowered(flows["proto"]) == "tcp" if len(flows) else pd.Series([], dtype=bool)
    server_ports = set(flows.loc[is_tcp & (kinds == "tcp_client"), "responder_port"].astype(int)) if len(flows) else set()
    phone_ports = set(flows.loc[is_tcp & (kinds == "tcp_server"), "responder_port"].astype(int)) if len(flows) else set()

    def one(row) -> str | None:
        fid = row.flow_id
        if fid is not None and not pd.isna(fid) and int(fid) in by_flow:
            return by_flow[int(fid)]
        proto = str(row.proto).lower() if isinstance(row.proto, str) else None
        if proto == "udp":
            return "udp"
        if proto != "tcp":
            return None
        local = None if row.local_port is None or pd.isna(row.local_port) else int(row.local_port)
        remote = None if row.remote_port is None or pd.isna(row.remote_port) else int(row.remote_port)
        op = str(row.op) if isinstance(row.op, str) else ""
        if row.role == "server":
            if local in server_ports or (op == "accept"):
                return "tcp_client"
            if remote in phone_ports or op in ("dial", "connect"):
                return "tcp_server"
            return None
        # app side
        if remote in server_ports or op in ("dial", "connect"):
            return "tcp_client"
        if local in phone_ports or op == "accept":
            return "tcp_server"
        return None

    return pd.Series([one(r) for r in logs.itertuples(index=False)], index=logs.index, dtype=object)


def _platform_of_formats(formats) -> str | None:
    names = {str(f) for f in formats if isinstance(f, str)}
    if any(n.startswith("logcat") for n in names):
        return "android"
    if any(n.startswith("ios") or n in ("console-app", "idevicesyslog", "log-show-json",
                                        "log-show-ndjson") for n in names):
        return "ios"
    return None


# --------------------------------------------------------------------------- features


def features(flows: pd.DataFrame, events: pd.DataFrame, logs: pd.DataFrame | None,
             periods: list[dict], phones=None) -> dict:
    """The facts the cues test (see FEATURES)."""
    logs = _norm_logs(logs)
    f: dict = {}
    n = len(flows) if flows is not None else 0
    # Every flow count the cues read comes from one table of (protocol, socket kind,
    # teardown, teardown_by, closed as SF) counts, made FLOW_STEP flows at a time, and so do
    # the server's idle resets and the phone's teardowns inside background periods: masks
    # over whole columns held ~48 MB on 50M packets.
    counts: dict[tuple, int] = {}
    idle_resets = in_background = 0
    for at in row_steps(n, FLOW_STEP):
        part = flows.iloc[at:at + FLOW_STEP]
        proto, teardown, by = lowered(part["proto"]), labels(part["teardown"]), labels(part["teardown_by"])
        for key, number in frames.tuple_counts(proto, socket_kinds(part), teardown, by,
                                               labels(part["conn_state"]) == "SF").items():
            counts[key] = counts.get(key, 0) + number
        if periods:
            mine = ((proto == "tcp") & (by == "phone")).to_numpy() & frames.isin(teardown, ("rst", "fin"))
            in_background += int(lifecycle_mod.in_periods(
                part["teardown_ts_ns"].to_numpy(np.int64)[mine], periods, BACKGROUND_SLACK_S).sum())
        # the mean gap between packets, on the server's TCP resets only
        rows = np.flatnonzero(((proto == "tcp") & (teardown == "rst") & (by == "server")).to_numpy())
        packets = (part["packets_i2r"].to_numpy(np.int64)[rows]
                   + part["packets_r2i"].to_numpy(np.int64)[rows] - 1)
        np.maximum(packets, 1, out=packets)
        span = (part["teardown_ts_ns"].to_numpy(np.int64)[rows]
                - part["first_ts_ns"].to_numpy(np.int64)[rows])
        gap = span / 1e9
        gap /= packets
        idle_resets += int((gap >= IDLE_S).sum())

    def count(proto=None, kind=None, teardown=None, by=None, sf=None) -> int:
        """Flows with these values (a tuple: any of them; None: any value)."""
        def fits(value, want):
            return want is None or (value in want if isinstance(want, tuple) else value == want)
        return sum(number for (p, k, t, b, c), number in counts.items()
                   if fits(p, proto) and fits(k, kind) and fits(t, teardown) and fits(b, by) and fits(c, sf))

    f["phone_rst_flows"] = count("tcp", teardown="rst", by="phone")
    f["phone_fin_flows"] = count("tcp", teardown="fin", by="phone")
    f["phone_teardowns"] = f["phone_rst_flows"] + f["phone_fin_flows"]
    f["server_rst_flows"] = count("tcp", teardown="rst", by="server")
    f["server_fin_flows"] = count("tcp", teardown="fin", by="server")
    f["dial_refused"] = count(kind="tcp_client", teardown="refused", by="server")
    f["dial_unanswered"] = count(kind="tcp_client", teardown="syn_unanswered")
    f["udp_icmp_unreachable"] = count("udp", teardown="icmp_unreachable", by="server")
    f["server_teardowns"] = (f["server_rst_flows"] + f["server_fin_flows"] + f["dial_refused"]
                             + f["udp_icmp_unreachable"])
    f["listener_syn_unanswered"] = count(kind="tcp_server", teardown="syn_unanswered")
    f["listener_syn_refused"] = count(kind="tcp_server", teardown="refused", by="phone")
    f["listener_failures"] = f["listener_syn_unanswered"] + f["listener_syn_refused"]
    f["rst_flows"] = count(teardown="rst")
    f["teardown_flows"] = n - count(teardown="open")
    fin_closed = count("tcp", teardown="fin")
    f["clean_close_share"] = count("tcp", teardown="fin", sf=True) / fin_closed if fin_closed else 0.0
    f["server_rst_after_idle"] = idle_resets
    pairs = frames.pair_counts(events["kind"], events["sender"]) if events is not None and len(events) else {}
    f["server_wrote_after_fin"] = pairs.get("data_after_fin", {}).get("server", 0)

    if periods and all(p.get("basis") == "capture" for p in periods):
        f["phone_teardown_burst"] = True     # these periods are the bursts themselves
    else:
        f["phone_teardown_burst"] = bool(lifecycle_mod.bursts(flows, events, evidence=False)) if n else False
    f["lifecycle_periods"] = len(periods)
    f["lifecycle_from_logs"] = any(p.get("basis") == "log" for p in periods)
    phone_td = count("tcp", teardown=("rst", "fin"), by="phone")
    f["phone_teardowns_in_background"] = in_background / phone_td if phone_td and periods else 0.0

    role = text(logs["role"])
    errno = logs["errno"]
    has_errno = errno.notna() & (text(errno) != "")
    f["app_errno"] = sorted(set(text(errno[has_errno & (role == "app")])))
    f["server_errno"] = sorted(set(text(errno[has_errno & (role == "server")])))
    f["error_lines"] = int(has_errno.sum())
    f["app_platform"] = _platform_of_formats(logs.loc[role == "app", "format"].unique())
    f["_app_messages"] = logs.loc[role == "app", "message"]
    f["_server_messages"] = logs.loc[role == "server", "message"]
    return f


# --------------------------------------------------------------------------- scoring


def _cmp(op):
    return lambda got, want: got is not None and op(got, want)


_OPS = {
    ">=": _cmp(lambda a, b: a >= b), ">": _cmp(lambda a, b: a > b),
    "<=": _cmp(lambda a, b: a <= b), "<": _cmp(lambda a, b: a < b),
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
    "any": lambda a, b: bool(set(a or ()) & set(b)),
    "none": lambda a, b: not (set(a or ()) & set(b)),
    "matches": None,  # evaluated on the log text columns in _holds
}


def _holds(cue: dict, feats: dict) -> bool:
    name, op, want = cue["feature"], cue["op"], cue.get("value")
    if op == "matches":
        column = feats.get("_app_messages" if name == "app_log_text" else "_server_messages")
        if column is None or len(column) == 0:
            return False
        return bool(text(column).str.contains(want, regex=True, na=False).any())
    return bool(_OPS[op](feats.get(name), want))


def score(sig: dict, feats: dict) -> tuple[float, list[dict]]:
    """(score in [0, 1], the cues with whether each held). Score 0 if a required cue fails."""
    positive = sum(c.get("weight", 1) for c in sig.get("cue", []) if c.get("weight", 1) > 0)
    got = 0.0
    checked = []
    ruled_out = False
    for cue in sig.get("cue", []):
        held = _holds(cue, feats)
        weight = cue.get("weight", 1)
        if held:
            got += weight          # a negative weight subtracts
        elif cue.get("required"):
            ruled_out = True
        checked.append({"why": cue.get("why", cue["feature"]), "feature": cue["feature"],
                        "held": held, "weight": weight, "required": bool(cue.get("required"))})
    if ruled_out or positive <= 0:
        return 0.0, checked
    return max(0.0, min(1.0, got / positive)), checked


# --------------------------------------------------------------------------- the verdict


def judge(flows: pd.DataFrame, events: pd.DataFrame, logs: pd.DataFrame | None,
          lifecycle: list[dict], phones=None, signatures: dict | None = None) -> dict:
    """{"session": {...}, "flows": [...]} (see DESIGN.md section 4, `verdicts`)."""
    signatures = signatures or load_signatures()
    sigs = signatures["signatures"]
    min_score = float(signatures.get("settings", {}).get("min_score", 0.35))
    logs = _norm_logs(logs)
    feats = features(flows, events, logs, lifecycle, phones)
    ranked = []
    for order, sig in enumerate(sigs):
        s, cues = score(sig, feats)
        ranked.append((s, -order, sig, cues))
    ranked.sort(key=lambda r: (r[0], r[1]), reverse=True)
    best_score, _, best, best_cues = ranked[0] if ranked else (0.0, 0, None, [])
    scores = {r[2]["id"]: round(r[0], 3) for r in ranked}

    # the flows the best signature names are marked in the verdicts' pass over the flows,
    # for the session's evidence (a second pass took ~0.4 s on 50M packets)
    named = np.zeros(len(flows) if flows is not None else 0, dtype=bool)
    flow_list, omitted = _flow_verdicts(flows, logs, lifecycle, ranked, min_score, named)
    if best is None or best_score < min_score:
        session = {"behaviour": "unknown", "title": "No known behaviour fits",
                   "caused_by_phone_lifecycle": None, "confidence": 0.0,
                   "evidence": _generic_evidence(flows), "cues": [],
                   "remedy": ["Look at the flows and events below; add a signature for this "
                              "behaviour in your own signature file."],
                   "references": [], "description": ""}
    else:
        session = {
            "behaviour": best["id"],
            "title": best.get("title", best["id"]),
            "platform": best.get("platform"),
            "caused_by_phone_lifecycle": bool(best.get("caused_by_phone_lifecycle", False)),
            "confidence": round(best_score, 2),
            "evidence": _session_evidence(best, flows, logs, lifecycle, named),
            "cues": best_cues,
            "remedy": list(best.get("remedy", [])),
            "references": list(best.get("references", [])),
            "description": " ".join(str(best.get("description", "")).split()),
        }
    session["scores"] = scores
    session["lifecycle_basis"] = sorted({p["basis"] for p in lifecycle}) or None
    out = {"session": session, "flows": flow_list}
    if omitted:
        out["flows_omitted"] = omitted
    return out


def _flow_attrs(flows: pd.DataFrame, periods: list[dict]) -> pd.DataFrame:
    kinds = socket_kinds(flows)
    end = np.where(labels(flows["teardown"]) != "open", flows["teardown_ts_ns"], flows["last_ts_ns"])
    in_bg = lifecycle_mod.in_periods(end, periods, 0.0)
    # A flow that simply went quiet just before the app left (UDP has no close) counts too.
    end += int(BACKGROUND_SLACK_S * 1e9)        # in place: np.where's array is our own
    in_bg |= lifecycle_mod.in_periods(end, periods, 0.0)
    return pd.DataFrame({"kind": kinds.array, "teardown": labels(flows["teardown"]).array,
                         "by": labels(flows["teardown_by"]).array,
                         "in_background": in_bg}, index=flows.index)


def _pattern_mask(pattern: dict, attrs: pd.DataFrame) -> np.ndarray:
    mask = np.ones(len(attrs), dtype=bool)
    for key in ("kind", "teardown", "by"):
        if key in pattern:
            want = pattern[key] if isinstance(pattern[key], list) else [pattern[key]]
            mask &= frames.isin(attrs[key], want)
    if "in_background" in pattern:
        mask &= attrs["in_background"].to_numpy() == bool(pattern["in_background"])
    return mask


def _flow_verdicts(flows, logs, periods, ranked, min_score, named: np.ndarray) -> tuple[list[dict], int]:
    """The flows explained and the signature that names each, and how many more there
    were than are listed. `named` is set where the best-ranked signature's flow patterns
    hold (whether or not a flow was named by it, or explained)."""
    if flows is None or len(flows) == 0:
        return [], 0
    # A signature the session rules out still names a flow, with low confidence. (One
    # figure per signature, not a column of them.)
    confidence = [round(s if s >= min_score else 0.3 * max(s, 0.5), 2) for s, _, _, _ in ranked]
    # The flows explained (ended, or named by a signature), FLOW_STEP flows at a time: the
    # first MAX_FLOW_VERDICTS are listed, with their kind and signature, the rest counted
    idx, kinds_of, numbers = [], [], []
    explained_flows = 0
    for at in row_steps(len(flows), FLOW_STEP):
        attrs = _flow_attrs(flows.iloc[at:at + FLOW_STEP], periods)
        # each flow's signature as its number in `ranked` (-1: none), not a column of strings
        assigned = np.full(len(attrs), -1, dtype=np.int32)
        # The session's best explanation first, then the others in score order.
        for number, (_, _, sig, _) in enumerate(ranked):
            for pattern in sig.get("flow", []):
                mask = _pattern_mask(pattern, attrs)
                if number == 0:
                    named[at:at + len(mask)] |= mask
                mask &= assigned < 0
                assigned[mask] = number
        explained = np.flatnonzero((attrs["teardown"] != "open").to_numpy() | (assigned >= 0))
        explained_flows += len(explained)
        listed = explained[:max(0, MAX_FLOW_VERDICTS - sum(len(i) for i in idx))]
        idx.append(at + listed)
        kinds_of += attrs["kind"].take(listed).tolist()
        numbers.append(assigned[listed])
    idx, numbers = np.concatenate(idx), np.concatenate(numbers)
    omitted = max(0, explained_flows - MAX_FLOW_VERDICTS)
    log_by_flow = {}
    if len(logs) and logs["flow_id"].notna().any():
        # each flow's first three lines, in one pass (a groupby of a thousand little frames
        # took seconds)
        matched = logs[logs["flow_id"].notna()]
        fids = matched["flow_id"].astype("int64")
        first3 = matched[fids.groupby(fids).cumcount().to_numpy() < 3]
        for fid, record in zip(first3["flow_id"].astype("int64").tolist(), first3.to_dict("records")):
            log_by_flow.setdefault(fid, []).append(lifecycle_mod.log_evidence(record))
    out = []
    rows = flows.iloc[idx]
    for kind, number, row in zip(kinds_of, numbers.tolist(), rows.itertuples(index=False)):
        evidence = []
        if row.teardown != "open" and row.teardown_frame > 0:
            evidence.append(lifecycle_mod.frame_evidence(row.teardown_frame, row.flow_id, row.teardown,
                                                         row.teardown_by, row.teardown_ts_ns))
        evidence += log_by_flow.get(int(row.flow_id), [])
        out.append({"flow_id": int(row.flow_id), "kind": kind,
                    "behaviour": ranked[number][2]["id"] if number >= 0 else "unknown",
                    "confidence": float(confidence[number]) if number >= 0 else 0.0,
                    "evidence": evidence})
    return out, omitted


def _session_evidence(sig: dict, flows, logs: pd.DataFrame, periods: list[dict],
                      named: np.ndarray) -> list[dict]:
    """The session's evidence: the earliest teardowns of the flows `sig`'s flow patterns
    name (`named`, from _flow_verdicts), its errno's log lines, and the periods' log lines."""
    evidence: list[dict] = []
    if flows is not None and len(flows):
        mask = named & (labels(flows["teardown"]) != "open").to_numpy()
        evidence += _earliest_teardowns(flows, mask, MAX_SESSION_EVIDENCE // 2)
    wanted = set(sig.get("evidence_errnos", []))
    if len(logs) and wanted:
        hits = logs[text(logs["errno"]).isin(wanted)]
        hits = hits.sort_values("ts_ns", kind="stable", na_position="last")
        evidence += [lifecycle_mod.log_evidence(r) | {"errno": str(r["errno"]), "role": str(r["role"])}
                     for r in hits.head(MAX_SESSION_EVIDENCE // 3).to_dict("records")]
    for period in periods[:3]:
        evidence += [e for e in period["evidence"] if e["type"] == "log"][:2]
    return evidence[:MAX_SESSION_EVIDENCE]


def _generic_evidence(flows) -> list[dict]:
    if flows is None or len(flows) == 0:
        return []
    return _earliest_teardowns(flows, (labels(flows["teardown"]) != "open").to_numpy(), 10)


def _earliest_teardowns(flows: pd.DataFrame, mask: np.ndarray, count: int) -> list[dict]:
    """Frame evidence for the `count` earliest teardowns among the flows in `mask`, found by
    position (no copy of the matching rows; the same order a quicksort of them gives)."""
    rows = np.flatnonzero(mask)
    first = np.argsort(flows["teardown_ts_ns"].to_numpy()[rows], kind="quicksort")
    return lifecycle_mod.frame_evidence_at(flows, rows[first[:count]])


# --------------------------------------------------------------------------- the field table


def seed_table(flows: pd.DataFrame, events: pd.DataFrame, logs: pd.DataFrame | None,
               phones=None, periods: list[dict] | None = None) -> dict:
    """{kind: {app_error, server_error, reconnect, basis}} for the socket kinds present.

    app_error / server_error: the first socket error that side logged on that kind (reads
    and writes before dials and binds), canonical name or None. Without any server log, the
    server's error is inferred from how the phone ended the flow (RST -> ECONNRESET, FIN ->
    EOF) and `basis` says so. reconnect: what the next connect on that kind after its first
    teardown got: ok (answered), refused, timeout (unanswered), n/a (no attempt seen).
    """
    logs = _norm_logs(logs)
    # Only error lines fill the table: classify those, not the whole (maybe huge) log.
    roles = set(text(logs["role"])) if len(logs) else set()
    logs = logs[logs["errno"].notna()] if len(logs) else logs
    periods = periods or []
    kinds = socket_kinds(flows) if flows is not None and len(flows) else pd.Series([], dtype=object)
    lkinds = log_kinds(logs, flows) if len(logs) else pd.Series([], dtype=object)
    present = [k for k in KINDS if (kinds == k).any() or (lkinds == k).any()]
    first_period = min((p["start_ns"] for p in periods), default=None)
    has_server_log = "server" in roles
    has_app_log = "app" in roles
    table = {}
    for kind in present:
        # the kind's rows are read a step at a time, by position, and only the columns the
        # table reads: a kind can hold most of a million flows
        kmask = (kinds == kind).to_numpy() if len(kinds) else np.zeros(0, dtype=bool)
        ref_ns = _first_teardown(flows, kmask)
        if ref_ns is None:
            ref_ns = first_period
        klogs = logs[(lkinds == kind).to_numpy()] if len(lkinds) else logs.iloc[0:0]
        app_error = _first_error(klogs[text(klogs["role"]) == "app"], first_period)
        server_error = _first_error(klogs[text(klogs["role"]) == "server"], first_period)
        basis = {"app_error": "log" if has_app_log else "none",
                 "server_error": "log" if has_server_log else "none"}
        if not has_server_log:
            server_error = _server_error_from_capture(flows, kmask)
            basis["server_error"] = "capture" if server_error else "none"
        reconnect, how = _reconnect(flows, kmask, kind, ref_ns, klogs)
        basis["reconnect"] = how
        table[kind] = {"app_error": app_error, "server_error": server_error,
                       "reconnect": reconnect, "basis": basis}
    return table


_SEED_COLUMNS = ["first_ts_ns", "syn_count", "teardown", "teardown_by", "teardown_ts_ns"]


FLOW_STEP = 262144      # flows read per step where a whole column of temporaries would do


def _rows_of(flows: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """The _SEED_COLUMNS of the rows at these positions, numbered from 0."""
    return pd.DataFrame({c: flows[c].array.take(rows) for c in _SEED_COLUMNS}, copy=False)


def _kind_steps(flows: pd.DataFrame, kmask: np.ndarray):
    """The rows of one socket kind (kmask), FLOW_STEP flows at a time: (their positions,
    their _SEED_COLUMNS)."""
    for at in row_steps(len(kmask), FLOW_STEP):
        rows = at + np.flatnonzero(kmask[at:at + FLOW_STEP])
        if len(rows):
            yield rows, _rows_of(flows, rows)


def _earliest(ts: np.ndarray, mask: np.ndarray) -> int:
    """Row of the earliest time where mask holds (the first such row on a tie), or -1."""
    rows = np.flatnonzero(mask)
    return int(rows[np.argmin(ts[rows])]) if len(rows) else -1


def _earliest_of_kind(flows, kmask, column: str, select) -> tuple[int, int, str] | None:
    """(time, position, teardown) of the kind's flow with the earliest `column` among those
    `select(kflows)` picks in each step's rows (the first such flow on a tie), or None."""
    best = None
    for rows, kflows in _kind_steps(flows, kmask):
        ts = kflows[column].to_numpy()
        first = _earliest(ts, select(kflows))
        # strictly earlier: on a tie the earlier step, so the lower position, stands
        if first >= 0 and (best is None or int(ts[first]) < best[0]):
            best = (int(ts[first]), int(rows[first]), str(kflows["teardown"].iat[first]))
    return best


def _first_teardown(flows: pd.DataFrame, kmask: np.ndarray) -> int | None:
    """The kind's first teardown time: the phone's first RST or FIN, else anyone's."""
    by_phone = closing = None
    for _, kflows in _kind_steps(flows, kmask):
        close = frames.isin(kflows["teardown"], ("rst", "fin"))
        if not close.any():
            continue
        ts = kflows["teardown_ts_ns"].to_numpy()
        closing = min(closing, int(ts[close].min())) if closing is not None else int(ts[close].min())
        phone = close & (labels(kflows["teardown_by"]) == "phone").to_numpy()
        if phone.any():
            first = int(ts[phone].min())
            by_phone = min(by_phone, first) if by_phone is not None else first
    return by_phone if by_phone is not None else closing


def _first_error(rows: pd.DataFrame, after_ns: int | None) -> str | None:
    rows = rows[rows["errno"].notna() & (text(rows["errno"]) != "")]
    if len(rows) == 0:
        return None
    if after_ns is not None:
        ts = rows["ts_ns"]
        late = rows[ts.isna() | (ts.astype("float64") >= after_ns - BACKGROUND_SLACK_S * 1e9)]
        rows = late if len(late) else rows
    # Reads and writes on the broken socket say what the teardown did; dial and bind errors
    # are what came after (the reconnect), so they count only when nothing else was logged.
    io = rows[~text(rows["op"]).isin(_DIAL_OPS)]
    rows = io if len(io) else rows
    rows = rows.assign(_ts=rows["ts_ns"].astype("float64")).sort_values("_ts", kind="stable", na_position="last")
    return str(rows["errno"].iloc[0])


def _server_error_from_capture(flows: pd.DataFrame, kmask: np.ndarray) -> str | None:
    first = _earliest_of_kind(flows, kmask, "teardown_ts_ns", lambda kflows: (
        frames.isin(kflows["teardown"], ("rst", "fin"))
        & (labels(kflows["teardown_by"]) == "phone").to_numpy()))
    if first is None:
        return None
    return "ECONNRESET" if first[2] == "rst" else "EOF"


def _reconnect(flows: pd.DataFrame, kmask: np.ndarray, kind: str, ref_ns: int | None,
               klogs: pd.DataFrame) -> tuple[str, str]:
    if ref_ns is None:
        return "n/a", "none"

    def later(kflows):
        out = kflows["first_ts_ns"].to_numpy() > ref_ns
        if kind != "udp":
            out &= kflows["syn_count"].to_numpy() > 0
        return out

    nxt = _earliest_of_kind(flows, kmask, "first_ts_ns", later)
    if nxt is not None:
        teardown = nxt[2]
        if teardown == "refused" or (kind == "udp" and teardown == "icmp_unreachable"):
            return "refused", "capture"
        if teardown in ("syn_unanswered", "udp_unanswered"):
            return "timeout", "capture"
        return "ok", "capture"
    # No attempt on the wire: a dial error in the logs still tells what the attempt got.
    dials = klogs[text(klogs["op"]).isin(("dial", "connect"))]
    codes = set(dials["errno"].dropna().astype(str))
    if "ECONNREFUSED" in codes:
        return "refused", "log"
    if codes & {"ETIMEDOUT", "DEADLINE"}:
        return "timeout", "log"
    return "n/a", "none"
