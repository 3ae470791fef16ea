"""What the timeline reads of the flow and event tables.

The pipeline lets every other column go before the timeline is drawn (on 10M packets about
70 MB). Kept apart from timeline.py so that narrowing the tables does not import matplotlib
while the whole tables are still held.
"""

from __future__ import annotations

import pandas as pd

FLOW_COLUMNS = ["flow_id", "proto", "phone_role", "first_ts_ns", "last_ts_ns", "packets_i2r",
                "packets_r2i", "teardown", "teardown_by", "initiator_ip", "initiator_port",
                "responder_ip", "responder_port"]
EVENT_COLUMNS = ["ts_ns", "flow_id", "kind", "sender"]


def narrow(flows: pd.DataFrame, events: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """flows and events with only the columns the timeline reads. They share the tables'
    arrays, so the other columns are freed once nothing else holds the tables."""
    return (flows[[c for c in FLOW_COLUMNS if c in flows]],
            events[[c for c in EVENT_COLUMNS if c in events]])
