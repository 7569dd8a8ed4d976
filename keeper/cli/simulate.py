"""`keeper job create` checks a job before it is sent: what the keepers will do, done once now.

A job that cannot work still costs its owner: a target call that reverts is paid for on every
round until the job pauses itself, a gas limit below the call's need fails the same way, and a
resolver that reverts (or does not exist) never runs at all, silently. So before `createJob`
the CLI calls the target from the job's own future caller (`nextForwarder(owner)`, the address
the target will see), estimates its gas against the job's gas limit, calls the resolver as the
keepers do (from the zero address), and looks for the event among the emitter's recent logs
(and in its ABI, when given). A refusal names the decoded reason; `--force` creates anyway.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_abi.exceptions import DecodingError
from eth_utils.crypto import keccak
from web3 import AsyncWeb3
from web3.contract import AsyncContract

from keeper.chain.probe import probe_call, probe_estimate, probe_resolver
from keeper.chain.reader import RESOLVER_GAS, ZERO_ADDRESS
from keeper.chain.rpc import rpc_guard
from keeper.cli.jobspec import JobSpecDraft
from keeper.core.jobs import Trigger, decode_trigger
from keeper.core.triggers import TriggerKind
from keeper.errors import ValidationError

PERFORM_UPKEEP_SELECTOR = keccak(text="performUpkeep(bytes)")[:4]
TX_BASE_GAS = 21_000
COLD_ACCOUNT_ACCESS_GAS = 2_600  # the target is warm as a transaction's `to`, cold in execute
# How far back `job create` looks for the event an Event job waits for.
EVENT_LOOKBACK_BLOCKS = 5_000
EVENT_PAGE_BLOCKS = 1_000


@dataclass
class Simulation:
    """What the check found: refusals stop `job create` (unless --force), warnings do not."""

    refusals: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def compute_intrinsic_gas(data: bytes) -> int:
    """A transaction's base and calldata gas (EIP-2028), which an estimate includes."""
    zeros = data.count(0)
    return TX_BASE_GAS + 4 * zeros + 16 * (len(data) - zeros)


def compute_target_gas(estimate: int, data: bytes) -> int:
    """The gas the target needs inside `execute`, from an estimate of the same call sent as a
    transaction from the forwarder: less the transaction's own gas, plus the cold access."""
    return max(0, estimate - compute_intrinsic_gas(data)) + COLD_ACCOUNT_ACCESS_GAS


async def simulate_job(
    w3: AsyncWeb3[Any], tm: AsyncContract, owner: str, draft: JobSpecDraft, emitter_abi: str | None
) -> Simulation:
    """Everything `job create` can check before it sends: see the module docstring."""
    found = Simulation()
    trigger = decode_trigger(int(draft.kind), draft.trigger)
    async with rpc_guard("nextForwarder"):
        forwarder = str(await tm.functions.nextForwarder(owner).call())
    payload: bytes | None = draft.call_data
    if draft.kind == TriggerKind.Condition:
        payload = await _check_resolver(w3, trigger, found)
    elif draft.kind == TriggerKind.Event:
        await _check_event(w3, trigger, emitter_abi, found)
    if payload is not None:
        await _check_target(w3, forwarder, draft, payload, found)
    return found


async def _check_resolver(w3: AsyncWeb3[Any], trigger: Trigger, found: Simulation) -> bytes | None:
    """Calls the resolver as keepers do; returns the target calldata it asks for, if it says
    "now" (None otherwise: there is nothing to simulate yet)."""
    failure = await probe_resolver(w3, trigger.resolver, trigger.resolver_calldata)
    if failure is not None:
        found.refusals.append(f"the resolver {trigger.resolver} reverts: {failure}")
        return None
    async with rpc_guard("resolver"):
        query: Any = {
            "from": ZERO_ADDRESS,
            "to": trigger.resolver,
            "data": "0x" + trigger.resolver_calldata.hex(),
            "gas": RESOLVER_GAS,
        }
        raw = await w3.eth.call(query)
    try:
        can_exec, data = abi_decode(["bool", "bytes"], bytes(raw))
    except (DecodingError, OverflowError, ValueError):
        found.refusals.append(
            f"the resolver {trigger.resolver} does not return (bool canExec, bytes data): "
            f"{len(bytes(raw))} bytes back"
        )
        return None
    if not can_exec:
        found.notes.append("the condition is false now: the target call is checked once it is true")
        return None
    if trigger.mode == 1:
        return PERFORM_UPKEEP_SELECTOR + _encode_bytes(bytes(data))
    return bytes(data)


async def _check_target(
    w3: AsyncWeb3[Any], forwarder: str, draft: JobSpecDraft, payload: bytes, found: Simulation
) -> None:
    failure = await probe_call(w3, forwarder, draft.target, payload, None)
    if failure is not None:
        found.refusals.append(
            f"the target call reverts (simulated from the job's caller {forwarder}): {failure}"
        )
        return
    estimate = await probe_estimate(w3, forwarder, draft.target, payload)
    if estimate is None:
        return
    needed = compute_target_gas(estimate, payload)
    if needed > draft.gas_limit:
        found.refusals.append(
            f"the gas limit {draft.gas_limit:,} is below what the target call needs "
            f"(about {needed:,}): every execution would run out of gas"
        )
    else:
        found.notes.append(f"the target call works now, with about {needed:,} gas")


async def _check_event(
    w3: AsyncWeb3[Any], trigger: Trigger, emitter_abi: str | None, found: Simulation
) -> None:
    topic0 = trigger.topics[0]
    if emitter_abi is not None and any(topic0):
        known = _event_topics(emitter_abi)
        if topic0 not in known:
            found.refusals.append(
                f"the emitter's ABI ({emitter_abi}) has no event with topic0 0x{topic0.hex()}"
            )
            return
    async with rpc_guard("eth_blockNumber"):
        head = int(await w3.eth.block_number)
    start = max(0, head - EVENT_LOOKBACK_BLOCKS)
    topics: list[Any] = ["0x" + t.hex() if any(t) else None for t in trigger.topics]
    while topics and topics[-1] is None:
        topics.pop()
    for low in range(start, head + 1, EVENT_PAGE_BLOCKS):
        high = min(head, low + EVENT_PAGE_BLOCKS - 1)
        query: Any = {"address": trigger.emitter, "fromBlock": low, "toBlock": high}
        if topics:
            query["topics"] = topics
        async with rpc_guard("eth_getLogs"):
            if await w3.eth.get_logs(query):
                return
    found.warnings.append(
        f"no log of {trigger.emitter} matches these topics in the last {head - start + 1:,} "
        "blocks: check the event signature (the job waits for the next one)"
    )


def _event_topics(path: str) -> set[bytes]:
    """topic0 of every event in an ABI file (a bare ABI list or an artifact with "abi")."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValidationError(f"cannot read the emitter ABI {path}: {exc}") from exc
    abi = data.get("abi") if isinstance(data, dict) else data
    if not isinstance(abi, list):
        raise ValidationError(f'{path} holds no ABI (a list, or an object with "abi")')
    topics = set()
    for item in abi:
        if isinstance(item, dict) and item.get("type") == "event":
            types = ",".join(_abi_type(i) for i in item.get("inputs", []))
            topics.add(keccak(text=f"{item['name']}({types})"))
    return topics


def _abi_type(item: dict[str, Any]) -> str:
    kind = str(item["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in item.get("components", []))
        return f"({inner}){kind[5:]}"
    return kind


def _encode_bytes(data: bytes) -> bytes:
    return abi_encode(["bytes"], [data])
