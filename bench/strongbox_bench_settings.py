"""The embedded profile for the backup benches, with one change: the queue is polled every
50 ms instead of 500 ms, so a request -> completion time is the backup's, not the poll's.
The app's own database is the one DATABASE_URL names (the benches make a throwaway one)."""

from config.settings.local import *  # noqa: F403

Q_CLUSTER = {**Q_CLUSTER, "poll": 0.05}  # noqa: F405
