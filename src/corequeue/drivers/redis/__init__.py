"""The Redis driver: `RedisDriver`, on standalone Redis, Sentinel or Redis Cluster."""

from corequeue.drivers.redis.driver import RedisDriver, RedisKeys

__all__ = ["RedisDriver", "RedisKeys"]
