"""`execute` accepts only the job's quorum, signing in member order with threshold stake,
submitted by the named executor.

Each test starts from a round that executes (the controls below), changes one thing in the
members, bitmap, signatures or sender, and checks the named custom error and that the job's
round, cursor and balance, the target's counter and every keeper's earnings are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from eth_account.signers.local import LocalAccount
from eth_keys import keys
from eth_utils import to_checksum_address

from keeper.chain.calls import KeeperCalls
from keeper.core.quorum import Member
from keeper.core.report import Batch, compute_batch_digest, compute_report_digest
from tests.harness import ETHER, Net
from tests.integration.execute_support import Round, time_round

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
ZERO_R = b"\x00" * 32


@pytest.fixture
async def round_(net4: Net) -> Round:
    """A Time job of the 4-keeper quorum (stakes 1-4 ether) and its due round."""
    return await time_round(net4)


def all_bits(members: list[Member]) -> int:
    return (1 << len(members)) - 1


async def by_stake(rnd: Round) -> dict[int, LocalAccount]:
    """The quorum's accounts by their registered stake in whole ether (their weights in the
    member list are capped, so two members may weigh the same)."""
    accounts = {}
    for m in rnd.members:
        stake, *_ = await rnd.net.registry.functions.keeperInfo(m.address).call()
        accounts[stake // ETHER] = rnd.net.account_of(m.address)
    return accounts


# ------------------------------------------------------------------ controls


async def test_hand_packed_signatures_execute(round_: Round) -> None:
    # given every member's signature, concatenated in member order, and all bits set
    packed = b"".join(round_.signatures())
    # when the executor submits them, then the round executes
    await round_.executes(bitmap=all_bits(round_.members), packed=packed)


# ------------------------------------------------------------------ the quorum


async def test_another_quorum_cannot_sign_for_the_job(net: Net) -> None:
    # given 8 keepers and target quorum size 4: two quorums
    await net.register_keepers([k * ETHER for k in range(1, 9)])
    await net.rotate()
    quorums = await net.quorums()
    assert len(quorums) == 2
    rnd = await time_round(net)
    own = quorums.index(rnd.members)
    other = 1 - own
    # when the other quorum signs the job's round as its own batch and submits its member list
    theirs = quorums[other]
    signers = [net.account_of(m.address) for m in theirs]
    report = rnd.altered(quorum=other)
    # then JobNotInQuorum(jobId, the other quorum)
    args = await rnd.rejected("JobNotInQuorum", report=report, members=theirs, signers=signers)
    assert args == (rnd.job_id, other)
    # and under the job's own quorum number their member list is not that quorum's
    await rnd.rejected("QuorumMismatch", members=theirs, signers=signers)
    # and the job's own quorum executes the same round
    await rnd.executes()


def _stake_changed(members: list[Member], outsider: str) -> list[Member]:
    return [replace(members[0], stake=members[0].stake + 1), *members[1:]]


def _member_dropped(members: list[Member], outsider: str) -> list[Member]:
    return members[:-1]


def _extra_word(members: list[Member], outsider: str) -> list[Member]:
    return [*members, Member(outsider, ETHER)]


def _reordered(members: list[Member], outsider: str) -> list[Member]:
    return list(reversed(members))


@pytest.mark.parametrize(
    "tamper",
    [_stake_changed, _member_dropped, _extra_word, _reordered],
    ids=["stake-changed", "member-dropped", "extra-word", "reordered"],
)
async def test_member_list_must_be_the_committed_one(
    round_: Round, tamper: Callable[[list[Member], str], list[Member]]
) -> None:
    # given the quorum's member list altered (it no longer hashes to the committed quorum)
    members = tamper(round_.members, round_.net.keepers[7].address)
    assert members != round_.members
    # when the quorum's signatures are submitted with it, then QuorumMismatch
    assert await round_.rejected("QuorumMismatch", members=members) == ()


@pytest.mark.parametrize(("count", "error"), [(257, "TooManyMembers"), (256, "QuorumMismatch")])
async def test_member_list_longer_than_the_bitmap_is_rejected(
    round_: Round, count: int, error: str
) -> None:
    # given a member list of `count` words (the bitmap has 256 bits)
    words = range(1, count + 1)
    members = [Member(to_checksum_address(i.to_bytes(20, "big")), ETHER) for i in words]
    # when it is submitted, then 257 words are refused outright, 256 reach the hash check
    args = await round_.rejected(error, members=members)
    assert args == ((count,) if error == "TooManyMembers" else ())


# ------------------------------------------------------------------ bitmap and signature count


@pytest.mark.parametrize("bit", [4, 255])
async def test_bitmap_bit_beyond_the_members_is_rejected(round_: Round, bit: int) -> None:
    # given all four members' signatures and a bitmap with one more bit set past them
    bitmap = all_bits(round_.members) | (1 << bit)
    packed = b"".join(round_.signatures())
    # when it is submitted, then BitmapOutOfRange
    assert await round_.rejected("BitmapOutOfRange", bitmap=bitmap, packed=packed) == ()


async def test_fewer_signatures_than_set_bits_are_rejected(round_: Round) -> None:
    # given a bitmap naming three signers but only two signatures
    sigs = round_.signatures()
    # when it is submitted, then SignatureCountMismatch(expected bytes, got bytes)
    args = await round_.rejected("SignatureCountMismatch", bitmap=0b0111, packed=sigs[0] + sigs[1])
    assert args == (3 * 65, 2 * 65)


async def test_trailing_bytes_after_the_signatures_are_rejected(round_: Round) -> None:
    # given all four signatures followed by one extra byte
    packed = b"".join(round_.signatures()) + b"\x00"
    # when it is submitted, then SignatureCountMismatch(expected bytes, got bytes)
    args = await round_.rejected(
        "SignatureCountMismatch", bitmap=all_bits(round_.members), packed=packed
    )
    assert args == (4 * 65, 4 * 65 + 1)


# ------------------------------------------------------------------ each signature


async def test_signature_of_a_non_member_is_rejected(round_: Round) -> None:
    # given an unregistered key's signature placed at member 1's bit
    outsider = round_.net.keepers[5]
    assert outsider.address not in {m.address for m in round_.members}
    sigs = round_.signatures()
    sigs[1] = round_.net.sign(round_.report, [outsider])[outsider.address]
    # when it is submitted, then SignerNotMember(signature index, signer)
    args = await round_.rejected(
        "SignerNotMember", bitmap=all_bits(round_.members), packed=b"".join(sigs)
    )
    assert args == (1, outsider.address)


async def test_signature_of_a_member_whose_bit_is_not_set_is_rejected(round_: Round) -> None:
    # given bits 0-2 set, but member 3 signed in place of member 2
    sigs = round_.signatures()
    # when it is submitted, then SignerNotMember(2, member 3): its stake was not claimed
    args = await round_.rejected(
        "SignerNotMember", bitmap=0b0111, packed=sigs[0] + sigs[1] + sigs[3]
    )
    assert args == (2, round_.members[3].address)


async def test_signatures_out_of_member_order_are_rejected(round_: Round) -> None:
    # given the valid signatures of members 0 and 1 swapped
    sigs = round_.signatures()
    sigs[0], sigs[1] = sigs[1], sigs[0]
    # when it is submitted, then SignatureOrderMismatch(0, member 1)
    args = await round_.rejected(
        "SignatureOrderMismatch", bitmap=all_bits(round_.members), packed=b"".join(sigs)
    )
    assert args == (0, round_.members[1].address)


async def test_one_members_signature_counted_twice_is_rejected(round_: Round) -> None:
    # given member 0's signature at bits 0 and 1 (to count its stake twice)
    sigs = round_.signatures()
    sigs[1] = sigs[0]
    # when it is submitted, then DuplicateSignature(1, member 0)
    args = await round_.rejected(
        "DuplicateSignature", bitmap=all_bits(round_.members), packed=b"".join(sigs)
    )
    assert args == (1, round_.members[0].address)


async def test_malleated_signature_is_rejected(round_: Round) -> None:
    # given member 1's signature malleated: s -> n - s, v flipped (still recovers to member 1)
    sigs = round_.signatures()
    r, s, v = sigs[1][:32], int.from_bytes(sigs[1][32:64], "big"), sigs[1][64]
    high_s = SECP256K1_N - s
    malleated = r + high_s.to_bytes(32, "big") + bytes([55 - v])
    digest = compute_report_digest(round_.report, round_.net.domain)
    twin = keys.Signature(vrs=(28 - v, int.from_bytes(r, "big"), high_s))
    assert twin.recover_public_key_from_msg_hash(digest).to_checksum_address() == (
        round_.members[1].address
    )
    sigs[1] = malleated
    # when it is submitted, then MalleableSignature(1)
    args = await round_.rejected(
        "MalleableSignature", bitmap=all_bits(round_.members), packed=b"".join(sigs)
    )
    assert args == (1,)


@pytest.mark.parametrize("garbage", ["zero-r", "bad-v"])
async def test_signature_recovering_to_no_address_is_rejected(round_: Round, garbage: str) -> None:
    # given member 2's signature replaced by one that recovers to address(0)
    sigs = round_.signatures()
    r, s, v = sigs[2][:32], sigs[2][32:64], sigs[2][64]
    sigs[2] = (ZERO_R + s + bytes([v])) if garbage == "zero-r" else (r + s + bytes([29]))
    # when it is submitted, then InvalidSignature(2)
    args = await round_.rejected(
        "InvalidSignature", bitmap=all_bits(round_.members), packed=b"".join(sigs)
    )
    assert args == (2,)


# ------------------------------------------------------------------ stake threshold


async def test_member_weights_are_stakes_capped_at_three_times_min_stake(round_: Round) -> None:
    # given stakes 1, 2, 3, 4 ether and minStake 1 ether
    net = round_.net
    stake = await by_stake(round_)
    weight = {m.address: m.stake for m in round_.members}
    # then each member word weighs its stake, but 4 ether weighs only MAX_WEIGHT_MULTIPLE ether
    assert {s: weight[a.address] // ETHER for s, a in stake.items()} == {1: 1, 2: 2, 3: 3, 4: 3}
    assert await net.registry.functions.weightOf(4 * ETHER).call() == 3 * ETHER
    assert await net.registry.functions.weightOf(2 * ETHER).call() == 2 * ETHER


async def test_signed_stake_must_reach_the_threshold(round_: Round) -> None:
    # given thresholdBps 6667 and stakes 1, 2, 3, 4 ether: weights 1, 2, 3, 3 (total 9)
    stake = await by_stake(round_)
    # when the members with 1 + 2 + 3 ether sign: 6 * 10000 < 9 * 6667
    # then InsufficientStake (the item is skipped)
    await round_.rejected("InsufficientStake", signers=[stake[1], stake[2], stake[3]])
    # and 1 + 3 + 4 ether, weighing 1 + 3 + 3 (7 * 10000 >= 9 * 6667), executes
    await round_.executes(signers=[stake[1], stake[3], stake[4]])


async def test_signed_stake_exactly_at_the_threshold_executes(net: Net) -> None:
    # given thresholdBps 8000 and stakes 2, 2, 3, 4 ether: weights 2, 2, 3, 3 (total 10)
    await net.register_keepers([2 * ETHER, 2 * ETHER, 3 * ETHER, 4 * ETHER])
    await net.rotate()
    rnd = await time_round(net, threshold_bps=8000)
    two_a, two_b, three, four = net.registered
    # when 2 + 2 + 3 ether sign (7 * 10000 < 10 * 8000), then InsufficientStake
    await rnd.rejected("InsufficientStake", signers=[two_a, two_b, three])
    # and when exactly 8 of 10 weigh in (2 + 3 + 4 capped at 3), signed * 10000 == total * bps:
    # it executes
    await rnd.executes(signers=[two_a, three, four])


async def test_a_majority_of_members_must_sign_whatever_their_stake(net4: Net) -> None:
    # given a job with the lowest thresholdBps, 5001, and stakes 1, 2, 3, 4 ether (weights 1, 2,
    # 3, 3): the 4 and 3 ether members alone weigh 6 of 9, above the stake threshold
    rnd = await time_round(net4, threshold_bps=5001)
    stake = await by_stake(rnd)
    # when only those two sign (half the members, not a majority)
    # then TooFewSigners(signers, members)
    assert await rnd.rejected("TooFewSigners", signers=[stake[4], stake[3]]) == (2, 4)
    # and with a third member, a strict majority, the round executes
    await rnd.executes(signers=[stake[4], stake[3], stake[1]])


# ------------------------------------------------------------------ executor


@pytest.mark.parametrize("who", ["other-member", "job-owner"])
async def test_only_the_named_executor_may_submit(round_: Round, who: str) -> None:
    # given a fully signed round naming members[0] as executor, copied by someone else
    net = round_.net
    thief = net.account_of(round_.members[1].address) if who == "other-member" else net.owner
    signatures = net.sign(round_.report, round_.signers)
    # when the copy is sent from another account, then NotExecutor(sender, executor)
    args = await round_.rejected("NotExecutor", signatures=signatures, sender=thief)
    assert args == (thief.address, round_.report.executor)
    # and the executor itself gets the same signatures executed (and is the one paid)
    await round_.executes(signatures=signatures)
    assert await net.tm.functions.earnings(round_.report.executor).call() > 0
    assert await net.tm.functions.earnings(thief.address).call() == 0


async def test_executor_rewritten_after_signing_is_rejected(round_: Round) -> None:
    # given the quorum's signatures over a report naming members[0] as executor
    net = round_.net
    thief = net.owner
    signatures = net.sign(round_.report, round_.signers)
    # when a copier names itself as executor and sends it
    report = round_.altered(executor=thief.address)
    # then the signatures no longer recover to the members: SignerNotMember at index 0
    index, signer = await round_.rejected(
        "SignerNotMember", report=report, signatures=signatures, sender=thief
    )
    assert index == 0
    assert signer not in {m.address for m in round_.members}


async def test_the_nodes_execute_calldata_is_web3s_encoding_and_executes(round_: Round) -> None:
    # given the leader's encoder (eth-abi on the ABI's types, not web3's contract machinery)
    net = round_.net
    calls = KeeperCalls(net.w3, net.registry, net.tm)
    packed = b"".join(round_.signatures())
    batch = Batch.of([round_.report])
    bitmap = all_bits(round_.members)
    data = calls.execute_data(batch, [round_.payload], round_.members, bitmap, packed)
    # then it is byte for byte what web3 encodes for the same arguments
    words = [m.word for m in round_.members]
    r = round_.report
    items = [(r.jobId, r.round, r.cursor, round_.payload)]
    expected = net.tm.encode_abi(
        "execute", args=[batch.header.as_tuple(), items, words, bitmap, packed]
    )
    assert data == bytes.fromhex(expected[2:])
    # and the node decodes it back to the same batch and payloads
    decoded = calls.execute_batch(data)
    assert decoded is not None
    assert decoded[1] == (round_.payload,)
    assert compute_batch_digest(decoded[0], net.domain) == compute_batch_digest(batch, net.domain)
    assert calls.execute_batch(b"\x00" * 4 + data[4:]) is None
    # and the executor's transaction with exactly that calldata executes the round
    before = await net.job(round_.job_id)
    tx = {"from": round_.report.executor, "to": net.tm.address, "data": data, "gas": 2_000_000}
    receipt = await net.w3.eth.wait_for_transaction_receipt(await net.w3.eth.send_transaction(tx))
    assert receipt["status"] == 1
    assert (await net.job(round_.job_id))["round"] == before["round"] + 1
