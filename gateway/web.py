"""The local store page (gateway layer): aiohttp, a thin layer over `StoreView`-like sources.

    GET /             HTML for a tablet in the back office; polls /api/state
    GET /api/state    store, MQTT link, outbox, devices with readings, open faults, tickets, and
                      `config`: the desired config from central this store runs
    GET /api/tickets  latest TicketStatus per ticket + "statuses_received" in arrival order
    GET /metrics      Prometheus text format 0.0.4
    GET /healthz      200 "ok" while the process serves
"""

from __future__ import annotations

import html
import json
from importlib.resources import files
from typing import Any, Protocol, Self

from aiohttp import web
from pydantic import BaseModel

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class StorePageSource(Protocol):
    def state(self) -> BaseModel: ...

    def tickets(self) -> list[dict[str, Any]]: ...

    def metrics_text(self) -> str: ...


_SOURCE = web.AppKey("source", StorePageSource)
_PAGE = web.AppKey("page", str)


def create_app(source: StorePageSource, *, store_id: str, store_name: str) -> web.Application:
    app = web.Application()
    app[_SOURCE] = source
    template = files("gateway").joinpath("static/index.html").read_text(encoding="utf-8")
    app[_PAGE] = template.replace("{{store_name}}", html.escape(store_name)).replace(
        "{{store_id}}", html.escape(store_id))
    app.router.add_get("/", _index)
    app.router.add_get("/api/state", _state)
    app.router.add_get("/api/tickets", _tickets)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    return app


async def _index(request: web.Request) -> web.Response:
    return web.Response(text=request.app[_PAGE], content_type="text/html", headers={"Cache-Control": "no-store"})


async def _state(request: web.Request) -> web.Response:
    body = request.app[_SOURCE].state().model_dump_json()
    return web.Response(text=body, content_type="application/json", headers={"Cache-Control": "no-store"})


async def _tickets(request: web.Request) -> web.Response:
    return web.Response(text=json.dumps(request.app[_SOURCE].tickets()), content_type="application/json",
                        headers={"Cache-Control": "no-store"})


async def _metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[_SOURCE].metrics_text().encode(),
                        headers={"Content-Type": PROMETHEUS_CONTENT_TYPE})


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


class StorePage:
    """Serves the app while the context is open; `port` is the bound port (config port 0 = free)."""

    def __init__(self, app: web.Application, *, host: str, port: int) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self._host in ("0.0.0.0", "", "::") else self._host
        return f"http://{host}:{self.port}"

    async def __aenter__(self) -> Self:
        runner = web.AppRunner(self._app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
