"""The keeper's exception tree: one root, one branch per concern.

Lower-layer errors (web3, aiohttp, sqlite) are translated into these at the shell
boundary with ``raise ... from exc``, so callers only ever catch ``KeeperError``s::

    KeeperError
    ├── ConfigError              settings missing, malformed or contradictory
    ├── ChainError               anything between us and the chain
    │   ├── RpcUnavailable       node unreachable, timed out or behind
    │   ├── ContractRevert       a call or estimate reverted (decoded custom error)
    │   ├── TransactionFailed    a sent transaction reverted, was dropped or never mined
    │   └── TooManyInFlight      the sender refuses a send: its in-flight limit is reached
    ├── StoreError               the local database
    │   ├── StoreMismatch        the database belongs to another chain or deployment
    │   └── StoreInUse           another keeper process holds the database's lock
    ├── PeerError                talking to other keepers
    │   └── PeerRejected         a peer answered with an error status
    └── ValidationError          bad user input
        ├── InvalidAmount
        ├── InvalidAddress
        ├── InvalidCron
        └── JobRefused           `job create`'s check: the job cannot work as given
"""

from __future__ import annotations

from typing import Any


class KeeperError(Exception):
    """Root of every error the keeper raises on purpose."""


class ConfigError(KeeperError):
    """Settings are missing, malformed or contradictory."""


class ChainError(KeeperError):
    """Something went wrong between the keeper and the chain."""


class RpcUnavailable(ChainError):
    """The JSON-RPC node is unreachable, timed out or is not synced."""


class ContractRevert(ChainError):
    """A contract call reverted with a (decoded) custom error.

    ``error_name`` is the Solidity error's name (e.g. ``"NotInQuorum"``, or ``"Error"`` for a
    plain ``revert("...")``) and ``args`` its decoded arguments. ``args`` deliberately replaces
    ``BaseException.args`` so that the exception carries the revert data and nothing else.
    """

    error_name: str
    args: tuple[Any, ...]

    def __init__(self, error_name: str, args: tuple[Any, ...] = ()) -> None:
        super().__init__(error_name, *args)
        self.error_name = error_name
        self.args = tuple(args)

    def __str__(self) -> str:
        return f"contract reverted: {self.error_name}({', '.join(map(repr, self.args))})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.error_name, self.args))


class TransactionFailed(ChainError):
    """A sent transaction reverted, was dropped, or was not mined in time."""


class TooManyInFlight(ChainError):
    """The sender has as many transactions in flight (signed, not yet mined) as it may, and
    refuses new ones until some are mined: a stuck account must not pile up more."""


class StoreError(KeeperError):
    """The local database failed or holds unusable data."""


class StoreMismatch(StoreError):
    """The database was written for a different chain or deployment than configured."""


class StoreInUse(StoreError):
    """Another process holds the database's lock: two nodes on one store (and one key) would
    send transactions with the same nonces and race each other's signatures."""


class PeerError(KeeperError):
    """Communication with another keeper failed."""


class PeerRejected(PeerError):
    """A peer answered a request with an error status.

    ``code`` is the machine-readable error name of the peer API's JSON error body
    (``{"error": code, "reason": reason}``), e.g. ``"NotInQuorum"``; the same exception raised
    by a node's request handler tells the peer server which status and code to answer with.
    """

    status: int
    reason: str
    code: str

    def __init__(self, status: int, reason: str, code: str = "Rejected") -> None:
        super().__init__(f"peer rejected request: {status} {code}: {reason}")
        self.status = status
        self.reason = reason
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.status, self.reason, self.code))


class ValidationError(KeeperError):
    """User input (flags, job definitions, amounts) is invalid."""


class InvalidAmount(ValidationError):
    """An amount is negative, zero where it must be positive, or not a whole number of wei."""


class InvalidAddress(ValidationError):
    """A string is not a valid (checksummed) Ethereum address."""


class InvalidCron(ValidationError):
    """A cron expression does not parse or can never fire."""


class JobRefused(ValidationError):
    """`job create`'s check found the job cannot work as given (its target call or resolver
    reverts, its gas limit is too low, its event is not in the emitter's ABI)."""
