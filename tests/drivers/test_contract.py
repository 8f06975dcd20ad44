"""The Driver contract (shipped as corequeue.testing.contract), run against every driver.

A driver is done when the shipped suite passes for it unchanged; the `driver` and `clock`
fixtures come from conftest.py.
"""

from corequeue.testing.contract import *  # noqa: F403 (the suite's tests, collected here)
