"""The simulated daemon's TLS, as multipassd does it: a client certificate is asked for
at the handshake, but neither required nor verified; trust is decided afterwards.

grpcio's Python server cannot do that (it asks for no client certificate, or verifies
it against given roots), so TLS ends here, in front of it: pyOpenSSL terminates each
connection (asking for a client certificate and accepting whatever comes, ALPN "h2" as
gRPC wants), and pumps the plaintext to the gRPC server on a loopback port. Which
certificate each forwarded connection came with is kept by the local address of that
loopback connection, which is the peer the gRPC server sees (``identity_of``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from OpenSSL import SSL

log = logging.getLogger(__name__)
_CHUNK = 65536


def _accept_any(conn: SSL.Connection, cert: object, errnum: int, depth: int, ok: int) -> bool:
    return True  # the daemon does not verify client certificates: authenticate decides


def _select_h2(conn: SSL.Connection, offered: list[bytes]) -> bytes:
    return b"h2" if b"h2" in offered else SSL.NO_OVERLAPPING_PROTOCOLS  # type: ignore[return-value]


def server_context(cert_pem: bytes, key_pem: bytes) -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.use_certificate(x509.load_pem_x509_certificate(cert_pem))  # type: ignore[arg-type]
    ctx.use_privatekey(load_pem_private_key(key_pem, password=None))  # type: ignore[arg-type]
    # VERIFY_PEER without FAIL_IF_NO_PEER_CERT: ask for a certificate, require none.
    ctx.set_verify(SSL.VERIFY_PEER, _accept_any)
    ctx.set_alpn_select_callback(_select_h2)
    return ctx


class TlsFront:
    def __init__(
        self, cert_pem: bytes, key_pem: bytes, backend_port: int, host: str, port: int = 0
    ) -> None:
        self._ctx = server_context(cert_pem, key_pem)
        self.backend_port = backend_port
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        # "ipv4:127.0.0.1:<port>" of each forwarded connection -> its client certificate's
        # SHA-256 fingerprint (None: the client sent none).
        self._identities: dict[str, str | None] = {}

    def identity_of(self, peer: str) -> str | None:
        return self._identities.get(peer)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(BaseException):
                await task

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (OSError, SSL.Error, ConnectionError) as exc:
            log.debug("TLS connection ended: %s", exc)
        except asyncio.CancelledError:
            # Cut by stop(): end quietly, or asyncio's stream callback logs the
            # cancellation as an error (it asks the finished task for its exception).
            log.debug("TLS connection cut: the front stops")
        finally:
            self._connections.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = SSL.Connection(self._ctx, None)
        conn.set_accept_state()

        async def flush() -> None:
            while True:
                try:
                    data = conn.bio_read(_CHUNK)
                except SSL.WantReadError:
                    break
                writer.write(data)
            await writer.drain()

        while True:
            try:
                conn.do_handshake()
                break
            except SSL.WantReadError:
                await flush()
                data = await reader.read(_CHUNK)
                if not data:
                    return
                conn.bio_write(data)
        await flush()
        peer_cert = conn.get_peer_certificate()
        identity = None
        if peer_cert is not None:
            identity = peer_cert.to_cryptography().fingerprint(hashes.SHA256()).hex()
        b_reader, b_writer = await asyncio.open_connection("127.0.0.1", self.backend_port)
        local_port = b_writer.get_extra_info("sockname")[1]
        key = f"ipv4:127.0.0.1:{local_port}"
        self._identities[key] = identity

        async def inbound() -> None:
            while data := await reader.read(_CHUNK):
                conn.bio_write(data)
                while True:
                    try:
                        plain = conn.recv(_CHUNK)
                    except SSL.WantReadError:
                        break
                    except SSL.ZeroReturnError:
                        return
                    b_writer.write(plain)
                await b_writer.drain()
                await flush()

        async def outbound() -> None:
            while data := await b_reader.read(_CHUNK):
                conn.sendall(data)
                await flush()

        pumps = [asyncio.ensure_future(inbound()), asyncio.ensure_future(outbound())]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            for pump in pumps:
                with contextlib.suppress(BaseException):
                    await pump
            b_writer.close()
            self._identities.pop(key, None)
