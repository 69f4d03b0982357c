"""An asyncio client for Nomad's HTTP API (httpx).

* Every call has a timeout. A blocking query (``index`` + ``wait``) may be held
  by the server for ``wait`` plus up to wait/16 of jitter, so its timeout is
  that plus a margin.
* Only ``NomadUnavailable`` (connection errors, timeouts, 5xx, 429) is retried,
  with jittered exponential backoff (tenacity); 4xx answers are final.
  A retried write may have landed the first time; the calls that would then
  fail spuriously recognise that case (a CAS put that finds exactly its own
  items, a CAS delete that finds the variable gone). ``lock_acquire`` cannot
  (it would not know the lock ID it got), so it is retried only when the
  request certainly was not processed.
* The ACL token travels in ``X-Nomad-Token`` and never appears in reprs, logs
  or error messages.

Nomad answers some "not found" conditions with a plain 500 (drain, eligibility
and purge of an unknown node; releasing a lock that already lapsed). Those are
recognised by their text and raised as the permanent errors they are, instead
of being retried as an outage.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from reconciler.nomad import models
from reconciler.nomad.errors import (
    BadRequest,
    CasConflict,
    LockHeld,
    LockLost,
    NomadError,
    NomadUnavailable,
    NotFound,
    PermissionDenied,
    ProtocolError,
    TlsVerificationFailed,
)
from reconciler.nomad.models import (
    Allocation,
    Evaluation,
    NodeStub,
    QueryResult,
    Variable,
    VariableMeta,
)
from reconciler.nomad.settings import NomadSettings

log = logging.getLogger(__name__)

# A blocking query's hold, as Nomad computes it (QueryOptions.TimeToBlock): a wait
# of 0 or less means the default, and no query is held longer than the maximum.
DEFAULT_WAIT = 300.0  # structs.DefaultBlockingRPCQueryTime
MAX_WAIT = 300.0  # structs.MaxBlockingRPCQueryTime
BLOCKING_MARGIN = 5.0  # seconds on top of wait + jitter before giving up on an answer

# 500 answers whose text says the condition is permanent (see the module doc).
_PERMANENT_500: tuple[tuple[str, type[NomadError]], ...] = (
    ("node not found", NotFound),
    ("while it is draining", BadRequest),
    ("variable doesn't hold a lock", LockLost),
    ("variable doesn't exist", NotFound),
)


@dataclass(frozen=True, slots=True)
class _Reply:
    where: str
    status: int
    headers: httpx.Headers
    content: bytes
    attempts: int

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace").strip()


def _cert_verification_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate-verification failure somewhere in an exception's cause chain."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def html_page(response: httpx.Response) -> str | None:
    """The title (or "") of an HTML answer; None when the answer is not HTML.

    Nomad's HTTP API never answers /v1/ with HTML (its web UI lives under /ui/),
    so an HTML page means NOMAD_ADDR points at something else: a web server, a
    proxy's error page, a login portal.
    """
    kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    head = response.content[:512].lstrip().lower()
    if kind not in ("text/html", "application/xhtml+xml") and not head.startswith(
        (b"<!doctype html", b"<html")
    ):
        return None
    m = _TITLE.search(response.content[:4096])
    title = m.group(1).decode("utf-8", "replace") if m else ""
    return " ".join(title.split())[:80]


def blocking_timeout(wait: float) -> float:
    """How long to wait for a blocking query's answer: wait + Nomad's jitter + a margin."""
    return wait + wait / 16 + BLOCKING_MARGIN


class NomadClient:
    """``async with NomadClient(settings) as nomad: ...``"""

    def __init__(
        self,
        settings: NomadSettings,
        *,
        timeout: float | None = None,
        attempts: int | None = None,
        backoff_max: float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.timeout = timeout if timeout is not None else settings.timeout
        self.attempts = attempts if attempts is not None else settings.attempts
        self.backoff_max = backoff_max if backoff_max is not None else settings.backoff_max
        self._token = settings.token
        # The stubs of the last full node list, by (with resources, node ID): reused while
        # a node's ModifyIndex stays (list_nodes).
        self._stubs: dict[tuple[bool, str], NodeStub] = {}
        # Called after every API call with (route, seconds, error or None): metrics.
        self.on_call: Callable[[str, float, str | None], None] | None = None
        headers = {"X-Nomad-Token": settings.token} if settings.token else {}
        self._extensions = (
            {"sni_hostname": settings.tls_server_name} if settings.tls_server_name else {}
        )
        if transport is None and settings.unix_socket:
            transport = httpx.AsyncHTTPTransport(uds=settings.unix_socket)
        self._http = httpx.AsyncClient(
            base_url=settings.base_url,
            headers=headers,
            timeout=self.timeout,
            verify=settings.ssl_context(),
            transport=transport,
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"NomadClient({self.settings!r})"

    async def __aenter__(self) -> NomadClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------ plumbing

    def _redact(self, text: str) -> str:
        if self._token and self._token in text:
            text = text.replace(self._token, "<redacted>")
        return text

    def _params(
        self,
        extra: Mapping[str, Any] | None = None,
        *,
        namespaced: bool = True,
    ) -> dict[str, str]:
        params: dict[str, str] = {}
        if namespaced and self.settings.namespace:
            params["namespace"] = self.settings.namespace
        if self.settings.region:
            params["region"] = self.settings.region
        for key, value in (extra or {}).items():
            if value is None:
                continue
            if isinstance(value, bool):
                value = "true" if value else "false"
            params[key] = str(value)
        return params

    @staticmethod
    def _blocking(index: int | None, wait: float | None) -> tuple[dict[str, str], float | None]:
        """Query parameters and timeout for a read that blocks when given an index.

        Without an index (or with index 0) Nomad answers at once, whatever the
        wait. With one, a wait of 0 would not mean "now" but Nomad's default 5
        minutes, so a wait that is not positive (to the millisecond Nomad gets)
        makes this a plain read, sent with neither index nor wait.
        """
        if not index or (wait is not None and round(wait * 1000) <= 0):
            return {}, None
        wait = min(MAX_WAIT, DEFAULT_WAIT if wait is None else wait)
        params = {"index": str(index), "wait": models.format_go_duration(wait)}
        return params, blocking_timeout(wait)

    def _unavailable(self, where: str, status: int, text: str) -> NomadError:
        for needle, kind in _PERMANENT_500:
            if status == 500 and needle in text:
                return kind(f"{where}: {text}", endpoint=where, status=status)
        return NomadUnavailable(
            f"{where}: Nomad answered {status}: {text[:300] or '(no body)'}",
            endpoint=where,
            status=status,
        )

    async def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        body: Any,
        timeout: float,
    ) -> _Reply:
        where = f"{method} {path}"
        try:
            response = await self._http.request(
                method,
                path,
                params=params,
                json=body,
                timeout=timeout,
                extensions=self._extensions or None,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            verify = _cert_verification_error(exc)
            if verify is not None:
                raise TlsVerificationFailed(
                    f"{where}: Nomad's TLS certificate at {self.settings.address} did not verify "
                    f"({verify.verify_message}); check NOMAD_CACERT and NOMAD_TLS_SERVER_NAME",
                    endpoint=where,
                ) from None
            # The request never reached Nomad: safe to retry any call.
            raise NomadUnavailable(
                self._redact(f"{where}: cannot reach Nomad at {self.settings.address}: {exc}"),
                endpoint=where,
                sent=False,
            ) from None
        except httpx.TimeoutException:
            raise NomadUnavailable(
                f"{where}: no answer from Nomad within {timeout:g}s", endpoint=where
            ) from None
        except httpx.TransportError as exc:
            raise NomadUnavailable(
                self._redact(f"{where}: connection to Nomad failed: {exc!r}"), endpoint=where
            ) from None
        content = response.content
        log.debug("nomad %s -> %s", where, response.status_code)
        title = html_page(response)
        if title is not None:
            raise self._not_nomad(where, response.status_code, title)
        if response.status_code == 429 or response.status_code >= 500:
            error = self._unavailable(
                where, response.status_code, self._redact(content.decode("utf-8", "replace"))
            )
            raise error
        return _Reply(where, response.status_code, response.headers, content, 0)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str],
        body: Any = None,
        timeout: float | None = None,
        idempotent: bool = True,
    ) -> _Reply:
        """One exchange with retries, reported to ``on_call`` (metrics) when set."""
        if self.on_call is None:
            return await self._exchange(method, path, params, body, timeout, idempotent)
        started = time.monotonic()
        error: str | None = None
        try:
            reply = await self._exchange(method, path, params, body, timeout, idempotent)
            if reply.status >= 400:
                error = f"http_{reply.status}"
            return reply
        except Exception as exc:
            error = type(exc).__name__
            raise
        finally:
            self.on_call(route_of(method, path), time.monotonic() - started, error)

    async def _exchange(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        body: Any,
        timeout: float | None,
        idempotent: bool,
    ) -> _Reply:
        """One exchange with retries; returns the reply for any status below 500 but 429."""

        def retryable(exc: BaseException) -> bool:
            if not isinstance(exc, NomadUnavailable):
                return False
            # A non-idempotent call is retried only if Nomad certainly did not act on it.
            return idempotent or not exc.sent or exc.status in (429, 503)

        attempts = 0
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(retryable),
            wait=wait_random_exponential(multiplier=0.2, max=self.backoff_max),
            stop=stop_after_attempt(self.attempts),
            reraise=True,
        ):
            with attempt:
                attempts += 1
                reply = await self._send(method, path, params, body, timeout or self.timeout)
                return _Reply(reply.where, reply.status, reply.headers, reply.content, attempts)
        raise AssertionError("unreachable: tenacity reraises the last error")

    def _not_nomad(self, where: str, status: int, title: str) -> NomadError:
        """An HTML page where Nomad's API should answer: say so, without the page."""
        page = f"an HTML page ({title!r})" if title else "an HTML page"
        message = self._redact(
            f"{where}: {self.settings.address} is not a Nomad agent: it answered {status} "
            f"with {page}; check NOMAD_ADDR"
        )
        if status == 429 or status >= 500:
            # A proxy's error page may stand in front of a Nomad that comes back: retry.
            return NomadUnavailable(message, endpoint=where, status=status)
        return ProtocolError(message, endpoint=where, status=status)

    def _fail(self, reply: _Reply) -> NomadError:
        """The typed error for a non-2xx answer no caller handled."""
        where, status, text = reply.where, reply.status, self._redact(reply.text[:500])
        if status == 403:
            text = text or "Permission denied"
            if not self.settings.token:
                # Nomad with ACLs gives an anonymous request only what its anonymous
                # policy allows: usually nothing. Say what is missing.
                text += (
                    ": no ACL token is set; set NOMAD_TOKEN to a token whose policy "
                    "allows this (see manifests/ for the reconciler's policy)"
                )
            return PermissionDenied(f"{where}: {text}", endpoint=where, status=status)
        if status == 404:
            return NotFound(f"{where}: {text or 'not found'}", endpoint=where, status=status)
        if 300 <= status < 400:
            return ProtocolError(
                f"{where}: unexpected redirect {status} to {reply.headers.get('Location', '?')}",
                endpoint=where,
                status=status,
            )
        if status >= 400:
            return BadRequest(
                f"{where}: Nomad answered {status}: {text}", endpoint=where, status=status
            )
        return ProtocolError(f"{where}: unexpected status {status}", endpoint=where, status=status)

    def _check(self, reply: _Reply, *ok: int) -> _Reply:
        if reply.status in (ok or (200,)):
            return reply
        raise self._fail(reply)

    @staticmethod
    def _json(reply: _Reply) -> Any:
        if not reply.content:
            raise ProtocolError(f"{reply.where}: empty answer where JSON was expected")
        try:
            return json.loads(reply.content)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            snippet = reply.content[:60].decode("utf-8", "replace")
            raise ProtocolError(
                f"{reply.where}: answer is not JSON ({exc.msg if hasattr(exc, 'msg') else exc}): "
                f"{snippet!r}",
                endpoint=reply.where,
                status=reply.status,
            ) from None

    @staticmethod
    def _index(reply: _Reply) -> int:
        raw = reply.headers.get("X-Nomad-Index")
        if raw is None:
            raise ProtocolError(f"{reply.where}: answer has no X-Nomad-Index header")
        try:
            return int(raw)
        except ValueError:
            raise ProtocolError(
                f"{reply.where}: X-Nomad-Index {raw[:40]!r} is not a number"
            ) from None

    def _list(self, reply: _Reply, parse: Callable[[str, Any], Any]) -> QueryResult[list[Any]]:
        reply = self._check(reply)
        index = self._index(reply)
        data = models.list_of(reply.where, self._json(reply))
        return QueryResult([parse(reply.where, item) for item in data], index)

    # ------------------------------------------------------------ variables

    @staticmethod
    def _var_path(path: str) -> str:
        return "/v1/var/" + quote(path.strip(" /"), safe="/-_~")

    def _var_body(self, path: str, **fields: Any) -> dict[str, Any]:
        return {"Namespace": self.settings.namespace or "default", "Path": path.strip(" /")} | {
            k: v for k, v in fields.items() if v is not None
        }

    def _conflict_var(self, reply: _Reply) -> Variable | None:
        """The variable in a 409 answer; None for Nomad's zero-valued placeholder."""
        data = self._json(reply)
        current = models.parse_variable(reply.where, data)
        if current.modify_index == 0 and current.create_index == 0:
            return None
        return current

    async def get_var(self, path: str) -> Variable:
        """The variable at ``path``; NotFound when there is none."""
        url = self._var_path(path)
        reply = self._check(await self._request("GET", url, params=self._params()))
        return models.parse_variable(reply.where, self._json(reply))

    async def list_vars(
        self, prefix: str = "", *, index: int | None = None, wait: float | None = None
    ) -> QueryResult[list[VariableMeta]]:
        """Metadata (no items) of the variables under ``prefix``.

        The index is Nomad's variables-table index: it moves on a write to any
        variable, while a blocking query wakes only for changes under the prefix.
        """
        extra, timeout = self._blocking(index, wait)
        reply = await self._request(
            "GET", "/v1/vars", params=self._params({"prefix": prefix, **extra}), timeout=timeout
        )
        return self._list(reply, models.parse_variable_meta)

    async def put_var(
        self, path: str, items: Mapping[str, str], *, cas: int | None = None
    ) -> Variable:
        """Create or replace the variable's items.

        ``cas``: only if its ModifyIndex is this (0: only if it does not exist);
        a lost race raises CasConflict carrying the current variable. A write
        to a variable locked by someone else raises LockHeld.
        """
        for key, value in items.items():
            if not isinstance(value, str):
                raise BadRequest(f"{path}: item {key!r} is not a string (Nomad stores strings)")
        url = self._var_path(path)
        reply = await self._request(
            "PUT",
            url,
            params=self._params({"cas": cas}),
            body=self._var_body(path, Items=dict(items)),
        )
        if reply.status == 409:
            current = self._conflict_var(reply)
            if cas is None:
                raise LockHeld(
                    f"{reply.where}: the variable is locked by another holder",
                    endpoint=reply.where,
                    status=409,
                )
            if reply.attempts > 1 and current is not None and dict(current.items) == dict(items):
                # An earlier attempt landed; its answer was lost.
                return current
            found = current.modify_index if current else "none (absent or locked)"
            raise CasConflict(
                f"{reply.where}: check-and-set failed: expected index {cas}, found {found}",
                current=current,
                endpoint=reply.where,
            )
        reply = self._check(reply)
        return models.parse_variable(reply.where, self._json(reply))

    async def delete_var(self, path: str, *, cas: int | None = None) -> int:
        """Delete the variable (a missing one is fine); returns the write's index."""
        url = self._var_path(path)
        reply = await self._request("DELETE", url, params=self._params({"cas": cas}))
        if reply.status == 409:
            current = self._conflict_var(reply)
            if cas is not None and reply.attempts > 1 and current is None:
                return 0  # an earlier attempt deleted it
            if cas is None:
                raise LockHeld(
                    f"{reply.where}: the variable is locked by another holder",
                    endpoint=reply.where,
                    status=409,
                )
            found = current.modify_index if current else "none"
            raise CasConflict(
                f"{reply.where}: check-and-set delete failed: expected index {cas}, found {found}",
                current=current,
                endpoint=reply.where,
            )
        reply = self._check(reply, 200, 204)
        return int(reply.headers.get("X-Nomad-Index", "0") or 0)

    async def lock_acquire(
        self,
        path: str,
        *,
        ttl: float = 15.0,
        lock_delay: float = 15.0,
        items: Mapping[str, str] | None = None,
    ) -> tuple[Variable, str]:
        """Take the lock on ``path`` (creating the variable if needed): (variable, lock ID).

        Nomad writes the variable as the request carries it: its items become
        ``items``, and an acquire without them leaves the variable empty.
        Nomad lets a lock lapse if it is not renewed within about 2 x TTL, then
        keeps it unavailable for ``lock_delay``. LockHeld while anyone holds it.
        """
        url = self._var_path(path)
        lock = {
            "TTL": models.format_go_duration(ttl),
            "LockDelay": models.format_go_duration(lock_delay),
        }
        reply = await self._request(
            "PUT",
            url,
            params=self._params({"lock-acquire": ""}),
            body=self._var_body(path, Items=dict(items) if items else None, Lock=lock),
            idempotent=False,
        )
        if reply.status == 409:
            raise LockHeld(
                f"{reply.where}: the lock is held (or in its lock-delay)",
                endpoint=reply.where,
                status=409,
            )
        reply = self._check(reply)
        var = models.parse_variable(reply.where, self._json(reply))
        if not var.lock_id:
            raise ProtocolError(f"{reply.where}: lock-acquire answer has no Lock.ID")
        return var, var.lock_id

    async def _lock_op(self, op: str, path: str, lock_id: str) -> VariableMeta:
        url = self._var_path(path)
        reply = await self._request(
            "PUT",
            url,
            params=self._params({op: ""}),
            body=self._var_body(path, Lock={"ID": lock_id}),
        )
        if reply.status == 409:
            raise LockLost(
                f"{reply.where}: this lock is no longer held ({reply.text[:120] or 'conflict'})",
                endpoint=reply.where,
                status=409,
            )
        reply = self._check(reply)
        return models.parse_variable_meta(reply.where, self._json(reply))

    async def lock_renew(self, path: str, lock_id: str) -> VariableMeta:
        """Extend the lock's TTL; LockLost if it lapsed or someone else holds it now."""
        return await self._lock_op("lock-renew", path, lock_id)

    async def lock_release(self, path: str, lock_id: str) -> VariableMeta:
        """Give the lock up now (no lock-delay follows a release); LockLost if not ours."""
        return await self._lock_op("lock-release", path, lock_id)

    # ------------------------------------------------------------ nodes

    @staticmethod
    def _node_path(node_id: str, suffix: str = "") -> str:
        return f"/v1/node/{quote(node_id, safe='')}{suffix}"

    async def list_nodes(
        self,
        *,
        resources: bool = True,
        prefix: str | None = None,
        index: int | None = None,
        wait: float | None = None,
    ) -> QueryResult[list[NodeStub]]:
        """Every client node (stubs: no Meta, no DrainStrategy)."""
        extra, timeout = self._blocking(index, wait)
        params = self._params(
            {"resources": True if resources else None, "prefix": prefix, **extra},
            namespaced=False,
        )
        reply = await self._request("GET", "/v1/nodes", params=params, timeout=timeout)
        # A node's stub is the same while its ModifyIndex is: every write to a node
        # (status, drain, eligibility, a re-registration) stores it at a new index
        # (nomad/state/state_store.go: upsertNodeTxn, updateNodeStatusTxn,
        # updateNodeDrainImpl, UpdateNodeEligibility). So only the nodes that changed
        # since the last list are parsed (about 20 us a node: 10 ms a pass at 500).
        known = self._stubs

        def parse(where: str, item: Any) -> NodeStub:
            node_id = item.get("ID") if isinstance(item, dict) else None
            if isinstance(node_id, str):
                stub = known.get((resources, node_id))
                if stub is not None and stub.modify_index == item.get("ModifyIndex"):
                    return stub
            return models.parse_node(where, item)

        result: QueryResult[list[NodeStub]] = self._list(reply, parse)
        if prefix is None:  # a whole list: what the next one may reuse
            self._stubs = {k: v for k, v in known.items() if k[0] is not resources} | {
                (resources, n.id): n for n in result.value
            }
        return result

    async def wait_for_nodes(self, index: int, wait: float) -> int:
        """Nomad's nodes index once it moves past ``index``, or after ``wait`` seconds.

        A blocking node list whose body is not parsed: a watch needs only the index.
        """
        extra, timeout = self._blocking(index, wait)
        params = self._params(extra, namespaced=False)
        reply = await self._request("GET", "/v1/nodes", params=params, timeout=timeout)
        return self._index(self._check(reply))

    async def get_node(self, node_id: str) -> NodeStub:
        """One node in full (Meta, DrainStrategy, StatusUpdatedAt); NotFound if unknown."""
        url = self._node_path(node_id)
        reply = self._check(await self._request("GET", url, params=self._params(namespaced=False)))
        return models.parse_node(reply.where, self._json(reply))

    async def _drain(self, node_id: str, body: dict[str, Any]) -> int:
        url = self._node_path(node_id, "/drain")
        reply = self._check(
            await self._request("POST", url, params=self._params(namespaced=False), body=body)
        )
        data = models._Reader(reply.where, self._json(reply))
        return data.int_("NodeModifyIndex")

    async def drain_node(
        self,
        node_id: str,
        *,
        deadline_s: float,
        ignore_system_jobs: bool = False,
        meta: Mapping[str, str] | None = None,
    ) -> int:
        """Start (or replace) a drain; returns the node's new ModifyIndex.

        ``deadline_s``: seconds after which remaining allocations are stopped;
        0 means no deadline, a negative value forces the drain at once.
        ``meta`` lands in the node's LastDrain.Meta, which is how a drain is
        later recognised as the reconciler's own.
        """
        body = {
            "NodeID": node_id,
            "DrainSpec": {
                "Deadline": round(deadline_s * 1e9) if deadline_s >= 0 else -1,
                "IgnoreSystemJobs": ignore_system_jobs,
            },
            "MarkEligible": False,
            "Meta": dict(meta) if meta else None,
        }
        return await self._drain(node_id, body)

    async def cancel_drain(
        self,
        node_id: str,
        *,
        mark_eligible: bool = False,
        meta: Mapping[str, str] | None = None,
    ) -> int:
        """Stop a drain (DrainSpec null); optionally make the node eligible again."""
        body = {
            "NodeID": node_id,
            "DrainSpec": None,
            "MarkEligible": mark_eligible,
            "Meta": dict(meta) if meta else None,
        }
        return await self._drain(node_id, body)

    async def set_eligibility(self, node_id: str, eligible: bool) -> int:
        """Mark the node (in)eligible for new placements; returns the write's index.

        The index is 0 when the node already was so (Nomad writes nothing then).
        Nomad's answer carries it in Index: its NodeModifyIndex is always 0 here.
        Nomad refuses "eligible" while the node drains (BadRequest here).
        """
        url = self._node_path(node_id, "/eligibility")
        body = {"NodeID": node_id, "Eligibility": "eligible" if eligible else "ineligible"}
        reply = self._check(
            await self._request("POST", url, params=self._params(namespaced=False), body=body)
        )
        data = models._Reader(reply.where, self._json(reply))
        return data.int_("Index")

    async def purge_node(self, node_id: str) -> int:
        """Remove the node from Nomad's state (NotFound if already gone); returns the index."""
        url = self._node_path(node_id, "/purge")
        reply = self._check(await self._request("PUT", url, params=self._params(namespaced=False)))
        data = models._Reader(reply.where, self._json(reply))
        return data.int_("Index") or self._index(reply)

    async def node_allocations(
        self, node_id: str, *, index: int | None = None, wait: float | None = None
    ) -> QueryResult[list[Allocation]]:
        extra, timeout = self._blocking(index, wait)
        url = self._node_path(node_id, "/allocations")
        reply = await self._request(
            "GET", url, params=self._params(extra, namespaced=False), timeout=timeout
        )
        return self._list(reply, models.parse_allocation)

    # ------------------------------------------------------------ allocations, evaluations

    async def list_allocations(
        self,
        *,
        resources: bool = True,
        namespace: str = "*",
        index: int | None = None,
        wait: float | None = None,
    ) -> QueryResult[list[Allocation]]:
        """Allocations (stubs with resources), in every namespace by default.

        A node's load is everything placed on it, whoever's job it is.
        """
        extra, timeout = self._blocking(index, wait)
        params = self._params(
            {"namespace": namespace, "resources": True if resources else None, **extra},
            namespaced=False,
        )
        reply = await self._request("GET", "/v1/allocations", params=params, timeout=timeout)
        return self._list(reply, models.parse_allocation)

    async def get_job(self, job_id: str, namespace: str = "default") -> models.JobShape:
        """A job's shape (per-group resources, datacenters, class constraints); NotFound if none."""
        url = f"/v1/job/{quote(job_id, safe='')}"
        params = self._params({"namespace": namespace}, namespaced=False)
        reply = self._check(await self._request("GET", url, params=params))
        return models.parse_job(reply.where, self._json(reply))

    async def list_evaluations(
        self,
        *,
        status: str | None = "blocked",
        job: str | None = None,
        namespace: str = "*",
        index: int | None = None,
        wait: float | None = None,
    ) -> QueryResult[list[Evaluation]]:
        """Evaluations, by default the blocked ones: demand the cluster cannot place."""
        extra, timeout = self._blocking(index, wait)
        params = self._params(
            {"namespace": namespace, "status": status, "job": job, **extra}, namespaced=False
        )
        reply = await self._request("GET", "/v1/evaluations", params=params, timeout=timeout)
        return self._list(reply, models.parse_evaluation)

    async def status_peers(self) -> list[str]:
        """``GET /v1/status/peers``: the RPC addresses (``host:4647``) of the cluster's servers."""
        reply = self._check(
            await self._request("GET", "/v1/status/peers", params=self._params(namespaced=False))
        )
        data = self._json(reply)
        if not isinstance(data, list) or not all(isinstance(p, str) for p in data):
            raise BadRequest(f"{reply.where}: expected a list of server addresses, got {data!r}")
        return list(data)


_ID_SEGMENT = re.compile(r"^/v1/(node|job|allocation|evaluation|deployment)/[^/]+")


def route_of(method: str, path: str) -> str:
    """The route of a request, IDs and variable paths folded, as a low-cardinality label."""
    if path.startswith("/v1/var/"):
        return f"{method} /v1/var/:path"
    return f"{method} " + _ID_SEGMENT.sub(lambda m: f"/v1/{m.group(1)}/:id", path)


class NodeDetails:
    """Full node reads, cached by ModifyIndex: a node is read again only when it changed.

    Nomad's node list (``GET /v1/nodes``) leaves out Meta, DrainStrategy and
    StatusUpdatedAt; only ``GET /v1/node/:id`` has them. Every node write bumps
    the node's ModifyIndex, which the stubs do carry, so a cached full read is
    current exactly when its ModifyIndex is not behind the stub's.
    """

    def __init__(self, client: NomadClient, concurrency: int = 8) -> None:
        self.client = client
        self._slots = asyncio.Semaphore(concurrency)
        self._cache: dict[str, NodeStub] = {}
        self.reads = 0  # full reads made, for tests and benchmarks

    def cached(self, stub: NodeStub) -> NodeStub | None:
        """The full node for ``stub`` if one is cached and still current; never reads."""
        full = self._cache.get(stub.id)
        return full if full is not None and full.modify_index >= stub.modify_index else None

    async def fetch(self, stubs: Iterable[NodeStub]) -> list[NodeStub]:
        """The full nodes for ``stubs``, reading only those not cached; purged nodes are dropped."""

        async def one(stub: NodeStub) -> NodeStub | None:
            current = self.cached(stub)
            if current is not None:
                return current
            async with self._slots:
                self.reads += 1
                try:
                    full = await self.client.get_node(stub.id)
                except NotFound:
                    return None  # purged between the list and this read
            self._cache[stub.id] = full
            return full

        nodes = await asyncio.gather(*(one(s) for s in stubs))
        return [n for n in nodes if n is not None]

    def keep_only(self, node_ids: Iterable[str]) -> None:
        """Forget nodes that are gone, so the cache never outgrows the cluster."""
        live = set(node_ids)
        self._cache = {k: v for k, v in self._cache.items() if k in live}

    async def refresh(self, stubs: list[NodeStub]) -> list[NodeStub]:
        """The full nodes for every stub of a whole list (forgetting nodes not in it)."""
        self.keep_only(s.id for s in stubs)
        return await self.fetch(stubs)
