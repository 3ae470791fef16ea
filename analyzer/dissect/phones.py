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
    ends = pd.concat([flows["initiator_ip"], flows["responder_ip"]])
    pairs = pd.DataFrame({"flow": np.concatenate([flows["flow_id"].to_numpy()] * 2), "ip": ends.to_numpy()})
    counts = pairs.drop_duplicates().groupby("ip")["flow"].count().sort_values(ascending=False)
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


def attribute(flows: pd.DataFrame, events: pd.DataFrame, phones: list[str]) -> None:
    """Add phone_role and teardown_by to flows, sender to events (in place)."""
    phone_set = set(phones)
    ini = flows["initiator_ip"].isin(phone_set)
    res = flows["responder_ip"].isin(phone_set)
    flows["phone_role"] = np.select([ini, res], ["initiator", "responder"], "unknown")
    has_phone = ini | res

    def by_address(addr: pd.Series, flow_has_phone: pd.Series) -> np.ndarray:
        is_phone = addr.isin(phone_set)
        return np.select([is_phone, flow_has_phone & (addr != "")], ["phone", "server"], "unknown")

    side = flows["teardown_side"].to_numpy()
    ini_o = flows["initiator_ip"].to_numpy(object)
    res_o = flows["responder_ip"].to_numpy(object)
    icmp_o = flows["icmp_sender"].to_numpy(object)
    actor = np.where(side == 1, res_o, ini_o)
    actor = np.where(side == -2, icmp_o, actor)
    actor = np.where(side == -1, "", actor)
    teardown_by = by_address(pd.Series(actor, index=flows.index), has_phone)
    # an ICMP error from neither end (a router) is not the server's doing
    router = (side == -2) & ~np.isin(icmp_o, list(phone_set)) & (icmp_o != ini_o) & (icmp_o != res_o)
    teardown_by[router] = "unknown"
    flows["teardown_by"] = teardown_by

    if len(events):
        flow_phone = has_phone.set_axis(flows["flow_id"]).reindex(events["flow_id"]).fillna(False).to_numpy()
        src = events["src_ip"].astype(object)
        sender = by_address(src, pd.Series(flow_phone, index=events.index))
        icmp = (events["kind"] == "icmp_unreachable").to_numpy()
        # for ICMP: a router's error is "unknown"; the far end's is "server"
        ends = flows.set_index("flow_id")[["initiator_ip", "responder_ip"]].reindex(events["flow_id"])
        src_o = src.to_numpy(object)
        from_end = (src_o == ends["initiator_ip"].to_numpy(object)) | \
                   (src_o == ends["responder_ip"].to_numpy(object))
        sender = np.where(icmp & (sender == "server") & ~from_end, "unknown", sender)
        events["sender"] = sender
    else:
        events["sender"] = pd.Series(dtype=object)
