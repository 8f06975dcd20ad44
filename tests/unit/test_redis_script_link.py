"""The Redis scripts carry only the library functions they call (each costs every call)."""

from __future__ import annotations

import re

import pytest

from corequeue.drivers.redis.scripts import _package_text, link

SCRIPTS = ["ack", "cancel", "delete", "enqueue_slot", "flush", "info", "inspect", "lookup",
           "migrate", "pop", "push", "release", "reload", "renew", "requeue", "settle"]  # fmt: skip


def functions(source: str) -> set[str]:
    return set(re.findall(r"^local function (\w+)\(", source, re.MULTILINE))


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_function_a_script_calls_is_defined_before_its_body(name: str) -> None:
    body = _package_text(name)
    source = link(body, _package_text("lib"))
    defined = functions(source)
    library = functions(_package_text("lib"))

    code = re.sub(r"--.*$", "", source, flags=re.MULTILINE)
    called = {word for word in re.findall(r"(\w+)\(", code) if word in library}
    assert called <= defined
    assert source.endswith(body)


def test_functions_no_script_reaches_are_left_out() -> None:
    lib = _package_text("lib")
    info = link(_package_text("info"), lib)

    assert "recover_expired_leases" not in functions(info)
    assert "layout_refusal" in functions(info)
    assert functions(link(_package_text("pop"), lib)) >= {"recover_expired_leases", "park_lost"}


def test_a_function_only_a_comment_names_is_not_linked() -> None:
    lib = "local A = 1\n-- helper\nlocal function helper()\n  return A\nend\n"

    assert (
        link("-- helper() is not called\nreturn A\n", lib)
        == "local A = 1\n-- helper() is not called\nreturn A\n"
    )
    assert "function helper" in link("return helper()\n", lib)
