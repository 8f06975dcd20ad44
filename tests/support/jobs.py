"""Small builders shared by the test suites (shipped in corequeue.testing.jobs)."""

from __future__ import annotations

from corequeue.testing.jobs import persisted, pop_all

__all__ = ["persisted", "pop_all"]
