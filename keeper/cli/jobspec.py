"""The flags of `keeper job create` -> a TaskManager.JobSpec, validated before anything is sent.

No I/O: every bad flag becomes a ValidationError (or InvalidAddress / InvalidCron) with a
one-line message; the cron rule itself is keeper.core.cron's. The contract validates again (gas
limit range, minimum interval, deposit): those reverts come back by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from keeper.core.cron import validate_cron
from keeper.core.triggers import TriggerKind
from keeper.core.units import parse_amount
from keeper.errors import InvalidAddress, ValidationError

DEFAULT_GAS_LIMIT = 200_000
DEFAULT_THRESHOLD = "0.67"
DEFAULT_MIN_INTERVAL = 1
ZERO_TOPIC = b"\x00" * 32
CHECK_UPKEEP_SELECTOR = keccak(text="checkUpkeep(bytes)")[:4]
MODE_RESOLVER, MODE_AUTOMATION = 0, 1
UINT16_MAX, UINT32_MAX, UINT48_MAX, UINT64_MAX = 2**16 - 1, 2**32 - 1, 2**48 - 1, 2**64 - 1

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HEX = re.compile(r"^(0x)?([0-9a-fA-F]{2})*$")
_SIGNATURE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\([A-Za-z0-9_,\[\]() ]*\)$")
_DURATION = re.compile(r"^([0-9]+)([smhd]?)$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_TRIGGER_FLAGS = ("--every", "--cron", "--on-event", "--when")


@dataclass(frozen=True)
class JobSpecDraft:
    """A JobSpec ready for `createJob`, field for field."""

    target: str
    call_data: bytes
    kind: TriggerKind
    trigger: bytes
    gas_limit: int
    threshold_bps: int
    start_time: int = 0
    end_time: int = 0
    max_executions: int = 0
    max_gas_price: int = 0

    def as_tuple(self) -> tuple[Any, ...]:
        """The ABI tuple in TaskManager.JobSpec order."""
        return (
            self.target,
            self.call_data,
            int(self.kind),
            self.trigger,
            self.gas_limit,
            self.threshold_bps,
            self.start_time,
            self.end_time,
            self.max_executions,
            self.max_gas_price,
        )


def parse_address(text: str, what: str = "address") -> str:
    """A checksummed address. All lower or all upper case is taken as written; mixed case is an
    EIP-55 checksum and must be right (a typo in a mixed-case address is caught, not sent)."""
    value = text.strip()
    if not _ADDRESS.match(value):
        raise InvalidAddress(f"invalid {what} {text!r}: expected 0x and 40 hex digits")
    digits = value[2:]
    checksummed = to_checksum_address(value)
    if digits != digits.lower() and digits != digits.upper() and value != checksummed:
        raise InvalidAddress(
            f"invalid {what} {text!r}: its mixed-case checksum is wrong (EIP-55); "
            f"did you mean {checksummed}?"
        )
    return checksummed


def parse_hex(text: str, what: str = "hex") -> bytes:
    """Bytes from hex (0x optional; "0x" is empty), or the selector of a no-argument signature
    such as `onTime()`."""
    value = text.strip()
    if value.endswith("()") and _SIGNATURE.match(value):
        return keccak(text=value)[:4]
    if not _HEX.match(value):
        raise ValidationError(f"invalid {what} {text!r}: expected hex bytes such as 0x6a627842")
    return bytes.fromhex(value.removeprefix("0x"))


def parse_topic(text: str) -> bytes:
    """A 32-byte topic in hex, or an event signature (`DemoEvent(address,uint256,uint256)`)."""
    value = text.strip()
    if _SIGNATURE.match(value):
        return keccak(text=value.replace(" ", ""))
    if not re.match(r"^(0x)?[0-9a-fA-F]{64}$", value):
        raise ValidationError(
            f"invalid topic {text!r}: expected 32 bytes of hex or an event signature"
        )
    return bytes.fromhex(value.removeprefix("0x"))


def parse_duration(text: str) -> int:
    """Seconds in `30s`, `5m`, `1h`, `1d` or a bare number of seconds."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValidationError(f"invalid duration {text!r}: expected e.g. 30s, 5m, 1h, 1d or 60")
    seconds = int(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds <= 0 or seconds > UINT64_MAX:
        raise ValidationError(f"invalid duration {text!r}: must be positive")
    return seconds


def parse_threshold(text: str) -> int:
    """Basis points from a fraction (`0.67` -> 6700), a percentage (`67%`) or `6667bps`;
    must be above half the quorum's stake and at most all of it."""
    value = text.strip().lower()
    try:
        if value.endswith("bps"):
            bps = Decimal(value[:-3])
        elif value.endswith("%"):
            bps = Decimal(value[:-1]) * 100
        else:
            bps = Decimal(value) * 10_000
    except InvalidOperation as exc:
        raise ValidationError(
            f"invalid threshold {text!r}: expected e.g. 0.67, 67% or 6667bps"
        ) from exc
    if not bps.is_finite() or bps != bps.to_integral_value():
        raise ValidationError(f"invalid threshold {text!r}: finer than one basis point")
    if not 5_000 < bps <= 10_000:
        raise ValidationError(
            f"threshold {text!r} out of range: must be above 0.5 and at most 1 "
            "(5000 < bps <= 10000)"
        )
    return int(bps)


def parse_uint(text: str | None, what: str, maximum: int, default: int = 0) -> int:
    """A whole number in [0, maximum] from a flag, `default` when the flag is absent."""
    if text is None:
        return default
    value = text.strip()
    if not value.isdigit() or int(value) > maximum:
        raise ValidationError(f"invalid {what} {text!r}: expected a whole number up to {maximum}")
    return int(value)


def encode_event_trigger(text: str) -> bytes:
    """`ADDR:TOPIC0[:CONFIRMATIONS]` -> Event trigger bytes (topics 1-3 match anything)."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise ValidationError(f"invalid --on-event {text!r}: expected ADDR:TOPIC0[:CONFIRMATIONS]")
    emitter = parse_address(parts[0], "--on-event emitter")
    topic0 = parse_topic(parts[1])
    confirmations = parse_uint(parts[2] if len(parts) == 3 else None, "confirmations", UINT16_MAX)
    topics = [topic0, ZERO_TOPIC, ZERO_TOPIC, ZERO_TOPIC]
    return abi_encode(["address", "bytes32[4]", "uint16"], [emitter, topics, confirmations])


def parse_condition(text: str) -> tuple[str, bytes, int]:
    """`RESOLVER:CALLDATA[:MODE]` -> (resolver, resolverCalldata, mode).

    Mode 0: CALLDATA is what the resolver is called with (e.g. `checker()`). Mode 1
    (Automation-compatible): RESOLVER is the target itself and CALLDATA is the `checkData`, so
    the resolver calldata is `checkUpkeep(checkData)`; `ADDR::1` means empty checkData.
    """
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise ValidationError(f"invalid --when {text!r}: expected RESOLVER:CALLDATA[:MODE]")
    resolver = parse_address(parts[0], "--when resolver")
    data = parse_hex(parts[1], "--when calldata")
    mode = MODE_RESOLVER
    if len(parts) == 3:
        if parts[2].strip() not in ("0", "1"):
            raise ValidationError(f"invalid --when mode {parts[2]!r}: expected 0 or 1")
        mode = int(parts[2])
    if mode == MODE_AUTOMATION:
        data = CHECK_UPKEEP_SELECTOR + abi_encode(["bytes"], [data])
    return resolver, data, mode


def build_job_spec(
    *,
    target: str | None,
    calldata: str | None,
    every: str | None = None,
    cron: str | None = None,
    on_event: str | None = None,
    when: str | None = None,
    gas_limit: str | None = None,
    threshold: str | None = None,
    start: str | None = None,
    end: str | None = None,
    max_executions: str | None = None,
    min_interval: str | None = None,
    max_gas_price: str | None = None,
) -> JobSpecDraft:
    """Validates the flags of `job create` and encodes the JobSpec they describe."""
    given = [
        f
        for f, v in zip(_TRIGGER_FLAGS, (every, cron, on_event, when), strict=True)
        if v is not None
    ]
    if len(given) != 1:
        found = ", ".join(given) if given else "none"
        raise ValidationError(f"give exactly one trigger of {', '.join(_TRIGGER_FLAGS)} ({found})")
    if min_interval is not None and when is None:
        raise ValidationError("--min-interval applies only to --when (Condition) jobs")
    kind, trigger, resolver = _encode_trigger(every, cron, on_event, when, min_interval)
    if target is None and resolver is None:
        raise ValidationError("--target is required (only --when ADDR:CHECKDATA:1 implies it)")
    target_address = parse_address(target, "--target") if target is not None else resolver
    assert target_address is not None
    if resolver is not None and target_address != resolver:
        raise ValidationError(
            f"--when mode 1 calls checkUpkeep on the target itself: resolver {resolver} "
            f"is not --target {target_address}"
        )
    if calldata is None and kind != TriggerKind.Condition:
        raise ValidationError("--calldata is required (only --when jobs take it from the resolver)")
    start_time = parse_uint(start, "--start", UINT64_MAX)
    end_time = parse_uint(end, "--end", UINT64_MAX)
    if end_time and start_time and end_time <= start_time:
        raise ValidationError(f"--end {end_time} must be after --start {start_time}")
    return JobSpecDraft(
        target=target_address,
        call_data=parse_hex(calldata, "--calldata") if calldata is not None else b"",
        kind=kind,
        trigger=trigger,
        gas_limit=parse_uint(gas_limit, "--gas-limit", UINT32_MAX, DEFAULT_GAS_LIMIT),
        threshold_bps=parse_threshold(threshold or DEFAULT_THRESHOLD),
        start_time=start_time,
        end_time=end_time,
        max_executions=parse_uint(max_executions, "--max-executions", UINT32_MAX),
        max_gas_price=parse_gas_price(max_gas_price),
    )


def draft_from_flags(flags: Any) -> JobSpecDraft:
    """`build_job_spec` from the attributes of `keeper job create`'s parsed flags."""
    return build_job_spec(
        target=flags.target,
        calldata=flags.calldata,
        every=flags.every,
        cron=flags.cron,
        on_event=flags.on_event,
        when=flags.when,
        gas_limit=flags.gas_limit,
        threshold=flags.threshold,
        start=flags.start,
        end=flags.end,
        max_executions=flags.max_executions,
        min_interval=flags.min_interval,
        max_gas_price=getattr(flags, "max_gas_price", None),
    )


def parse_gas_price(text: str | None) -> int:
    """`--max-gas-price`: an amount per gas such as 50gwei (a bare number is wei); none = 0."""
    if text is None:
        return 0
    price = parse_amount(text)
    if price == 0 or price > UINT64_MAX:
        raise ValidationError(
            f"invalid --max-gas-price {text!r}: more than zero and at most {UINT64_MAX} wei"
        )
    return price


def _encode_trigger(
    every: str | None,
    cron: str | None,
    on_event: str | None,
    when: str | None,
    min_interval: str | None,
) -> tuple[TriggerKind, bytes, str | None]:
    """(kind, trigger bytes, the resolver when it must be the target: mode 1)."""
    if every is not None:
        return TriggerKind.Time, abi_encode(["uint64"], [parse_duration(every)]), None
    if cron is not None:
        validate_cron(cron)
        return TriggerKind.Cron, abi_encode(["string"], [cron]), None
    if on_event is not None:
        return TriggerKind.Event, encode_event_trigger(on_event), None
    assert when is not None
    resolver, data, mode = parse_condition(when)
    spacing = parse_uint(min_interval, "--min-interval", UINT48_MAX, DEFAULT_MIN_INTERVAL)
    if spacing == 0:
        raise ValidationError("--min-interval must be at least 1 block")
    trigger = abi_encode(["address", "bytes", "uint8", "uint64"], [resolver, data, mode, spacing])
    return TriggerKind.Condition, trigger, resolver if mode == MODE_AUTOMATION else None
