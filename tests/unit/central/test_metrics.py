"""Prometheus text rendering."""

from __future__ import annotations

import pytest

from central.metrics import Metrics


def test_counters_and_gauges_render_in_prometheus_text() -> None:
    metrics = Metrics()
    metrics.inc("storeguard_central_messages_accepted_total", kind="fault")
    metrics.inc("storeguard_central_messages_accepted_total", kind="fault")
    metrics.inc("storeguard_central_messages_rejected_total", reason='we"ird')
    metrics.gauge("storeguard_central_ingest_queue_depth", "waiting", lambda: 7)
    text = metrics.render()
    assert 'storeguard_central_messages_accepted_total{kind="fault"} 2' in text
    assert 'storeguard_central_messages_rejected_total{reason="we\\"ird"} 1' in text
    assert "# TYPE storeguard_central_ingest_queue_depth gauge\nstoreguard_central_ingest_queue_depth 7" in text
    assert "storeguard_central_tickets_created_total 0" in text  # declared counters show before their first event


def test_undeclared_counter_is_a_bug() -> None:
    with pytest.raises(KeyError):
        Metrics().inc("typo_total")


def test_a_failing_gauge_does_not_break_the_scrape() -> None:
    metrics = Metrics()
    metrics.gauge("storeguard_central_outbox_pending", "pending", lambda: 1 / 0)
    assert "storeguard_central_outbox_pending nan" in metrics.render()
