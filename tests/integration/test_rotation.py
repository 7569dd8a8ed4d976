"""KeeperRegistry epochs and quorums on-chain, mirrored by keeper.core.quorum.

Given keepers with stakes, when `rotate()` forms an epoch (armed first, then seeded by a later
block's hash), then the quorums it emits and commits are exactly the ones the Python rules
predict (each member weighing its stake capped at 3 * minStake), and the keeper lifecycle (join,
stake, exit, withdraw) reaches the next epoch and no earlier.
"""

from __future__ import annotations

import pytest
from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3.types import TxReceipt

from keeper.chain.contracts import call
from keeper.core.quorum import (
    Member,
    compute_quorum_hash,
    compute_quorum_of,
    compute_quorums,
    unpack_member,
)
from tests.harness import (
    ETHER,
    MIN_EPOCH_BLOCKS,
    SEED_DELAY_BLOCKS,
    Net,
    gas_cost,
    make_net,
    reverts,
)

TARGET = 4
ACTIVE, EXITING, SLASHED, WITHDRAWN = 1, 2, 3, 4
GRACE_BLOCKS = 20
MAX_WEIGHT_MULTIPLE = 3  # KeeperRegistry.MAX_WEIGHT_MULTIPLE


async def formed(net: Net, receipt: TxReceipt) -> tuple[int, bytes, list[list[Member]]]:
    """(epoch, seed, quorums) as a rotation's receipt announces them."""
    (started,) = await net.events(net.registry, "EpochStarted", receipt)
    logs = await net.events(net.registry, "QuorumFormed", receipt)
    assert [log["args"]["quorum"] for log in logs] == list(range(started["args"]["quorumCount"]))
    assert all(log["args"]["epoch"] == started["args"]["epoch"] for log in logs)
    quorums = [[unpack_member(bytes(w)) for w in log["args"]["members"]] for log in logs]
    return int(started["args"]["epoch"]), bytes(started["args"]["seed"]), quorums


def weight(net: Net, stake: int) -> int:
    """A member's weight in its quorum: its stake capped at MAX_WEIGHT_MULTIPLE * minStake."""
    return min(stake, MAX_WEIGHT_MULTIPLE * net.params.min_stake)


async def assert_epoch_matches_python(
    net: Net, receipt: TxReceipt, expected_active: dict[str, int]
) -> list[list[Member]]:
    """Every on-chain fact of the new epoch equals what keeper.core.quorum computes, given the
    expected active set's stakes (address -> stake)."""
    epoch, seed, quorums = await formed(net, receipt)
    assert epoch == await net.epoch()
    assert bytes(await net.registry.functions.epochSeed(epoch).call()) == seed
    # the emitted lists are exactly compute_quorums over the expected active set, each member
    # weighing its capped stake (as the registry's weightOf says)
    for stake in set(expected_active.values()):
        assert await net.registry.functions.weightOf(stake).call() == weight(net, stake)
    cap = MAX_WEIGHT_MULTIPLE * net.params.min_stake
    assert quorums == compute_quorums(seed, expected_active, TARGET, weight_cap=cap)
    count = len(quorums)
    assert count == max(1, len(expected_active) // TARGET)
    assert await net.registry.functions.quorumCount(epoch).call() == count
    sizes = [len(q) for q in quorums]
    assert max(sizes) - min(sizes) <= 1
    members = [m.address for q in quorums for m in q]
    assert sorted(members) == sorted(expected_active)
    for q, quorum in enumerate(quorums):
        words = [m.word for m in quorum]
        assert words == sorted(words)
        committed = bytes(await net.registry.functions.quorumHash(epoch, q).call())
        assert committed == compute_quorum_hash(quorum)
    await reverts(call(net.registry.functions.quorumHash(epoch, count)), "QuorumOutOfRange")
    # the harness reads the same lists back from the logs, as a node does
    assert await net.quorums(epoch) == quorums
    return quorums


async def stakes_of(net: Net, accounts: list[LocalAccount]) -> dict[str, int]:
    return {
        a.address: int((await net.registry.functions.keeperInfo(a.address).call())[0])
        for a in accounts
    }


async def epoch_state(net: Net) -> dict[str, int]:
    names = ["epoch", "startBlock", "startTime", "count", "setChanged", "dueAt"]
    return dict(zip(names, await net.registry.functions.epochState().call(), strict=True))


# ----------------------------------------------------------------------------- formation


@pytest.mark.parametrize("k", [3, 8, 9, 13])
async def test_rotation_forms_the_quorums_python_predicts(k: int) -> None:
    # given k keepers with different stakes
    net = await make_net(keepers=k)
    accounts = await net.register_keepers([ETHER + i * 10**17 + i for i in range(k)])
    active = await stakes_of(net, accounts)
    assert len(set(active.values())) == k
    # when the first epoch is formed
    receipt = await net.rotate()
    # then it matches keeper.core.quorum in every respect
    quorums = await assert_epoch_matches_python(net, receipt, active)
    epoch = await net.epoch()
    seed = bytes(await net.registry.functions.epochSeed(epoch).call())
    # and jobs are assigned to quorums as compute_quorum_of says
    for job_id in [*range(1, 41), 2**64 + 7, 2**256 - 1]:
        q = await net.registry.functions.quorumOf(job_id, epoch).call()
        assert q == compute_quorum_of(seed, job_id, len(quorums))
        quorum, committed = await net.registry.functions.quorumFor(epoch, job_id).call()
        assert (quorum, bytes(committed)) == (q, compute_quorum_hash(quorums[q]))


async def test_quorum_views_reject_an_unknown_epoch(net4: Net) -> None:
    await reverts(call(net4.registry.functions.quorumOf(1, 2)), "UnknownEpoch")
    await reverts(call(net4.registry.functions.quorumHash(2, 0)), "UnknownEpoch")
    assert await net4.registry.functions.quorumCount(2).call() == 0


async def test_each_epoch_draws_a_new_seed(net: Net) -> None:
    # given 8 keepers and two epochs in a row (the second after epochLength)
    await net.register_keepers([ETHER] * 8)
    r1 = await net.rotate()
    net.time_travel((await epoch_state(net))["dueAt"])
    r2 = await net.rotate()
    (_, seed1, _), (_, seed2, _) = await formed(net, r1), await formed(net, r2)
    # then the seeds differ, and each epoch still matches the Python rules
    assert seed1 != seed2
    active = await stakes_of(net, net.registered)
    await assert_epoch_matches_python(net, r2, active)


# ----------------------------------------------------------------------------- when due


async def test_rotation_is_not_due_without_a_change_before_epoch_length(net4: Net) -> None:
    # given epoch 1 just formed and no change in the keeper set
    state = await epoch_state(net4)
    assert state["setChanged"] == 0
    assert state["dueAt"] == state["startTime"] + net4.params.epoch_length
    assert not await net4.registry.functions.canRotate().call()
    # when someone rotates again, then it is not due
    net4.mine(5)
    err = await reverts(net4.rotate(), "RotationNotDue")
    assert err.args == (state["dueAt"],)
    net4.time_travel(state["dueAt"] - 10)
    await reverts(net4.rotate(), "RotationNotDue")
    assert await net4.epoch() == 1


async def test_rotation_is_allowed_once_epoch_length_has_passed(net4: Net) -> None:
    # given epoch 1 and its due time
    state = await epoch_state(net4)
    # when time reaches it
    net4.time_travel(state["dueAt"])
    assert await net4.registry.functions.canRotate().call(block_identifier="pending")
    receipt = await net4.rotate(net4.keepers[2])
    # then any account may start epoch 2 with the same members
    assert await net4.epoch() == 2
    new_state = await epoch_state(net4)
    assert new_state["startTime"] >= state["dueAt"]
    assert new_state["startBlock"] == receipt["blockNumber"]
    await assert_epoch_matches_python(net4, receipt, await stakes_of(net4, net4.registered))


async def test_a_rotation_is_armed_then_seeded_by_a_later_blocks_hash(net4: Net) -> None:
    # given epoch 1 past its due time
    net4.time_travel((await epoch_state(net4))["dueAt"])
    # when someone rotates, then the rotation is only armed, naming a seed block ahead
    armed = await net4.arm_rotation(net4.keepers[2])
    arm_block = armed["blockNumber"]
    seed_block = arm_block + SEED_DELAY_BLOCKS
    (event,) = await net4.events(net4.registry, "RotationArmed", armed)
    assert (event["args"]["epoch"], event["args"]["seedBlock"]) == (2, seed_block)
    assert not await net4.events(net4.registry, "EpochStarted", armed)
    assert tuple(await net4.registry.functions.armedRotation().call()) == (arm_block, seed_block)
    assert await net4.epoch() == 1
    # and finishing it before the block after the seed block is refused: SeedNotReady
    rotate = net4.registry.functions.rotate()
    for _ in range(SEED_DELAY_BLOCKS):
        assert not await net4.registry.functions.canRotate().call()
        err = await reverts(net4.tx(rotate, net4.keepers[3]), "SeedNotReady")
        assert err.args == (seed_block,)
        net4.mine(1)
    # when anyone rotates once the seed block is mined
    assert await net4.registry.functions.canRotate().call()
    receipt = await net4.tx(rotate, net4.keepers[3])
    assert receipt["blockNumber"] == seed_block + 1
    # then epoch 2 starts with seed bytes16(keccak256(abi.encode(blockhash(seedBlock), 2)))
    seed_hash = bytes((await net4.w3.eth.get_block(seed_block))["hash"])
    expected_seed = keccak(abi_encode(["bytes32", "uint64"], [seed_hash, 2]))[:16] + bytes(16)
    epoch, seed, _ = await formed(net4, receipt)
    assert (epoch, seed) == (2, expected_seed)
    assert tuple(await net4.registry.functions.armedRotation().call()) == (0, 0)
    await assert_epoch_matches_python(net4, receipt, await stakes_of(net4, net4.registered))


async def test_an_armed_rotation_forms_the_set_frozen_when_it_was_armed(net4: Net) -> None:
    # given epoch 1 past its due time and the rotation to epoch 2 armed
    net4.time_travel((await epoch_state(net4))["dueAt"])
    await net4.arm_rotation()
    frozen = await stakes_of(net4, net4.registered)
    # when a fifth keeper registers and a keeper of epoch 1 requests exit while it is armed
    newcomer = net4.keepers[4]
    await net4.register(newcomer, 2 * ETHER)
    leaver = net4.registered[0]
    receipt = await net4.tx(net4.registry.functions.requestExit(), leaver)
    # then the leaver still serves in the armed epoch 2
    (event,) = await net4.events(net4.registry, "ExitRequested", receipt)
    assert event["args"]["epoch"] == 2
    # and epoch 2 is formed from the set frozen at arm time: with the leaver, without the newcomer
    net4.mine(SEED_DELAY_BLOCKS)
    rotation = await net4.rotate()
    await assert_epoch_matches_python(net4, rotation, frozen)
    # and both changes count for the rotation after it, which may come early
    assert (await epoch_state(net4))["setChanged"] == 1
    await net4.age_epoch()
    rotation = await net4.rotate()
    after = await stakes_of(net4, [*net4.registered[1:4], newcomer])
    await assert_epoch_matches_python(net4, rotation, after)


async def test_no_active_keepers_means_no_epoch(net: Net) -> None:
    # given no keepers at all, then the first rotation has nothing to form
    assert not await net.registry.functions.canRotate().call()
    await reverts(net.rotate(), "NoActiveKeepers")
    assert await net.epoch() == 0


async def test_every_keeper_exiting_leads_to_an_empty_epoch_they_can_leave(net4: Net) -> None:
    # given every keeper of epoch 1 leaving
    unbond_at = 0
    for keeper in net4.registered:
        receipt = await net4.tx(net4.registry.functions.requestExit(), keeper)
        (event,) = await net4.events(net4.registry, "ExitRequested", receipt)
        unbond_at = max(unbond_at, int(event["args"]["unbondAt"]))
    # when rotating (allowed early: the set changed)
    await net4.age_epoch()
    receipt = await net4.rotate()
    # then epoch 2 starts empty: no quorum is formed, so no report of epoch 2 can execute
    (started,) = await net4.events(net4.registry, "EpochStarted", receipt)
    assert (started["args"]["epoch"], started["args"]["quorumCount"]) == (2, 0)
    assert not await net4.events(net4.registry, "QuorumFormed", receipt)
    assert await net4.epoch() == 2
    assert await net4.registry.functions.quorumCount(2).call() == 0
    err = await reverts(call(net4.registry.functions.quorumFor(2, 1)), "NoQuorums")
    assert err.args == (2,)
    # and once the grace and unbonding periods are over, the last keepers withdraw their stakes
    net4.mine(GRACE_BLOCKS)
    net4.time_travel(max(unbond_at, await net4.timestamp() + 1))
    for i, keeper in enumerate(net4.registered):
        withdrawn = await net4.tx(net4.registry.functions.withdraw(), keeper)
        (event,) = await net4.events(net4.registry, "Withdrawn", withdrawn)
        assert event["args"]["amount"] == (i + 1) * ETHER
    assert await net4.registry.functions.keepers().call() == []


# ----------------------------------------------------------------------------- set changes


async def test_a_joining_keeper_enters_the_next_epoch(net4: Net) -> None:
    # given epoch 1 with 4 keepers and its committed quorum
    before = await net4.quorums(1)
    newcomer = net4.keepers[4]
    # when a fifth keeper registers
    await net4.register(newcomer, 5 * ETHER)
    # then epoch 1 is unchanged
    assert await net4.quorums(1) == before
    assert bytes(await net4.registry.functions.quorumHash(1, 0).call()) == compute_quorum_hash(
        before[0]
    )
    # and a rotation is allowed before epochLength, but not before epoch 1 is MIN_EPOCH_BLOCKS old
    state = await epoch_state(net4)
    assert state["setChanged"] == 1
    net4.mine(state["startBlock"] + MIN_EPOCH_BLOCKS - 2 - await net4.block_number())
    assert not await net4.registry.functions.canRotate().call()
    await reverts(net4.arm_rotation(), "RotationNotDue")
    net4.mine(1)
    assert await net4.registry.functions.canRotate().call()
    armed = await net4.arm_rotation()
    assert armed["blockNumber"] == state["startBlock"] + MIN_EPOCH_BLOCKS
    net4.mine(SEED_DELAY_BLOCKS)
    receipt = await net4.rotate()
    # and epoch 2 holds the newcomer, its 5 ether weighing 3 (the cap), as Python predicts
    active = await stakes_of(net4, net4.registered)
    quorums = await assert_epoch_matches_python(net4, receipt, active)
    assert Member(newcomer.address, 3 * ETHER) in quorums[0]
    assert (await epoch_state(net4))["setChanged"] == 0


async def test_an_exiting_keeper_leaves_the_next_epoch() -> None:
    # given 9 keepers (two quorums) in epoch 1
    net = await make_net(keepers=9)
    accounts = await net.register_keepers([ETHER * (i + 1) for i in range(9)])
    await net.rotate()
    leaver = accounts[3]
    # when one requests exit
    receipt = await net.tx(net.registry.functions.requestExit(), leaver)
    (event,) = await net.events(net.registry, "ExitRequested", receipt)
    assert event["args"]["epoch"] == 1
    info = await net.registry.functions.keeperInfo(leaver.address).call()
    assert (info[1], info[2]) == (EXITING, 1)
    # then it stays in epoch 1's quorums but is absent from epoch 2's, which has 2 quorums of 4
    assert leaver.address in [m.address for q in await net.quorums(1) for m in q]
    await net.age_epoch()
    rotation = await net.rotate()
    active = await stakes_of(net, [a for a in accounts if a is not leaver])
    quorums = await assert_epoch_matches_python(net, rotation, active)
    assert leaver.address not in [m.address for q in quorums for m in q]
    assert [len(q) for q in quorums] == [4, 4]


async def test_added_stake_counts_from_the_next_epoch(net4: Net) -> None:
    # given epoch 1 with keeper 0 staked 1 ether
    keeper = net4.registered[0]
    (quorum,) = await net4.quorums(1)
    assert Member(keeper.address, ETHER) in quorum
    # when it adds 2 ether
    receipt = await net4.tx(net4.registry.functions.addStake(), keeper, value=2 * ETHER)
    (event,) = await net4.events(net4.registry, "StakeAdded", receipt)
    assert (event["args"]["amount"], event["args"]["total"]) == (2 * ETHER, 3 * ETHER)
    # then epoch 1 still snapshots 1 ether, and epoch 2 (allowed early: the set changed)
    # snapshots 3 ether
    assert await net4.quorums(1) == [quorum]
    await net4.age_epoch()
    rotation = await net4.rotate()
    (new_quorum,) = await assert_epoch_matches_python(
        net4, rotation, await stakes_of(net4, net4.registered)
    )
    assert Member(keeper.address, 3 * ETHER) in new_quorum


async def test_add_stake_needs_an_active_keeper_and_a_value(net4: Net) -> None:
    await reverts(net4.tx(net4.registry.functions.addStake(), net4.registered[0]), "ZeroValue")
    await reverts(
        net4.tx(net4.registry.functions.addStake(), net4.keepers[6], value=ETHER), "NotActive"
    )


async def test_add_stake_needs_at_least_a_tenth_of_min_stake(net4: Net) -> None:
    # given keeper 0 (stake 1 ether) and minStake 1 ether
    keeper = net4.registered[0]
    least = net4.params.min_stake // 10
    # when it adds just under a tenth of minStake, then StakeIncreaseTooSmall(amount, min)
    add = net4.registry.functions.addStake()
    err = await reverts(net4.tx(add, keeper, value=least - 1), "StakeIncreaseTooSmall")
    assert err.args == (least - 1, least)
    # and exactly a tenth is added
    receipt = await net4.tx(add, keeper, value=least)
    (event,) = await net4.events(net4.registry, "StakeAdded", receipt)
    assert event["args"]["total"] == ETHER + least


# ----------------------------------------------------------------------------- withdraw


async def test_withdraw_waits_for_rotation_grace_and_unbonding(net4: Net) -> None:
    # given a keeper of epoch 1 that requested exit
    keeper = net4.registered[1]
    stake = 2 * ETHER
    receipt = await net4.tx(net4.registry.functions.requestExit(), keeper)
    (event,) = await net4.events(net4.registry, "ExitRequested", receipt)
    unbond_at = int(event["args"]["unbondAt"])
    exit_ts = int((await net4.w3.eth.get_block(receipt["blockNumber"]))["timestamp"])
    assert unbond_at == exit_ts + net4.params.unbonding_period
    withdraw = net4.registry.functions.withdraw()
    # when it withdraws before a rotation, then it is still in a quorum
    err = await reverts(net4.tx(withdraw, keeper), "StillInQuorum")
    assert err.args == (keeper.address.lower(), 1)
    # and right after the rotation (allowed early: the set changed), reports of epoch 1 may
    # still execute (grace)
    await net4.age_epoch()
    await net4.rotate()
    start_block = (await epoch_state(net4))["startBlock"]
    await reverts(net4.tx(withdraw, keeper), "StillInQuorum")
    net4.mine(start_block + GRACE_BLOCKS - await net4.block_number() - 1)
    assert await net4.block_number() == start_block + GRACE_BLOCKS - 1
    await reverts(net4.tx(withdraw, keeper), "StillInQuorum")  # mined at startBlock + 20
    # then after the grace, the unbonding period still holds the stake
    net4.mine(1)
    assert await net4.timestamp() < unbond_at
    err = await reverts(net4.tx(withdraw, keeper), "Unbonding")
    assert err.args == (keeper.address.lower(), unbond_at)
    # when the unbonding period has passed, then the whole stake comes back
    net4.time_travel(unbond_at)
    before = await net4.balance(keeper.address)
    receipt = await net4.tx(withdraw, keeper)
    after = await net4.balance(keeper.address)
    assert after - before == stake - gas_cost(receipt)
    (withdrawn,) = await net4.events(net4.registry, "Withdrawn", receipt)
    assert withdrawn["args"]["amount"] == stake
    info = await net4.registry.functions.keeperInfo(keeper.address).call()
    assert (info[0], info[1]) == (0, WITHDRAWN)
    assert keeper.address not in await net4.registry.functions.keepers().call()
    # and only once
    await reverts(net4.tx(withdraw, keeper), "NotExiting")


async def test_a_withdrawn_keeper_may_register_again(net4: Net) -> None:
    keeper = net4.registered[0]
    receipt = await net4.tx(net4.registry.functions.requestExit(), keeper)
    (event,) = await net4.events(net4.registry, "ExitRequested", receipt)
    await net4.age_epoch()
    await net4.rotate()
    net4.mine(GRACE_BLOCKS + 1)
    net4.time_travel(max(int(event["args"]["unbondAt"]), await net4.timestamp() + 1))
    await net4.tx(net4.registry.functions.withdraw(), keeper)
    # when it registers again, then it is active and joins the next epoch
    await net4.tx(net4.registry.functions.register("http://10.0.0.1:9000"), keeper, value=ETHER)
    info = await net4.registry.functions.keeperInfo(keeper.address).call()
    assert (info[0], info[1], info[2], info[3]) == (ETHER, ACTIVE, 0, 0)
    await net4.age_epoch()
    rotation = await net4.rotate()
    (quorum,) = await assert_epoch_matches_python(
        net4, rotation, await stakes_of(net4, net4.registered)
    )
    assert Member(keeper.address, ETHER) in quorum


async def test_withdraw_needs_an_exit_request(net4: Net) -> None:
    await reverts(net4.tx(net4.registry.functions.withdraw(), net4.registered[0]), "NotExiting")
    await reverts(net4.tx(net4.registry.functions.requestExit(), net4.keepers[7]), "NotActive")


# ----------------------------------------------------------------------------- register


async def test_register_rejects_a_stake_below_minimum(net: Net) -> None:
    err = await reverts(net.register(net.keepers[0], ETHER - 1), "StakeBelowMinimum")
    assert err.args == (ETHER - 1, ETHER)


async def test_register_twice_is_rejected_even_while_exiting(net4: Net) -> None:
    keeper = net4.registered[0]
    register = net4.registry.functions.register("http://127.0.0.1:9100")
    err = await reverts(net4.tx(register, keeper, value=ETHER), "AlreadyRegistered")
    assert err.args == (keeper.address.lower(),)
    await net4.tx(net4.registry.functions.requestExit(), keeper)
    await reverts(net4.tx(register, keeper, value=ETHER), "AlreadyRegistered")


@pytest.mark.parametrize("endpoint", ["", "http://" + "a" * 250])
async def test_register_rejects_an_empty_or_overlong_endpoint(net: Net, endpoint: str) -> None:
    assert endpoint == "" or len(endpoint.encode()) == 257
    await reverts(
        net.register(net.keepers[0], ETHER, endpoint=endpoint or None)
        if endpoint
        else net.tx(net.registry.functions.register(""), net.keepers[0], value=ETHER),
        "InvalidEndpoint",
    )


async def test_register_accepts_an_endpoint_of_exactly_256_bytes(net: Net) -> None:
    endpoint = "http://" + "a" * 249
    assert len(endpoint.encode()) == 256
    receipt = await net.register(net.keepers[0], ETHER, endpoint=endpoint)
    (event,) = await net.events(net.registry, "KeeperRegistered", receipt)
    assert event["args"]["endpoint"] == endpoint
    assert await net.registry.functions.endpointOf(net.keepers[0].address).call() == endpoint


async def test_set_endpoint_uses_the_same_rule(net4: Net) -> None:
    keeper = net4.registered[0]
    await reverts(net4.tx(net4.registry.functions.setEndpoint(""), keeper), "InvalidEndpoint")
    await net4.tx(net4.registry.functions.setEndpoint("https://keeper.example:8443"), keeper)
    assert await net4.registry.functions.endpointOf(keeper.address).call() == (
        "https://keeper.example:8443"
    )


# ----------------------------------------------------------------------------- slash


@pytest.mark.parametrize("caller", ["deployer", "keeper", "owner"])
async def test_only_the_task_manager_may_slash(net4: Net, caller: str) -> None:
    sender = {"deployer": net4.deployer, "keeper": net4.registered[1], "owner": net4.owner}[caller]
    victim = net4.registered[0]
    err = await reverts(
        net4.tx(net4.registry.functions.slash(victim.address, sender.address), sender),
        "NotTaskManager",
    )
    assert err.args == (sender.address.lower(),)
    info = await net4.registry.functions.keeperInfo(victim.address).call()
    assert (info[0], info[1]) == (ETHER, ACTIVE)
