"""Simulations that explain a job to a person: why its target call or its resolver fails.

Only read calls, at the latest block. They run when someone asks (the admin listener's job
views), never on the path of a round, so a failing job costs the provider nothing per head.
"""

from __future__ import annotations

from typing import Any

from web3 import AsyncWeb3

from keeper.chain.contracts import revert_of
from keeper.chain.reader import RESOLVER_GAS, ZERO_ADDRESS
from keeper.chain.rpc import TRANSPORT_ERRORS, rpc_guard

EMPTY_REVERT = "reverted without data (no function with that selector, or a bare revert)"


async def probe_call(
    w3: AsyncWeb3[Any], sender: str, to: str, data: bytes, gas: int | None
) -> str | None:
    """eth_call of `data` on `to` from `sender` with `gas` (None: the node's default): the
    decoded revert as one line, or None when the call succeeds.

    A node that refuses to simulate a sender without ether (eth-tester checks the fee even in
    a call; geth and anvil do not) is asked again from the zero address, as resolvers are."""
    failure: str | None = None
    for origin in (sender, ZERO_ADDRESS):
        call: dict[str, Any] = {"from": origin, "to": to, "data": "0x" + data.hex()}
        if gas is not None:
            call["gas"] = gas
        try:
            async with rpc_guard("probe"):
                await w3.eth.call(call, "latest")  # type: ignore[arg-type]
        except TRANSPORT_ERRORS:
            raise
        except Exception as exc:
            if revert_of(exc) is None and _is_unfunded_sender(exc):
                continue
            return _reason(exc)
        return None
    return failure


async def probe_estimate(w3: AsyncWeb3[Any], sender: str, to: str, data: bytes) -> int | None:
    """eth_estimateGas of the call, or None when it reverts whatever the gas (asked again from
    the zero address like `probe_call`)."""
    for origin in (sender, ZERO_ADDRESS):
        call = {"from": origin, "to": to, "data": "0x" + data.hex()}
        try:
            async with rpc_guard("probe"):
                return int(await w3.eth.estimate_gas(call))  # type: ignore[arg-type]
        except TRANSPORT_ERRORS:
            raise
        except Exception as exc:  # a revert: the estimate says nothing more than the call did
            if revert_of(exc) is None and _is_unfunded_sender(exc):
                continue
            return None
    return None


def _is_unfunded_sender(exc: Exception) -> bool:
    text = str(exc).lower()
    return "afford" in text or "insufficient funds" in text or "fee per gas" in text


async def probe_resolver(w3: AsyncWeb3[Any], resolver: str, data: bytes) -> str | None:
    """Why a resolver call fails (as keepers call it: from the zero address), or None."""
    return await probe_call(w3, ZERO_ADDRESS, resolver, data, RESOLVER_GAS)


def _reason(exc: Exception) -> str:
    revert = revert_of(exc)
    if revert is None:
        text = " ".join(str(exc).split())
        return text[:200] or type(exc).__name__
    if (
        revert.error_name == "Empty"
        or (revert.error_name == "Error" and revert.args in ((), ("",)))
        or (revert.error_name == "Unknown" and revert.args in ((), ("",)))
    ):
        return EMPTY_REVERT
    if revert.error_name == "Error" and len(revert.args) == 1:
        return f'revert("{revert.args[0]}")'
    args = ", ".join(_plain(a) for a in revert.args)
    return f"{revert.error_name}({args})"


def _plain(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return str(value)
