"""The output contract (docs/output.md): file names and column orders.

Users' scripts read these names; change them only on purpose, with the docs.
"""

FLOWS_CSV = "flows.csv"
EVENTS_CSV = "events.csv"
LOGS_CSV = "logs.csv"
SUMMARY_JSON = "summary.json"

FLOW_COLUMNS = [
    "flow_id", "proto", "ip_version",
    "initiator_ip", "initiator_port", "responder_ip", "responder_port",
    "phone_role",
    "first_ts", "last_ts", "first_frame", "last_frame",
    "packets_i2r", "packets_r2i", "bytes_i2r", "bytes_r2i",
    "conn_state", "history",
    "teardown", "teardown_by", "teardown_ts", "teardown_frame",
    "syn_count",
]

EVENT_COLUMNS = [
    "ts", "frame", "flow_id", "kind", "sender",
    "src_ip", "src_port", "dst_ip", "dst_port", "detail",
]

LOG_COLUMNS = [
    "ts", "raw_time", "source", "role", "format", "level", "message",
    "errno", "op", "proto", "local_ip", "local_port", "remote_ip", "remote_port",
    "flow_id", "match",
]

TEARDOWNS = ("rst", "fin", "refused", "syn_unanswered", "udp_unanswered",
             "icmp_unreachable", "open")

EVENT_KINDS = ("syn", "syn_retry", "synack", "fin", "rst", "refused", "syn_unanswered",
               "data_after_fin", "data_after_rst", "udp_unanswered", "icmp_unreachable")

SENDERS = ("phone", "server", "unknown")
