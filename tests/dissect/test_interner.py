"""The address interner: every (hi, lo) pair gets one code, numbered as addresses arrive,
and its text; the same whatever the blocks it comes in."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from analyzer.dissect.labels import Interner
from analyzer.dissect.packets import addr_to_halves, halves_to_addr

V4 = [addr_to_halves(f"10.0.{i}.{j}") for i in range(3) for j in range(4)]
V6 = [addr_to_halves(a) for a in ("::1", "2001:db8::1", "2001:db8::2", "fe80::1",
                                  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe")]
ADDRS = [(0, 0)] + V4 + V6


def reference(blocks):
    """Codes from a plain dict: IPv4 (and none) in order of first sight within a block,
    then that block's new IPv6 addresses in numeric order."""
    code, text, out = {(0, 0): 0}, [""], []
    for block in blocks:
        fresh4 = [k for k in dict.fromkeys(block) if k[0] == 0 and k not in code]
        fresh6 = sorted({k for k in block if k[0] != 0 and k not in code})
        for k in fresh4 + fresh6:
            code[k] = len(text)
            text.append(halves_to_addr(*k))
        out.append([code[k] for k in block])
    return out, text


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from(ADDRS), max_size=40), max_size=8))
def test_codes_and_texts_match_a_plain_dict(blocks):
    names = Interner()
    got = []
    for block in blocks:
        hi = np.array([h for h, _ in block], dtype=np.uint64)
        lo = np.array([l for _, l in block], dtype=np.uint64)
        got.append(names.addresses(hi, lo).tolist())
    want, text = reference(blocks)
    assert got == want
    assert names.addr_text == text
    for codes, block in zip(got, blocks):
        assert [names.addr_text[c] for c in codes] == [halves_to_addr(*k) if k != (0, 0) else ""
                                                       for k in block]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10), st.integers(0, 0xFFFF), st.integers(0, 3),
                          st.sampled_from([-1, -1, 0, 1, 4, 2**24, 2**24 + 1, 2**40])),
                min_size=0, max_size=60),
       st.integers(1, 9))
def test_details_factorized_in_steps_equal_one_factorize_of_their_keys(rows, step):
    """The event details' codes come out of small steps exactly as one factorize of the
    (kind, flow number or code, ICMP sender) keys would, and each unique unpacks to its
    key: unanswered flows numbered past 2**24 (a SYN scan) keep details of their own."""
    import pandas as pd

    from analyzer.dissect import flows as F, labels
    icmp = F.EV_ICMP_UNREACHABLE
    rows = [(k, c, a if k == icmp else 0, t if k != icmp else -1) for k, c, a, t in rows]
    kind = np.array([r[0] for r in rows], np.int8)
    code = np.array([r[1] for r in rows], np.int32)
    icmp_src = np.array([r[2] for r in rows], np.int32)
    tail_no = np.array([r[3] for r in rows], np.int64)
    keys = [(k, t if t >= 0 else c, a) for k, c, a, t in rows]
    want_codes, want_uniques = pd.factorize(pd.Series(keys, dtype=object))
    saved = labels.ENDPOINT_STEP
    labels.ENDPOINT_STEP = step
    try:
        codes, uniques = labels._factorize_details(kind, code, icmp_src, tail_no)
    finally:
        labels.ENDPOINT_STEP = saved
    assert codes.tolist() == want_codes.tolist()
    assert [labels._unpack_detail(u) for u in uniques] == list(want_uniques)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 40), max_size=60), st.lists(st.integers(1, 45), max_size=20),
       st.booleans(), st.sampled_from([1, 3, 262144]), st.booleans())
def test_end_of_flow_events_merge_like_a_stable_sort(kernel, tail, kernel_sorted, step, in_files):
    """The end-of-flow events go in as a stable sort of kernel + tail would put them: after
    the kernel's events of the same frame, ties among themselves in their own order; also
    when the kernel's frames are (unexpectedly) out of order. With no end-of-flow events the
    kernel's order stands, as it always did. The same whatever the step, on the heap or in
    mapped files, and with one value given for every kernel event."""
    import tempfile
    from pathlib import Path

    from analyzer import spill
    from analyzer.dissect import labels
    k = np.array(sorted(kernel) if kernel_sorted else kernel, dtype=np.int64)
    t = np.array(tail, dtype=np.int64)
    order = np.argsort(np.concatenate([k, t]), kind="stable") if len(t) else np.arange(len(k))
    saved = labels.ENDPOINT_STEP
    labels.ENDPOINT_STEP = step
    try:
        with tempfile.TemporaryDirectory() as folder:
            merged = labels._merger(k, t, spill.Spill(Path(folder)) if in_files else spill.HEAP)
            labels_k = np.arange(len(k), dtype=np.int32)              # which event lands where
            labels_t = -1 - np.arange(len(t), dtype=np.int32)
            expected = np.concatenate([labels_k, labels_t])[order]
            np.testing.assert_array_equal(merged(labels_k, labels_t, np.int32), expected)
            np.testing.assert_array_equal(merged(k, t, np.int64), np.concatenate([k, t])[order])
            marks = np.concatenate([np.full(len(k), 7, np.int8), labels_t.astype(np.int8)])[order]
            got = merged(7, labels_t, np.int8)
            assert got.dtype == np.int8
            np.testing.assert_array_equal(got, marks)
    finally:
        labels.ENDPOINT_STEP = saved


def test_frame_numbers_and_flow_ids_narrow_only_while_they_fit():
    from analyzer.dissect.labels import counting_type
    small = np.array([1, 2**31 - 1], np.int64)
    assert counting_type(small, np.zeros(0, np.int64)) is np.int32
    assert counting_type(np.zeros(0, np.int64)) is np.int32
    # one value past int32 anywhere keeps every column int64, as read
    assert counting_type(small, np.array([2**31], np.int64)) is np.int64
    assert counting_type(np.array([-1], np.int64)) is np.int64


WORDS = st.sampled_from([0, 0, 0, 1, 0xFFFF, 0xDB8, 0x2001, 0xFE80])


@settings(max_examples=500, deadline=None)
@given(st.lists(WORDS, min_size=8, max_size=8))
def test_ipv6_text_is_what_ipaddress_prints(words):
    """Address texts follow RFC 5952 as ipaddress prints them (zero runs, ties, IPv4-mapped
    and IPv4-compatible forms), whichever way halves_to_addr makes them."""
    import ipaddress
    value = 0
    for word in words:
        value = (value << 16) | word
    hi, lo = value >> 64, value & (2**64 - 1)
    want = ipaddress.IPv6Address(value)
    if want.ipv4_mapped is not None:
        want = want.ipv4_mapped                      # stored and printed as plain IPv4
    assert halves_to_addr(hi, lo) == str(want)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 30), st.integers(1, 5), st.booleans(),
       st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 1), st.booleans()), max_size=40),
       st.sampled_from([1, 4, 262144]))
def test_event_endpoints_are_their_flows_whatever_the_flow_ids(n, first, gaps, picks, step):
    """An event's source and destination are its flow's initiator or responder as its side
    says (an ICMP error's source is its sender, its destination the quoted packet's sender),
    found by flow id: the same when the ids run 1..N (looked up by offset) and when they
    have gaps (searched)."""
    import pandas as pd

    from analyzer.dissect import flows as F, labels
    ids = first + np.arange(n, dtype=np.int64) * (3 if gaps else 1)
    ini = np.arange(n) % 4
    res = 4 + np.arange(n) % 3
    flows = pd.DataFrame({
        "flow_id": ids,
        "initiator_ip": pd.Categorical.from_codes(ini, categories=[f"a{i}" for i in range(8)]),
        "responder_ip": pd.Categorical.from_codes(res, categories=[f"a{i}" for i in range(8)]),
        "initiator_port": 1000 + np.arange(n), "responder_port": 2000 + np.arange(n)})
    row = np.array([p % n for p, _, _ in picks], np.int64)
    side = np.array([s for _, s, _ in picks], np.int8)
    icmp = np.array([i for _, _, i in picks], bool)
    kind = np.where(icmp, F.EV_ICMP_UNREACHABLE, 0).astype(np.int8)
    icmp_src = np.where(icmp, 7, 0).astype(np.int32)
    saved = labels.ENDPOINT_STEP
    labels.ENDPOINT_STEP = step
    try:
        src, dst, sport, dport = labels._endpoints(flows, ids[row], side, kind, icmp_src)
    finally:
        labels.ENDPOINT_STEP = saved
    for i, r in enumerate(row):
        ends = [(ini[r], 1000 + r), (res[r], 2000 + r)]
        sender, receiver = ends[side[i]], ends[1 - side[i]]
        if icmp[i]:
            sender, receiver = (7, sender[1]), sender
        assert (src[i], sport[i], dst[i], dport[i]) == (*sender, *receiver)


ROWS = st.lists(st.lists(st.sampled_from([0, 0, 1, 83, 104, 255]), min_size=16, max_size=16),
                max_size=30)


@settings(max_examples=300, deadline=None)
@given(ROWS, st.sampled_from([16, 8, 5]), st.booleans())
def test_distinct_rows_number_equal_rows_alike_and_point_at_their_first(rows, width, collide):
    """Rows get the same number exactly when they are equal, and each number's first row is
    where it first appears: by hash table, by the sort when two unequal rows share a hash
    (forced here by a multiplier that keeps only the last word), and for widths that are not
    whole words."""
    from analyzer.dissect import labels
    H = np.array([r[:width] for r in rows], np.uint8).reshape(len(rows), width)
    saved = labels._MIX
    labels._MIX = np.uint64(0) if collide else saved
    try:
        inverse, first = labels._distinct_rows(H)
    finally:
        labels._MIX = saved
    keys = [bytes(r) for r in H]
    assert len(inverse) == len(keys) and len(first) == len(set(keys))
    for i, key in enumerate(keys):
        assert keys[first[inverse[i]]] == key
        assert first[inverse[i]] == keys.index(key)
    assert len(set(inverse.tolist())) == len(first)


def test_histories_new_to_the_interner_are_numbered_in_byte_order():
    """Each block's new histories get codes in byte order, whatever order they come in;
    known ones keep theirs."""
    interner = Interner()

    def block(*texts):
        H = np.zeros((len(texts), 40), np.uint8)
        for i, t in enumerate(texts):
            H[i, :len(t)] = np.frombuffer(t.encode(), np.uint8)
        return interner.histories(H)

    codes = block("ShR", "S", "ShR", "D")
    assert interner.hist_text == ["D", "S", "ShR"]
    assert codes.tolist() == [2, 1, 2, 0]
    assert block("Sh", "S", "Dd").tolist() == [4, 1, 3]
    assert interner.hist_text[3:] == ["Dd", "Sh"]
    assert interner.hist_rstos0 == [False, False, True, False, False]


SPANS = st.one_of(
    st.integers(0, 10**13),
    st.integers(0, 10**5).map(lambda k: k * 50_000_000),                       # on a half tenth
    st.tuples(st.integers(0, 10**5), st.integers(-2, 2)).map(lambda t: t[0] * 100_000_000 + 50_000_000 + t[1]),
    st.integers(-10**10, -1), st.integers(2**53 - 10, 2**62))


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**23), SPANS), max_size=30))
def test_unanswered_syn_texts_are_what_the_float_prints(rows):
    """An unanswered flow's text, with its span rounded to tenths in integers, is what
    formatting the span in seconds as a float gives: on, beside and between the half-way
    points, for negative spans and past 2**53 ns, and for any SYN count."""
    from analyzer.dissect import labels
    syns = np.array([r[0] for r in rows], np.int64)
    span = np.array([r[1] for r in rows], np.int64)
    want = [f"{n} SYNs over {d / 1e9:.1f} s, no reply" for n, d in rows]
    assert list(labels._unanswered_syn_texts(syns, span)) == want
