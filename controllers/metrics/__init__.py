"""The metrics path: Celery events -> Redis (timestamped, with a TTL) -> custom metrics API, and
Prometheus. `store.py` holds the Redis key layout every part agrees on."""
