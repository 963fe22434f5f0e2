"""Shared state for several workers, in Redis (``LIVEROOM_REDIS_URL``): what would otherwise be per process.
Without Redis configured the in-process classes of each domain package are used (one worker)."""
