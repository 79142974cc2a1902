"""TLS for NATS and HTTP, by configuration: a client without the CA fails, with it succeeds.

The CA and the certificates are made at test time (trustme); the server is a real nats-server
with ``tls {}`` and the real HTTP API on an ``ssl`` context.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp
import pytest
import trustme
from aiohttp import web

from events.connection import ConnectionSettings, connect
from ops.http.app import build_app
from ops.runtime.manager import Manager
from ops.runtime.natsd import EmbeddedNats, TlsFiles, free_port
from ops.settings import ClientSettings, ManagerSettings


@pytest.fixture
def pki(tmp_path: Path) -> tuple[Path, TlsFiles]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    return ca_file, TlsFiles(cert=cert_file, key=key_file)


async def _ignore(_exc: Exception) -> None:
    return None


async def test_nats_and_http_over_tls_need_the_ca(
    tmp_path: Path, pki: tuple[Path, TlsFiles]
) -> None:
    ca_file, files = pki
    async with EmbeddedNats(tmp_path / "nats", tls=files) as server:
        assert server.url.startswith("tls://")
        with pytest.raises(Exception, match=r"(?i)certificate|ssl|tls"):
            await connect(ConnectionSettings(nats_url=server.url), name="no-ca",
                          reconnect_forever=False, error_cb=_ignore)  # fmt: skip
        trusted = ClientSettings(nats_url=server.url, tls_ca=str(ca_file))
        nc = await connect(trusted, name="with-ca", reconnect_forever=False)
        assert nc.is_connected
        await nc.close()

        async with Manager(trusted, ManagerSettings(master_tick_s=0.1)) as manager:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(files.cert, files.key)
            runner = web.AppRunner(build_app(manager, open_reads=True))
            await runner.setup()
            port = free_port()
            await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ctx).start()
            url = f"https://127.0.0.1:{port}/api/v1/streams"
            try:
                async with aiohttp.ClientSession() as http:
                    with pytest.raises(aiohttp.ClientConnectorCertificateError):
                        await http.get(url)
                    client_ctx = ssl.create_default_context(cafile=str(ca_file))
                    async with http.get(url, ssl=client_ctx) as r:
                        assert r.status == 200 and (await r.json())["ok"]
            finally:
                await runner.cleanup()
