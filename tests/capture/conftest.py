"""Fixtures of the capture-layer tests (helpers live in support.py)."""

import pytest

from tests.capture.support import pick_ports


@pytest.fixture
def ports():
    """Four fresh ports (server udp, server tcp, phone fixed, phone client), all bindable.

    Each test gets its own: a previous test's TIME_WAIT must not make the next one fail.
    """
    return pick_ports()
