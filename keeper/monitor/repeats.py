"""Log lines bounded per round: a round that waits or retries for many heads (members
unreachable, a job priced out, a send deferred) says each thing once, then counts it.

A node logs a round's line the first time it has something of that kind to say (`kind`: the
event, and the member it concerns where there is one); later lines of the same kind are only
counted. When the round is done (a later round of its job is seen, the caller retires it, or
it is the least recently seen of more than `max_rounds`), one `round.repeats` line gives the
counts of what was not logged. So a round costs at most one line per kind plus one, however
many heads it lasts.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable

RoundKey = tuple[int, int]
"""(job id, round)."""

DEFAULT_MAX_ROUNDS = 4096


class RoundLog:
    """Per-round first lines and repeat counts for one logger."""

    def __init__(self, logger: logging.Logger, max_rounds: int = DEFAULT_MAX_ROUNDS) -> None:
        self._logger = logger
        self._max_rounds = max_rounds
        self._counts: OrderedDict[RoundKey, dict[str, int]] = OrderedDict()
        self._latest: dict[int, int] = {}  # job -> the latest round seen

    def log(
        self,
        rounds: Iterable[RoundKey],
        kind: str,
        level: int,
        msg: str,
        *args: object,
    ) -> bool:
        """Logs `msg % args` if it is the first line of `kind` for any of `rounds` (a batch
        carries several), else counts it for each; True if it was logged."""
        first = False
        for key in rounds:
            counts = self._note(key)
            seen = counts.get(kind, 0)
            counts[kind] = seen + 1
            first = first or seen == 0
        if first:
            self._logger.log(level, msg, *args)
        return first

    def retire(self, live: Iterable[RoundKey]) -> None:
        """Summarises and forgets every round not in `live` (the rounds still open here)."""
        keep = set(live)
        for key in [k for k in self._counts if k not in keep]:
            self._summarise(key)

    def _note(self, key: RoundKey) -> dict[str, int]:
        job, round_ = key
        latest = self._latest.get(job)
        if latest is not None and latest < round_:
            for old in [k for k in self._counts if k[0] == job and k[1] < round_]:
                self._summarise(old)
        if latest is None or latest < round_:
            self._latest[job] = round_
        counts = self._counts.get(key)
        if counts is None:
            counts = self._counts[key] = {}
            while len(self._counts) > self._max_rounds:
                self._summarise(next(iter(self._counts)))
        else:
            self._counts.move_to_end(key)
        return counts

    def _summarise(self, key: RoundKey) -> None:
        counts = self._counts.pop(key)
        if self._latest.get(key[0]) == key[1]:
            del self._latest[key[0]]
        repeats = {kind: n - 1 for kind, n in counts.items() if n > 1}
        if repeats:
            self._logger.info(
                "round.repeats job=%d round=%d %s",
                key[0],
                key[1],
                " ".join(f"{kind}={n}" for kind, n in sorted(repeats.items())),
            )

    def __len__(self) -> int:
        return len(self._counts)
