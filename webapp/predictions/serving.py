"""The web process's cache of loaded models (docs/decisions.md, "Serving").

TensorFlow is imported by the first load, never at import time: `migrate`, the admin and every
page that does not predict stay free of its ~0.5 GB and ~12 s. A model is loaded once per
process, after `LoadedModel.load` has checked the file against the checksum on its row, and is
warmed there. Entries are keyed by the model's folder and checksum (the artifact, not the row) and dropped least recently used first when
there are more than TL_SERVING_MAX_MODELS or their estimated memory passes TL_SERVING_MAX_BYTES.
A request holds its own reference to the LoadedModel it got, so a model evicted (or replaced by a
newly published one) while a request uses it finishes that request and is freed afterwards.
"""

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

log = logging.getLogger(__name__)


def load_model_files(path: Path, checksum: str):
    """Verify, load and warm the model saved at `path` (raises workers.ml.errors.MLError)."""
    from webapp.experiments.model_store import model_files_fetch
    from workers.ml.predict import LoadedModel

    return LoadedModel.load(model_files_fetch(path), expected_sha256=checksum)


@dataclass
class _Entry:
    loaded: object  # workers.ml.predict.LoadedModel, thread-safe
    cost: int
    model_id: int


class ModelCache:
    """A thread-safe LRU of loaded models bounded by count and by estimated bytes."""

    def __init__(self, *, max_models: int, max_bytes: int, memory_factor: float, loader=load_model_files):
        self.max_models = max_models
        self.max_bytes = max_bytes
        self.memory_factor = memory_factor
        self._loader = loader
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        # Guards the two dicts only; never held while a model loads.
        self._lock = threading.Lock()
        # One lock per model being loaded: concurrent first requests wait for one load instead of
        # each loading the same model, while requests for other models carry on.
        self._load_locks: dict[tuple[str, str], threading.Lock] = {}

    def _cached(self, key):
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            return entry.loaded
        return None

    def estimate_bytes(self, model) -> int:
        size = model.size_bytes
        if not size:
            try:
                size = (Path(model.files_dir) / "model.keras").stat().st_size
            except OSError:
                size = 0
        return int(size * self.memory_factor)

    def get(self, model):
        """The LoadedModel for a TrainedModel row, loading it on first use."""
        key = (str(model.files_dir), model.checksum)
        with self._lock:
            loaded = self._cached(key)
            if loaded is not None:
                return loaded
            load_lock = self._load_locks.setdefault(key, threading.Lock())
        with load_lock:
            with self._lock:
                loaded = self._cached(key)
                if loaded is not None:
                    return loaded
            started = time.perf_counter()
            try:
                loaded = self._loader(Path(model.files_dir), model.checksum)
            finally:
                with self._lock:
                    self._load_locks.pop(key, None)
            log.info("loaded model %s (%s) in %.1f s", model.pk, model.files_dir, time.perf_counter() - started)
            with self._lock:
                self._entries[key] = _Entry(loaded, self.estimate_bytes(model), model.pk)
                self._entries.move_to_end(key)
                self._evict(keep=key)
        return loaded

    def _evict(self, *, keep) -> None:
        while len(self._entries) > 1 and (len(self._entries) > self.max_models or self.total_bytes() > self.max_bytes):
            oldest = next(k for k in self._entries if k != keep)
            dropped = self._entries.pop(oldest)
            log.info("dropped model %s from the serving cache", dropped.model_id)

    def total_bytes(self) -> int:
        return sum(entry.cost for entry in self._entries.values())

    def model_ids(self) -> list[int]:
        """Cached model ids, least recently used first."""
        with self._lock:
            return [entry.model_id for entry in self._entries.values()]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_cache: ModelCache | None = None
_cache_lock = threading.Lock()


def model_cache() -> ModelCache:
    """This process's cache, built from the settings on first use."""
    global _cache
    with _cache_lock:
        if _cache is None:
            _cache = ModelCache(
                max_models=settings.TL_SERVING_MAX_MODELS,
                max_bytes=settings.TL_SERVING_MAX_BYTES,
                memory_factor=settings.TL_SERVING_MEMORY_FACTOR,
            )
        return _cache


def reset_model_cache() -> None:
    """Forget every loaded model and rebuild the cache from the settings on next use (tests)."""
    global _cache
    with _cache_lock:
        _cache = None
