"""A small client for central's REST API (composition layer), used by the demo and tests."""

from __future__ import annotations

from typing import Any

import httpx


class CentralError(RuntimeError):
    """Central answered a request with an error status."""


class CentralClient:
    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)
        self._token: str | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CentralClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        response = self._http.request(method, path, headers=headers, **kwargs)
        if response.status_code >= 400:
            raise CentralError(f"{method} {path} -> {response.status_code}: {response.text[:300]}")
        return response.json() if response.content else None

    def login(self, username: str, password: str) -> CentralClient:
        body = self._call("POST", "/api/v1/auth/token", json={"username": username, "password": password})
        self._token = body["access_token"]
        return self

    def tickets(self, **filters: str) -> list[dict[str, Any]]:
        result = self._call("GET", "/api/v1/tickets", params=filters)
        return list(result["items"] if isinstance(result, dict) and "items" in result else result)

    def ticket(self, ticket_id: int) -> dict[str, Any]:
        return dict(self._call("GET", f"/api/v1/tickets/{ticket_id}"))

    def act(self, ticket_id: int, action: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return dict(self._call("POST", f"/api/v1/tickets/{ticket_id}/{action}", json=body or {}))

    def devices(self, store_id: str) -> list[dict[str, Any]]:
        return list(self._call("GET", "/api/v1/devices", params={"store_id": store_id}))

    def store_config(self, store_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/api/v1/stores/{store_id}/config"))

    def put_store_config(self, store_id: str, devices: dict[str, Any]) -> dict[str, Any]:
        return dict(self._call("PUT", f"/api/v1/stores/{store_id}/config", json={"devices": devices}))
