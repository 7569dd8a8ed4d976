"""`keeper job create` simulates what the keepers will do before anything is sent: a target call
that reverts, a gas limit below the call's need and a resolver that reverts are refused with the
decoded reason (nothing sent; --force creates anyway); an event never seen gets a warning, and
one the emitter's ABI lacks is refused."""

from __future__ import annotations

from eth_utils.crypto import keccak

from keeper.chain.artifacts import ARTIFACTS_DIR
from tests.cli.support import (
    NO_WORK,
    CliChain,
    Result,
    assert_ok,
    assert_one_line_error,
    created_job_id,
    key_hex,
)

DEMO_EVENT = "0x" + keccak(text="DemoEvent(address,uint256,uint256)").hex()
NEVER_EMITTED = "0x" + keccak(text="Nothing(uint256)").hex()


def create(chain: CliChain, *flags: str) -> Result:
    return chain.keeper("job", "create", "--target", chain.target, *flags)


def test_a_target_call_that_reverts_is_refused_with_its_reason(cli_chain: CliChain) -> None:
    # given a job whose call reverts with the target's NoWork() error
    before = cli_chain.snapshot()
    result = create(cli_chain, "--calldata", "0x" + NO_WORK.hex(), "--every", "60s")
    # then it is refused, the decoded error named, and nothing sent
    assert_one_line_error(result, "the target call reverts", "NoWork()", "--force")
    assert cli_chain.snapshot() == before
    # and --force creates it anyway, with the reason as a warning
    forced = create(cli_chain, "--calldata", "0x" + NO_WORK.hex(), "--every", "60s", "--force")
    created_job_id(forced)
    assert "NoWork()" in forced.stderr and "created anyway" in forced.stderr


def test_calldata_the_target_does_not_have_is_refused(cli_chain: CliChain) -> None:
    before = cli_chain.snapshot()
    result = create(cli_chain, "--calldata", "foo()", "--every", "60s")
    assert_one_line_error(result, "the target call reverts", "reverted without data")
    assert cli_chain.snapshot() == before


def test_a_gas_limit_below_the_calls_need_is_refused(cli_chain: CliChain) -> None:
    # onTime() writes the target's counters: far more than the 10,000 minimum gas limit
    before = cli_chain.snapshot()
    result = create(cli_chain, "--calldata", "onTime()", "--every", "60s", "--gas-limit", "10000")
    assert_one_line_error(result, "gas limit 10,000 is below what the target call needs")
    assert cli_chain.snapshot() == before


def test_a_missing_resolver_function_is_refused(cli_chain: CliChain) -> None:
    before = cli_chain.snapshot()
    result = create(cli_chain, "--when", f"{cli_chain.target}:nothere():0")
    assert_one_line_error(result, f"the resolver {cli_chain.target} reverts", "without data")
    assert cli_chain.snapshot() == before


def test_a_working_job_is_created_and_says_what_its_call_costs(cli_chain: CliChain) -> None:
    result = create(cli_chain, "--calldata", "onTime()", "--every", "60s")
    out = assert_ok(result)
    assert "check: the target call works now, with about" in out
    created_job_id(result)


def test_an_event_never_seen_gets_a_warning_and_one_the_abi_lacks_is_refused(
    cli_chain: CliChain,
) -> None:
    # an event the emitter has not emitted lately: created, with a warning to check it
    seen_nowhere = create(
        cli_chain, "--calldata", "onEvent()", "--on-event", f"{cli_chain.target}:{DEMO_EVENT}:1"
    )
    created_job_id(seen_nowhere)
    assert "warning: no log of" in seen_nowhere.stderr
    # and with the emitter's ABI given, a topic0 none of its events has is refused
    abi = str(ARTIFACTS_DIR / "DemoTarget.json")
    before = cli_chain.snapshot()
    wrong = create(
        cli_chain, "--calldata", "onEvent()", "--on-event", f"{cli_chain.target}:{NEVER_EMITTED}:1",
        "--emitter-abi", abi,
    )  # fmt: skip
    assert_one_line_error(wrong, "has no event with topic0")
    assert cli_chain.snapshot() == before
    right = create(
        cli_chain, "--calldata", "onEvent()", "--on-event", f"{cli_chain.target}:{DEMO_EVENT}:1",
        "--emitter-abi", abi,
    )  # fmt: skip
    created_job_id(right)


def test_the_owner_sets_how_many_failures_pause_a_job(cli_chain: CliChain) -> None:
    job_id = created_job_id(create(cli_chain, "--calldata", "onTime()", "--every", "60s"))
    assert cli_chain.job(job_id)["maxFailures"] == 3  # a new job's default
    # the owner sets it, 0 meaning never
    out = assert_ok(cli_chain.keeper("job", "max-failures", str(job_id), "0"))
    assert "never pauses itself" in out
    assert cli_chain.job(job_id)["maxFailures"] == 0
    assert_ok(cli_chain.keeper("job", "max-failures", str(job_id), "5"))
    assert cli_chain.job(job_id)["maxFailures"] == 5
    # a count the contract cannot take, and a stranger, are refused in one line
    before = cli_chain.snapshot()
    bad = cli_chain.keeper("job", "max-failures", str(job_id), "255")
    assert_one_line_error(bad, "invalid failure count '255'")
    stranger = key_hex(cli_chain.accounts[6])
    refused = cli_chain.keeper("job", "max-failures", str(job_id), "1", key=stranger)
    assert_one_line_error(refused, "NotJobOwner")
    assert cli_chain.snapshot() == before
    assert cli_chain.job(job_id)["maxFailures"] == 5
