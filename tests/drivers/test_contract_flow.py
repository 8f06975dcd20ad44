"""The flow-control part of the Driver contract (corequeue.testing.contract_flow), everywhere."""

from corequeue.testing.contract_flow import *  # noqa: F403 (the suite's tests, collected here)
