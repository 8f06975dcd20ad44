"""Security defaults: no pickle by default, Redis AUTH and TLS on a real server, no password shown.

The Redis tests start a redis-server of their own with `requirepass` and a TLS port, using a
throwaway certificate authority made with the openssl command at test time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

import corequeue as cq
from corequeue.cli import main
from corequeue.codec import JsonCodec
from corequeue.config import parse_config
from corequeue.drivers.base import Driver, QueueInfo
from corequeue.drivers.postgres import PostgresDriver
from corequeue.drivers.redis import RedisDriver
from corequeue.factory import QueueFactory
from corequeue.redact import redact
from tests.integration.conftest import consuming, eventually
from tests.support.tls import free_port, make_certificates

PASSWORD = "correct-horse-battery-staple"
WRONG = "not-the-password-at-all"
STARTUP_SECONDS = 10.0

UNPICKLED: list[str] = []


def _record_unpickling(marker: str) -> None:
    UNPICKLED.append(marker)


class _Trap:
    """Unpickling this calls `_record_unpickling`: proof that someone ran pickle.loads."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return _record_unpickling, ("unpickled",)


# --- pickle ---------------------------------------------------------------------------------


def test_the_default_codec_is_json_everywhere(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)

    assert isinstance(cq.Queue(cq.InProcessDriver()).codec, JsonCodec)
    assert isinstance(QueueFactory().make("default").codec, JsonCodec)


async def test_pickled_bytes_in_the_store_are_never_unpickled_by_default(driver: Driver) -> None:
    queue = cq.Queue(driver)
    trap = pickle.dumps(_Trap())
    ran: list[Any] = []
    queue.subscribe(cq.listen(dict, ran.append))
    await driver.push(cq.PersistedJob(id="trap", type="builtins.dict", value=trap), timedelta(0))

    async with consuming(queue):
        await eventually(lambda: _settled(queue, QueueInfo(failed=1)))

    assert UNPICKLED == []
    assert ran == []


async def _settled(queue: cq.Queue, expected: QueueInfo) -> bool:
    return await queue.info() == expected


# --- a redis-server with AUTH and TLS ---------------------------------------------------------


@dataclass(frozen=True)
class SecureRedis:
    """A redis-server that wants a password, on a plain port and a TLS port."""

    port: int
    tls_port: int
    ca_file: Path

    def url(self, password: str = PASSWORD) -> str:
        return f"redis://:{password}@127.0.0.1:{self.port}/0"

    def tls_url(self, password: str = PASSWORD) -> str:
        return f"rediss://:{password}@127.0.0.1:{self.tls_port}/0"


@pytest.fixture(scope="module")
def secure_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureRedis]:
    binary, openssl = shutil.which("redis-server"), shutil.which("openssl")
    if binary is None or openssl is None:
        message = "redis-server and openssl are needed (scripts/test installs redis-server)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    folder = tmp_path_factory.mktemp("secure-redis")
    ca_file, cert, key = make_certificates(
        openssl, folder, common_name="127.0.0.1", alt_names="IP:127.0.0.1,DNS:localhost"
    )
    port, tls_port = free_port(), free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder), "--requirepass", PASSWORD, "--tls-port", str(tls_port),
         "--tls-cert-file", str(cert), "--tls-key-file", str(key),
         "--tls-ca-cert-file", str(ca_file), "--tls-auth-clients", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until_answering(port)
        yield SecureRedis(port, tls_port, ca_file)
    finally:
        server.terminate()
        server.wait(timeout=10)


def wait_until_answering(port: int) -> None:
    client = redis.Redis(port=port, password=PASSWORD, socket_timeout=1)
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


async def round_trip(driver: RedisDriver) -> list[int]:
    """Dispatch one job and consume it; return what the listener saw."""
    queue = cq.Queue(driver)
    seen: list[int] = []

    @queue.listener(int)
    async def record(job: cq.ReceivedJob) -> None:
        seen.append(job.data)

    await queue.dispatch(42)
    try:
        async with consuming(queue):
            await eventually(lambda: _settled_after(queue, seen))
    finally:
        await queue.close()
    return seen


async def _settled_after(queue: cq.Queue, seen: list[int]) -> bool:
    return bool(seen) and await queue.info() == QueueInfo()


# --- AUTH ---------------------------------------------------------------------------------------


async def test_the_right_password_runs_the_queue(secure_redis: SecureRedis) -> None:
    driver = RedisDriver.from_url(secure_redis.url(), name="auth")

    assert await round_trip(driver) == [42]
    assert PASSWORD not in repr(driver)


@pytest.mark.parametrize("password", ["", WRONG], ids=["no-password", "wrong-password"])
async def test_a_missing_or_wrong_password_is_refused_without_showing_it(
    secure_redis: SecureRedis, password: str
) -> None:
    url = secure_redis.url(password) if password else f"redis://127.0.0.1:{secure_redis.port}/0"
    queue = cq.Queue(RedisDriver.from_url(url, name="auth"))

    with pytest.raises(cq.StoreUnavailable) as raised:
        await queue.dispatch(1)
    await queue.close()

    assert re.search("auth|password", str(raised.value), re.IGNORECASE)
    assert WRONG not in str(raised.value)
    assert WRONG not in repr(queue.driver)


async def test_a_worker_with_a_wrong_password_logs_without_it(
    secure_redis: SecureRedis, caplog: pytest.LogCaptureFixture
) -> None:
    queue = cq.Queue(RedisDriver.from_url(secure_redis.url(WRONG), name="auth"))

    with caplog.at_level(logging.DEBUG):
        async with consuming(queue):
            await eventually(lambda: _logged(caplog, "cannot pop"))
    await queue.close()

    assert WRONG not in caplog.text
    assert all(WRONG not in str(record.args) for record in caplog.records)


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    await asyncio.sleep(0)
    return text in caplog.text


# --- TLS ----------------------------------------------------------------------------------------


async def test_rediss_with_the_servers_ca_runs_the_queue(secure_redis: SecureRedis) -> None:
    driver = RedisDriver.from_url(
        secure_redis.tls_url(), name="tls", ssl_ca_certs=str(secure_redis.ca_file)
    )

    assert await round_trip(driver) == [42]
    assert repr(driver).startswith("RedisDriver('rediss://")
    assert PASSWORD not in repr(driver)


async def test_rediss_refuses_a_certificate_it_cannot_verify(secure_redis: SecureRedis) -> None:
    # No CA given: the system's authorities do not know the throwaway one.
    driver = RedisDriver.from_url(secure_redis.tls_url(), name="tls")

    with pytest.raises(cq.StoreUnavailable, match="certificate verify failed") as raised:
        await driver.push(cq.PersistedJob(id="a", type="t", value=b"1"), timedelta(0))
    await driver.close()

    assert PASSWORD not in str(raised.value)


async def test_plain_redis_to_the_tls_port_fails_cleanly(secure_redis: SecureRedis) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{secure_redis.tls_port}/0"
    driver = RedisDriver.from_url(url, name="tls", socket_timeout=2, socket_connect_timeout=2)

    with pytest.raises(cq.StoreUnavailable) as raised:
        await driver.push(cq.PersistedJob(id="a", type="t", value=b"1"), timedelta(0))
    await driver.close()

    assert PASSWORD not in str(raised.value)


# --- the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["plain", "tls"])
def test_the_cli_reaches_a_protected_server_and_never_prints_its_password(
    secure_redis: SecureRedis, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    url = secure_redis.url() if kind == "plain" else secure_redis.tls_url()
    if kind == "tls":
        url += f"?ssl_ca_certs={secure_redis.ca_file}"
    config = tmp_path / "secure.yaml"
    config.write_text(f"queue: {{q: {{redisName: secure}}}}\nredis: {{secure: {{url: '{url}'}}}}\n")

    codes = [main(["queue", "info", "--config", str(config), *extra]) for extra in ([], ["--json"])]

    captured = capsys.readouterr()
    assert codes == [0, 0]
    assert PASSWORD not in captured.out + captured.err


def test_the_cli_reports_a_wrong_password_without_it(
    secure_redis: SecureRedis, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "wrong.yaml"
    url = secure_redis.url(WRONG)
    config.write_text(f"queue: {{q: {{redisName: secure}}}}\nredis: {{secure: {{url: '{url}'}}}}\n")

    code = main(["queue", "info", "--config", str(config)])

    captured = capsys.readouterr()
    assert code == 1
    assert WRONG not in captured.out + captured.err


# --- PostgreSQL ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://app:{PASSWORD}@127.0.0.1:{{port}}/app",
        f"postgresql://app@127.0.0.1:{{port}}/app?password={PASSWORD}",
        f"host=127.0.0.1 port={{port}} user=app password={PASSWORD} dbname=app",
        f"host=127.0.0.1 port={{port}} user=app password='{PASSWORD}' dbname=app",
    ],
    ids=["url", "url-query", "keywords", "quoted-keywords"],
)
async def test_postgres_reprs_and_errors_never_show_the_password(
    dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    driver = PostgresDriver(dsn.format(port=free_port()), pool_timeout=timedelta(seconds=1))
    queue = cq.Queue(driver)

    with pytest.raises(cq.StoreUnavailable) as raised:
        await queue.dispatch(1)
    with caplog.at_level(logging.DEBUG):
        async with consuming(queue):
            await eventually(lambda: _logged(caplog, "cannot pop"))
    await queue.close()

    assert PASSWORD not in repr(driver) + repr(queue) + str(raised.value)
    assert PASSWORD not in caplog.text


# --- passwords holding '/', '?' or '#' (one redaction rule for every URL and DSN) -------------

UNENCODED = ["hun/ter2", "hun?ter2", "hun#ter2", "hunter2/"]
"""Passwords with a character that ends a URL's authority; base64 passwords often have '/'."""


def _leaks(text: str, password: str) -> bool:
    return any(part and part in text for part in re.split(r"[/?#]", password))


@pytest.mark.parametrize("password", UNENCODED)
@pytest.mark.parametrize(
    "url",
    ["redis://:{p}@cache:6379/0", "redis+cluster://app:{p}@n1:7000,n2:7001", "rediss://{p}@c/0"],
)
def test_redis_urls_with_unencoded_passwords_are_refused_without_quoting_them(
    url: str, password: str
) -> None:
    with pytest.raises(cq.InvalidOption) as raised:
        RedisDriver.from_url(url.format(p=password), name="q")

    assert "percent-encoded" in str(raised.value)
    assert not _leaks(str(raised.value), password)


@pytest.mark.parametrize("password", UNENCODED)
def test_postgres_dsns_with_unencoded_passwords_are_refused_without_quoting_them(
    password: str,
) -> None:
    with pytest.raises(cq.InvalidOption) as raised:
        PostgresDriver(f"postgresql://app:{password}@db:5432/app")

    assert "percent-encoded" in str(raised.value)
    assert not _leaks(str(raised.value), password)


@pytest.mark.parametrize(
    ("section", "url"),
    [
        ("redis", "redis://:{p}@cache:6379/0"),
        ("postgres", "postgresql://app:{p}@db/app"),
    ],
)
@pytest.mark.parametrize("password", UNENCODED)
def test_the_cli_refuses_unencoded_passwords_in_one_line_without_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], section: str, url: str, password: str
) -> None:
    secret = url.format(p=password)
    config = tmp_path / "app.yaml"
    if section == "redis":
        config.write_text(f"queue: {{q: {{redisName: c}}}}\nredis: {{c: {{url: '{secret}'}}}}\n")
    else:
        config.write_text(f"queue: {{q: {{driver: postgres, dsn: '{secret}'}}}}\n")

    code = main(["queue", "info", "--config", str(config)])

    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert "percent-encoded" in captured.err
    assert not _leaks(captured.err, password)


@pytest.mark.parametrize(
    "url",
    [
        "redis://worker:hunter2@cache:6379/0",
        "redis://worker:hun%2Fter2@cache:6379/0?password=hunter2",
        "rediss+sentinel://:hunter2@s1:26379,s2:26379/mymaster/0",
    ],
)
def test_config_and_the_redis_driver_show_a_url_the_same_way(url: str) -> None:
    settings = cq.QueueFactory(
        config=parse_config({"queue": {"q": {"redisName": "c"}}, "redis": {"c": {"url": url}}})
    ).settings("q")
    driver = RedisDriver.from_url(url, name="q")

    assert redact(url) in settings.describe()
    assert redact(url) in repr(driver)
    assert "hunter2" not in settings.describe() + repr(settings) + repr(driver)
    assert "hun%2Fter2" not in settings.describe() + repr(driver)


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://app:hunter2@db:5432/app",
        "postgresql://app:hun%2Fter2@db/app?sslmode=disable&password=hunter2",
        "host=db user=app password='hunter2' dbname=app",
    ],
)
def test_config_and_the_postgres_driver_show_a_dsn_the_same_way(dsn: str) -> None:
    settings = cq.QueueFactory(
        config=parse_config({"queue": {"q": {"driver": "postgres", "dsn": dsn}}})
    ).settings("q")
    driver = PostgresDriver(dsn)

    assert redact(dsn) in settings.describe()
    assert redact(dsn) in repr(driver)
    assert "hunter2" not in settings.describe() + repr(settings) + repr(driver)
