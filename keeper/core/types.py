"""Units as types, so a block number is never passed where a timestamp belongs."""

from __future__ import annotations

from typing import NewType

JobId = NewType("JobId", int)
Round = NewType("Round", int)
Epoch = NewType("Epoch", int)
BlockNumber = NewType("BlockNumber", int)
Timestamp = NewType("Timestamp", int)
Wei = NewType("Wei", int)
Cursor = NewType("Cursor", int)
Address = NewType("Address", str)
