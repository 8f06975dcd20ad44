"""The running-job contract (shipped as corequeue.testing.contract_running), on every driver.

Progress and cancel requests carried by lease renewals; fixtures come from conftest.py.
"""

from corequeue.testing.contract_running import *  # noqa: F403 (the suite's tests, collected here)
