"""Ports that Zeek's default analyzers register as likely server ports.

Zeek uses them (its `likely_server_ports`) to decide who the originator is when a flow's
first packet is not a plain SYN; we use them the same way so `conn_state` and `history`
(with its `^` flip mark) come out as Zeek's do. The set depends on which Zeek analyzers
are loaded; this is the default set of a stock Zeek install.
"""

import numpy as np

LIKELY_TCP = {
    21, 22, 25, 53, 80, 81, 88, 110, 135, 139, 143, 389, 443, 445, 502, 563, 585, 587, 614,
    631, 636, 989, 990, 992, 993, 995, 1080, 1433, 1723, 1883, 2811, 3128, 3268, 3306, 3389,
    5222, 5223, 5269, 5432, 6379, 6666, 6667, 6668, 6669, 8000, 8080, 8888, 20000,
}
LIKELY_UDP = {
    53, 67, 68, 69, 88, 123, 137, 161, 162, 443, 500, 514, 1812, 1813, 2123, 2152, 3478,
    4500, 5060, 5353, 5355, 47808,
}


def port_table() -> np.ndarray:
    """A 2 x 65536 boolean lookup: [0] TCP, [1] UDP."""
    table = np.zeros((2, 65536), dtype=np.bool_)
    table[0, list(LIKELY_TCP)] = True
    table[1, list(LIKELY_UDP)] = True
    return table
