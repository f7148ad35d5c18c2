"""Two central worker processes on one Mosquitto ($share) and one PostgreSQL: the load splits, nothing doubles.

Runs the fault-to-ticket benchmark's harness small: real `storeguard central` processes with a
shared subscription group, 20 stores each with its own MQTT connection, 200 distinct faults.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.central_faults import run
from tests.support.services import MosquittoProcess, PostgresCluster

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def test_two_workers_split_the_faults_and_make_one_ticket_each(
        tmp_path: Path, mosquitto_session: MosquittoProcess, postgres_cluster: PostgresCluster) -> None:  # fmt: skip
    # the session services only gate the test (skipped, or failed in CI, when a binary is missing);
    # the harness starts private ones it can own
    result = run(stores=20, faults=200, rate=40, workdir=tmp_path)
    assert result["tickets"] == 200 and result["duplicate_tickets"] == 0
    assert result["statuses_at_store"] == 200
    applied = result["faults_applied_per_worker"]
    assert sum(applied) == 200 and min(applied) > 0, f"the shared subscription did not split the load: {applied}"
