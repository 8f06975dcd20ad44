"""The job of the test project (no Django import: the tests build it too)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SendReceipt:
    order_id: int
