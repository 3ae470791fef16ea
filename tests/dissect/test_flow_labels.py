"""Flow labels held to Zeek's own definitions, written test-first and independently of the
engine (analyzer/dissect/flows.py).

Every expected `conn_state` and `history` below is derived from Zeek's source, not from our
engine:

* conn_state: `Conn::conn_state()` in scripts/base/protocols/conn/main.zeek — it maps the two
  endpoint states (INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET):
  rs==RESET -> REJ if os in (SYN_SENT, SYN_ACK_SENT) [or both RESET with no bytes], RSTRH if
  the originator is inactive/partial, else RSTR; os==RESET -> RSTO unless the responder is
  inactive/partial, then RSTOS0 if history =~ /^\\^?S[^HAFGIQ]*R.*/ else OTH; both CLOSED ->
  SF; os CLOSED -> SH (responder inactive) or S2; rs CLOSED -> SHR (originator inactive) or
  S3; SYN_SENT+INACTIVE -> S0; ESTABLISHED+ESTABLISHED -> S1; anything else -> OTH.
  UDP: SF both sides sent, S0 originator only, SHR responder only.
* endpoint states: `TCPSessionAdapter::UpdateInactiveState / UpdateSYN_SentState /
  UpdateEstablishedState / UpdateClosedState` in
  src/packet_analysis/protocol/tcp/TCPSessionAdapter.cc.
* history letters: `update_history()` in the same file (S/H once per distinct SYN sequence
  number, F per distinct FIN end-sequence, R per distinct RST sequence, A and D at most once
  per direction via `CheckHistory`); UDP `D`/`d` once per direction (UDPSessionAdapter).
* `^`: `Connection::FlipRoles()` (src/Conn.cc) appends it; `IPBasedAnalyzer::NewConn` flips
  before the first packet is processed when `TCPAnalyzer::WantConnection` says so: first
  packet not a pure SYN and its source port is a likely server port (443 here) while the
  destination port is not. UDP flips when the source port is a likely server port (53) and
  the destination is not (`UDPAnalyzer::WantConnection`).
* reuse: `TCPSessionAdapter::IsReuse` — a SYN on a known 4-tuple starts a NEW connection
  when the old one is closed (FIN or RST seen, including a refused SYN), or when its ISN
  differs from the recorded one; the same ISN is a retransmission of the same connection.
* Zeek's own btest baselines that these mirror: scripts.base.protocols.conn.
  conn_state-RST-behavior (`R, OTH` / `SR, RSTOS0`), core.tcp.missing-syn (`^hADdFaf`, SF).

The field-report addresses are used where a scenario comes from it: Huawei 10.0.0.159,
iPhone 10.0.0.110, server 10.0.1.238; the app binds 33322, the server listens on TCP 15100 and
UDP 15000 (../shared/MISSION.md). None of those ports is a Zeek likely-server port, so no
flip happens there.

Our own labels (DESIGN.md section 3): `teardown` is how the flow ended, `teardown_by` is the
device (phone|server) that sent the ending packet (the RST, the first FIN, the RST that refused
the SYN, the ICMP error), teardown_frame/teardown_ts are that packet's frame (1-based) and
time. Where the vocabulary does not decide (who "did" a syn_unanswered), nothing is asserted.
"""

from __future__ import annotations

import csv
import ipaddress
from pathlib import Path

import pandas as pd
import pytest

from analyzer.cli import main

try:  # tests/ may or may not become a package
    from .crafted import TcpConversation, icmp_port_unreachable, tcp, udp, write_pcap
except ImportError:  # pragma: no cover - rootdir-relative import mode
    from crafted import TcpConversation, icmp_port_unreachable, tcp, udp, write_pcap

HUAWEI = "10.0.0.159"
IPHONE = "10.0.0.110"
SERVER = "10.0.1.238"
APP_PORT = 33322       # the app binds this local port again and again
TCP_PORT = 15100       # server's TCP echo
UDP_PORT = 15000       # server's UDP echo
DIAL_PORT = 52980      # server's ephemeral port when it dials the phone's listener
PHONE6 = "2001:db8:10::159"
SERVER6 = "2001:db8:10:1::238"

T0 = 1720075971.250117  # 2024-07-04 06:52:51 UTC

# realistic initial sequence numbers
ISN_PHONE = 0x3AC1F2D4
ISN_SERVER = 0x9B7E0A11
ISN_PHONE_2 = 0x71D04E93
ISN_SERVER_2 = 0x0C55A7E2

FLOW_COLUMNS_DESIGN = [
    "flow_id", "proto", "ip_version", "initiator_ip", "initiator_port", "responder_ip",
    "responder_port", "phone_role", "first_ts", "last_ts", "first_frame", "last_frame",
    "packets_i2r", "packets_r2i", "bytes_i2r", "bytes_r2i", "conn_state", "history",
    "teardown", "teardown_by", "teardown_ts", "teardown_frame", "syn_count",
]
EVENT_COLUMNS_DESIGN = [
    "ts", "frame", "flow_id", "kind", "sender", "src_ip", "src_port", "dst_ip", "dst_port",
    "detail",
]
KINDS = {"syn", "syn_retry", "synack", "fin", "rst", "refused", "syn_unanswered",
         "data_after_fin", "data_after_rst", "udp_unanswered", "icmp_unreachable"}

INT_FIELDS = {"ip_version", "initiator_port", "responder_port", "first_frame", "last_frame",
              "packets_i2r", "packets_r2i", "bytes_i2r", "bytes_r2i", "teardown_frame",
              "syn_count", "frame", "src_port", "dst_port"}
FLOAT_FIELDS = {"first_ts", "last_ts", "teardown_ts", "ts"}
TS_TOL = 2e-6  # pcap microseconds


# --------------------------------------------------------------------------- harness


class Run:
    """The analyser's output for one crafted capture."""

    def __init__(self, packets, flows: pd.DataFrame, events: pd.DataFrame, out: Path):
        self.packets = packets
        self.flows = flows
        self.events = events
        self.out = out

    def frame(self, pkt) -> int:
        for i, p in enumerate(self.packets):
            if p is pkt:
                return i + 1
        raise KeyError("packet not in capture")

    def ts(self, pkt) -> float:
        return float(pkt.time)

    def flows_of(self, proto: str) -> pd.DataFrame:
        return self.flows[self.flows["proto"].str.lower() == proto]

    def one_flow(self, proto: str = "tcp") -> pd.Series:
        rows = self.flows_of(proto)
        assert len(rows) == 1, (
            f"expected exactly one {proto} flow, got {len(rows)}:\n{rows.to_string()}")
        return rows.iloc[0]

    def events_of(self, flow: pd.Series, kinds=KINDS) -> pd.DataFrame:
        ev = self.events[(self.events["flow_id"] == flow["flow_id"])
                         & self.events["kind"].isin(kinds)].copy()
        ev["_frame"] = ev["frame"].map(lambda v: int(float(v)))
        return ev.sort_values("_frame", kind="stable")


def _read(path: Path) -> pd.DataFrame:
    assert path.is_file(), f"{path.name} was not written"
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def run(tmp_path: Path, packets, phones=(HUAWEI,)) -> Run:
    pcap = tmp_path / "capture.pcap"
    ordered = write_pcap(pcap, packets)
    out = tmp_path / "out"
    argv = [str(pcap), "--out", str(out)]
    for phone in phones:
        argv += ["--phone", phone]
    rc = main(argv)
    assert rc == 0, f"analyze exited {rc}"
    return Run(ordered, _read(out / "flows.csv"), _read(out / "events.csv"), out)


def _same(field: str, got: str, want) -> bool:
    if field in INT_FIELDS:
        try:
            return int(float(got)) == int(want)
        except ValueError:
            return False
    if field in FLOAT_FIELDS:
        try:
            return abs(float(got) - float(want)) <= TS_TOL
        except ValueError:
            return False
    if field.endswith("_ip"):
        try:
            return ipaddress.ip_address(got) == ipaddress.ip_address(want)
        except ValueError:
            return False
    if field == "proto":
        return got.lower() == str(want).lower()
    return got == str(want)


def check(row: pd.Series, **want) -> None:
    """Compare every expected field at once, so one failure shows all differences."""
    bad = [f"  {k}: got {row.get(k, '<missing column>')!r}, want {v!r}"
           for k, v in want.items() if k not in row.index or not _same(k, row[k], v)]
    assert not bad, "flow/event differs from Zeek-derived expectation:\n" + "\n".join(bad) + (
        "\nrow:\n" + row.to_string())


def check_events(r: Run, flow: pd.Series, expected: list[tuple[str, int, str]],
                 kinds=KINDS) -> None:
    """The flow's events of `kinds`, in frame order, are exactly `expected` =
    [(kind, frame, sender), ...]."""
    ev = r.events_of(flow, kinds)
    got = [(k, f, s) for k, f, s in zip(ev["kind"], ev["_frame"], ev["sender"])]
    assert got == expected, (f"events of flow {flow['flow_id']}:\n got  {got}\n want {expected}"
                             f"\nall events:\n{r.events.to_string()}")


def one_event(r: Run, flow: pd.Series, kind: str) -> pd.Series:
    ev = r.events_of(flow, {kind})
    assert len(ev) == 1, (f"expected one {kind} event on flow {flow['flow_id']}, got "
                          f"{len(ev)}\nall events:\n{r.events.to_string()}")
    return ev.iloc[0]


def handshake(c: TcpConversation, at: float = T0):
    """SYN, SYN-ACK, ACK from the dialer "a"; returns the three segments."""
    return c.syn("a", at=at), c.synack("b"), c.ack("a")


def phone_client(phone: str = HUAWEI, server: str = SERVER, t0: float = T0,
                 a_isn: int = ISN_PHONE, b_isn: int = ISN_SERVER, port: int = TCP_PORT,
                 phone_port: int = APP_PORT) -> TcpConversation:
    """The field report's TCP client: phone:33322 dials server:15100."""
    return TcpConversation(phone, phone_port, server, port, a_isn, b_isn, t0)


# --------------------------------------------------------------------------- output contract


def test_output_columns_are_exactly_design_section_4(tmp_path):
    c = phone_client()
    handshake(c)
    c.data("a", b"hello")
    c.fin("a")
    c.fin("b")
    c.ack("a")
    r = run(tmp_path, c.packets)
    for name, design in (("flows.csv", FLOW_COLUMNS_DESIGN), ("events.csv", EVENT_COLUMNS_DESIGN)):
        with open(r.out / name, newline="") as fh:
            header = next(csv.reader(fh))
        assert header == design, f"{name} header {header} != DESIGN.md {design}"


def test_schema_module_matches_design():
    from analyzer.schema import EVENT_COLUMNS, FLOW_COLUMNS
    assert list(FLOW_COLUMNS) == FLOW_COLUMNS_DESIGN
    assert list(EVENT_COLUMNS) == EVENT_COLUMNS_DESIGN


# --------------------------------------------------------------------------- TCP conn_states


def test_S0_single_unanswered_syn(tmp_path):
    """SYN, nothing back: orig SYN_SENT, resp INACTIVE -> S0, history `S`."""
    c = phone_client()
    syn = c.syn("a", at=T0)
    r = run(tmp_path, c.packets)
    f = r.one_flow()
    check(f, proto="tcp", ip_version=4, initiator_ip=HUAWEI, initiator_port=APP_PORT,
          responder_ip=SERVER, responder_port=TCP_PORT, phone_role="initiator",
          conn_state="S0", history="S", teardown="syn_unanswered", syn_count=1,
          first_frame=1, last_frame=1, first_ts=r.ts(syn), last_ts=r.ts(syn),
          packets_i2r=1, packets_r2i=0)
    check_events(r, f, [("syn", 1, "phone")], kinds={"syn", "syn_retry", "synack"})
    one_event(r, f, "syn_unanswered")


def test_syn_retransmissions_same_isn_are_one_flow_huawei_listener(tmp_path):
    """Field report, Huawei TCP server test: the server dials the phone's listener
    (10.0.0.159:33322) and gets no answer; Linux retries the SAME ISN at 1 s, 3 s, 7 s.

    Zeek: IsReuse() returns false when the SYN's seq equals StartSeq (a retransmission),
    and update_history() adds `S` again only when rel_seq != hist_last_SYN -> one flow, `S`, S0.
    """
    c = TcpConversation(SERVER, DIAL_PORT, HUAWEI, APP_PORT, ISN_SERVER, ISN_PHONE, T0)
    syns = [c.syn("a", at=T0 + dt) for dt in (0.0, 1.0, 3.0, 7.0)]
    r = run(tmp_path, c.packets, phones=(HUAWEI,))
    f = r.one_flow()
    check(f, initiator_ip=SERVER, initiator_port=DIAL_PORT, responder_ip=HUAWEI,
          responder_port=APP_PORT, phone_role="responder", conn_state="S0", history="S",
          teardown="syn_unanswered", syn_count=4, packets_i2r=4, packets_r2i=0,
          first_frame=1, last_frame=4, first_ts=r.ts(syns[0]), last_ts=r.ts(syns[-1]))
    check_events(r, f, [("syn", 1, "server"), ("syn_retry", 2, "server"),
                        ("syn_retry", 3, "server"), ("syn_retry", 4, "server")],
                 kinds={"syn", "syn_retry"})
    one_event(r, f, "syn_unanswered")


def test_REJ_syn_refused_by_server(tmp_path):
    """Phone dials 15100, server's closed port answers RST+ACK (seq 0, ack ISN+1).
    Resp INACTIVE -> RESET while orig SYN_SENT (UpdateInactiveState: is_reject);
    conn_state: rs==RESET and os==SYN_SENT -> REJ. History `Sr`."""
    c = phone_client()
    syn = c.syn("a", at=T0)
    rst = c.refuse("b")
    r = run(tmp_path, c.packets)
    f = r.one_flow()
    check(f, phone_role="initiator", conn_state="REJ", history="Sr", teardown="refused",
          teardown_by="server", teardown_frame=r.frame(rst), teardown_ts=r.ts(rst),
          syn_count=1, packets_i2r=1, packets_r2i=1)
    ev = one_event(r, f, "refused")
    check(ev, frame=2, sender="server", src_ip=SERVER, src_port=TCP_PORT, dst_ip=HUAWEI,
          dst_port=APP_PORT, ts=r.ts(rst))
    assert r.events_of(f, {"synack"}).empty
    check_events(r, f, [("syn", 1, "phone")], kinds={"syn", "syn_retry"})


def test_REJ_field_ios_listener_refuses_server_syn(tmp_path):
    """Field report, iOS TCP server test: the server dials the iPhone's listener
    (10.0.0.110:33322) and the phone answers RST -> REJ `Sr`; the phone refused
    (Zeek would say the *responder* rejected; by device that is the phone)."""
    c = TcpConversation(SERVER, DIAL_PORT + 1, IPHONE, APP_PORT, ISN_SERVER, ISN_PHONE, T0)
    c.syn("a", at=T0)
    rst = c.refuse("b")
    r = run(tmp_path, c.packets, phones=(IPHONE,))
    f = r.one_flow()
    check(f, initiator_ip=SERVER, responder_ip=IPHONE, responder_port=APP_PORT,
          phone_role="responder", conn_state="REJ", history="Sr", teardown="refused",
          teardown_by="phone", teardown_frame=2, teardown_ts=r.ts(rst))
    ev = one_event(r, f, "refused")
    check(ev, frame=2, sender="phone", src_ip=IPHONE, src_port=APP_PORT, dst_ip=SERVER,
          dst_port=DIAL_PORT + 1)


def test_S1_established_still_open(tmp_path):
    """Both ends ESTABLISHED, no FIN/RST -> S1 (`ShADd`: the phone's later pure ACK adds no
    second `A`: CheckHistory records `a` at most once per direction)."""
    c = phone_client()
    syn, _, _ = handshake(c)
    c.data("a", b"ping 1\n")
    c.data("b", b"ping 1\n")
    last = c.ack("a")
    r = run(tmp_path, c.packets)
    f = r.one_flow()
    check(f, conn_state="S1", history="ShADd", teardown="open", phone_role="initiator",
          packets_i2r=4, packets_r2i=2, first_frame=1, last_frame=6,
          first_ts=r.ts(syn), last_ts=r.ts(last), syn_count=1)
    check_events(r, f, [("syn", 1, "phone"), ("synack", 2, "server")])


def test_SF_phone_closes_first(tmp_path):
    """FIN from each side -> both CLOSED -> SF, `ShADdFf`; teardown fin by the first FIN's
    sender (the phone) at that FIN's frame."""
    c = phone_client()
    handshake(c)
    c.data("a", b"ping 1\n")
    c.data("b", b"ping 1\n")
    fin_a = c.fin("a")
    c.fin("b")
    c.ack("a")
    r = run(tmp_path, c.packets)
    f = r.one_flow()
    check(f, conn_state="SF", history="ShADdFf", teardown="fin", teardown_by="phone",
          teardown_frame=r.frame(fin_a), teardown_ts=r.ts(fin_a), packets_i2r=5,
          packets_r2i=3)
    check_events(r, f, [("syn", 1, "phone"), ("synack", 2, "server"), ("fin", 6, "phone"),
                        ("fin", 7, "server")])


def test_S2_field_ios_fin_from_phone(tmp_path):
    """Field report, iOS TCP client: the phone sends FIN when the app is suspended; the
    server only ACKs (its read returns EOF, it does not close yet). Orig CLOSED, resp
    ESTABLISHED -> S2; history `ShADdFa` (server's pure ACK is its first `a`)."""
    c = phone_client(phone=IPHONE)
    handshake(c)
    c.data("a", b"ping 1\n")
    c.data("b", b"ping 1\n")
    fin = c.fin("a", at=T0 + 19.0)
    c.ack("b")
    r = run(tmp_path, c.packets, phones=(IPHONE,))
    f = r.one_flow()
    check(f, initiator_ip=IPHONE, phone_role="initiator", conn_state="S2", history="ShADdFa",
          teardown="fin", teardown_by="phone", teardown_frame=6, teardown_ts=r.ts(fin))
    check_events(r, f, [("syn", 1, "phone"), ("synack", 2, "server"), ("fin", 6, "phone")])


def test_S3_server_closes_no_reply(tmp_path):
    """Server FIN, phone only ACKs -> resp CLOSED, orig ESTABLISHED -> S3, `ShADdf`."""
    c = phone_client()
    handshake(c)
    c.data("a", b"ping 1\n")
    c.data("b", b"ping 1\n")
    fin = c.fin("b")
    c.ack("a")
    r = run(tmp_path, c.packets)
    f = r.one_flow()
    check(f, conn_state="S3", history="ShADdf", teardown="fin", teardown_by="server",
          teardown_frame=6, teardown_ts=r.ts(fin))


def test_RSTO_field_huawei_rst_from_phone(tmp_path):
    """Field report, Huawei TCP client: the phone sends RST the moment the app goes to the
    background. Orig (phone) RESET, resp ESTABLISHED -> RSTO, `ShADdR`."""
    c = phone_client()
    handshake(c)
    c.data("a", b"ping 1\n")
    c.data("b", b"ping 1\n")
    rst = c.rst("a", at=T0 + 19.0)
    r = run(tmp_path, c.packets)
    f = r.one_flow()
    check(f, phone_role="initiator", conn_state="RSTO", history="ShADdR", teardown="rst",
          teardown_by="phone", teardown_frame=6, teardown_ts=r.ts(rst))
    check_events(r, f, [("syn", 1, "phone"), ("synack", 2, "server"), ("rst", 6, "phone")])


def test_RSTR_server_resets(tmp_path):
    """Server RST on an established flow: rs RESET, os ESTABLISHED -> RSTR, `ShADdr`."""
    c = phone_client()
    handshake(c)
    c.data("a", b"ping 1\n")
    c.data("b", b"ping 1\n")
    rst = c.rst("b")
    r = run(tmp_path, c.packets)
    f = r.one_flow()
    check(f, conn_state="RSTR", history="ShADdr", teardown="rst", teardown_by="server",
          teardown_frame=6, teardown_ts=r.ts(rst))
    check_events(r, f, [("syn", 1, "phone"), ("synack", 2, "server"), ("rst", 6, "server")])


def test_RSTOS0_syn_then_rst_without_synack(tmp_path):
    """Originator SYN then its own RST, no SYN-ACK: os RESET (UpdateSYN_SentState), resp
    INACTIVE, history `SR` matches /^\\^?S[^HAFGIQ]*R.*/ -> RSTOS0 (Zeek baseline
    conn_state-RST-behavior: `SR, RSTOS0`). The flow ended with the phone's RST: teardown rst."""
    c = phone_client()
    c.syn("a", at=T0)
    rst = c.rst("a", at=T0 + 0.2, with_ack=False)
    r = run(tmp_path, c.packets)
    f = r.one_flow()
    check(f, conn_state="RSTOS0", history="SR", teardown="rst", teardown_by="phone",
          teardown_frame=2, teardown_ts=r.ts(rst), syn_count=1)


def test_RSTRH_synack_then_rst_without_syn(tmp_path):
    """The capture misses the phone's SYN; first packet is the server's SYN-ACK from 443.
    WantConnection: not a pure SYN and 443 is a likely server port -> flip before the
    packet is processed (`^`), so the SYN-ACK is the responder's `h`; resp ESTABLISHED, then
    its RST -> RESET while orig stays INACTIVE -> RSTRH, `^hr`."""
    c = TcpConversation(HUAWEI, 51514, SERVER, 443, ISN_PHONE, ISN_SERVER, T0)
    c.syn_not_captured("a")
    c.synack("b", at=T0)
    rst = c.rst("b", at=T0 + 0.05, with_ack=False)
    r = run(tmp_path, c.packets)
    f = r.one_flow()
    check(f, initiator_ip=HUAWEI, initiator_port=51514, responder_ip=SERVER,
          responder_port=443, phone_role="initiator", conn_state="RSTRH", history="^hr",
          teardown="rst", teardown_by="server", teardown_frame=2, teardown_ts=r.ts(rst))


def test_SH_syn_then_fin_without_synack(tmp_path):
    """Originator SYN then FIN, no answer: os CLOSED (UpdateSYN_SentState), resp INACTIVE
    -> SH, `SF`. The flow ended with the phone's FIN: teardown fin by the phone."""
    c = phone_client()
    c.syn("a", at=T0)
    fin = c.fin("a", at=T0 + 0.2, with_ack=False)
    r = run(tmp_path, c.packets)
    f = r.one_flow()
    check(f, conn_state="SH", history="SF", teardown="fin", teardown_by="phone",
          teardown_frame=2, teardown_ts=r.ts(fin))


def test_SHR_synack_then_fin_without_syn(tmp_path):
    """First packet a SYN-ACK from 443 (flip, `^h`), then the responder's FIN: rs CLOSED,
    orig INACTIVE -> SHR, `^hf`."""
    c = TcpConversation(HUAWEI, 51516, SERVER, 443, ISN_PHONE, ISN_SERVER, T0)
    c.syn_not_captured("a")
    c.synack("b", at=T0)
    fin = c.fin("b", at=T0 + 0.05)
    r = run(tmp_path, c.packets)
    f = r.one_flow()
    check(f, initiator_ip=HUAWEI, initiator_port=51516, responder_port=443,
          phone_role="initiator", conn_state="SHR", history="^hf", teardown="fin",
          teardown_by="server", teardown_frame=2, teardown_ts=r.ts(fin))


def test_OTH_midstream_no_syn(tmp_path):
    """Capture starts mid-stream: phone data then server ACK. Both endpoints PARTIAL ->
    OTH, `Da` (no flip: 15100 and 33322 are not likely server ports; the first packet's
    sender is the originator). Nothing closed: open."""
    c = phone_client()
    c.syn_not_captured("a")
    c.syn_not_captured("b")
    c.data("a", b"ping 7\n", at=T0)
    c.ack("b")
    r = run(tmp_path, c.packets)
    f = r.one_flow()
    check(f, initiator_ip=HUAWEI, initiator_port=APP_PORT, phone_role="initiator",
          conn_state="OTH", history="Da", teardown="open", syn_count=0)


def test_OTH_lone_rst(tmp_path):
    """A single RST and nothing else (Zeek baseline conn_state-RST-behavior: `R, OTH`):
    os RESET, resp INACTIVE, history does not start with S -> OTH. Its sender (the server,
    first packet -> originator) tore it down."""
    rst = tcp(T0, SERVER, TCP_PORT, HUAWEI, APP_PORT, "R", seq=ISN_SERVER + 4242)
    r = run(tmp_path, [rst])
    f = r.one_flow()
    check(f, initiator_ip=SERVER, phone_role="responder", conn_state="OTH", history="R",
          teardown="rst", teardown_by="server", teardown_frame=1, teardown_ts=r.ts(rst))


def test_flip_midstream_data_from_server_port(tmp_path):
    """First packet is data FROM 443: WantConnection flips (no SYN, source is a likely server
    port, destination is not) -> `^`, the server's data is the responder's `d`, the phone's
    ACK the originator's `A`: `^dA`, OTH; initiator is the phone."""
    c = TcpConversation(HUAWEI, 51515, SERVER, 443, ISN_PHONE, ISN_SERVER, T0)
    c.syn_not_captured("a")
    c.syn_not_captured("b")
    c.data("b", b"\x17\x03\x03\x00\x20" + bytes(32), at=T0)
    c.ack("a")
    r = run(tmp_path, c.packets)
    f = r.one_flow()
    check(f, initiator_ip=HUAWEI, initiator_port=51515, responder_ip=SERVER,
          responder_port=443, phone_role="initiator", conn_state="OTH", history="^dA",
          teardown="open")


def test_flip_synack_first_then_normal_close(tmp_path):
    """Mirror of Zeek's core.tcp.missing-syn baseline (`^hADdFaf`, SF): SYN missed,
    SYN-ACK from 443 first -> flipped; phone ACK establishes the originator (UpdateInactiveState:
    ACK while the peer is ESTABLISHED); phone FIN, server ACK, server FIN, phone ACK."""
    c = TcpConversation(HUAWEI, 51517, SERVER, 443, ISN_PHONE, ISN_SERVER, T0)
    c.syn_not_captured("a")
    c.synack("b", at=T0)
    c.ack("a")
    c.data("a", b"GET / HTTP/1.1\r\n\r\n")
    c.data("b", b"HTTP/1.1 204 No Content\r\n\r\n")
    fin = c.fin("a")
    c.ack("b")
    c.fin("b")
    c.ack("a")
    r = run(tmp_path, c.packets)
    f = r.one_flow()
    check(f, initiator_ip=HUAWEI, initiator_port=51517, responder_port=443,
          phone_role="initiator", conn_state="SF", history="^hADdFaf", teardown="fin",
          teardown_by="phone", teardown_frame=r.frame(fin), teardown_ts=r.ts(fin))
    ev = one_event(r, f, "synack")
    check(ev, frame=1, sender="server", src_ip=SERVER, src_port=443)


# --------------------------------------------------------------------------- history letter rules


def test_retransmitted_fin_is_one_F(tmp_path):
    """update_history(): `F` is added again only if rel_seq+len differs from hist_last_FIN;
    a retransmitted FIN (same seq) leaves one `F` -> `ShADdFf`, SF."""
    c = phone_client()
    handshake(c)
    c.data("a", b"ping 1\n")
    c.data("b", b"ping 1\n")
    fin = c.fin("a")
    c.fin("a", at=c.t + 0.2, retransmit=True)
    c.fin("b")
    c.ack("a")
    r = run(tmp_path, c.packets)
    f = r.one_flow()
    check(f, conn_state="SF", history="ShADdFf", teardown="fin", teardown_by="phone",
          teardown_frame=r.frame(fin))


def test_rst_letter_repeats_only_with_new_seq(tmp_path):
    """update_history(): `R` again only when the RST's rel_seq differs from hist_last_RST.
    The phone sends 7 bytes and RSTs at seq ISN+8; the server's data crossed on the wire
    (it acks only ISN+1), so the phone's kernel answers it with RST seq=ISN+1 -> a second
    `R`: `ShADRdR`, RSTO. The server's data after the RST is data_after_rst (sender server).
    Teardown stays the first RST."""
    c = phone_client()
    handshake(c)
    c.data("a", b"ping 1\n")
    rst1 = c.rst("a")
    late = c.data("b", b"pong 0\n", ack=ISN_PHONE + 1)
    c.rst("a", seq=ISN_PHONE + 1, with_ack=False)
    r = run(tmp_path, c.packets)
    f = r.one_flow()
    check(f, conn_state="RSTO", history="ShADRdR", teardown="rst", teardown_by="phone",
          teardown_frame=r.frame(rst1), teardown_ts=r.ts(rst1))
    ev = one_event(r, f, "data_after_rst")
    check(ev, frame=r.frame(late), sender="server", src_ip=SERVER)


# --------------------------------------------------------------------------- writes after close


def test_data_after_rst_field_huawei_server_writes_after_phone_rst(tmp_path):
    """Field report, Huawei TCP client: the phone RSTs at background; the server keeps
    writing (its write then fails with ECONNRESET); the phone's kernel answers each write with
    RST at the same seq (so history keeps ONE `R`: `ShADdR`, RSTO, one flow).

    data_after_rst := a segment carrying payload sent on the flow after a RST, by the peer of
    the RST's sender — the wire-side sign of a write to a dead connection (ANCHORS.md: "writes
    after a reset flagged (the wire-side sign of EPIPE/ENOTCONN)"). Sender = who wrote."""
    c = phone_client()
    handshake(c)
    c.data("a", b"ping 1\n")
    c.data("b", b"ping 1\n")
    rst = c.rst("a", at=T0 + 19.0)
    write = c.data("b", b"ping 2\n", at=T0 + 21.0)
    c.rst("a", with_ack=False)
    r = run(tmp_path, c.packets)
    f = r.one_flow()
    check(f, conn_state="RSTO", history="ShADdR", teardown="rst", teardown_by="phone",
          teardown_frame=r.frame(rst), teardown_ts=r.ts(rst))
    ev = one_event(r, f, "data_after_rst")
    check(ev, frame=r.frame(write), ts=r.ts(write), sender="server", src_ip=SERVER,
          src_port=TCP_PORT, dst_ip=HUAWEI, dst_port=APP_PORT)


def test_data_after_fin_field_ios_server_writes_after_phone_fin(tmp_path):
    """Field report, iOS TCP client: the suspended app's socket sends FIN; the server keeps
    writing into the half-closed connection; the phone's kernel answers with RST (the
    server's next write fails with EPIPE).

    data_after_fin := a segment carrying payload sent after a FIN by the PEER of the FIN's
    sender (the other side keeps writing to a socket the first side has closed). That, not
    "the FIN sender sends data again" (which a real TCP stack never does), is what the issue
    is after: the wire-side sign of the writes that end in EPIPE / ECONNRESET. Sender = who
    wrote (server).

    Zeek: phone FIN -> orig CLOSED; server's pure ACK `a`; the phone's RST from CLOSED with the
    peer not CLOSED -> RESET (UpdateClosedState) -> RSTO, `ShADdFaR`. Which teardown label
    a FIN-then-RST flow gets is not asserted here."""
    c = phone_client(phone=IPHONE)
    handshake(c)
    c.data("a", b"ping 1\n")
    c.data("b", b"ping 1\n")
    c.fin("a", at=T0 + 19.0)
    c.ack("b")
    write = c.data("b", b"ping 2\n", at=T0 + 21.0)
    c.rst("a", with_ack=False)
    r = run(tmp_path, c.packets, phones=(IPHONE,))
    f = r.one_flow()
    check(f, conn_state="RSTO", history="ShADdFaR")
    ev = one_event(r, f, "data_after_fin")
    check(ev, frame=r.frame(write), ts=r.ts(write), sender="server", src_ip=SERVER,
          src_port=TCP_PORT, dst_ip=IPHONE, dst_port=APP_PORT)
    assert r.events_of(f, {"data_after_rst"}).empty, "the write came before any RST"


# --------------------------------------------------------------------------- 4-tuple reuse


def _assert_split(r: Run, first: pd.Series, second: pd.Series, boundary: int) -> None:
    assert first["flow_id"] != second["flow_id"], "reused 4-tuple must get a new flow_id"
    check(first, last_frame=boundary)
    check(second, first_frame=boundary + 1)
    ev = r.events.copy()
    ev["_frame"] = ev["frame"].map(lambda v: int(float(v)))
    wrong = ev[((ev["_frame"] <= boundary) & (ev["flow_id"] != first["flow_id"]))
               | ((ev["_frame"] > boundary) & (ev["flow_id"] != second["flow_id"]))]
    assert wrong.empty, f"events attached to the wrong flow:\n{wrong.to_string()}"


def _two_flows(r: Run):
    rows = r.flows_of("tcp")
    assert len(rows) == 2, f"expected two flows on the reused 4-tuple:\n{rows.to_string()}"
    rows = rows.assign(_ff=rows["first_frame"].map(lambda v: int(float(v))))
    rows = rows.sort_values("_ff")
    for _, row in rows.iterrows():
        check(row, initiator_ip=HUAWEI, initiator_port=APP_PORT, responder_ip=SERVER,
              responder_port=TCP_PORT)
    return rows.iloc[0], rows.iloc[1]


def test_reuse_after_rst_is_a_new_flow(tmp_path):
    """The app rebinds 33322 after its RST and dials again (new ISN). IsReuse(): the old
    connection is closed (RST) -> new connection: RSTO `ShADdR` then S1 `ShA`."""
    c1 = phone_client()
    handshake(c1)
    c1.data("a", b"ping 1\n")
    c1.data("b", b"ping 1\n")
    c1.rst("a")
    c2 = phone_client(t0=T0 + 30.0, a_isn=ISN_PHONE_2, b_isn=ISN_SERVER_2)
    handshake(c2, at=T0 + 30.0)
    r = run(tmp_path, c1.packets + c2.packets)
    first, second = _two_flows(r)
    check(first, conn_state="RSTO", history="ShADdR", teardown="rst", teardown_by="phone",
          syn_count=1)
    check(second, conn_state="S1", history="ShA", teardown="open", syn_count=1)
    _assert_split(r, first, second, boundary=6)


def test_reuse_after_fin_close_is_a_new_flow(tmp_path):
    """FIN/FIN close, then the same 4-tuple again (new ISN): two flows, SF then S1."""
    c1 = phone_client()
    handshake(c1)
    c1.data("a", b"ping 1\n")
    c1.data("b", b"ping 1\n")
    c1.fin("a")
    c1.fin("b")
    c1.ack("a")
    c2 = phone_client(t0=T0 + 30.0, a_isn=ISN_PHONE_2, b_isn=ISN_SERVER_2)
    handshake(c2, at=T0 + 30.0)
    c2.data("a", b"ping 1\n")
    r = run(tmp_path, c1.packets + c2.packets)
    first, second = _two_flows(r)
    check(first, conn_state="SF", history="ShADdFf", teardown="fin", teardown_by="phone")
    check(second, conn_state="S1", history="ShAD", teardown="open")
    _assert_split(r, first, second, boundary=8)


def test_reuse_after_refused_syn_is_a_new_flow(tmp_path):
    """`dial tcp 10.0.1.238:15100: connect: connection refused`, then the app dials again
    from 33322 with a new ISN and is accepted: REJ `Sr`, then S1 `ShA`."""
    c1 = phone_client()
    c1.syn("a", at=T0)
    c1.refuse("b")
    c2 = phone_client(t0=T0 + 5.0, a_isn=ISN_PHONE_2, b_isn=ISN_SERVER_2)
    handshake(c2, at=T0 + 5.0)
    r = run(tmp_path, c1.packets + c2.packets)
    first, second = _two_flows(r)
    check(first, conn_state="REJ", history="Sr", teardown="refused", teardown_by="server",
          syn_count=1)
    check(second, conn_state="S1", history="ShA", teardown="open", syn_count=1)
    _assert_split(r, first, second, boundary=2)


def test_new_isn_after_unanswered_syn_is_a_new_flow(tmp_path):
    """A SYN with a DIFFERENT ISN on a 4-tuple whose SYN is still unanswered is not a
    retransmission: IsReuse() (not closed, base_seq != StartSeq, orig SYN_SENT ->
    Weird SYN_seq_jump, return true) starts a new connection. Two S0 flows, syn_count 2 and 1."""
    c1 = phone_client()
    c1.syn("a", at=T0)
    c1.syn("a", at=T0 + 1.0)
    c2 = phone_client(t0=T0 + 10.0, a_isn=ISN_PHONE_2)
    c2.syn("a", at=T0 + 10.0)
    r = run(tmp_path, c1.packets + c2.packets)
    first, second = _two_flows(r)
    check(first, conn_state="S0", history="S", syn_count=2, teardown="syn_unanswered")
    check(second, conn_state="S0", history="S", syn_count=1, teardown="syn_unanswered")
    _assert_split(r, first, second, boundary=2)


# --------------------------------------------------------------------------- UDP


def test_udp_SF_echo_answered(tmp_path):
    """Field report UDP test: phone:33322 -> server:15000 echo. Both sides sent -> SF,
    history `Dd` (each letter once per direction). No close in UDP: open."""
    pkts = []
    for i in range(2):
        t = T0 + 5.0 * i
        pkts.append(udp(t, HUAWEI, APP_PORT, SERVER, UDP_PORT, b"ping %d\n" % i))
        pkts.append(udp(t + 0.004, SERVER, UDP_PORT, HUAWEI, APP_PORT, b"ping %d\n" % i))
    r = run(tmp_path, pkts)
    f = r.one_flow("udp")
    check(f, proto="udp", ip_version=4, initiator_ip=HUAWEI, initiator_port=APP_PORT,
          responder_ip=SERVER, responder_port=UDP_PORT, phone_role="initiator",
          conn_state="SF", history="Dd", teardown="open", packets_i2r=2, packets_r2i=2,
          first_frame=1, last_frame=4)


def test_udp_S0_unanswered(tmp_path):
    """Datagrams one way only -> S0, `D`; teardown udp_unanswered with its event."""
    pkts = [udp(T0 + 3.0 * i, HUAWEI, APP_PORT, SERVER, UDP_PORT, b"ping %d\n" % i)
            for i in range(3)]
    r = run(tmp_path, pkts)
    f = r.one_flow("udp")
    check(f, phone_role="initiator", conn_state="S0", history="D", teardown="udp_unanswered",
          packets_i2r=3, packets_r2i=0)
    one_event(r, f, "udp_unanswered")


@pytest.mark.parametrize("gap, flows", [(59.0, 1), (61.0, 2)])
def test_udp_idle_past_zeeks_60_s_starts_a_new_flow(tmp_path, gap, flows):
    """Zeek's UDP inactivity timeout is 60 s: a datagram after a longer silence on the same
    tuple opens a new connection. All packets fit one batch, so this holds whatever the
    batching (it used to depend on where a batch ended)."""
    pkts = [udp(T0, HUAWEI, APP_PORT, SERVER, UDP_PORT, b"ping 0\n"),
            udp(T0 + 0.004, SERVER, UDP_PORT, HUAWEI, APP_PORT, b"ping 0\n"),
            udp(T0 + 0.004 + gap, HUAWEI, APP_PORT, SERVER, UDP_PORT, b"ping 1\n")]
    r = run(tmp_path, pkts)
    got = r.flows_of("udp").sort_values("first_frame")
    assert len(got) == flows
    if flows == 2:
        check(got.iloc[0], conn_state="SF", first_frame=1, last_frame=2, teardown="open")
        check(got.iloc[1], conn_state="S0", first_frame=3, last_frame=3,
              teardown="udp_unanswered", initiator_ip=HUAWEI)


def test_flows_do_not_depend_on_batch_boundaries(tmp_path):
    """The same packets read in batches of 1, 2, 7 and 10,000 give the same flows and
    events: a flow ends at its idle time whether or not a batch ends in the gap."""
    from analyzer.dissect.flows import FlowTable
    from analyzer.dissect.reader import CaptureReader
    pkts = []
    for k in range(6):        # conversations 70 s apart, each a new flow on the same tuple
        t = T0 + 70.0 * k
        pkts.append(udp(t, HUAWEI, APP_PORT, SERVER, UDP_PORT, b"ping\n"))
        pkts.append(udp(t + 0.01, SERVER, UDP_PORT, HUAWEI, APP_PORT, b"pong\n"))
        c = TcpConversation(HUAWEI, 40000, SERVER, TCP_PORT, ISN_PHONE + k, ISN_SERVER + k, t)
        pkts += [c.syn(at=t + 0.02)] + ([c.syn(at=t + 62.0)] if k % 2 else [])
    pcap = tmp_path / "capture.pcap"
    write_pcap(pcap, pkts)
    results = []
    for size in (1, 2, 7, 10_000):
        table = FlowTable()
        for batch in CaptureReader(pcap, batch_size=size).batches():
            table.feed(batch)
        table.finish()
        flows, events = table.drain(), table.drain_events()
        results.append(({k: v.tolist() for k, v in flows.items()},
                        {k: v.tolist() for k, v in events.items()}))
    assert all(r == results[0] for r in results[1:])
    assert len(results[0][0]["flow_id"]) == 12      # 6 UDP + 6 TCP


def test_udp_SHR_reply_only_flipped(tmp_path):
    """Only the answer from port 53 is captured: UDPAnalyzer::WantConnection flips (source
    is a likely server port, destination is not) -> `^d`; the originator never sent ->
    SHR. The initiator is the phone."""
    reply = udp(T0, SERVER, 53, HUAWEI, 40001, bytes.fromhex("1a2b81800001000100000000"))
    r = run(tmp_path, [reply])
    f = r.one_flow("udp")
    check(f, initiator_ip=HUAWEI, initiator_port=40001, responder_ip=SERVER,
          responder_port=53, phone_role="initiator", conn_state="SHR", history="^d")


def test_udp_icmp_port_unreachable_linked_to_flow(tmp_path):
    """The server's UDP port is closed: it answers ICMP port unreachable quoting the
    phone's datagram. Zeek keeps the UDP flow S0 `D` (the ICMP error is not UDP); we add
    teardown icmp_unreachable, by the host that sent the ICMP (the server), and an
    icmp_unreachable event carrying the UDP flow's flow_id."""
    dgram = udp(T0, HUAWEI, APP_PORT, SERVER, UDP_PORT, b"ping 1\n")
    icmp = icmp_port_unreachable(T0 + 0.0008, SERVER, dgram)
    r = run(tmp_path, [dgram, icmp])
    f = r.one_flow("udp")
    check(f, initiator_ip=HUAWEI, responder_port=UDP_PORT, conn_state="S0", history="D",
          teardown="icmp_unreachable", teardown_by="server", teardown_frame=2,
          teardown_ts=r.ts(icmp))
    ev = one_event(r, f, "icmp_unreachable")
    check(ev, frame=2, ts=r.ts(icmp), sender="server", src_ip=SERVER, dst_ip=HUAWEI)


def test_udp_icmpv6_port_unreachable_linked_to_flow(tmp_path):
    """IPv6: ICMPv6 destination unreachable, code 4 (port unreachable)."""
    dgram = udp(T0, PHONE6, APP_PORT, SERVER6, UDP_PORT, b"ping 1\n")
    icmp = icmp_port_unreachable(T0 + 0.0008, SERVER6, dgram)
    r = run(tmp_path, [dgram, icmp], phones=(PHONE6,))
    f = r.one_flow("udp")
    check(f, ip_version=6, initiator_ip=PHONE6, responder_ip=SERVER6, conn_state="S0",
          history="D", teardown="icmp_unreachable", teardown_by="server", teardown_frame=2)
    ev = one_event(r, f, "icmp_unreachable")
    check(ev, frame=2, sender="server", src_ip=SERVER6)


# --------------------------------------------------------------------------- IPv6 TCP


def test_ipv6_RSTO_rst_from_phone(tmp_path):
    c = phone_client(phone=PHONE6, server=SERVER6)
    handshake(c)
    c.data("a", b"ping 1\n")
    c.data("b", b"ping 1\n")
    rst = c.rst("a")
    r = run(tmp_path, c.packets, phones=(PHONE6,))
    f = r.one_flow()
    check(f, ip_version=6, initiator_ip=PHONE6, responder_ip=SERVER6, phone_role="initiator",
          conn_state="RSTO", history="ShADdR", teardown="rst", teardown_by="phone",
          teardown_frame=6, teardown_ts=r.ts(rst))
    check_events(r, f, [("syn", 1, "phone"), ("synack", 2, "server"), ("rst", 6, "phone")])


def test_ipv6_REJ_refused(tmp_path):
    c = phone_client(phone=PHONE6, server=SERVER6)
    c.syn("a", at=T0)
    rst = c.refuse("b")
    r = run(tmp_path, c.packets, phones=(PHONE6,))
    f = r.one_flow()
    check(f, ip_version=6, conn_state="REJ", history="Sr", teardown="refused",
          teardown_by="server", teardown_frame=2, teardown_ts=r.ts(rst))
    ev = one_event(r, f, "refused")
    check(ev, frame=2, sender="server", src_ip=SERVER6, dst_ip=PHONE6)


def test_ipv6_listener_refuses(tmp_path):
    """IPv6 version of the iOS listener case: the phone's RST refuses the server's SYN."""
    c = TcpConversation(SERVER6, DIAL_PORT, PHONE6, APP_PORT, ISN_SERVER, ISN_PHONE, T0)
    c.syn("a", at=T0)
    c.refuse("b")
    r = run(tmp_path, c.packets, phones=(PHONE6,))
    f = r.one_flow()
    check(f, phone_role="responder", conn_state="REJ", history="Sr", teardown="refused",
          teardown_by="phone")
    check(one_event(r, f, "refused"), sender="phone", src_ip=PHONE6)


@pytest.mark.parametrize("phone", [HUAWEI, SERVER])
def test_teardown_by_follows_the_phone_flag(tmp_path, phone):
    """The same capture (client RST) labelled with --phone naming either end: teardown_by
    and phone_role name the device, not the Zeek role (RSTO is the same either way)."""
    c = phone_client()
    handshake(c)
    c.rst("a")
    r = run(tmp_path, c.packets, phones=(phone,))
    f = r.one_flow()
    is_phone = phone == HUAWEI
    check(f, conn_state="RSTO", history="ShAR", teardown="rst",
          teardown_by="phone" if is_phone else "server",
          phone_role="initiator" if is_phone else "responder")
    check(one_event(r, f, "rst"), sender="phone" if is_phone else "server")
