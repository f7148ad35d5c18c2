"""Ports for the stack's servers: free, never handed out twice, outside the ephemeral range."""

from __future__ import annotations

import socket

from storeguard.stack import _ephemeral_range, free_port


def test_ports_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    low, _ = _ephemeral_range()
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(1024 < p < low for p in ports)  # an outgoing connection cannot be given one meanwhile
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[0]))


def test_a_preferred_port_is_used_once_when_free() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        busy = taken.getsockname()[1]
        assert free_port(busy) != busy
    port = free_port()
    assert free_port(port) != port  # handed out already: the next caller gets another
