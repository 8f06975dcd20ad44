"""Drivers store persisted jobs; see `base.Driver` for the contract."""
