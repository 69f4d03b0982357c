"""NOMAD_ADDR=unix://...: the Task API socket a Nomad task reaches its agent through."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from reconciler.errors import ConfigError
from reconciler.nomad.client import NomadClient
from reconciler.nomad.settings import NomadSettings


async def test_the_client_speaks_http_over_a_unix_socket(tmp_path: Path) -> None:
    seen: list[str] = []

    async def nodes(request: web.Request) -> web.Response:
        seen.append(request.headers.get("X-Nomad-Token", ""))
        return web.json_response([], headers={"X-Nomad-Index": "7"})

    app = web.Application()
    app.router.add_get("/v1/nodes", nodes)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = tmp_path / "api.sock"
    await web.UnixSite(runner, str(sock)).start()
    try:
        settings = NomadSettings(address=f"unix://{sock}", token="workload-identity-jwt")
        async with NomadClient(settings) as nomad:
            result = await nomad.list_nodes()
    finally:
        await runner.cleanup()
    assert result.index == 7 and result.value == []
    assert seen == ["workload-identity-jwt"]


def test_a_unix_address_needs_a_path() -> None:
    with pytest.raises(ConfigError, match="not an http"):
        NomadSettings(address="unix://")
