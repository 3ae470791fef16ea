"""The indexes the log matcher searches (flows by port, by teardown time; events by kind and
flow) give exactly what a scan of the whole table gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from analyzer.correlate import match

IPS = ["10.0.0.159", "10.0.1.238", "::ffff:10.0.0.7", "2001:db8::1", "0.0.0.0", "[2001:db8::2]"]
PHONE = "10.0.0.159"


def random_flows(rng, n: int) -> pd.DataFrame:
    first = np.sort(rng.integers(0, 10**12, n))
    teardown = rng.choice(["rst", "fin", "open", "refused", "udp_unanswered"], n)
    return pd.DataFrame({
        "flow_id": np.arange(1, n + 1), "first_frame": np.arange(1, n + 1),
        "proto": pd.Categorical(rng.choice(["tcp", "udp"], n)),
        "initiator_ip": pd.Categorical(rng.choice(IPS, n), categories=IPS),
        "responder_ip": pd.Categorical(rng.choice(IPS, n), categories=IPS),
        "initiator_port": rng.choice([443, 15100, 33322, 40000, 40001], n),
        "responder_port": rng.choice([443, 15100, 33322, 40000], n),
        "first_ts_ns": first, "last_ts_ns": first + rng.integers(0, 10**10, n),
        "teardown": pd.Categorical(teardown),
        "teardown_ts_ns": pd.Series(first + 5 * 10**9, dtype="Int64").where(teardown != "open", pd.NA),
    })


def scanned(fi: match.FlowIndex, li, lp, ri, rp, proto, op, role):
    """by_endpoints as a test of every row."""
    every = np.arange(fi.n)
    ip = (fi.ip[0][every], fi.ip[1][every])
    rows, ends = [], []
    for own in (0, 1):
        if (op in ("dial", "connect") and own == 1) or (op == "accept" and own == 0):
            continue
        other = 1 - own
        m = np.ones(fi.n, bool)
        if li is not None:
            m &= ip[own] == li
        if lp is not None:
            m &= fi.port[own] == lp
        if ri is not None:
            m &= ip[other] == ri
        if rp is not None:
            m &= fi.port[other] == rp
        if proto in ("tcp", "udp"):
            m &= fi.proto[every] == proto
        if fi.phones and role in ("app", "server"):
            m &= fi.is_phone[own] if role == "app" else (~fi.is_phone[own] & fi.has_phone)
        idx = np.flatnonzero(m)
        rows.append(idx)
        ends.append(np.full(len(idx), own))
    r, e = np.concatenate(rows), np.concatenate(ends)
    order = np.argsort(fi.first[r], kind="stable")
    return r[order], e[order]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_flows_by_endpoints_and_by_time(seed):
    rng = np.random.default_rng(seed)
    flows = random_flows(rng, 3000)
    fi = match.FlowIndex(flows, [PHONE])
    # addresses parsed once per category, as the row-by-row parse would
    expected_ip = [match._norm_ip(x) for x in flows["initiator_ip"].astype(object)]
    assert list(fi.ip[0][np.arange(fi.n)]) == expected_ip
    norm = [None, "10.0.0.159", "10.0.1.238", "10.0.0.7", "2001:db8::1"]
    for _ in range(300):
        query = (rng.choice(norm), rng.choice([None, 443, 15100, 33322, 40000, 40001, 9]),
                 rng.choice(norm), rng.choice([None, 443, 15100, 33322, 40000]),
                 rng.choice([None, "tcp", "udp"]), rng.choice([None, "dial", "accept", "read"]),
                 rng.choice(["app", "server", None]))
        if query[1] is None and query[3] is None:
            continue      # every caller names a port
        got, want = fi.by_endpoints(*query), scanned(fi, *query)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    for _ in range(100):
        lo = int(rng.integers(0, 10**12))
        hi = lo + int(rng.integers(0, 10**11))
        fits = {"rst", "fin"} if rng.random() < 0.5 else {"refused"}
        idx = fi.ended_between(lo, hi)
        idx = idx[fi.ended_as(fits)[idx]]
        teardown = flows["teardown"].astype(str).to_numpy()
        want = np.flatnonzero(np.isin(teardown, list(fits)) & (fi.teardown_ts >= lo) & (fi.teardown_ts <= hi))
        np.testing.assert_array_equal(idx, want)


def test_events_by_kind_flow_and_sender():
    rng = np.random.default_rng(9)
    flows = random_flows(rng, 500)
    fi = match.FlowIndex(flows, [PHONE])
    n = 20_000
    events = pd.DataFrame({
        "ts_ns": np.sort(rng.integers(0, 10**12, n)), "frame": np.arange(1, n + 1),
        "flow_id": rng.integers(1, 501, n),
        "kind": pd.Categorical(rng.choice(["rst", "fin", "syn", "icmp_unreachable"], n)),
        "src_ip": pd.Categorical(rng.choice(IPS, n), categories=IPS),
        "src_port": pd.array(np.where(rng.random(n) < 0.1, -7, rng.integers(1, 5, n)), dtype="Int32"),
        "sender": pd.Categorical(rng.choice(["phone", "server", "unknown"], n)),
    })
    events["src_port"] = events["src_port"].where(events["src_port"] != -7, pd.NA)   # ICMP: none
    ei = match.EventIndex(events, fi)
    assert (ei.src_port(np.flatnonzero(events["src_port"].isna().to_numpy())) == -1).all()
    some = np.flatnonzero(events["src_port"].notna().to_numpy())[:50]
    assert list(ei.src_port(some)) == list(events["src_port"].iloc[some])
    kind = events["kind"].astype(str).to_numpy()
    for k in ("rst", "fin", "synack"):
        for _ in range(50):
            ids = rng.integers(1, 501, rng.integers(0, 4))
            want = np.flatnonzero((kind == k) & np.isin(events["flow_id"].to_numpy(), ids))
            np.testing.assert_array_equal(ei.on_flows(k, ids), want)
        for who in ("phone", "server"):
            want = np.flatnonzero((kind == k) & (events["sender"].astype(str).to_numpy() == who))
            np.testing.assert_array_equal(ei.sent_by(k, who), want)
    rows = rng.choice(n, 100, replace=False)
    assert list(ei.src_ip(rows)) == [match._norm_ip(x) for x in events["src_ip"].astype(object).iloc[rows]]


OCTETS = st.sampled_from(["0", "00", "000", "1", "01", "001", "9", "10", "99", "100", "199",
                          "255", "256", "299", "999", "010"])


@settings(max_examples=500, deadline=None)
@given(st.lists(OCTETS, min_size=4, max_size=4), st.booleans())
def test_dotted_quads_are_normalised_as_ipaddress_does(octets, bracketed):
    """Dotted quads skip ipaddress (tens of thousands per capture) and come out as it would
    have them: as written when valid, None for 0.0.0.0, as written when it refuses them
    (an octet over 255, a leading zero)."""
    import ipaddress
    text = ".".join(octets)
    try:
        addr = ipaddress.ip_address(text)
        want = None if addr.is_unspecified else str(addr)
    except ValueError:
        want = text
    assert match._norm_ip(f"[{text}]" if bracketed else text) == want


HEXTETS = st.sampled_from(["0", "00", "0000", "00000", "1", "a", "A", "db8", "2001", "fe80", "ffff",
                           "FFFF", "1.2.3.4", "01.2.3.4", "1.2.3.256", "", "g", "1%eth0"])


@settings(max_examples=1000, deadline=None)
@given(st.lists(HEXTETS, min_size=1, max_size=10))
def test_ipv6_texts_are_normalised_as_ipaddress_does(hextets):
    """IPv6 texts the C library parses, with a non-zero first half, skip ipaddress and come
    out as it would print them; anything else (zone ids, IPv4-mapped, unspecified, not an
    address) still goes through it."""
    import ipaddress
    text = ":".join(hextets)
    try:
        addr = ipaddress.ip_address(text)       # "" is not an address: None, as missing
        if addr.version == 6 and addr.ipv4_mapped:
            addr = addr.ipv4_mapped
        want = None if addr.is_unspecified else str(addr)
    except ValueError:
        want = text or None
    assert match._norm_ip(text) == want
