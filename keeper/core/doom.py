"""When a pending transaction can no longer succeed, so that the sender frees its nonce with a
cheap self-send instead of bumping and re-sending it at the keeper's cost.

`execute` has its rule next to the report (`keeper.core.report.compute_doom_reason`); these are
the rules for the node's two other transactions, each named by its purpose:

- `rotate:<epoch>:<due>`, a `rotate()` sent while `<epoch>` was the current epoch. Once a later
  epoch has started, the rotation it was sent to arm or finish is done (by whoever finished it),
  and the next one is not due for an epoch: mined now it would revert `RotationNotDue`.
- `slash:<signer>`, a `slashEquivocation` against `<signer>`. The registry slashes only an
  active or exiting keeper (`NothingToSlash` otherwise): once the signer is slashed (by another
  member's proof) or has withdrawn, the proof is worth nothing.
"""

from __future__ import annotations

ROTATE_PURPOSE = "rotate"
SLASH_PURPOSE = "slash"
SLASHABLE_STATUSES = frozenset({"active", "exiting"})


def compute_rotate_purpose(epoch: int, due: int) -> str:
    """The purpose of a `rotate()` sent in `epoch`, due since block `due`."""
    return f"{ROTATE_PURPOSE}:{epoch}:{due}"


def compute_slash_purpose(signer: str) -> str:
    """The purpose of a `slashEquivocation` against `signer` (one per signer)."""
    return f"{SLASH_PURPOSE}:{signer.lower()}"


def get_rotate_epoch(purpose: str) -> int | None:
    """The epoch a `rotate` purpose was sent in, or None for any other purpose."""
    kind, _, rest = purpose.partition(":")
    epoch = rest.partition(":")[0]
    return int(epoch) if kind == ROTATE_PURPOSE and epoch.isdigit() else None


def get_slash_signer(purpose: str) -> str | None:
    """The signer a `slash` purpose accuses (lower case), or None for any other purpose."""
    kind, _, signer = purpose.partition(":")
    return signer.lower() if kind == SLASH_PURPOSE and signer else None


def compute_rotate_doom_reason(sent_epoch: int, current_epoch: int | None) -> str | None:
    """Why a `rotate()` sent in `sent_epoch` can no longer succeed with the chain at
    `current_epoch` (None: no epoch started yet), or None while it still can."""
    if current_epoch is not None and current_epoch > sent_epoch:
        return "epoch_rotated"
    return None


def compute_slash_doom_reason(status: str | None) -> str | None:
    """Why a `slashEquivocation` against a keeper whose registry status is `status` can no
    longer succeed, or None while it still can (or the keeper is unknown to the store)."""
    if status is None or status == "none" or status in SLASHABLE_STATUSES:
        return None
    return "already_slashed" if status == "slashed" else "nothing_to_slash"
