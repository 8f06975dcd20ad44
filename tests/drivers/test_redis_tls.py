"""rediss:// checks the server's host name, whatever the redis-py version.

A redis-server speaks TLS with a certificate signed by a throwaway authority (made with the
openssl command) for another name than the address the driver dials: the certificate is valid,
the name is not, so the connection must be refused. redis-py 5.x did not check host names
unless asked; the driver asks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import redis

from corequeue.drivers.redis import RedisDriver
from corequeue.drivers.redis.connection import UrlSource
from corequeue.errors import StoreUnavailable
from tests.support.jobs import persisted
from tests.support.tls import free_port, make_certificates

STARTUP_SECONDS = 10.0


@dataclass(frozen=True)
class TlsServer:
    """A redis-server on a TLS port whose certificate names `other.example` and `localhost`."""

    tls_port: int
    ca_file: Path

    def url(self, host: str, query: str = "") -> str:
        return f"rediss://{host}:{self.tls_port}/0?ssl_ca_certs={self.ca_file}{query}"


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    binary, openssl = shutil.which("redis-server"), shutil.which("openssl")
    if binary is None or openssl is None:
        message = "redis-server and openssl are needed (scripts/test installs redis-server)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    folder = tmp_path_factory.mktemp("tls-redis")
    ca_file, cert, key = make_certificates(
        openssl, folder, common_name="other.example", alt_names="DNS:other.example,DNS:localhost"
    )
    port, tls_port = free_port(), free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder), "--tls-port", str(tls_port), "--tls-cert-file", str(cert),
         "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca_file),
         "--tls-auth-clients", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_until_answering(port)
        yield TlsServer(tls_port, ca_file)
    finally:
        server.terminate()
        server.wait(timeout=10)


async def test_a_certificate_for_another_host_name_is_refused(tls_server: TlsServer) -> None:
    driver = RedisDriver.from_url(tls_server.url("127.0.0.1"), name="tls")
    try:
        with pytest.raises(
            StoreUnavailable, match=r"certificate verify failed: (IP address|Hostname) mismatch"
        ):
            await driver.push(persisted("a"), timedelta(0))
    finally:
        await driver.close()


async def test_the_host_name_the_certificate_names_is_accepted(tls_server: TlsServer) -> None:
    driver = RedisDriver.from_url(tls_server.url("localhost"), name="tls")
    try:
        await driver.push(persisted("a"), timedelta(0))

        assert (await driver.pop()).id == "a"
    finally:
        await driver.flush("reserved")
        await driver.close()


async def test_turning_the_check_off_is_an_explicit_choice(tls_server: TlsServer) -> None:
    url = tls_server.url("127.0.0.1", "&ssl_check_hostname=false")
    driver = RedisDriver.from_url(url, name="tls")
    try:
        assert (await driver.info()).pending == 0
    finally:
        await driver.close()


@pytest.mark.parametrize(
    "url",
    [
        "rediss://cache:6380/0",
        "rediss+cluster://n1:7000,n2:7001",
        "rediss+sentinel://s1:26379/mymaster/0",
        "rediss://cache:6380/0?ssl_cert_reqs=required",
    ],
)
def test_every_tls_url_asks_for_the_host_name_check(url: str) -> None:
    source = UrlSource(url, options={})

    assert source._options["ssl_check_hostname"] is True


@pytest.mark.parametrize(
    ("url", "options"),
    [
        ("redis://cache:6379/0", {}),
        ("rediss://cache:6380/0?ssl_cert_reqs=none", {}),  # no verification, so no name check
        ("rediss://cache:6380/0", {"ssl_cert_reqs": "none"}),
        ("rediss://cache:6380/0?ssl_check_hostname=false", {}),
        ("rediss://cache:6380/0", {"ssl_check_hostname": False}),
    ],
)
def test_the_check_is_left_to_an_explicit_setting_or_plain_connections(
    url: str, options: dict[str, object]
) -> None:
    source = UrlSource(url, options=options)

    assert source._options.get("ssl_check_hostname", False) is False


def _wait_until_answering(port: int) -> None:
    client = redis.Redis(port=port, socket_timeout=1)
    deadline = time.monotonic() + STARTUP_SECONDS
    try:
        while True:
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.02)
    finally:
        client.close()
