"""The private services the integration suites rely on start, answer and restart."""

from __future__ import annotations

import socket

import psycopg


def test_private_mosquitto_restarts_on_same_port(mosquitto) -> None:  # type: ignore[no-untyped-def]
    port = mosquitto.port
    socket.create_connection(("127.0.0.1", port), timeout=1).close()
    mosquitto.restart()
    assert mosquitto.port == port
    socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_private_postgres_gives_fresh_databases(postgres_cluster) -> None:  # type: ignore[no-untyped-def]
    a = postgres_cluster.create_database()
    b = postgres_cluster.create_database()
    assert a != b
    dsn = a.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
