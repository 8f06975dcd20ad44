"""Configuration: files, Go keys, environment overrides, lookup order, errors and redaction."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from corequeue.config import (
    BUILT_IN,
    DEFAULT_REDIS_URL,
    Config,
    ConfigError,
    QueueSettings,
    find_config_file,
    load_config,
    parse_config,
    parse_config_text,
)
from corequeue.errors import InvalidOption
from corequeue.redact import redact

SPEC_YAML = """\
queue:
  default:  {redisName: default, parallelism: 3, checkQueueLengthIntervalSecond: 15}
  myQueue:  {driver: sqlite, path: jobs.db, parallelism: 1}
redis:
  default:  {url: redis://localhost:6379/0}
"""

SPEC_TOML = """\
[queue.default]
redisName = "default"
parallelism = 3
checkQueueLengthIntervalSecond = 15

[queue.myQueue]
driver = "sqlite"
path = "jobs.db"

[redis.default]
url = "redis://localhost:6379/0"
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


# --- reading -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "text"), [("app.yaml", SPEC_YAML), ("app.toml", SPEC_TOML)])
def test_spec_example_reads_the_same_from_yaml_and_toml(
    tmp_path: Path, name: str, text: str
) -> None:
    config = load_config(write(tmp_path, name, text), environ={})

    default, mine = config.queue("default"), config.queue("myQueue")
    assert config.names == ("default", "myQueue")
    assert (default.driver, default.redis_name, default.redis_url) == (
        "redis",
        "default",
        "redis://localhost:6379/0",
    )
    assert default.parallelism == 3
    assert default.check_queue_length_interval == timedelta(seconds=15)
    assert (mine.driver, mine.path, mine.parallelism) == ("sqlite", tmp_path / "jobs.db", 1)
    assert config.source == str(tmp_path / name)


def test_go_sample_config_in_json_is_accepted_unchanged() -> None:
    text = (
        '{"log":{"level":"error"},'
        '"queue":{"default":{"parallelism":2},"myQueue":{"parallelism":1}}}'
    )

    config = parse_config(parse_config_text(text))

    assert config.log_level == "error"
    assert [config.queue(n).parallelism for n in config.names] == [2, 1]


def test_queue_without_driver_uses_sqlite_next_to_the_file_or_redis_when_it_names_one(
    tmp_path: Path,
) -> None:
    config = parse_config(
        {"queue": {"plain": {}, "cached": {"redisName": "default"}}}, base_dir=tmp_path
    )

    assert config.queue("plain").driver == "sqlite"
    assert config.queue("plain").path == tmp_path / "corequeue.db"
    assert config.queue("cached").driver == "redis"
    assert config.queue("cached").redis_url == DEFAULT_REDIS_URL  # `default` needs no entry


def test_default_queue_exists_unconfigured_and_unknown_names_are_listed() -> None:
    config = parse_config({"queue": {"emails": {"driver": "memory"}}}, source="app.yaml")

    assert config.queue("default") == QueueSettings("default", "sqlite")
    with pytest.raises(InvalidOption, match=r"unknown queue 'nope'.*emails \(app.yaml\)"):
        config.queue("nope")


def test_every_driver_takes_its_own_settings() -> None:
    config = parse_config(
        {
            "queue": {
                "m": {"driver": "memory"},
                "p": {"driver": "postgres", "dsn": "postgresql://app@db/app", "schema": "jobs"},
                "r": {"driver": "redis", "redisName": "cache"},
            },
            "redis": {"cache": {"url": "redis://cache:6379/2"}},
        }
    )

    assert config.queue("m").driver == "memory"
    assert (config.queue("p").dsn, config.queue("p").schema) == ("postgresql://app@db/app", "jobs")
    assert config.queue("r").redis_url == "redis://cache:6379/2"


def test_empty_file_means_one_default_queue(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "corequeue.yaml", ""), environ={})

    assert config.names == ("default",)
    assert config.queue("default").path == tmp_path / "corequeue.db"


def test_settings_are_frozen() -> None:
    config = parse_config({"queue": {"q": {}}})

    with pytest.raises(dataclasses.FrozenInstanceError):
        config.queue("q").parallelism = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.queues["other"] = QueueSettings("other")  # type: ignore[index]


# --- environment -----------------------------------------------------------------------------


def test_environment_overrides_keys_matching_names_and_keys_in_any_case() -> None:
    environ = {
        "COREQUEUE_QUEUE__MYQUEUE__PARALLELISM": "4",
        "COREQUEUE_QUEUE__MYQUEUE__CHECK_QUEUE_LENGTH_INTERVAL_SECOND": "0.5",
        "COREQUEUE_REDIS__DEFAULT__URL": "redis://other:6379/1",
        "COREQUEUE_LOG__LEVEL": "DEBUG",
        "COREQUEUE_CONFIG": "ignored here",
        "COREQUEUE_TEST_REDIS_URL": "no double underscore: not an override",
    }

    config = parse_config(parse_config_text(SPEC_YAML), environ=environ)

    assert config.queue("myQueue").parallelism == 4
    assert config.queue("myQueue").check_queue_length_interval == timedelta(milliseconds=500)
    assert config.queue("default").redis_url == "redis://other:6379/1"
    assert config.log_level == "debug"


def test_environment_alone_can_configure_a_queue_named_in_lower_case() -> None:
    config = parse_config({}, environ={"COREQUEUE_QUEUE__EMAILS__DRIVER": "memory"})

    assert config.names == ("emails",)
    assert config.queue("emails").driver == "memory"


def test_load_config_applies_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COREQUEUE_QUEUE__DEFAULT__PARALLELISM", "7")

    config = load_config(write(tmp_path, "app.yaml", SPEC_YAML))

    assert config.queue("default").parallelism == 7


# --- lookup order ------------------------------------------------------------------------------


def test_lookup_prefers_the_named_file_then_the_variable_then_yaml_then_toml(
    tmp_path: Path,
) -> None:
    named = write(tmp_path, "named.yaml", "")
    variable = write(tmp_path, "variable.yaml", "")
    toml = write(tmp_path, "corequeue.toml", "")
    environ = {"COREQUEUE_CONFIG": str(variable)}

    assert find_config_file(named, environ=environ, cwd=tmp_path) == named
    assert find_config_file(None, environ=environ, cwd=tmp_path) == variable
    assert find_config_file(None, environ={}, cwd=tmp_path) == toml
    yaml = write(tmp_path, "corequeue.yaml", "")
    assert find_config_file(None, environ={}, cwd=tmp_path) == yaml


def test_without_any_file_the_built_in_default_is_one_sqlite_queue(tmp_path: Path) -> None:
    config = load_config(environ={}, cwd=tmp_path)

    assert config.source == BUILT_IN
    assert config.names == ("default",)
    assert config.queue("default").driver == "sqlite"
    assert config.queue("default").path == Path("corequeue.db")


@pytest.mark.parametrize("via", ["--config", "COREQUEUE_CONFIG"])
def test_a_named_file_that_is_missing_is_an_error(tmp_path: Path, via: str) -> None:
    missing = tmp_path / "missing.yaml"
    path, environ = (missing, {}) if via == "--config" else (None, {via: str(missing)})

    with pytest.raises(ConfigError, match=rf"missing.yaml: no such file \(named by {via}\)"):
        load_config(path, environ=environ, cwd=tmp_path)


# --- errors ------------------------------------------------------------------------------------

BAD_CONFIGS: list[tuple[dict[str, Any], str, str]] = [
    (
        {"queue": {"q": {"driver": "mysql"}}},
        "queue.q.driver",
        "expected one of memory, sqlite, redis, postgres, got 'mysql'",
    ),
    (
        {"queue": {"q": {"redisName": "cache"}}},
        "queue.q.redisName",
        "expected the name of a redis.<name> entry (configured: none), got 'cache'",
    ),
    (
        {"queue": {"q": {"parallelism": "3"}}},
        "queue.q.parallelism",
        "expected a whole number of at least 1, got '3'",
    ),
    (
        {"queue": {"q": {"parallelism": -2}}},
        "queue.q.parallelism",
        "expected a whole number of at least 1, got -2",
    ),
    (
        {"queue": {"q": {"parallelism": True}}},
        "queue.q.parallelism",
        "expected a whole number of at least 1, got True",
    ),
    (
        {"queue": {"q": {"checkQueueLengthIntervalSecond": 0}}},
        "queue.q.checkQueueLengthIntervalSecond",
        "expected a number of seconds more than 0, got 0",
    ),
    (
        {"queue": {"q": {"shutdownGraceSecond": -1}}},
        "queue.q.shutdownGraceSecond",
        "expected a number of seconds at least 0, got -1",
    ),
    (
        {"queue": {"q": {"paralelism": 2}}},
        "queue.q.paralelism",
        "unknown key; expected one of driver, redisName, parallelism",
    ),
    ({"queues": {}}, "queues", "unknown key; expected queue, redis or log"),
    (
        {"queue": {"q": {"driver": "postgres"}}},
        "queue.q.dsn",
        "expected a PostgreSQL DSN: driver postgres needs one",
    ),
    (
        {"queue": {"q": {"driver": "memory", "path": "x.db"}}},
        "queue.q.path",
        "applies to driver sqlite only, not memory",
    ),
    ({"queue": {"q": {"path": ""}}}, "queue.q.path", "expected a non-empty string, got ''"),
    ({"queue": {"q": 3}}, "queue.q", "expected a mapping of settings, got 3"),
    ({"queue": ["q"]}, "queue", "expected a mapping, got a list"),
    (
        {"redis": {"cache": {}}},
        "redis.cache.url",
        "expected a URL such as redis://localhost:6379/0",
    ),
    (
        {"redis": {"cache": {"url": 6379}}},
        "redis.cache.url",
        "expected a URL such as redis://localhost:6379/0, got 6379",
    ),
    ({"redis": {"cache": {"host": "x"}}}, "redis.cache.host", "unknown key; expected one of url"),
    (
        {"log": {"level": "loud"}},
        "log.level",
        "expected one of debug, info, warning, error, critical, got 'loud'",
    ),
]


@pytest.mark.parametrize(("data", "key", "expected"), BAD_CONFIGS)
def test_bad_config_names_the_file_the_key_and_what_is_expected(
    tmp_path: Path, data: dict[str, Any], key: str, expected: str
) -> None:
    import yaml

    path = write(tmp_path, "app.yaml", yaml.safe_dump(data))

    with pytest.raises(ConfigError) as raised:
        load_config(path, environ={})

    assert str(raised.value).startswith(f"{path}: {key}: {expected}")
    assert (raised.value.source, raised.value.key) == (str(path), key)
    assert isinstance(raised.value, InvalidOption)


@pytest.mark.parametrize(
    ("variable", "value", "key", "expected"),
    [
        (
            "COREQUEUE_QUEUE__DEFAULT__PARALLELISM",
            "-1",
            "queue.default.parallelism",
            "expected a whole number of at least 1, got -1",
        ),
        (
            "COREQUEUE_QUEUE__DEFAULT__PARALLELISM",
            "many",
            "queue.default.parallelism",
            "expected a whole number of at least 1, got 'many'",
        ),
        (
            "COREQUEUE_QUEUE__DEFAULT__DRIVER",
            "mongo",
            "queue.default.driver",
            "expected one of memory, sqlite, redis, postgres, got 'mongo'",
        ),
        (
            "COREQUEUE_QUEUE__DEFAULT__COLOUR",
            "red",
            "queue.default.COLOUR",
            "unknown key; expected one of driver",
        ),
        ("COREQUEUE_QUEUE__DEFAULT", "1", "", "expected COREQUEUE_QUEUE__<NAME>__<KEY>"),
        (
            "COREQUEUE_QUEUES__DEFAULT__DRIVER",
            "memory",
            "",
            "expected COREQUEUE_QUEUE__<NAME>__<KEY>",
        ),
    ],
)
def test_bad_environment_override_names_the_variable_the_key_and_what_is_expected(
    variable: str, value: str, key: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({}, source="app.yaml", environ={variable: value})

    where = f"environment variable {variable}: {key}" if key else f"environment variable {variable}"
    assert raised.value.source == f"environment variable {variable}"
    assert str(raised.value).startswith(f"{where}: {expected}")


def test_unknown_redis_name_lists_the_configured_ones() -> None:
    data = {"queue": {"q": {"redisName": "cahce"}}, "redis": {"cache": {"url": "redis://c/0"}}}

    with pytest.raises(ConfigError, match=r"configured: cache\), got 'cahce'"):
        parse_config(data, source="app.yaml")


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("app.yaml", "queue: [unclosed", "expected valid YAML or JSON: "),
        ("app.toml", "queue = {", "expected valid TOML: "),
        ("app.yaml", "- a list", "expected a mapping at the top, got a list"),
    ],
)
def test_unparsable_file_names_the_file_and_the_format(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    path = write(tmp_path, name, text)

    with pytest.raises(ConfigError, match=f"^{path}: {expected}"):
        load_config(path, environ={})


# --- secrets -----------------------------------------------------------------------------------


def test_reprs_hide_passwords() -> None:
    config = parse_config(
        {
            "queue": {
                "r": {"redisName": "cache"},
                "p": {"driver": "postgres", "dsn": "postgresql://app:hunter2@db/app"},
                "k": {"driver": "postgres", "dsn": "host=db password=hunter2 dbname=app"},
            },
            "redis": {"cache": {"url": "redis://worker:hunter2@cache:6379/0"}},
        }
    )

    shown = repr(config) + "".join(config.queue(name).describe() for name in config.names)
    assert "hunter2" not in shown
    assert "redis://***@cache:6379/0" in shown
    assert "postgresql://***@db/app" in shown


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("app.yaml", "redis:\n  a: {url: redis://:hunter2@cache:6379/0\n"),
        ("app.toml", '[redis.a]\nurl = "redis://:hunter2@cache:6379/0\n'),
    ],
)
def test_syntax_errors_say_where_without_quoting_the_line(
    tmp_path: Path, name: str, text: str
) -> None:
    path = write(tmp_path, name, text)

    with pytest.raises(ConfigError) as raised:
        load_config(path, environ={})

    assert "hunter2" not in str(raised.value)
    assert "line " in str(raised.value)


def test_error_about_a_malformed_url_does_not_echo_it() -> None:
    data = {"redis": {"cache": {"url": "redis:/worker:hunter2@cache"}}}

    with pytest.raises(ConfigError) as raised:
        parse_config(data, source="app.yaml")

    assert "hunter2" not in str(raised.value)
    assert "got a string without '://'" in str(raised.value)


@pytest.mark.parametrize(
    ("secret", "shown"),
    [
        ("redis://:hunter2@cache:6379/0", "redis://***@cache:6379/0"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        ("rediss://user@cache/0?password=hunter2&x=1", "rediss://***@cache/0?password=***&x=1"),
        ("host=db password='hun ter2' user=app", "host=db password=*** user=app"),
        ("host=db sslpassword=hunter2 user=app", "host=db sslpassword=*** user=app"),
        ("redis://:hun/ter2@cache:6379/0", "redis://***@cache:6379/0"),
        ("postgresql://app:hun#ter?2@db/app", "postgresql://***@db/app"),
        ("redis://a@b:hunter2@cache/0", "redis://***@cache/0"),
    ],
)
def test_redact_replaces_passwords(secret: str, shown: str) -> None:
    assert redact(secret) == shown


def test_config_is_a_plain_value() -> None:
    assert Config().names == ()
    assert Config().queue("default").driver == "sqlite"
