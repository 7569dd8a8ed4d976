"""Equivocation: a keeper that signs two results for one (job, round, check block) loses its stake.

Given a quorum and two reports with the same (jobId, round, checkBlock, checkBlockHash), when
anyone submits both with one keeper's signatures to `slashEquivocation`, then that keeper is
slashed, the reporter is rewarded and the next epoch forms without it. Honest view changes
(another executor, deadline or epoch for the same result) are not equivocation.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from web3.types import TxReceipt

from keeper.chain.calls import compute_equivocation_proof
from keeper.core.equivocation import SignedBy
from keeper.core.quorum import compute_quorums
from keeper.core.report import Report, sign_report
from tests.harness import ETHER, NO_PAYLOAD, TIME, Net, gas_cost, reverts, selector, time_trigger

ACTIVE, EXITING, SLASHED = 1, 2, 3
SLASH_REWARD_BPS = 1000
MAX_WEIGHT_MULTIPLE = 3  # KeeperRegistry.MAX_WEIGHT_MULTIPLE
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


async def honest_report(net: Net) -> tuple[int, Report]:
    """A Time job and the report its quorum would sign for round 0 at the latest block."""
    job_id = await net.create_job(net.spec(TIME, time_trigger(60), selector("onTime()")))
    start = (await net.job(job_id))["startTime"]
    _, members = await net.quorum_for_job(job_id)
    report = await net.make_report(job_id, start, NO_PAYLOAD, members[0].address)
    return job_id, report


async def prove(
    net: Net, a: Report, sig_a: bytes, b: Report, sig_b: bytes, reporter: LocalAccount
) -> TxReceipt:
    """`slashEquivocation` with `a` and `b` each signed as a batch of one."""
    proof_a = compute_equivocation_proof(SignedBy(a, sig_a))
    proof_b = compute_equivocation_proof(SignedBy(b, sig_b))
    return await net.tx(net.tm.functions.slashEquivocation(proof_a, proof_b), reporter)


def sign(net: Net, keeper: LocalAccount, report: Report) -> bytes:
    return sign_report(keeper.key, report, net.domain)


async def keeper_info(net: Net, keeper: LocalAccount) -> tuple[int, int]:
    stake, status, *_ = await net.registry.functions.keeperInfo(keeper.address).call()
    return int(stake), int(status)


# ----------------------------------------------------------------------------- slashing


@pytest.mark.parametrize("conflict", ["cursor", "payloadHash", "both"])
async def test_conflicting_reports_slash_the_signer_and_reward_the_reporter(
    net4: Net, conflict: str
) -> None:
    # given keeper 2 (stake 3 ether) signed the honest report and a conflicting one
    _, a = await honest_report(net4)
    variants: dict[str, dict[str, Any]] = {
        "cursor": {"cursor": a.cursor + 60},
        "payloadHash": {"payloadHash": keccak(b"another result")},
        "both": {"cursor": a.cursor + 60, "payloadHash": keccak(b"another result")},
    }
    b = replace(a, **variants[conflict])
    assert a.equivocation_key == b.equivocation_key and not a.same_result(b)
    cheater = net4.registered[2]
    stake = 3 * ETHER
    reporter = net4.keepers[6]  # not a keeper: anyone may prove equivocation
    reward = stake * SLASH_REWARD_BPS // 10_000
    registry_before = await net4.balance(net4.registry.address)
    reporter_before = await net4.balance(reporter.address)
    # when the reporter proves it
    receipt = await prove(net4, a, sign(net4, cheater, a), b, sign(net4, cheater, b), reporter)
    # then the whole stake is taken and 10 % of it paid to the reporter
    assert await keeper_info(net4, cheater) == (0, SLASHED)
    assert await net4.balance(reporter.address) - reporter_before == reward - gas_cost(receipt)
    assert registry_before - await net4.balance(net4.registry.address) == reward
    assert await net4.registry.functions.slashedFunds().call() == stake - reward
    (slashed,) = await net4.events(net4.registry, "Slashed", receipt)
    assert slashed["args"]["keeper"] == cheater.address
    assert slashed["args"]["reporter"] == reporter.address
    assert (slashed["args"]["amount"], slashed["args"]["reward"]) == (stake, reward)
    (proven,) = await net4.events(net4.tm, "EquivocationProven", receipt)
    assert (proven["args"]["keeper"], proven["args"]["jobId"], proven["args"]["round"]) == (
        cheater.address,
        a.jobId,
        a.round,
    )
    assert cheater.address not in await net4.registry.functions.keepers().call()


async def test_a_slashed_keeper_leaves_the_next_epoch_without_waiting_for_epoch_length(
    net4: Net,
) -> None:
    # given keeper 0 slashed for equivocation in epoch 1, which is only a few blocks old
    _, a = await honest_report(net4)
    b = replace(a, cursor=a.cursor + 60)
    cheater = net4.registered[0]
    await prove(net4, a, sign(net4, cheater, a), b, sign(net4, cheater, b), net4.owner)
    assert not await net4.registry.functions.canRotate().call()
    # when epoch 1 is MIN_EPOCH_BLOCKS old (no epoch length wait: the set changed)
    await net4.age_epoch()
    assert await net4.registry.functions.canRotate().call()
    receipt = await net4.rotate()
    # then epoch 2 forms from the three honest keepers, as keeper.core.quorum predicts, each
    # weighing its stake capped at MAX_WEIGHT_MULTIPLE * minStake (stakes 2, 3, 4 -> 2, 3, 3)
    assert await net4.epoch() == 2
    (started,) = await net4.events(net4.registry, "EpochStarted", receipt)
    cap = MAX_WEIGHT_MULTIPLE * net4.params.min_stake
    honest = {k.address: min((i + 2) * ETHER, cap) for i, k in enumerate(net4.registered[1:])}
    quorums = await net4.quorums(2)
    assert quorums == compute_quorums(bytes(started["args"]["seed"]), honest, 4)
    assert cheater.address not in [m.address for q in quorums for m in q]


async def test_a_keeper_can_be_slashed_only_once(net4: Net) -> None:
    _, a = await honest_report(net4)
    b = replace(a, cursor=a.cursor + 60)
    c = replace(a, cursor=a.cursor + 120)
    cheater = net4.registered[1]
    sig_a = sign(net4, cheater, a)
    await prove(net4, a, sig_a, b, sign(net4, cheater, b), net4.owner)
    # when a second proof arrives, then there is nothing left to slash
    err = await reverts(
        prove(net4, a, sig_a, c, sign(net4, cheater, c), net4.keepers[7]), "NothingToSlash"
    )
    assert err.args == (cheater.address.lower(),)


async def test_a_slashed_keeper_cannot_register_again(net4: Net) -> None:
    _, a = await honest_report(net4)
    b = replace(a, payloadHash=keccak(b"x"))
    cheater = net4.registered[3]
    await prove(net4, a, sign(net4, cheater, a), b, sign(net4, cheater, b), net4.owner)
    register = net4.registry.functions.register("http://127.0.0.1:9999")
    err = await reverts(net4.tx(register, cheater, value=5 * ETHER), "KeeperWasSlashed")
    assert err.args == (cheater.address.lower(),)


async def test_an_exiting_keeper_is_still_slashable_and_loses_its_withdrawal(net4: Net) -> None:
    # given keeper 1 equivocated, then requested exit before anyone noticed
    _, a = await honest_report(net4)
    b = replace(a, cursor=a.cursor + 60)
    cheater = net4.registered[1]
    sig_a, sig_b = sign(net4, cheater, a), sign(net4, cheater, b)
    await net4.tx(net4.registry.functions.requestExit(), cheater)
    assert (await keeper_info(net4, cheater))[1] == EXITING
    # when the proof arrives during unbonding, then the stake is still taken
    await prove(net4, a, sig_a, b, sig_b, net4.owner)
    assert await keeper_info(net4, cheater) == (0, SLASHED)
    await reverts(net4.tx(net4.registry.functions.withdraw(), cheater), "NotExiting")


# ----------------------------------------------------------------------------- not equivocation


@pytest.mark.parametrize(
    "changes",
    [
        {"executor": "0x" + "ee" * 20},
        {"deadline": 10**6},
        {"epoch": 2},
        {"executor": "0x" + "ee" * 20, "deadline": 10**6, "epoch": 2},
    ],
    ids=["executor", "deadline", "epoch", "all"],
)
async def test_an_honest_view_change_is_not_equivocation(
    net4: Net, changes: dict[str, Any]
) -> None:
    # given a backup leader re-signing the same result with itself as executor, later deadline
    # or the next epoch
    _, a = await honest_report(net4)
    b = replace(a, **changes)
    keeper = net4.registered[0]
    await reverts(
        prove(net4, a, sign(net4, keeper, a), b, sign(net4, keeper, b), net4.owner),
        "NotEquivocation",
    )
    assert await keeper_info(net4, keeper) == (ETHER, ACTIVE)


@pytest.mark.parametrize(
    "changes",
    [
        {"jobId": 99},
        {"round": 1},
        {"checkBlock": 1},
        {"checkBlockHash": keccak(b"a reorged block")},
    ],
    ids=["jobId", "round", "checkBlock", "checkBlockHash"],
)
async def test_different_key_with_another_result_is_not_equivocation(
    net4: Net, changes: dict[str, Any]
) -> None:
    # given two different results, but for another job, round or check block
    _, a = await honest_report(net4)
    b = replace(a, cursor=a.cursor + 60, **changes)
    keeper = net4.registered[0]
    await reverts(
        prove(net4, a, sign(net4, keeper, a), b, sign(net4, keeper, b), net4.owner),
        "NotEquivocation",
    )
    assert await keeper_info(net4, keeper) == (ETHER, ACTIVE)


async def test_signatures_of_two_different_keepers_prove_nothing(net4: Net) -> None:
    _, a = await honest_report(net4)
    b = replace(a, cursor=a.cursor + 60)
    k0, k1 = net4.registered[0], net4.registered[1]
    err = await reverts(
        prove(net4, a, sign(net4, k0, a), b, sign(net4, k1, b), net4.owner), "DifferentSigners"
    )
    assert err.args == (k0.address.lower(), k1.address.lower())
    assert await keeper_info(net4, k0) == (ETHER, ACTIVE)
    assert await keeper_info(net4, k1) == (2 * ETHER, ACTIVE)


async def test_a_signature_over_another_report_proves_nothing(net4: Net) -> None:
    # given keeper 0's honest signature presented as if it covered a conflicting report
    _, a = await honest_report(net4)
    b = replace(a, cursor=a.cursor + 60)
    keeper = net4.registered[0]
    sig_a = sign(net4, keeper, a)
    # then the second signature recovers to some other address
    await reverts(prove(net4, a, sig_a, b, sig_a, net4.owner), "DifferentSigners")
    assert await keeper_info(net4, keeper) == (ETHER, ACTIVE)


@pytest.mark.parametrize("which", [0, 1])
@pytest.mark.parametrize(
    "malform",
    ["short", "long", "zero_r", "bad_v"],
)
async def test_a_malformed_signature_is_rejected(net4: Net, which: int, malform: str) -> None:
    _, a = await honest_report(net4)
    b = replace(a, cursor=a.cursor + 60)
    keeper = net4.registered[0]
    sigs = [sign(net4, keeper, a), sign(net4, keeper, b)]
    good = sigs[which]
    sigs[which] = {
        "short": good[:64],
        "long": good + b"\x00",
        "zero_r": b"\x00" * 32 + good[32:],
        "bad_v": good[:64] + b"\x05",
    }[malform]
    err = await reverts(prove(net4, a, sigs[0], b, sigs[1], net4.owner), "InvalidSignature")
    assert err.args == (which,)
    assert await keeper_info(net4, keeper) == (ETHER, ACTIVE)


async def test_a_malleable_high_s_signature_is_rejected(net4: Net) -> None:
    # given keeper 0's valid signature turned into its high-s twin (same signer, other bytes)
    _, a = await honest_report(net4)
    b = replace(a, cursor=a.cursor + 60)
    keeper = net4.registered[0]
    sig_b = sign(net4, keeper, b)
    s = int.from_bytes(sig_b[32:64], "big")
    twin = sig_b[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - sig_b[64]])
    err = await reverts(
        prove(net4, a, sign(net4, keeper, a), b, twin, net4.owner), "MalleableSignature"
    )
    assert err.args == (1,)
