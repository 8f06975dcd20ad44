"""Configuration: files, Go keys, environment overrides, lookup order, errors and redaction."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import corequeue as cq
from corequeue.config import (
    BUILT_IN,
    DEFAULT_REDIS_URL,
    DRIVER_REGISTRY,
    DRIVERS,
    Config,
    ConfigError,
    MemorySettings,
    PeriodicSettings,
    PostgresSettings,
    QueueSettings,
    RedisQueueSettings,
    SQLiteSettings,
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
    assert default.driver == "redis"
    assert default.store == RedisQueueSettings("default", "redis://localhost:6379/0")
    assert default.parallelism == 3
    assert default.check_queue_length_interval == timedelta(seconds=15)
    assert (mine.driver, mine.store, mine.parallelism) == (
        "sqlite",
        SQLiteSettings(tmp_path / "jobs.db"),
        1,
    )
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
    assert config.queue("plain").store == SQLiteSettings(tmp_path / "corequeue.db")
    assert config.queue("cached").driver == "redis"
    assert config.queue("cached").store == RedisQueueSettings("default", DEFAULT_REDIS_URL)


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
    assert config.queue("p").store == PostgresSettings("postgresql://app@db/app", "jobs")
    assert config.queue("r").store == RedisQueueSettings("cache", "redis://cache:6379/2")
    assert config.queue("m").store == MemorySettings()


def test_empty_file_means_one_default_queue(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "corequeue.yaml", ""), environ={})

    assert config.names == ("default",)
    assert config.queue("default").store == SQLiteSettings(tmp_path / "corequeue.db")


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
    assert config.queue("default").store == RedisQueueSettings("default", "redis://other:6379/1")
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
    assert config.queue("default").store == SQLiteSettings(Path("corequeue.db"))


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
        "expected a whole number from 1 to 10000, got '3'",
    ),
    (
        {"queue": {"q": {"parallelism": -2}}},
        "queue.q.parallelism",
        "expected a whole number from 1 to 10000, got -2",
    ),
    (
        {"queue": {"q": {"parallelism": True}}},
        "queue.q.parallelism",
        "expected a whole number from 1 to 10000, got True",
    ),
    (
        {"queue": {"q": {"checkQueueLengthIntervalSecond": 0}}},
        "queue.q.checkQueueLengthIntervalSecond",
        "expected a number of seconds more than 0 and at most 31536000, got 0",
    ),
    (
        {"queue": {"q": {"shutdownGraceSecond": -1}}},
        "queue.q.shutdownGraceSecond",
        "expected a number of seconds at least 0 and at most 31536000, got -1",
    ),
    (
        {"queue": {"q": {"paralelism": 2}}},
        "queue.q.paralelism",
        "unknown key; expected one of driver, parallelism, checkQueueLengthIntervalSecond, "
        "shutdownGraceSecond, periodic, limits, path, redisName, dsn, schema",
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
    (
        {"queue": {"q": {"path": ""}}},
        "queue.q.path",
        "expected a non-empty string of at most 1000 characters, got ''",
    ),
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
        "expected a URL such as redis://localhost:6379/0, got a value of type int",
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
    path = write(tmp_path, "app.yaml", yaml.safe_dump(data))

    with pytest.raises(ConfigError) as raised:
        load_config(path, environ={})

    assert re.fullmatch(rf"{re.escape(str(path))}:\d+", raised.value.source)
    assert str(raised.value).startswith(f"{raised.value.source}: {key}: {expected}")
    assert raised.value.key == key
    assert isinstance(raised.value, InvalidOption)


@pytest.mark.parametrize(
    ("variable", "value", "key", "expected"),
    [
        (
            "COREQUEUE_QUEUE__DEFAULT__PARALLELISM",
            "-1",
            "queue.default.parallelism",
            "expected a whole number from 1 to 10000, got -1",
        ),
        (
            "COREQUEUE_QUEUE__DEFAULT__PARALLELISM",
            "many",
            "queue.default.parallelism",
            "expected a whole number from 1 to 10000, got 'many'",
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


# --- values that are no usable number, with the file line or the variable -----------------------

NUMBER_KEYS = ["parallelism", "checkQueueLengthIntervalSecond", "shutdownGraceSecond"]


@pytest.mark.parametrize("key", NUMBER_KEYS)
@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "1.0e+30", "1e400", "10" * 30])
def test_yaml_numbers_that_are_no_usable_value_name_the_key_and_the_line(
    tmp_path: Path, key: str, value: str
) -> None:
    path = write(
        tmp_path, "app.yaml", f"queue:\n  emails:\n    driver: memory\n    {key}: {value}\n"
    )

    with pytest.raises(ConfigError) as raised:
        load_config(path, environ={})

    assert raised.value.source == f"{path}:4"
    assert raised.value.key == f"queue.emails.{key}"
    assert str(raised.value).startswith(f"{path}:4: queue.emails.{key}: expected a ")


@pytest.mark.parametrize("key", NUMBER_KEYS)
@pytest.mark.parametrize("value", ["nan", "+inf", "-inf", "1.0e30", "1e400"])
def test_toml_numbers_that_are_no_usable_value_name_the_key_and_the_line(
    tmp_path: Path, key: str, value: str
) -> None:
    path = write(tmp_path, "app.toml", f'[queue.emails]\ndriver = "memory"\n{key} = {value}\n')

    with pytest.raises(ConfigError) as raised:
        load_config(path, environ={})

    assert str(raised.value).startswith(f"{path}:3: queue.emails.{key}: expected a ")


@pytest.mark.parametrize("key", ["PARALLELISM", "CHECK_QUEUE_LENGTH_INTERVAL_SECOND"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e30", "9" * 5000])
def test_environment_numbers_that_are_no_usable_value_name_the_variable(
    key: str, value: str
) -> None:
    variable = f"COREQUEUE_QUEUE__DEFAULT__{key}"

    with pytest.raises(ConfigError) as raised:
        parse_config({}, source="app.yaml", environ={variable: value})

    assert raised.value.source == f"environment variable {variable}"
    assert "expected a " in str(raised.value)
    assert len(str(raised.value)) < 300


def test_inline_tables_and_flow_mappings_give_the_line_of_the_key(tmp_path: Path) -> None:
    yaml_path = write(
        tmp_path,
        "app.yaml",
        "# jobs\nqueue:\n  a: {driver: memory}\n\n  b: {driver: memory, parallelism: 0}\n",
    )
    toml_path = write(
        tmp_path,
        "app.toml",
        '[queue]\na = {driver = "memory"}\n\n"b" = { driver = "memory", parallelism = 0 }\n',
    )

    for path, line in ((yaml_path, 5), (toml_path, 4)):
        with pytest.raises(ConfigError) as raised:
            load_config(path, environ={})
        assert raised.value.source == f"{path}:{line}"


def test_a_missing_key_names_the_line_of_its_queue(tmp_path: Path) -> None:
    path = write(
        tmp_path, "app.yaml", "queue:\n  a: {driver: memory}\n  pg:\n    driver: postgres\n"
    )

    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}:3: queue\.pg\.dsn: "):
        load_config(path, environ={})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("queue: {q: {path: !!binary aGVsbG8=}}", "expected a non-empty string"),
        ("queue: {q: {path: 2024-01-01}}", "expected a non-empty string"),
        ("queue: {q: {parallelism: !!python/object:os.system x}}", "expected valid YAML"),
        ('queue: {q: {path: "a\\0b"}}', "without NUL characters"),
        ("queue: {q: {path: [a, b]}}", "expected a non-empty string"),
        ("queue: {'': {driver: memory}}", "expected a name of 1 to 200 characters"),
        ("log: {level: 3}", "expected one of debug"),
        ("[" * 5000, "expected valid YAML or JSON"),
        ("a: &a [*a]\nqueue: {q: {path: *a}}", "unknown key"),
    ],
)
def test_odd_yaml_values_are_config_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, "app.yaml", text)

    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_config(path, environ={})


def test_a_config_path_that_no_system_can_open_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "a\x00b.yaml", environ={})
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / ("x" * 5000), environ={})


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://cache:port/0", "ports are numbers from 0 to 65535"),
        ("redis://cache:99999/0", "ports are numbers from 0 to 65535"),
        ("redis+cluster://a:7000,b:x", "ports are numbers from 0 to 65535"),
        ("http://cache:6379/0", "a scheme among redis, redis+cluster"),
        ("redis://:hun/ter2@cache:6379/0", "must be percent-encoded"),
        ("redis://:hunter2@cache:6379/0#frag@x", "must be percent-encoded"),
    ],
)
def test_redis_urls_are_checked_without_quoting_them(url: str, expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({"redis": {"c": {"url": url}}}, source="app.yaml")

    assert expected in str(raised.value)
    assert "hun" not in str(raised.value)
    assert "cache" not in str(raised.value)


def test_a_dsn_with_an_unencoded_password_is_refused_without_quoting_it() -> None:
    data = {"queue": {"q": {"driver": "postgres", "dsn": "postgresql://app:a?b/c@db/app"}}}

    with pytest.raises(ConfigError) as raised:
        parse_config(data, source="app.yaml")

    assert "queue.q.dsn" in str(raised.value)
    assert "a?b" not in str(raised.value)


# --- the driver registry ------------------------------------------------------------------------


def test_every_driver_of_the_registry_has_its_keys_settings_and_builder() -> None:
    assert DRIVERS == ("memory", "sqlite", "redis", "postgres")
    for name, spec in DRIVER_REGISTRY.items():
        others = [key for other, s in DRIVER_REGISTRY.items() if other != name for key in s.keys]
        for key in spec.keys:
            data = {
                "queue": {"q": {"driver": "memory" if name != "memory" else "sqlite", key: "x"}}
            }
            if key in others:
                continue
            with pytest.raises(ConfigError, match=f"applies to driver {name} only"):
                parse_config(data)
        assert callable(spec.build)


def test_queue_settings_refuse_a_store_of_another_driver() -> None:
    with pytest.raises(InvalidOption, match=r"driver redis takes store=RedisQueueSettings"):
        QueueSettings("q", "redis", store=SQLiteSettings())
    with pytest.raises(InvalidOption, match="driver postgres needs store="):
        QueueSettings("q", "postgres")
    with pytest.raises(InvalidOption, match="unknown driver 'mongo'"):
        QueueSettings("q", "mongo")


def test_driver_settings_hide_passwords_in_reprs() -> None:
    shown = repr(RedisQueueSettings("c", "redis://:hunter2@c/0")) + repr(
        PostgresSettings("postgresql://app:hunter2@db/app")
    )

    assert "hunter2" not in shown


# --- fuzz: any value from YAML, TOML or the environment gives a Config or a ConfigError ---------

KEYS = [
    "driver",
    "parallelism",
    "checkQueueLengthIntervalSecond",
    "shutdownGraceSecond",
    "path",
    "redisName",
    "dsn",
    "schema",
    "url",
    "level",
]
YAML_SCALARS = st.sampled_from(
    [
        *[".nan", ".inf", "-.inf", "1.0e+30", "1e30", "0x1F", "0o17", "~", "null", "yes"],
        *["2024-01-01", "!!binary aGk=", "!!set {a}", "&x [*x]", "'memory'", "sqlite", "redis"],
        *["postgres", "3", "0", "-1", "10001", "0.5", "1_000", "[1, 2]", "{a: 1}", '"\\0"'],
        "redis://c:1/0",
    ]
)
TEXT = st.text(max_size=40)
ANY_VALUE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | TEXT
    | st.sampled_from(["memory", "sqlite", "redis", "postgres", "redis://c:6379/0"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=8,
)


def check_outcome(read: Callable[[], Config]) -> None:
    """`read()` gives a usable Config or a one-line ConfigError; nothing else."""
    try:
        config = read()
    except ConfigError as exc:
        refused = str(exc)
    else:
        refused = ""
        check_usable(config)
    assert "\n" not in refused


def check_usable(config: Config) -> None:
    """Every queue of `config` has settings in range and shows without failing."""
    for name in config.names:
        settings = config.queue(name)
        assert 1 <= settings.parallelism <= 10_000
        assert settings.check_queue_length_interval > timedelta(0)
        assert settings.shutdown_grace >= timedelta(0)
        assert repr(settings)
        assert settings.describe()


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(KEYS), value=YAML_SCALARS | TEXT, section=st.sampled_from(["q", "r"]))
def test_any_yaml_value_gives_a_config_or_a_config_error(
    key: str, value: str, section: str
) -> None:
    text = (
        f"queue:\n  q:\n    {key}: {value}\n"
        if section == "q"
        else f"redis:\n  default:\n    {key}: {value}\nlog:\n  {key}: {value}\n"
    )

    check_outcome(lambda: parse_config(parse_config_text(text, source="app.yaml")))


@settings(max_examples=300)
@given(
    key=st.sampled_from(KEYS),
    value=st.sampled_from(
        [
            *["nan", "+inf", "-inf", "1e30", "1e400", "0", "-1", "3", "0.5", "true", "[1]"],
            *["{a = 1}", "1979-05-27T07:32:00Z", "07:32:00", "'x'", '"memory"', '"\\u0000"'],
            '"redis://c/0"',
        ]
    )
    | TEXT,
)
def test_any_toml_value_gives_a_config_or_a_config_error(key: str, value: str) -> None:
    text = f"[queue.q]\n{key} = {value}\n"

    check_outcome(lambda: parse_config(parse_config_text(text, source="a.toml", toml=True)))


@settings(max_examples=300)
@given(
    environ=st.dictionaries(
        st.builds(
            lambda section, name, key: f"COREQUEUE_{section}__{name}__{key}",
            st.sampled_from(["QUEUE", "REDIS", "LOG", "queue", "X"]),
            st.sampled_from(["DEFAULT", "Q", "q", ""]) | TEXT,
            st.sampled_from([key.upper() for key in KEYS]) | TEXT,
        ),
        st.sampled_from(["nan", "inf", "-1", "0", "1e30", "memory", "postgres", "redis"]) | TEXT,
        max_size=4,
    )
)
def test_any_environment_gives_a_config_or_a_config_error(environ: dict[str, str]) -> None:
    check_outcome(lambda: parse_config({}, source="app.yaml", environ=environ))


@settings(max_examples=200)
@given(data=st.dictionaries(st.sampled_from(["queue", "redis", "log"]), ANY_VALUE, max_size=3))
def test_any_structure_written_as_yaml_gives_a_config_or_a_config_error(
    data: dict[str, Any],
) -> None:
    text = yaml.safe_dump(data)

    check_outcome(lambda: parse_config(parse_config_text(text, source="app.yaml")))


# --- periodic jobs (queue.<name>.periodic) -----------------------------------------------------

PERIODIC_YAML = """\
queue:
  reports:
    driver: memory
    periodic:
      - name: nightly
        schedule: "0 3 * * *"
        job: app.NightlyReport
        tz: Europe/Berlin
        misfire: once
      - {name: heartbeat, everySecond: 0.5, job: app.Heartbeat, payload: {source: cron, n: [1]}}
"""

PERIODIC_TOML = """\
[queue.reports]
driver = "memory"

[[queue.reports.periodic]]
name = "nightly"
schedule = "0 3 * * *"
job = "app.NightlyReport"
tz = "Europe/Berlin"
misfire = "once"

[[queue.reports.periodic]]
name = "heartbeat"
everySecond = 0.5
job = "app.Heartbeat"
payload = { source = "cron", n = [1] }
"""


@pytest.mark.parametrize(
    ("name", "text"), [("app.yaml", PERIODIC_YAML), ("app.toml", PERIODIC_TOML)]
)
def test_periodic_jobs_read_the_same_from_yaml_and_toml(
    tmp_path: Path, name: str, text: str
) -> None:
    settings = load_config(write(tmp_path, name, text), environ={}).queue("reports")

    assert settings.periodic == (
        PeriodicSettings(
            "nightly", "app.NightlyReport", "0 3 * * *", tz="Europe/Berlin", misfire="once"
        ),
        PeriodicSettings(
            "heartbeat",
            "app.Heartbeat",
            timedelta(milliseconds=500),
            payload={"source": "cron", "n": [1]},
        ),
    )


def test_a_periodic_job_dispatches_its_type_with_its_payload_or_an_empty_mapping() -> None:
    config = parse_config(
        {
            "queue": {
                "q": {
                    "periodic": [
                        {"name": "a", "schedule": "@hourly", "job": "app.Ping"},
                        {"name": "b", "everySecond": 60, "job": "app.Sum", "payload": [1, 2]},
                    ]
                }
            }
        }
    )

    first, second = config.queue("q").periodic
    assert (first.job().type, first.job().data) == ("app.Ping", {})
    assert (second.job().type, second.job().data) == ("app.Sum", [1, 2])
    assert second.schedule == timedelta(minutes=1)


def test_a_queue_without_periodic_jobs_has_none() -> None:
    assert parse_config({"queue": {"q": {"driver": "memory"}}}).queue("q").periodic == ()
    assert QueueSettings("q", "memory").periodic == ()


PERIODIC_ENTRY = {"name": "n", "schedule": "* * * * *", "job": "app.Job"}

BAD_PERIODIC = [
    ("{}", "periodic", "expected a list of at most 1000 schedules"),
    ("[1]", "periodic[0]", "expected a mapping with name, job and schedule, got a value of"),
    ('[{name: n, job: j, schedule: "* * * * *", when: now}]', "periodic[0].when", "unknown key"),
    ('[{job: j, schedule: "* * * * *"}]', "periodic[0].name", "expected a name: every"),
    ('[{name: n, schedule: "* * * * *"}]', "periodic[0].job", "expected a job: every"),
    ("[{name: n, job: j}]", "periodic[0].schedule", "expected either schedule (cron) or every"),
    (
        '[{name: n, job: j, schedule: "* * * * *", everySecond: 1}]',
        "periodic[0].schedule",
        "found both",
    ),
    (
        '[{name: n, job: j, schedule: "61 * * * *"}]',
        "periodic[0].schedule",
        "expected a cron expression of 5 fields (6 with seconds first): bad cron expression "
        "'61 * * * *': Bad minute",
    ),
    ("[{name: n, job: j, schedule: 5}]", "periodic[0].schedule", "expected a cron expression"),
    ("[{name: n, job: j, everySecond: 0}]", "periodic[0].everySecond", "more than 0"),
    ("[{name: n, job: j, everySecond: .nan}]", "periodic[0].everySecond", "more than 0"),
    ("[{name: n, job: j, everySecond: 0.0005}]", "periodic[0].everySecond", "milliseconds"),
    ('[{name: "a:b", job: j, everySecond: 1}]', "periodic[0].name", "without ':' or NUL"),
    ('[{name: "", job: j, everySecond: 1}]', "periodic[0].name", "expected a name of 1 to 200"),
    ('[{name: n, job: "", everySecond: 1}]', "periodic[0].job", "expected a non-empty string"),
    ("[{name: n, job: j, everySecond: 1, tz: Mars/Base}]", "periodic[0].tz", "IANA time zone"),
    ("[{name: n, job: j, everySecond: 1, misfire: all}]", "periodic[0].misfire", "skip, once"),
    (
        "[{name: n, job: j, everySecond: 1}, {name: n, job: k, everySecond: 2}]",
        "periodic[1].name",
        "expected a name no other schedule of the queue has, got 'n' again",
    ),
    ("[{name: n, job: j, everySecond: 1, payload: 2024-01-01}]", "periodic[0].payload", "JSON"),
    ("[{name: n, job: j, everySecond: 1, payload: {1: a}}]", "periodic[0].payload", "text keys"),
    ("[{name: n, job: j, everySecond: 1, payload: [.inf]}]", "periodic[0].payload", "finite"),
    (
        "[{name: n, job: j, everySecond: 1, payload: " + "[" * 40 + "]" * 40 + "}]",
        "periodic[0].payload",
        "nested at most 32 levels",
    ),
]


@pytest.mark.parametrize(("entries", "key", "expected"), BAD_PERIODIC)
def test_a_bad_periodic_entry_names_its_line_its_key_and_what_is_expected(
    tmp_path: Path, entries: str, key: str, expected: str
) -> None:
    path = write(
        tmp_path, "app.yaml", f"queue:\n  q:\n    driver: memory\n    periodic: {entries}\n"
    )

    with pytest.raises(ConfigError) as raised:
        load_config(path, environ={})

    assert raised.value.source == f"{path}:4"
    assert raised.value.key == f"queue.q.{key}"
    assert expected in raised.value.expected
    assert "\n" not in str(raised.value)


def test_a_bad_periodic_entry_names_the_line_of_its_own_key_in_yaml_and_toml(
    tmp_path: Path,
) -> None:
    yaml_path = write(
        tmp_path,
        "app.yaml",
        "queue:\n  q:\n    periodic:\n      - name: a\n        job: j\n        everySecond: 1\n"
        "      - name: b\n        job: j\n        schedule: '* * *'\n",
    )
    toml_path = write(
        tmp_path,
        "app.toml",
        '[queue.q]\ndriver = "memory"\n\n[[queue.q.periodic]]\nname = "a"\njob = "j"\n'
        'everySecond = 1\n\n[[queue.q.periodic]]\nname = "b"\njob = "j"\nschedule = "* * *"\n',
    )

    for path, line in ((yaml_path, 9), (toml_path, 12)):
        with pytest.raises(ConfigError) as raised:
            load_config(path, environ={})
        assert raised.value.source == f"{path}:{line}"
        assert raised.value.key == "queue.q.periodic[1].schedule"


def test_periodic_jobs_cannot_come_from_the_environment() -> None:
    variable = "COREQUEUE_QUEUE__DEFAULT__PERIODIC"

    with pytest.raises(ConfigError) as raised:
        parse_config({}, source="app.yaml", environ={variable: "[]"})

    assert raised.value.source == f"environment variable {variable}"
    assert "only a file can hold" in str(raised.value)


def test_a_yaml_alias_in_a_periodic_list_is_named_by_the_line_of_its_anchor(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "app.yaml",
        "queue:\n  q:\n    periodic:\n      - &e {name: n, job: j, everySecond: 1}\n      - *e\n",
    )

    with pytest.raises(ConfigError) as raised:
        load_config(path, environ={})

    assert raised.value.source == f"{path}:4"  # YAML keeps no line of its own for an alias
    assert raised.value.key == "queue.q.periodic[1].name"


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    entry=st.dictionaries(
        st.sampled_from(["name", "schedule", "everySecond", "job", "payload", "tz", "misfire"])
        | TEXT,
        ANY_VALUE
        | st.sampled_from(["* * * * *", "@daily", "0 0 * * * *", "Europe/Berlin", "once", 1.5]),
        max_size=7,
    )
)
def test_any_periodic_entry_gives_a_config_or_a_config_error(entry: dict[str, Any]) -> None:
    text = yaml.safe_dump({"queue": {"q": {"periodic": [entry]}}})

    check_outcome(lambda: parse_config(parse_config_text(text, source="app.yaml")))


def test_limits_are_read_from_the_queue_settings() -> None:
    config = parse_config(
        {
            "queue": {
                "emails": {
                    "limits": {
                        "concurrency": 20,
                        "groupConcurrency": 2,
                        "rate": "100/s",
                        "groupRate": "5/m",
                    }
                }
            }
        }
    )

    assert config.queue("emails").limits == cq.Limits(
        concurrency=20,
        group_concurrency=2,
        rate=cq.Rate(100, timedelta(seconds=1)),
        group_rate=cq.Rate(5, timedelta(minutes=1)),
    )


@pytest.mark.parametrize(
    ("limits", "key", "expected"),
    [
        ({"rate": "100/d"}, "queue.q.limits.rate", 'a rate is written like "100/s"'),
        ({"concurrency": 0}, "queue.q.limits.concurrency", "a whole number from 1"),
        ({"burst": 3}, "queue.q.limits.burst", "expected one of concurrency"),
        ("10/s", "queue.q.limits", "expected a mapping"),
    ],
)
def test_bad_limits_name_the_key(limits: object, key: str, expected: str) -> None:
    with pytest.raises(cq.ConfigError) as caught:
        parse_config({"queue": {"q": {"limits": limits}}})

    assert f"{key}: " in str(caught.value)
    assert expected in str(caught.value)


def test_factory_gives_the_configured_limits_to_the_queue() -> None:
    config = parse_config({"queue": {"q": {"driver": "memory", "limits": {"concurrency": 3}}}})

    queue = cq.QueueFactory(config).make("q")

    assert queue.limits == cq.Limits(concurrency=3)
    assert queue.driver.limits == cq.Limits(concurrency=3)  # type: ignore[attr-defined]
