"""Long-lived objects kept out of the garbage collector's full passes.

CPython's full (generation 2) collection walks every tracked object. A node holding 10,000
jobs keeps hundreds of thousands that live as long as it does (the job table, the per-epoch
job -> quorum cache, Cron schedules, ABIs, modules); a full pass over them took 60-80 ms and
landed on one head in a few, so the p90 CPU of a head where nothing is due was three times its
median (docs/benchmarks.md, scale section). `gc.freeze()` moves every object alive at that
moment to a permanent generation the collector no longer walks.

The node freezes once it has led its first head (the caches are filled then) and again when a
new epoch begins (its caches are rebuilt). Each time it first unfreezes and runs one full
collection, so no garbage is frozen and what the last epoch left behind is freed: one full
pass per epoch instead of one every few heads.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class HeapFreezer:
    """Freezes the heap after the first head of each epoch (`after_head`)."""

    def __init__(
        self,
        collect: Callable[[], object] = gc.collect,
        freeze: Callable[[], None] = gc.freeze,
        unfreeze: Callable[[], None] = gc.unfreeze,
        frozen: Callable[[], int] = gc.get_freeze_count,
    ) -> None:
        self._collect = collect
        self._freeze = freeze
        self._unfreeze = unfreeze
        self._frozen = frozen
        self._epoch: int | None = None
        self._done = False

    def after_head(self, epoch: int | None) -> bool:
        """Called after a head was led in `epoch` (None before the first); True if it froze."""
        if self._done and epoch == self._epoch:
            return False
        began = time.process_time()
        self._unfreeze()
        self._collect()
        self._freeze()
        self._epoch, self._done = epoch, True
        log.info(
            "node.heap_frozen epoch=%s objects=%d ms=%.1f",
            epoch,
            self._frozen(),
            (time.process_time() - began) * 1000,
        )
        return True
