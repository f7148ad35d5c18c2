"""`python -m gateway` as a real process with the real edge (edge.runtime.Edge): a dead device
becomes a device-offline fault event at central, the edge's counters show on /metrics, and a
kill -9 leaves the retained last will (online=false)."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml

from protocols.mqtt.messages import FaultEvent, StoreHealth
from tests.integration.gateway.helpers import Central, eventually
from tests.support.services import MosquittoProcess, free_port

pytestmark = pytest.mark.mosquitto

ROOT = Path(__file__).resolve().parents[3]


def health_messages(central: Central) -> list[StoreHealth]:
    found = [r.message() for r in central.received("health")]
    return [h for h in found if isinstance(h, StoreHealth)]


async def test_killed_gateway_process_leaves_its_last_will(tmp_path: Path, mosquitto: MosquittoProcess) -> None:
    config = {
        "store_id": "store-009",
        "name": "Dock Street",
        "mqtt": {"url": mosquitto.url, "reconnect_min_s": 0.2, "reconnect_max_s": 1},
        "outbox": {"path": "store.db"},
        "http": {"host": "127.0.0.1", "port": 0},
        "buses": [{  # nothing answers on this port: the device is simply offline
            "name": "cases", "transport": "tcp", "host": "127.0.0.1", "tcp_port": free_port(),
            "poll_interval_s": 0.5,
            "devices": [{"id": "case-01", "unit": 1, "profile": "dixell-xr75cx"}],
        }],
    }
    path = tmp_path / "store.yaml"
    path.write_text(yaml.safe_dump(config))
    log_path = tmp_path / "gateway.log"
    with Central(mosquitto.url, subscribe="storeguard/v1/store-009/+") as central, log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "gateway", str(path), cwd=ROOT,
                                                    stdout=log, stderr=log)
        try:
            online = await eventually(lambda: [h for h in health_messages(central) if h.online], timeout=20,
                                      what="online health from the gateway process")
            assert online[0].store_id == "store-009"
            faults = await eventually(lambda: [r.message() for r in central.received("fault")], timeout=20,
                                      what="the device-offline fault")
            assert isinstance(faults[0], FaultEvent) and faults[0].device_id == "case-01"
            found = re.search(r"store page at (http://\S+)", log_path.read_text())
            assert found, "the gateway logs where its store page is"
            async with aiohttp.ClientSession() as http:
                async with http.get(found.group(1) + "/metrics") as response:
                    metrics = await response.text()
                async with http.get(found.group(1) + "/api/state") as response:
                    state = await response.json()
            assert 'storeguard_edge_device_failed_polls_total{bus="cases",device="case-01"' in metrics
            assert "storeguard_edge_bus_cycles_total" in metrics
            assert state["devices"][0]["id"] == "case-01" and state["devices"][0]["online"] is False
            assert [f["event"]["fault_code"] for f in state["open_faults"]] == [faults[0].fault_code]

            proc.send_signal(signal.SIGKILL)
            await asyncio.wait_for(proc.wait(), 10)
            offline = await eventually(lambda: [h for h in health_messages(central) if not h.online], timeout=20,
                                       what="the last will")
            assert offline[-1].store_id == "store-009" and offline[-1].message_id != online[0].message_id
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
