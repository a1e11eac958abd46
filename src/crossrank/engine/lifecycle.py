"""The loaded model's life: load once, lend it to calls, release it when no call uses it.

A :class:`ModelSlot` loads lazily (one load however many threads ask at once) and lends the
loaded model and its scorer to each call. :meth:`ModelSlot.reset` (``Reranker.close()`` or a
reconfiguration that needs another model) empties the slot at once; the old model is closed
when the last call that borrowed it returns, so a call in flight never sees its backend closed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from crossrank.engine.loading import LoadedModel

__all__ = ["Loaded", "ModelSlot"]


@dataclass(eq=False)
class Loaded:
    """A loaded model, its scorer, and how many calls are using them."""

    model: LoadedModel
    scorer: Any
    users: int = 0
    retired: bool = False
    _closed: bool = field(default=False, repr=False)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.scorer.close()
            self.model.close()


class ModelSlot:
    """Holds at most one :class:`Loaded`, built by ``build`` on first use."""

    def __init__(self, build: Callable[[], Loaded]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._current: Loaded | None = None

    @property
    def current(self) -> Loaded | None:
        return self._current

    def get(self) -> Loaded:
        """The loaded model, loading it now if the slot is empty."""
        current = self._current
        if current is not None:
            return current
        with self._load_lock:  # one load at a time; waiting threads reuse its result
            if self._current is None:
                built = self._build()
                with self._lock:
                    self._current = built
            return self._current  # type: ignore[return-value]

    @contextmanager
    def borrow(self) -> Iterator[Loaded]:
        """The loaded model for the length of one call; a reset meanwhile closes it afterwards."""
        while True:
            loaded = self.get()
            with self._lock:
                if loaded is self._current:
                    loaded.users += 1
                    break
        try:
            yield loaded
        finally:
            with self._lock:
                loaded.users -= 1
                close = loaded.retired and loaded.users == 0
            if close:
                loaded.close()

    def reset(self) -> None:
        """Empty the slot; the old model closes now, or when its last borrower returns."""
        with self._load_lock, self._lock:
            loaded, self._current = self._current, None
            if loaded is None:
                return
            loaded.retired = True
            close = loaded.users == 0
        if close:
            loaded.close()
