"""`keeper job create` flags -> JobSpec, without a chain: each flag's grammar and encoding."""

from __future__ import annotations

import pytest
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak

from keeper.cli.jobspec import (
    build_job_spec,
    parse_address,
    parse_duration,
    parse_hex,
    parse_threshold,
    parse_topic,
)
from keeper.core.jobs import decode_trigger
from keeper.core.triggers import TriggerKind
from keeper.errors import InvalidAddress, InvalidCron, ValidationError
from tests.harness import condition_trigger, cron_trigger, event_trigger, time_trigger

T = "0x8464135c8F25Da09e49BC8782676a84730C318bC"
DEMO_EVENT = "DemoEvent(address,uint256,uint256)"


def test_addresses_are_case_insensitive_but_must_be_20_bytes() -> None:
    assert parse_address(T.lower()) == T
    assert parse_address(T.upper().replace("0X", "0x")) == T
    for bad in ("0x1234", T[2:], T + "00", "0x" + "zz" * 20, ""):
        with pytest.raises(InvalidAddress):
            parse_address(bad)


def test_hex_and_no_argument_signatures() -> None:
    assert parse_hex("0x") == b""
    assert parse_hex("0xABcd") == parse_hex("abcd") == b"\xab\xcd"
    assert parse_hex("onTime()") == keccak(text="onTime()")[:4]
    for bad in ("0xabc", "0xzz", "onTime(uint256", "hello"):
        with pytest.raises(ValidationError):
            parse_hex(bad)


def test_topics_are_32_bytes_or_an_event_signature() -> None:
    assert parse_topic(DEMO_EVENT) == keccak(text=DEMO_EVENT)
    assert parse_topic("0x" + "ab" * 32) == b"\xab" * 32
    with pytest.raises(ValidationError):
        parse_topic("0x" + "ab" * 31)


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("5m", 300), ("1h", 3600), ("1d", 86400), ("60", 60)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5x", "1.5m", "-1s", "0s", "", "m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValidationError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "bps"),
    [("0.67", 6700), ("6667bps", 6667), ("67%", 6700), ("1", 10_000), ("0.5001", 5001)],
)
def test_thresholds(text: str, bps: int) -> None:
    assert parse_threshold(text) == bps


@pytest.mark.parametrize("text", ["0.4", "0.5", "5000bps", "1.01", "0.66667", "abc", "nan"])
def test_thresholds_outside_half_to_one_or_finer_than_a_bp(text: str) -> None:
    with pytest.raises(ValidationError):
        parse_threshold(text)


def spec(**flags: str | None) -> tuple[object, ...]:
    return build_job_spec(**{"target": T, "calldata": "0x", **flags}).as_tuple()


def test_each_trigger_encodes_as_the_contract_decodes_it() -> None:
    assert spec(every="1m")[2:4] == (TriggerKind.Time, time_trigger(60))
    assert spec(cron="*/5 * * * *")[2:4] == (TriggerKind.Cron, cron_trigger("*/5 * * * *"))
    topic = keccak(text=DEMO_EVENT)
    assert spec(on_event=f"{T}:{DEMO_EVENT}:3")[3] == event_trigger(T, [topic], 3)
    checker = keccak(text="checker()")[:4]
    when = spec(when=f"{T.lower()}:checker()", min_interval="4")
    assert when[2:4] == (TriggerKind.Condition, condition_trigger(T, checker, 0, 4))


def test_defaults_gas_threshold_and_window() -> None:
    target, call_data, _, _, gas, bps, start, end, max_exec, max_price = spec(
        every="60", calldata="onTime()"
    )
    assert (target, call_data) == (T, keccak(text="onTime()")[:4])
    assert (gas, bps, start, end, max_exec, max_price) == (200_000, 6700, 0, 0, 0, 0)


def test_max_gas_price_is_an_amount_per_gas() -> None:
    assert spec(every="60", calldata="onTime()", max_gas_price="50gwei")[9] == 50 * 10**9
    for bad in ("0", "-1gwei", "19ether", "fast"):
        with pytest.raises(ValidationError):
            spec(every="60", calldata="onTime()", max_gas_price=bad)


def test_automation_mode_calls_check_upkeep_with_the_check_data_on_the_target() -> None:
    draft = build_job_spec(target=None, calldata=None, when=f"{T}:0xbeef:1")
    assert (draft.target, draft.call_data, draft.kind) == (T, b"", TriggerKind.Condition)
    trigger = decode_trigger(int(draft.kind), draft.trigger)
    assert (trigger.resolver, trigger.mode, trigger.min_interval) == (T, 1, 1)
    expected = keccak(text="checkUpkeep(bytes)")[:4] + abi_encode(["bytes"], [b"\xbe\xef"])
    assert trigger.resolver_calldata == expected
    empty = build_job_spec(target=T, calldata=None, when=f"{T}::1")
    assert decode_trigger(3, empty.trigger).resolver_calldata[4:] == abi_encode(["bytes"], [b""])


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"every": "60s", "cron": "* * * * *"}, "exactly one trigger"),
        ({}, "exactly one trigger"),
        ({"every": "60s", "min_interval": "2"}, "--min-interval applies only"),
        ({"when": f"{T}:checker():2"}, "mode '2'"),
        ({"when": f"{T}:checker()", "min_interval": "0"}, "at least 1 block"),
        ({"when": "0x" + "11" * 20 + "::1"}, "checkUpkeep on the target"),
        ({"every": "60s", "calldata": None}, "--calldata is required"),
        ({"every": "60s", "target": None}, "--target is required"),
        ({"every": "60s", "start": "100", "end": "50"}, "must be after --start"),
        ({"every": "60s", "gas_limit": "-5"}, "invalid --gas-limit"),
        ({"every": "60s", "max_executions": str(2**32)}, "invalid --max-executions"),
        ({"on_event": f"{T}:{DEMO_EVENT}:x"}, "invalid confirmations"),
        ({"on_event": T}, "expected ADDR:TOPIC0"),
    ],
)
def test_bad_combinations_name_the_flag(flags: dict[str, str | None], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
        spec(**flags)


def test_cron_is_checked_with_the_same_rules_as_keepers() -> None:
    with pytest.raises(InvalidCron):
        spec(cron="61 * * * *")
    with pytest.raises(InvalidCron):
        spec(cron="0 0 30 2 *")  # parses, never fires


def test_a_usage_error_is_one_line_and_exit_2() -> None:
    import subprocess
    import sys
    from pathlib import Path

    keeper = Path(sys.executable).parent / "keeper"
    for args in (["job", "create", "--bogus"], ["job", "show"], ["nonsense"]):
        result = subprocess.run([str(keeper), *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("keeper: error:"), result.stderr


def test_an_address_in_one_case_is_taken_as_written_and_mixed_case_must_be_its_checksum() -> None:
    assert parse_address(T.lower()) == T
    assert parse_address("0x" + T[2:].upper()) == T
    assert parse_address(T) == T
    i = next(i for i, c in enumerate(T[2:], start=2) if c.isalpha())
    with pytest.raises(InvalidAddress, match="checksum is wrong"):
        parse_address(T[:i] + T[i].swapcase() + T[i + 1 :])
