"""The Redis driver: `RedisDriver`, on standalone Redis, Sentinel or Redis Cluster."""

from corequeue.drivers.redis.driver import RedisDriver
from corequeue.drivers.redis.keys import RedisKeys

__all__ = ["RedisDriver", "RedisKeys"]
