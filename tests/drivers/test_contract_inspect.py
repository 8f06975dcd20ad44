"""The InspectDriver contract (shipped as corequeue.testing.contract_inspect), on every driver.

What the dashboard reads and does; the `driver` and `clock` fixtures come from conftest.py.
"""

from corequeue.testing.contract_inspect import *  # noqa: F403 (the suite's tests, collected here)
