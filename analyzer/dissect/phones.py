"""Which end is the phone: given by the user, or inferred, and said how.

Rule without --phone (and before any app log is read): the phone is the one address that
takes part in more flows than any other address. A capture taken on the phone, or of one
phone's traffic, has the phone in every flow. When two addresses tie (a capture of one
phone talking to one server has both in every flow) nothing can be inferred from the
capture alone: the phone stays unknown and a warning says to pass --phone (or to give the
app's log, whose local addresses name the phone).
"""

from __future__ import annotations

import ipaddress

import numpy as np
import pandas as pd

from analyzer import frames
from analyzer.dissect import flows as F
from analyzer.spill import HEAP, Spill, row_steps


SENDERS = ["phone", "server", "unknown"]


def normalise(address: str) -> str:
    """Canonical text of an address ('::ffff:10.0.0.1' -> '10.0.0.1')."""
    ip = ipaddress.ip_address(address.strip().strip("[]"))
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return str(ip)


def infer_phones(flows: pd.DataFrame) -> tuple[list[str], str]:
    """(phones, how) from the flow table alone, per the module's rule."""
    if flows.empty:
        return [], "no flows: phone unknown"
    ini, res = flows["initiator_ip"], flows["responder_ip"]
    if isinstance(ini.dtype, pd.CategoricalDtype) and ini.cat.categories.equals(res.cat.categories):
        cats = ini.cat.categories
        a, b = frames.codes(ini), frames.codes(res)      # their own: no int64 copies
    else:
        cats = pd.Index(pd.unique(pd.concat([ini, res]).astype(object)))
        a, b = cats.get_indexer(ini.astype(object)), cats.get_indexer(res.astype(object))
    # flows each address takes part in (once per flow, even talking to itself)
    per = np.bincount(a, minlength=len(cats)) + np.bincount(b[b != a], minlength=len(cats))
    counts = pd.Series(per, index=cats).sort_values(ascending=False)
    top = counts.iloc[0]
    leaders = counts[counts == top].index.tolist()
    if len(leaders) == 1:
        return leaders, (f"inferred: {leaders[0]} takes part in {top} of {len(flows)} flows, "
                         f"more than any other address")
    return [], (f"not inferred: {', '.join(sorted(leaders)[:4])} tie at {top} of {len(flows)} flows; "
                f"pass --phone IP or the app's log")


def phones_from_logs(flows: pd.DataFrame, log_events: list[pd.DataFrame]) -> tuple[list[str], str]:
    """The phone from the logs: the app's own local addresses, and the addresses the
    server talks to, that also appear in the capture's flows."""
    in_flows = set(flows["initiator_ip"].astype(object)) | set(flows["responder_ip"].astype(object))
    votes: dict[str, int] = {}
    for ev in log_events:
        if ev.empty or "role" not in ev:
            continue
        role = str(ev["role"].iloc[0])
        column = "local_ip" if role == "app" else "remote_ip"
        for value in ev[column].dropna().astype(str):
            try:
                ip = normalise(value)
            except ValueError:
                continue
            if ip in in_flows and ip not in ("0.0.0.0", "::"):
                votes[ip] = votes.get(ip, 0) + 1
    if not votes:
        return [], "not inferred: no log line names an address seen in the capture; pass --phone IP"
    best = max(votes.values())
    leaders = [ip for ip, n in votes.items() if n == best]
    if len(leaders) > 1:
        return [], f"not inferred: the logs name {', '.join(sorted(leaders))} equally; pass --phone IP"
    return leaders, f"inferred from the logs: {leaders[0]} is the app's address in {best} log lines"


def _codes(column: pd.Series, categories: pd.Index) -> np.ndarray:
    """Codes of a text column against `categories` (-1 where absent)."""
    if isinstance(column.dtype, pd.CategoricalDtype) and column.cat.categories.equals(categories):
        return frames.codes(column)      # int16 or int32, its own: no copy
    return categories.get_indexer(column.astype(object).fillna(""))


STEP = 262144      # flows or events attributed per step


def attribute(flows: pd.DataFrame, events: pd.DataFrame, phones: list[str], spill: Spill = HEAP) -> None:
    """Add phone_role and teardown_by to flows, sender to events (in place), made in `spill`
    (mapped files, or the heap). Works on the address codes, STEP rows at a time, so a
    million rows cost a few array operations and no whole column of temporaries."""
    ini_col = flows["initiator_ip"]
    categories = ini_col.cat.categories if isinstance(ini_col.dtype, pd.CategoricalDtype) \
        else pd.Index(pd.unique(pd.concat([ini_col, flows["responder_ip"]]).astype(object)))
    is_phone_cat = np.asarray(categories.isin(set(phones)), dtype=bool)

    def phone_at(codes: np.ndarray) -> np.ndarray:
        return np.where(codes >= 0, is_phone_cat[np.maximum(codes, 0)], False)

    ini = _codes(ini_col, categories)
    res = _codes(flows["responder_ip"], categories)
    icmp = _codes(flows["icmp_sender"], categories)
    side_all = flows["teardown_side"].to_numpy()
    role = spill.empty(len(flows), np.int8)       # 0 initiator, 1 responder, 2 unknown
    by = spill.empty(len(flows), np.int8)
    for a in row_steps(len(flows), STEP):
        b = min(len(flows), a + STEP)
        ini_p, res_p = phone_at(ini[a:b]), phone_at(res[a:b])
        role[a:b] = np.select([ini_p, res_p], [0, 1], 2)
        side = side_all[a:b]
        actor = np.where(side == 1, res[a:b], np.where(side == F.SIDE_ICMP_SENDER, icmp[a:b], ini[a:b]))
        actor_p = phone_at(actor)
        step_by = np.select([actor_p, ini_p | res_p], [0, 1], 2).astype(np.int8)
        # an ICMP error from neither end (a router) is not the server's doing
        router = ((side == F.SIDE_ICMP_SENDER) & ~actor_p & (icmp[a:b] != ini[a:b])
                  & (icmp[a:b] != res[a:b]))
        step_by[router | (side == F.SIDE_UNKNOWN)] = 2
        by[a:b] = step_by
    # codes straight into the categories: no string per row
    flows["phone_role"] = pd.Categorical.from_codes(role, categories=["initiator", "responder", "unknown"])
    flows["teardown_by"] = pd.Categorical.from_codes(by, categories=SENDERS)

    if len(events):
        flow_ids = flows["flow_id"].to_numpy()
        event_flow = events["flow_id"].to_numpy()
        src_all = _codes(events["src_ip"], categories)
        sender = spill.empty(len(events), np.int8)
        for a in row_steps(len(events), STEP):
            b = min(len(events), a + STEP)
            row = frames.id_rows(flow_ids, event_flow[a:b])
            src = src_all[a:b]
            from_end = (src == ini[row]) | (src == res[row])
            sender[a:b] = np.select([phone_at(src), (role[row] < 2) & from_end], [0, 1], 2)
        events["sender"] = pd.Categorical.from_codes(sender, categories=SENDERS)
    else:
        events["sender"] = pd.Categorical([], categories=SENDERS)
