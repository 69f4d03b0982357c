"""`reconciler sim ctl`: break and mend a running simulator's hosts from a script.

The simulator is found through NOMAD_ADDR (or ``--address``): the simulated Nomad's
HTTP server carries a control path of the simulator's own, outside Nomad's API:

* ``GET /v1/sim/hosts``: every simulated host, ``[{"Name", "Address", "Daemon": "up" |
  "down", "Power": "on" | "off"}]``;
* ``POST /v1/sim/hosts/<name>/<action>``: one of HOST_ACTIONS; the host's entry after it.
  An unknown host is a 404, an unknown action a 400, each naming what is allowed.

Without ACLs (``reconciler sim`` without ``--acl``) no token is needed; with them, a
management token (NOMAD_TOKEN or ``--token``, the one ``sim --acl`` prints).

Light at import (no grpc): the command-line parser takes HOST_ACTIONS from here.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from urllib.parse import quote

from reconciler.errors import ConfigError, PermanentError, TemporaryError

# What `sim ctl host NAME ACTION` can do to a simulated host (sim/world.py: host_action).
HOST_ACTIONS = ("daemon-down", "daemon-up", "power-off", "power-on")


async def host_action(
    name: str,
    action: str,
    env: Mapping[str, str] | None = None,
    *,
    address: str | None = None,
    token: str | None = None,
) -> dict[str, str]:
    """Ask the simulator behind NOMAD_ADDR to do ``action`` to host ``name``."""
    import httpx

    from reconciler.nomad.settings import NomadSettings

    if action not in HOST_ACTIONS:
        raise ConfigError(f"unknown host action {action!r}; allowed: {', '.join(HOST_ACTIONS)}")
    settings = NomadSettings.from_env(
        os.environ if env is None else env, address=address, token=token
    )
    headers = {"X-Nomad-Token": settings.token} if settings.token else {}
    transport = httpx.AsyncHTTPTransport(uds=settings.unix_socket) if settings.unix_socket else None
    path = f"/v1/sim/hosts/{quote(name, safe='')}/{action}"
    async with httpx.AsyncClient(
        base_url=settings.base_url,
        headers=headers,
        verify=settings.ssl_context(),
        transport=transport,
        timeout=settings.timeout,
    ) as http:
        try:
            reply = await http.post(path)
        except httpx.TransportError as exc:
            raise TemporaryError(
                f"cannot reach the simulator at {settings.address} (NOMAD_ADDR): {exc}"
            ) from None
    if reply.status_code != 200:
        text = reply.text.strip() or f"HTTP {reply.status_code}"
        if reply.status_code == 404 and "no simulated host" not in text:
            text = f"{settings.address} is not a `reconciler sim` with hosts to control ({text})"
        raise PermanentError(f"sim ctl host {name} {action}: {text}")
    body = reply.json()
    return body if isinstance(body, dict) else {}


async def ctl_command(args: argparse.Namespace) -> int:
    """`reconciler sim ctl host NAME ACTION`: prints the host as it is after the action."""
    host = await host_action(args.name, args.action, address=args.address, token=args.token)
    print(
        f"{host.get('Name', args.name)}: daemon {host.get('Daemon', '?')}, "
        f"power {host.get('Power', '?')} ({host.get('Address', '?')})"
    )
    return 0
