"""Regression tests of the contracts v2 findings, keeper side: each test is named for the attack it
stops, and each would fail on the contracts before v2 (the reason is given per test).

Before v2 a member's weight was its whole stake (one whale outvoted a quorum), any set change
(even a 1 wei top-up) allowed a rotation from the next block with a seed the caller's block
chose, the registry's cap counted exiting keepers and refused newcomers however much they staked,
the last keepers could never leave (no rotation without an active keeper), and an unbonding
period of 0 was accepted. Job-side findings are in test_attacks_jobs.py.
"""

from __future__ import annotations

import pytest
from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from keeper.chain.contracts import DeployParams, call, deploy_contracts
from keeper.core.quorum import Member
from tests.harness import ETHER, SEED_DELAY_BLOCKS, Net, gas_cost, make_net, reverts
from tests.integration.execute_support import time_round

ACTIVE, EXITING, SLASHED, WITHDRAWN = 1, 2, 3, 4
MAX_WEIGHT_MULTIPLE = 3  # KeeperRegistry.MAX_WEIGHT_MULTIPLE
MIN_EPOCH_BLOCKS = 30  # KeeperRegistry.MIN_EPOCH_BLOCKS
EPOCH_GRACE_BLOCKS = 20  # KeeperRegistry.EPOCH_GRACE_BLOCKS
MAX_KEEPERS = 256  # KeeperRegistry.MAX_KEEPERS


# ----------------------------------------------------------------------- helpers


async def epoch_state(net: Net) -> dict[str, int]:
    names = ["epoch", "startBlock", "startTime", "count", "setChanged", "dueAt"]
    return dict(zip(names, await net.registry.functions.epochState().call(), strict=True))


async def info(net: Net, keeper: LocalAccount) -> tuple[int, int, int, int]:
    """(stake, status, exitEpoch, unbondAt) of a keeper."""
    stake, status, exit_epoch, unbond_at, _ = await net.registry.functions.keeperInfo(
        keeper.address
    ).call()
    return int(stake), int(status), int(exit_epoch), int(unbond_at)


def members_of(quorums: list[list[Member]]) -> set[str]:
    return {m.address for q in quorums for m in q}


def expected_seed(seed_block_hash: bytes, epoch: int) -> bytes:
    """bytes16(keccak256(abi.encode(blockhash(seedBlock), epoch))), left-aligned in a bytes32."""
    return keccak(abi_encode(["bytes32", "uint64"], [seed_block_hash, epoch]))[:16] + bytes(16)


async def mine_until_next_block_is(net: Net, number: int) -> None:
    """Mines so that the next transaction lands in block `number`."""
    net.mine(number - 1 - await net.block_number())
    assert await net.block_number() == number - 1


# ----------------------------------------------------------------------- 6. a whale


@pytest.fixture
async def whale_net() -> Net:
    """One keeper staking 10 ether beside three staking 1 ether (minStake): one quorum of four."""
    net = await make_net(keepers=4)
    await net.register_keepers([10 * ETHER, ETHER, ETHER, ETHER])
    await net.rotate()
    return net


async def test_a_whale_cannot_outvote_a_quorum_of_small_stakes(whale_net: Net) -> None:
    # Before v2 the whale's word carried 10 of 13 ether (77% >= the 66.67% threshold): it
    # executed any report alone.
    net = whale_net
    whale, small = net.registered[0], net.registered[1:]
    # given the quorum, where the whale's weight is capped at 3 * minStake
    (quorum,) = await net.quorums()
    assert Member(whale.address, MAX_WEIGHT_MULTIPLE * ETHER) in quorum
    assert all(Member(k.address, ETHER) in quorum for k in small)
    assert await net.registry.functions.weightOf(10 * ETHER).call() == 3 * ETHER
    assert await net.registry.functions.weightOf(ETHER).call() == ETHER
    assert (await info(net, whale))[0] == 10 * ETHER  # the stake itself is kept whole
    rnd = await time_round(net)
    # when the whale signs alone, then too few signers (and nothing changed)
    assert await rnd.rejected("TooFewSigners", signers=[whale]) == (1, 4)
    # when the whale and one small keeper sign (half the members), then still too few
    assert await rnd.rejected("TooFewSigners", signers=[whale, small[0]]) == (2, 4)
    # when three of the four sign, then the round executes
    await rnd.executes(signers=[whale, small[0], small[1]])


async def test_a_whale_beyond_the_weight_cap_buys_no_extra_vote(whale_net: Net) -> None:
    # Before v2 the whale and two small keepers held 12 of 13 ether (92%), above a 90% threshold.
    net = whale_net
    whale, small = net.registered[0], net.registered[1:]
    # given a job that needs 90% of the quorum's weight
    rnd = await time_round(net, threshold_bps=9000)
    # when the whale and two small keepers sign (3 + 1 + 1 of 6 ether of weight)
    # then their weight (5 of 6 ether) falls short
    await rnd.rejected("InsufficientStake", signers=[whale, small[0], small[1]])
    # and the whole quorum executes it
    await rnd.executes()


# ----------------------------------------------------------------------- 7. rotation churn


async def test_a_dust_top_up_cannot_force_a_rotation(net4: Net) -> None:
    # Before v2 addStake(1 wei) marked the set changed and allowed a rotation from the next block:
    # a keeper could re-draw the quorums (and their seed) at will.
    keeper = net4.registered[0]
    add_stake = net4.registry.functions.addStake()
    least = net4.params.min_stake // 10
    # when a keeper adds 1 wei, or anything under minStake / 10, then it is refused
    for amount in (1, least - 1):
        err = await reverts(net4.tx(add_stake, keeper, value=amount), "StakeIncreaseTooSmall")
        assert err.args == (amount, least)
    # and the set is unchanged: no early rotation is allowed
    assert (await info(net4, keeper))[0] == ETHER
    assert (await epoch_state(net4))["setChanged"] == 0
    net4.mine(MIN_EPOCH_BLOCKS)
    assert not await net4.registry.functions.canRotate().call()
    await reverts(net4.arm_rotation(), "RotationNotDue")
    # while minStake / 10 is accepted and counts as a change
    await net4.tx(add_stake, keeper, value=least)
    assert (await info(net4, keeper))[0] == ETHER + least
    assert (await epoch_state(net4))["setChanged"] == 1


async def test_a_set_change_cannot_end_an_epoch_before_min_epoch_blocks(net4: Net) -> None:
    # Before v2 a set change allowed a rotation from the very next block.
    state = await epoch_state(net4)
    start = state["startBlock"]
    # given a valid set change right after epoch 1 began
    await net4.register(net4.keepers[4], ETHER)
    assert (await epoch_state(net4))["setChanged"] == 1
    # when anyone tries to rotate before the epoch is MIN_EPOCH_BLOCKS old, then RotationNotDue
    err = await reverts(net4.arm_rotation(), "RotationNotDue")
    assert err.args == (state["dueAt"],)
    await mine_until_next_block_is(net4, start + MIN_EPOCH_BLOCKS - 1)
    await reverts(net4.arm_rotation(), "RotationNotDue")
    assert await net4.epoch() == 1
    # when the next block is MIN_EPOCH_BLOCKS after the epoch's start, then the rotation arms
    net4.mine(1)
    receipt = await net4.arm_rotation()
    assert receipt["blockNumber"] == start + MIN_EPOCH_BLOCKS
    (armed,) = await net4.events(net4.registry, "RotationArmed", receipt)
    assert dict(armed["args"]) == {
        "epoch": 2,
        "seedBlock": start + MIN_EPOCH_BLOCKS + SEED_DELAY_BLOCKS,
    }


async def test_the_seed_and_the_set_are_fixed_when_the_rotation_is_armed(net4: Net) -> None:
    # Before v2 one rotate() call drew the seed from its own block (prevrandao, parent hash) and
    # the set as it stood then: whoever rotated (or registered just before) chose the draw.
    net4.time_travel((await epoch_state(net4))["dueAt"])
    # given a rotation armed in block A, naming A + 2 as its seed block
    receipt = await net4.arm_rotation()
    arm_block = int(receipt["blockNumber"])
    seed_block = arm_block + SEED_DELAY_BLOCKS
    (armed,) = await net4.events(net4.registry, "RotationArmed", receipt)
    assert dict(armed["args"]) == {"epoch": 2, "seedBlock": seed_block}
    armed_view = await net4.registry.functions.armedRotation().call()
    assert tuple(armed_view) == (arm_block, seed_block)
    # when the rotation is finished before the seed block exists, then SeedNotReady
    err = await reverts(net4.arm_rotation(), "SeedNotReady")  # would land in A + 1
    assert err.args == (seed_block,)
    # when a keeper registers after the arm (block A + 1) and a member requests exit (A + 2)
    late = net4.keepers[4]
    await net4.register(late, 4 * ETHER)
    await reverts(net4.arm_rotation(), "SeedNotReady")  # would land in the seed block itself
    leaver = net4.registered[0]
    exit_receipt = await net4.tx(net4.registry.functions.requestExit(), leaver)
    (exit_event,) = await net4.events(net4.registry, "ExitRequested", exit_receipt)
    assert exit_event["args"]["epoch"] == 2  # it still serves in the armed epoch
    assert exit_receipt["blockNumber"] == seed_block
    finish = await net4.arm_rotation()
    # then the epoch's seed is the armed seed block's hash, hashed with the epoch
    seed_hash = bytes((await net4.w3.eth.get_block(seed_block))["hash"])
    (started,) = await net4.events(net4.registry, "EpochStarted", finish)
    assert started["args"]["epoch"] == 2
    assert bytes(started["args"]["seed"]) == expected_seed(seed_hash, 2)
    assert bytes(await net4.registry.functions.epochSeed(2).call()) == expected_seed(seed_hash, 2)
    # and the set is the one frozen at the arm: the late keeper waits, the leaver serves
    members = members_of(await net4.quorums(2))
    assert late.address not in members
    assert leaver.address in members
    assert len(members) == 4
    assert tuple(await net4.registry.functions.armedRotation().call()) == (0, 0)
    # and the late keeper's arrival still counts as a change: it joins MIN_EPOCH_BLOCKS later
    assert (await epoch_state(net4))["setChanged"] == 1
    net4.mine(MIN_EPOCH_BLOCKS)
    await net4.rotate()
    members = members_of(await net4.quorums(3))
    assert late.address in members
    assert leaver.address not in members


async def test_a_keeper_cannot_raise_its_weight_once_the_seed_is_public(net4: Net) -> None:
    # The armed epoch's weights are read when it starts; once the seed block is mined every
    # keeper knows its future quorum, so a top-up then would buy weight where it helps most.
    net4.time_travel((await epoch_state(net4))["dueAt"])
    keeper = net4.registered[0]
    stake_before = (await info(net4, keeper))[0]
    # given an armed rotation whose seed block is mined (the seed is public)
    receipt = await net4.arm_rotation()
    seed_block = int(receipt["blockNumber"]) + SEED_DELAY_BLOCKS
    net4.mine(SEED_DELAY_BLOCKS)
    # when a member tops up its stake, then the registry refuses until the epoch has started
    err = await reverts(
        net4.tx(net4.registry.functions.addStake(), keeper, value=2 * ETHER),
        "RotationInProgress",
    )
    assert err.args == (seed_block,)
    assert (await info(net4, keeper))[0] == stake_before
    await net4.arm_rotation()  # finishes the rotation
    word = next(m for q in await net4.quorums(2) for m in q if m.address == keeper.address)
    assert word.stake == stake_before
    # and after it, the top-up is accepted and counts from the next epoch
    await net4.tx(net4.registry.functions.addStake(), keeper, value=2 * ETHER)
    assert (await info(net4, keeper))[0] == stake_before + 2 * ETHER


async def test_only_the_registry_records_quorums_in_the_task_manager(net4: Net) -> None:
    # execute reads the quorum commitments from the TaskManager's own storage (no call to the
    # registry per execution); whoever could write them would choose who signs every job
    stranger = net4.keepers[5]
    fake = keccak(b"my own quorum")
    err = await reverts(
        net4.tx(net4.tm.functions.recordEpoch(2, 1, bytes(16), [fake]), stranger),
        "NotRegistry",
    )
    assert str(err.args[0]).lower() == stranger.address.lower()
    # and the commitments it holds are the registry's, epoch by epoch
    (members,) = await net4.quorums(1)
    committed = bytes(await net4.tm.functions.quorumHash(1, 0).call())
    assert committed == keccak(b"".join(m.word for m in members))
    assert bytes(await net4.registry.functions.quorumHash(1, 0).call()) == committed


async def test_a_withheld_finish_cannot_seed_an_epoch_with_a_forgotten_block_hash(
    net4: Net,
) -> None:
    # Without the re-arm, blockhash(seedBlock) of a block 256+ deep reads 0, a seed anyone
    # knows in advance. (Before v2 there was no armed seed block at all.)
    net4.time_travel((await epoch_state(net4))["dueAt"])
    receipt = await net4.arm_rotation()
    (first,) = await net4.events(net4.registry, "RotationArmed", receipt)
    # given the armed seed block is more than 256 blocks old
    net4.mine(300)
    # when someone finishes the rotation, then it arms again with a fresh seed block instead
    again = await net4.arm_rotation()
    (rearmed,) = await net4.events(net4.registry, "RotationArmed", again)
    assert await net4.events(net4.registry, "EpochStarted", again) == []
    assert rearmed["args"]["epoch"] == 2
    assert rearmed["args"]["seedBlock"] == again["blockNumber"] + SEED_DELAY_BLOCKS
    assert rearmed["args"]["seedBlock"] > first["args"]["seedBlock"] + 256
    assert await net4.epoch() == 1


# ----------------------------------------------------------------------- 8. a full registry


async def full_registry(stakes: list[int]) -> Net:
    """A registry holding MAX_KEEPERS active keepers with these stakes (no epoch formed: a
    rotation over 256 keepers takes ~30 s in eth-tester), and 3 spare accounts."""
    assert len(stakes) == MAX_KEEPERS
    net = await make_net(keepers=MAX_KEEPERS + 3)
    register = net.registry.functions.register("http://127.0.0.1:9000")
    for keeper, stake in zip(net.keepers, stakes, strict=False):
        # explicit gas: no estimate per registration (256 of them take ~8 s this way)
        await net.tx(register, keeper, value=stake, gas=300_000)
    assert await net.registry.functions.activeKeepers().call() == MAX_KEEPERS
    return net


@pytest.mark.slow
async def test_minimum_stakes_cannot_lock_operators_out_of_a_full_registry() -> None:
    # Before v2 a full registry refused every newcomer (RegistryFull(256), whatever its stake): 256
    # minimum stakes locked the network. Now a larger stake takes the smallest one's place.
    # given 256 active keepers with minimum stakes (a few wei apart, the smallest in the middle)
    min_stake = ETHER
    offsets = [(i * 97 + 50) % MAX_KEEPERS for i in range(MAX_KEEPERS)]  # a permutation of 0..255
    net = await full_registry([min_stake + o for o in offsets])
    smallest = net.keepers[offsets.index(0)]
    assert offsets.index(0) not in (0, MAX_KEEPERS - 1)
    register = net.registry.functions.register("http://127.0.0.1:9001")
    newcomer, second = net.keepers[MAX_KEEPERS], net.keepers[MAX_KEEPERS + 1]
    # when a newcomer offers the minimum stake, then the registry is full, and names the price
    err = await reverts(net.tx(register, newcomer, value=min_stake), "RegistryFull")
    assert err.args == (MAX_KEEPERS, min_stake + 1)
    # when it offers more than the smallest active stake
    receipt = await net.tx(register, newcomer, value=min_stake + 1)
    # then the smallest keeper is evicted: it exits as if it had asked to, its stake intact
    (evicted,) = await net.events(net.registry, "KeeperEvicted", receipt)
    stake, status, exit_epoch, unbond_at = await info(net, smallest)
    assert dict(evicted["args"]) == {
        "keeper": smallest.address,
        "by": newcomer.address,
        "exitEpoch": exit_epoch,
        "unbondAt": unbond_at,
    }
    assert (stake, status) == (min_stake, EXITING)
    assert unbond_at == await net.timestamp() + net.params.unbonding_period
    assert (await info(net, newcomer))[:2] == (min_stake + 1, ACTIVE)
    assert await net.registry.functions.activeKeepers().call() == MAX_KEEPERS
    # and the bar rises with the smallest remaining stake
    err = await reverts(net.tx(register, second, value=min_stake + 1), "RegistryFull")
    assert err.args == (MAX_KEEPERS, min_stake + 2)
    # and the evicted keeper is exiting: it must withdraw before it may register again
    await reverts(net.tx(register, smallest, value=min_stake + 5), "AlreadyRegistered")


@pytest.mark.slow
async def test_an_exiting_keeper_does_not_hold_a_place_in_a_full_registry() -> None:
    # Before v2 the cap counted every listed keeper, exiting ones included, until they withdrew.
    # given 256 active minimum-stake keepers
    net = await full_registry([ETHER] * MAX_KEEPERS)
    register = net.registry.functions.register("http://127.0.0.1:9001")
    newcomer = net.keepers[MAX_KEEPERS]
    # when one of them requests exit
    await net.tx(net.registry.functions.requestExit(), net.keepers[7])
    assert await net.registry.functions.activeKeepers().call() == MAX_KEEPERS - 1
    # then a newcomer with the minimum stake enters without evicting anyone
    receipt = await net.tx(register, newcomer, value=ETHER)
    assert await net.events(net.registry, "KeeperEvicted", receipt) == []
    assert (await info(net, newcomer))[:2] == (ETHER, ACTIVE)
    assert await net.registry.functions.activeKeepers().call() == MAX_KEEPERS
    assert (await info(net, net.keepers[7]))[1] == EXITING
    assert len(await net.registry.functions.keepers().call()) == MAX_KEEPERS  # the leaver unlisted


# ----------------------------------------------------------------------- 9. the last keepers


async def test_the_last_keepers_can_exit_and_withdraw(net4: Net) -> None:
    # Before v2 a rotation with no active keeper reverted NoActiveKeepers, so the epoch never
    # advanced past the keepers' exit epoch and their stakes stayed locked for good.
    stakes = {k.address: (await info(net4, k))[0] for k in net4.registered}
    # given every keeper of epoch 1 requests exit
    unbond_at = 0
    for keeper in net4.registered:
        receipt = await net4.tx(net4.registry.functions.requestExit(), keeper)
        (event,) = await net4.events(net4.registry, "ExitRequested", receipt)
        assert event["args"]["epoch"] == 1
        unbond_at = max(unbond_at, int(event["args"]["unbondAt"]))
    assert await net4.registry.functions.activeKeepers().call() == 0
    assert await net4.registry.functions.keepers().call() == []
    # when the rotation comes due and runs
    start = (await epoch_state(net4))["startBlock"]
    await mine_until_next_block_is(net4, start + MIN_EPOCH_BLOCKS)
    receipt = await net4.rotate()
    # then an empty epoch starts: no quorum is formed, and none can be asked for
    (started,) = await net4.events(net4.registry, "EpochStarted", receipt)
    assert (started["args"]["epoch"], started["args"]["quorumCount"]) == (2, 0)
    assert await net4.events(net4.registry, "QuorumFormed", receipt) == []
    assert await net4.registry.functions.quorumCount(2).call() == 0
    err = await reverts(call(net4.registry.functions.quorumFor(2, 1)), "NoQuorums")
    assert err.args == (2,)
    # and after the grace period and the unbonding period, every keeper withdraws its stake
    net4.mine(EPOCH_GRACE_BLOCKS + 1)
    if await net4.timestamp() < unbond_at:
        net4.time_travel(unbond_at)
    for keeper in net4.registered:
        before = await net4.balance(keeper.address)
        receipt = await net4.tx(net4.registry.functions.withdraw(), keeper)
        (withdrawn,) = await net4.events(net4.registry, "Withdrawn", receipt)
        assert withdrawn["args"]["amount"] == stakes[keeper.address]
        assert await net4.balance(keeper.address) == (
            before + stakes[keeper.address] - gas_cost(receipt)
        )
        assert (await info(net4, keeper))[:2] == (0, WITHDRAWN)
    assert await net4.balance(net4.registry.address) == 0


# ----------------------------------------------------------------------- 13. configuration


async def test_an_unbonding_period_of_zero_is_refused_at_deployment(net: Net) -> None:
    # Before v2 it was accepted: only the 20-block grace after the next rotation would have stood
    # between a keeper's exit and its withdrawal, too short for an equivocation proof to land.
    params = DeployParams(unbonding_period=0)
    err = await reverts(deploy_contracts(net.w3, net.deployer.address, params), "InvalidConfig")
    assert err.args == ()
    # (one second is accepted)
    await deploy_contracts(net.w3, net.deployer.address, DeployParams(unbonding_period=1))
