"""HTTP control API of the simulators (simulators layer, aiohttp): look at devices, inject faults.

GET    /devices                    every device: point values, active faults, model state
GET    /devices/{id}               one device
POST   /devices/{id}/faults        {"fault": "door_open", "duration_s": 60, "code": null} -> 201
DELETE /devices/{id}/faults/{name} clear it -> 200, or 404 when it was not active
GET    /healthz
Errors are JSON {"error": "..."}: 400 bad JSON, 404 unknown device, 422 invalid request.
Serial peripherals (escpos printers, cctalk validators) are listed and driven the same way:
faults paper_near_end, paper_end, printer_cover_open (or cover_open), cutter_error,
bill_jam, stacker_full, offline.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated, Any, Protocol

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simulators.errors import FaultError, UnknownDeviceError
from simulators.faults import ActiveFault, Fault
from simulators.peripherals.fleet import PeripheralFleet
from simulators.simulation import DeviceState, Simulation

SIMULATION_KEY = web.AppKey("simulation", Simulation)
PERIPHERALS_KEY = web.AppKey("peripherals", PeripheralFleet)


class _Devices(Protocol):
    def inject(
        self, device_id: str, fault: Fault | str, duration_s: float | None = None, *, code: int | None = None
    ) -> ActiveFault: ...

    def clear(self, device_id: str, fault: Fault | str) -> bool: ...

    def state(self, device_id: str) -> DeviceState: ...


def _owner(app: web.Application, device_id: str) -> _Devices:
    """The peripheral fleet when it has the device, else the Modbus simulation."""
    peripherals = app[PERIPHERALS_KEY]
    return peripherals if device_id in peripherals else app[SIMULATION_KEY]


class FaultRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fault: str
    duration_s: Annotated[float, Field(gt=0)] | None = None
    code: int | None = None


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


def _state(state: DeviceState) -> dict[str, Any]:
    return dataclasses.asdict(state)


async def _devices(request: web.Request) -> web.Response:
    states = [*request.app[SIMULATION_KEY].states(), *request.app[PERIPHERALS_KEY].states()]
    return _json([_state(s) for s in states])


async def _device(request: web.Request) -> web.Response:
    try:
        device_id = request.match_info["device_id"]
        return _json(_state(_owner(request.app, device_id).state(device_id)))
    except UnknownDeviceError as exc:
        return _error(404, str(exc))


async def _inject(request: web.Request) -> web.Response:
    device_id = request.match_info["device_id"]
    simulation = _owner(request.app, device_id)
    try:
        body = FaultRequest.model_validate(await request.json())
    except json.JSONDecodeError:
        return _error(400, "the body must be JSON")
    except ValidationError as exc:
        first = exc.errors()[0]
        return _error(422, f"{'.'.join(str(p) for p in first['loc']) or 'body'}: {first['msg']}")
    try:
        simulation.inject(device_id, body.fault, body.duration_s, code=body.code)
    except UnknownDeviceError as exc:
        return _error(404, str(exc))
    except FaultError as exc:
        return _error(422, str(exc))
    return _json(_state(simulation.state(device_id)), 201)


async def _clear(request: web.Request) -> web.Response:
    device_id, fault = request.match_info["device_id"], request.match_info["fault"]
    simulation = _owner(request.app, device_id)
    try:
        cleared = simulation.clear(device_id, fault)
    except UnknownDeviceError as exc:
        return _error(404, str(exc))
    except FaultError as exc:
        return _error(422, str(exc))
    if not cleared:
        return _error(404, f"fault {fault!r} is not active on {device_id!r}")
    return _json(_state(simulation.state(device_id)))


async def _healthz(request: web.Request) -> web.Response:
    return _json({"ok": True})


def create_control_app(simulation: Simulation, peripherals: PeripheralFleet | None = None) -> web.Application:
    app = web.Application()
    app[SIMULATION_KEY] = simulation
    app[PERIPHERALS_KEY] = peripherals if peripherals is not None else PeripheralFleet()
    app.router.add_get("/devices", _devices)
    app.router.add_get("/devices/{device_id}", _device)
    app.router.add_post("/devices/{device_id}/faults", _inject)
    app.router.add_delete("/devices/{device_id}/faults/{fault}", _clear)
    app.router.add_get("/healthz", _healthz)
    return app
