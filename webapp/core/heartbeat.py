"""A heartbeat thread for long work that a beat reaper watches (training jobs, dataset ingest)."""

import logging
import threading
from collections.abc import Callable

from django.db import DatabaseError, connection

log = logging.getLogger(__name__)


class Heartbeat(threading.Thread):
    """Calls `beat()` every `interval` seconds from its own thread (and database connection).

    A thread, not the work's progress callback, so that a TensorFlow import, a long zip
    extraction or one very long batch still beat. `beat()` returns False once the work is no
    longer ours (a reaper failed it, or its row was deleted): `lost` is then set and the
    beating stops, so the work can stop at its next check instead of finishing for nobody.
    """

    def __init__(self, name: str, beat: Callable[[], bool], interval: float):
        super().__init__(name=name, daemon=True)
        self.beat = beat
        self.interval = interval
        self.stopped = threading.Event()
        self.lost = threading.Event()

    def run(self):
        try:
            while not self.stopped.wait(self.interval):
                try:
                    if not self.beat():
                        self.lost.set()
                        return
                except DatabaseError as exc:  # a blip: the next beat may work; the reaper has slack
                    log.warning("%s failed: %s", self.name, exc)
        finally:
            connection.close()

    def stop(self):
        self.stopped.set()
        self.join(timeout=5)
