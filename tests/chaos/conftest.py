"""Collects the figures of every chaos run and prints them at the end of the pytest run."""

from __future__ import annotations

import pytest

from tests.chaos.analysis import Figures

FIGURES: list[Figures] = []
"""The figures of the chaos runs of this session, in the order they ran."""


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("corequeue chaos figures")
    for figures in FIGURES:
        terminalreporter.write_line(figures.summary())
