"""The node freezes its long-lived heap once per epoch, after the first head it leads in it,
each time after a full collection of what was frozen before (keeper/node/heap.py)."""

from __future__ import annotations

from keeper.node.heap import HeapFreezer


def test_the_heap_is_frozen_after_the_first_head_and_again_per_epoch() -> None:
    calls: list[str] = []
    heap = HeapFreezer(
        collect=lambda: calls.append("collect"),
        freeze=lambda: calls.append("freeze"),
        unfreeze=lambda: calls.append("unfreeze"),
        frozen=lambda: 7,
    )
    assert heap.after_head(None)  # the first head, before any epoch
    assert calls == ["unfreeze", "collect", "freeze"]
    assert not heap.after_head(None)
    assert heap.after_head(1)
    assert [heap.after_head(1) for _ in range(50)] == [False] * 50
    assert heap.after_head(2)
    assert calls.count("collect") == calls.count("freeze") == 3
