"""The results contract (shipped as corequeue.testing.contract_results), on every driver.

Kept results, waiting for a finished job and pruning; the `driver` and `clock` fixtures come
from conftest.py.
"""

from corequeue.testing.contract_results import *  # noqa: F403 (the suite's tests, collected here)
