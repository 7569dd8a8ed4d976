"""Quorum formation, assignment, leader ranking and the stake threshold, without a chain."""

from __future__ import annotations

from fractions import Fraction

import pytest
from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hypothesis import given
from hypothesis import strategies as st

from keeper.core.quorum import (
    STAKE_MASK,
    Member,
    SignatureTally,
    compute_batch_rank_key,
    compute_current_leader_rank,
    compute_quorum_hash,
    compute_quorum_of,
    compute_quorums,
    compute_rank_key,
    compute_signable_items,
    compute_signer_bitmap,
    compute_sort_key,
    compute_total_stake,
    compute_turn_start,
    is_batch_signed,
    is_quorum_signed,
    is_threshold_met,
    is_turn_started,
    pack_member,
    pack_signatures,
    rank_batch_members,
    rank_members,
    unpack_member,
)

addresses = st.integers(min_value=1, max_value=2**160 - 1).map(
    lambda n: to_checksum_address(n.to_bytes(20, "big"))
)
stakes = st.integers(min_value=1, max_value=STAKE_MASK)
seeds = st.binary(min_size=32, max_size=32)
keeper_sets = st.dictionaries(addresses, stakes, min_size=1, max_size=40)
targets = st.integers(min_value=1, max_value=8)


def member_list(n: int) -> list[Member]:
    """n members with distinct addresses, sorted as a quorum is."""
    ms = [
        Member(to_checksum_address((i + 1).to_bytes(20, "big")), 10**18 * (i + 1)) for i in range(n)
    ]
    return sorted(ms, key=lambda m: int(m.address, 16))


# ----------------------------------------------------------------------------- formation


@given(seed=seeds, active=keeper_sets, target=targets)
def test_quorums_partition_the_active_keepers_in_balanced_sorted_quorums(
    seed: bytes, active: dict[str, int], target: int
) -> None:
    # when the quorums of an epoch are formed
    quorums = compute_quorums(seed, active, target)
    k = len(active)
    # then there are max(1, K // target) of them
    assert len(quorums) == max(1, k // target)
    # and their sizes differ by at most one, the larger ones first, as the contract deals them
    sizes = [len(q) for q in quorums]
    assert max(sizes) - min(sizes) <= 1
    q = len(quorums)
    assert sizes == [k // q + (1 if j < k % q else 0) for j in range(q)]
    # and every active keeper is in exactly one quorum, with its stake
    seen = [m.address for quorum in quorums for m in quorum]
    assert sorted(seen) == sorted(active)
    assert all(m.stake == active[m.address] for quorum in quorums for m in quorum)
    # and each quorum is sorted by address (so its member words are ascending)
    for quorum in quorums:
        words = [m.word for m in quorum]
        assert words == sorted(words)


@given(seed=seeds, active=keeper_sets, target=targets)
def test_quorums_deal_the_seed_order_round_robin(
    seed: bytes, active: dict[str, int], target: int
) -> None:
    # given the keepers ordered by their sort key
    order = sorted(active, key=lambda a: compute_sort_key(seed, a))
    quorums = compute_quorums(seed, active, target)
    # then the i-th keeper of that order is in quorum i mod Q
    index = {m.address: j for j, quorum in enumerate(quorums) for m in quorum}
    assert [index[a] for a in order] == [i % len(quorums) for i in range(len(order))]


def test_an_empty_set_forms_no_quorum() -> None:
    # the registry's empty epoch: nobody left, no quorum, the last keepers can withdraw
    assert compute_quorums(b"\x00" * 32, {}, 4) == []


def test_weights_are_stakes_capped_as_the_registry_caps_them() -> None:
    stakes = {f"0x{i:040x}": s for i, s in enumerate((10, 1, 1, 1), start=1)}
    (quorum,) = compute_quorums(b"\x01" * 32, stakes, 4, weight_cap=3)
    assert sorted(m.stake for m in quorum) == [1, 1, 1, 3]
    (uncapped,) = compute_quorums(b"\x01" * 32, stakes, 4)
    assert sorted(m.stake for m in uncapped) == [1, 1, 1, 10]


@given(seed=seeds, keeper=addresses)
def test_sort_key_is_the_top_96_hash_bits_over_the_address(seed: bytes, keeper: str) -> None:
    # keccak256(abi.encode(seed, keeper)) with the address left-padded to a word
    h = int.from_bytes(keccak(seed + bytes(12) + bytes.fromhex(keeper[2:])), "big")
    key = compute_sort_key(seed, keeper)
    assert key >> 160 == h >> 160
    assert key & (2**160 - 1) == int(keeper, 16)


def test_different_seeds_shuffle_keepers_differently() -> None:
    active: dict[str, int] = {
        to_checksum_address(i.to_bytes(20, "big")): 10**18 for i in range(1, 17)
    }
    layouts = {
        tuple(tuple(m.address for m in q) for q in compute_quorums(bytes([s]) * 32, active, 4))
        for s in range(8)
    }
    assert len(layouts) > 1


# ----------------------------------------------------------------------------- assignment


@given(seed=seeds, job_id=st.integers(0, 2**256 - 1), count=st.integers(1, 2**16 - 1))
def test_quorum_of_is_keccak_of_seed_and_job_mod_count(
    seed: bytes, job_id: int, count: int
) -> None:
    q = compute_quorum_of(seed, job_id, count)
    assert 0 <= q < count
    assert q == compute_quorum_of(seed, job_id, count)
    expected = int.from_bytes(keccak(seed + job_id.to_bytes(32, "big")), "big") % count
    assert q == expected


def test_quorum_of_needs_a_quorum() -> None:
    with pytest.raises(ValueError):
        compute_quorum_of(b"\x00" * 32, 1, 0)


def test_quorum_of_spreads_jobs_over_quorums() -> None:
    seed = keccak(b"epoch seed")
    used = {compute_quorum_of(seed, job_id, 4) for job_id in range(1, 200)}
    assert used == {0, 1, 2, 3}


# ----------------------------------------------------------------------------- members


@given(address=addresses, stake=st.integers(0, STAKE_MASK))
def test_member_word_roundtrip(address: str, stake: int) -> None:
    word = pack_member(address, stake)
    assert len(word) == 32
    value = int.from_bytes(word, "big")
    assert value >> 96 == int(address, 16)
    assert value & STAKE_MASK == stake
    assert unpack_member(word) == Member(address, stake)
    assert Member(address, stake).word == word


@pytest.mark.parametrize("stake", [-1, 2**96])
def test_member_stake_must_fit_uint96(stake: int) -> None:
    with pytest.raises(ValueError):
        pack_member("0x" + "11" * 20, stake)


def test_quorum_hash_is_keccak_of_the_packed_words() -> None:
    members = member_list(3)
    assert compute_quorum_hash(members) == keccak(b"".join(m.word for m in members))
    assert compute_quorum_hash(members) != compute_quorum_hash(list(reversed(members)))
    assert compute_total_stake(members) == 6 * 10**18


# ----------------------------------------------------------------------------- signatures


@given(n=st.integers(1, 20), data=st.data())
def test_pack_signatures_orders_by_member_and_sets_matching_bits(
    n: int, data: st.DataObject
) -> None:
    members = member_list(n)
    signers = data.draw(st.lists(st.sampled_from(members), unique=True))
    # given signatures keyed by address in any order and case
    sigs = {
        (m.address.lower() if i % 2 else m.address): bytes([members.index(m)]) * 65
        for i, m in enumerate(reversed(signers))
    }
    bitmap, packed = pack_signatures(members, sigs)
    expected_bits = [i for i, m in enumerate(members) if m in signers]
    # then bit i is set exactly for signing members and signatures follow member order
    assert bitmap == sum(1 << i for i in expected_bits)
    assert packed == b"".join(bytes([i]) * 65 for i in expected_bits)
    assert compute_signer_bitmap(members, sigs) == bitmap


def test_signer_bitmap_rejects_a_non_member() -> None:
    members = member_list(3)
    with pytest.raises(ValueError):
        compute_signer_bitmap(members, ["0x" + "ee" * 20])


def test_pack_signatures_drops_non_members() -> None:
    members = member_list(2)
    bitmap, packed = pack_signatures(members, {"0x" + "ee" * 20: b"\x01" * 65})
    assert (bitmap, packed) == (0, b"")


# ----------------------------------------------------------------------------- threshold


@given(total=st.integers(0, 2**100), signed_share=st.fractions(0, 1), bps=st.integers(5001, 10_000))
def test_threshold_is_exact_integer_comparison(
    total: int, signed_share: Fraction, bps: int
) -> None:
    signed = int(total * signed_share)
    met = is_threshold_met(signed, total, bps)
    assert met == (signed * 10_000 >= total * bps)
    assert met == (total == 0 or Fraction(signed, total) >= Fraction(bps, 10_000))


def test_threshold_boundary() -> None:
    # exactly at the threshold meets it, one wei less does not
    assert is_threshold_met(6667, 10_000, 6667)
    assert not is_threshold_met(6666, 10_000, 6667)
    # two of three equal stakes are 66.66..%, below 6667 bps but above 6666
    assert not is_threshold_met(2, 3, 6667)
    assert is_threshold_met(2, 3, 6666)
    assert is_threshold_met(10, 10, 10_000)
    assert not is_threshold_met(9, 10, 10_000)


def test_heavy_members_alone_are_not_a_quorum() -> None:
    # two members of weight 3 beside two of weight 1 hold 75% of the weight, but half the
    # members are not a majority: the contract reverts TooFewSigners, so the tally waits
    assert is_threshold_met(6, 8, 6667)
    assert not is_quorum_signed(6, 8, 2, 4, 6667)
    assert is_quorum_signed(7, 8, 3, 4, 6667)
    # one member alone is a majority of a one-member quorum
    assert is_quorum_signed(1, 1, 1, 1, 6667)
    members = [Member(f"0x{i:040x}", w) for i, w in enumerate((3, 3, 1, 1), start=1)]
    tally = SignatureTally(members, 6667)
    tally.add(members[0].address, b"a")
    tally.add(members[1].address, b"b")
    assert not tally.reached
    tally.add(members[2].address, b"c")
    assert tally.reached


# ----------------------------------------------------------------------------- leaders


@given(
    job_id=st.integers(0, 2**256 - 1),
    round_=st.integers(0, 2**64 - 1),
    members=st.lists(addresses, min_size=1, max_size=30, unique=True),
    data=st.data(),
)
def test_ranking_is_a_deterministic_permutation_with_overloaded_last(
    job_id: int, round_: int, members: list[str], data: st.DataObject
) -> None:
    overloaded = data.draw(st.lists(st.sampled_from(members), unique=True))
    ranked = rank_members(job_id, round_, members, [a.lower() for a in overloaded])
    # then every member appears once
    assert sorted(ranked) == sorted(members)
    # and the overloaded ones come after all the others
    flags = [a in overloaded for a in ranked]
    assert flags == sorted(flags)
    # and the order depends only on (job, round), not on the input order
    assert rank_members(job_id, round_, list(reversed(members)), overloaded) == ranked


def test_ranking_changes_with_the_round() -> None:
    members = [to_checksum_address(i.to_bytes(20, "big")) for i in range(1, 9)]
    leaders = {rank_members(7, r, members)[0] for r in range(40)}
    assert len(leaders) > 1


@given(
    epoch=st.integers(0, 2**64 - 1),
    quorum=st.integers(0, 2**16 - 1),
    due=st.integers(0, 2**64 - 1),
    members=st.lists(addresses, min_size=1, max_size=30, unique=True),
    data=st.data(),
)
def test_batch_ranking_is_a_deterministic_permutation_with_overloaded_last(
    epoch: int, quorum: int, due: int, members: list[str], data: st.DataObject
) -> None:
    overloaded = data.draw(st.lists(st.sampled_from(members), unique=True))
    ranked = rank_batch_members(epoch, quorum, due, members, [a.lower() for a in overloaded])
    # then every member appears once, the overloaded ones after all the others
    assert sorted(ranked) == sorted(members)
    flags = [a in overloaded for a in ranked]
    assert flags == sorted(flags)
    # and the order depends only on (epoch, quorum, due block), not on the input order
    assert rank_batch_members(epoch, quorum, due, list(reversed(members)), overloaded) == ranked


def test_every_round_a_quorum_opens_at_one_block_has_one_primary_which_moves_with_the_block() -> (
    None
):
    # given one quorum's members
    members = [to_checksum_address(i.to_bytes(20, "big")) for i in range(1, 9)]
    # when rounds of any jobs fall due at one block, they share one leader order (no job in it)
    assert rank_batch_members(3, 1, 500, members) == rank_batch_members(3, 1, 500, members)
    # then across blocks, quorums and epochs the primary changes: leading stays balanced
    by_block = {rank_batch_members(3, 1, b, members)[0] for b in range(40)}
    by_quorum = {rank_batch_members(3, q, 500, members)[0] for q in range(40)}
    by_epoch = {rank_batch_members(e, 1, 500, members)[0] for e in range(40)}
    assert min(len(by_block), len(by_quorum), len(by_epoch)) > 1


@given(
    epoch=st.integers(0, 2**64 - 1),
    quorum=st.integers(0, 2**16 - 1),
    due=st.integers(0, 2**64 - 1),
    member=addresses,
)
def test_batch_rank_key_is_keccak_of_the_abi_encoded_epoch_quorum_due_block_and_member(
    epoch: int, quorum: int, due: int, member: str
) -> None:
    encoded = abi_encode(["uint64", "uint16", "uint64", "address"], [epoch, quorum, due, member])
    assert compute_batch_rank_key(epoch, quorum, due, member) == keccak(encoded)


@pytest.mark.parametrize(
    ("epoch", "quorum", "due"), [(2**64, 0, 0), (0, 2**16, 0), (0, 0, 2**64), (-1, 0, 0)]
)
def test_batch_rank_key_refuses_what_abi_encode_would(epoch: int, quorum: int, due: int) -> None:
    with pytest.raises(ValueError):
        compute_batch_rank_key(epoch, quorum, due, "0x" + "11" * 20)


@given(
    due=st.integers(0, 10**9),
    turn=st.integers(1, 50),
    size=st.integers(1, 20),
    offset=st.integers(0, 2_000),
)
def test_leader_rank_at_a_block_is_the_turn_containing_it(
    due: int, turn: int, size: int, offset: int
) -> None:
    block = due + offset
    rank = compute_current_leader_rank(due, block, turn, size)
    assert 0 <= rank < size
    assert compute_turn_start(due, rank, turn) <= block
    if rank < size - 1:
        assert block < compute_turn_start(due, rank + 1, turn)


def test_leader_rank_before_due_is_the_primary_and_the_last_keeps_leading() -> None:
    assert compute_current_leader_rank(100, 90, 5, 4) == 0
    assert compute_current_leader_rank(100, 104, 5, 4) == 0
    assert compute_current_leader_rank(100, 105, 5, 4) == 1
    assert compute_current_leader_rank(100, 10_000, 5, 4) == 3
    assert compute_turn_start(100, 2, 5) == 110


@given(
    due=st.integers(0, 10**9),
    turn=st.integers(1, 50),
    size=st.integers(1, 20),
    offset=st.integers(0, 2_000),
)
def test_the_current_leader_is_in_its_turn_and_no_later_rank_is(
    due: int, turn: int, size: int, offset: int
) -> None:
    # what a member checks (no slack) agrees with who leads at the block
    block = due + offset
    leader = compute_current_leader_rank(due, block, turn, size)
    assert is_turn_started(due, leader, turn, block)
    assert all(not is_turn_started(due, k, turn, block) for k in range(leader + 1, size))


def test_a_turn_starts_one_block_early_with_one_block_of_slack() -> None:
    # rank 2 of turns of 5 leads from block 110
    assert not is_turn_started(100, 2, 5, 108, slack_blocks=1)
    assert is_turn_started(100, 2, 5, 109, slack_blocks=1)
    assert not is_turn_started(100, 2, 5, 109)


@pytest.mark.parametrize("rank,turn", [(-1, 5), (0, 0)])
def test_turn_start_rejects_bad_arguments(rank: int, turn: int) -> None:
    with pytest.raises(ValueError):
        compute_turn_start(100, rank, turn)


@given(job_id=st.integers(0, 2**256 - 1), round_=st.integers(0, 2**64 - 1), member=addresses)
def test_rank_key_is_keccak_of_the_abi_encoded_job_round_and_member(
    job_id: int, round_: int, member: str
) -> None:
    # the hand-packed words are exactly abi.encode(uint256, uint64, address)
    encoded = abi_encode(["uint256", "uint64", "address"], [job_id, round_, member])
    assert compute_rank_key(job_id, round_, member) == keccak(encoded)


@pytest.mark.parametrize(
    ("job_id", "round_", "member"),
    [
        (-1, 0, "0x" + "11" * 20),
        (2**256, 0, "0x" + "11" * 20),
        (1, 2**64, "0x" + "11" * 20),
        (1, 0, "0x" + "11" * 19),
    ],
)
def test_rank_key_refuses_what_abi_encode_would(job_id: int, round_: int, member: str) -> None:
    with pytest.raises(ValueError):
        compute_rank_key(job_id, round_, member)


# ---------------------------------------------------------------------------- signature tally


def a_quorum(*stakes: int) -> list[Member]:
    return [Member(to_checksum_address(bytes([i + 1]) * 20), s) for i, s in enumerate(stakes)]


def test_a_tally_is_reached_once_signed_stake_meets_the_threshold() -> None:
    members = a_quorum(4, 3, 2, 1)
    tally = SignatureTally(members, 6667)

    tally.add(members[0].address, b"a")
    assert not tally.reached and not tally.settled
    tally.add(members[2].address, b"c")  # 6 of 10 < 66.67%
    assert not tally.reached
    tally.add(members[3].address, b"d")  # 7 of 10
    assert tally.reached and tally.settled
    signers = [members[0].address, members[2].address, members[3].address]
    assert tally.signatures == dict(zip(signers, [b"a", b"c", b"d"], strict=True))


def test_a_member_counts_once_and_outsiders_not_at_all() -> None:
    members = a_quorum(1, 1, 1)
    tally = SignatureTally(members, 6667)

    tally.add(members[0].address, b"a")
    tally.add(members[0].address.lower(), b"again")
    tally.add(to_checksum_address(b"\x99" * 20), b"stranger")

    assert tally.signed_stake == 1 and list(tally.signatures.values()) == [b"a"]
    tally.refuse(members[0].address)  # a refusal after its answer changes nothing
    assert tally.signed_stake == 1


def test_a_tally_settles_short_of_threshold_once_every_member_has_answered() -> None:
    members = a_quorum(1, 1, 1)
    tally = SignatureTally(members, 6667)

    tally.add(members[0].address, b"a")
    tally.refuse(members[1].address)
    assert not tally.settled
    tally.refuse(members[2].address)
    assert tally.settled and not tally.reached


# ---------------------------------------------------------------------------- batch item sets

SEVEN = [Member(to_checksum_address(i.to_bytes(20, "big")), 100) for i in range(1, 8)]


def _accepting(sets: list[set[int]]) -> dict[str, frozenset[int]]:
    return {m.address: frozenset(s) for m, s in zip(SEVEN, sets, strict=False)}


def test_a_batch_is_signed_when_its_signers_meet_every_items_threshold() -> None:
    signers = [m.address for m in SEVEN[:5]]
    # 5 of 7 meet 5,000 and 7,000 bps, not 7,500
    assert is_batch_signed(SEVEN, [5_000, 7_000], signers)
    assert not is_batch_signed(SEVEN, [5_000, 7_500], signers)
    # a stranger's name adds nothing
    assert not is_batch_signed(SEVEN, [5_000], [m.address for m in SEVEN[:3]] + ["0x" + "ee" * 20])


def test_every_item_accepted_by_all_is_the_whole_batch() -> None:
    accepted = _accepting([{0, 1, 2}] * 7)
    assert compute_signable_items(SEVEN, [6_000] * 3, accepted) == {0, 1, 2}


def test_an_item_one_member_refuses_is_signed_without_it_when_the_rest_still_reach() -> None:
    # given item 1 refused by one member of seven, at 6,000 bps (5 of 7 needed)
    accepted = _accepting([{0, 2}] + [{0, 1, 2}] * 6)
    # then all three are signable: six members accept {0, 1, 2}, seven accept {0, 2}
    assert compute_signable_items(SEVEN, [6_000] * 3, accepted) == {0, 1, 2}
    # and at 9,000 bps item 1 cannot be signed, the others can, by all seven
    assert compute_signable_items(SEVEN, [6_000, 9_000, 6_000], accepted) == {0, 2}


def test_members_refusing_different_items_leave_the_largest_set_that_reaches() -> None:
    # three members refuse item 0, two others item 1: at 5,000 bps (4 of 7)
    accepted = _accepting([{1, 2}] * 3 + [{0, 2}] * 2 + [{0, 1, 2}] * 2)
    chosen = compute_signable_items(SEVEN, [5_000] * 3, accepted)
    # {1, 2} has five supporters, {0, 2} four, {0, 1, 2} two: both pairs reach, the one with
    # more stake behind it wins
    assert chosen == {1, 2}


def test_nothing_is_signable_without_a_majority() -> None:
    accepted = _accepting([{0}] * 3 + [set()] * 4)
    assert compute_signable_items(SEVEN, [1], accepted) == frozenset()
    assert compute_signable_items(SEVEN, [1], {}) == frozenset()


@given(
    sets=st.lists(st.sets(st.integers(0, 5)), min_size=7, max_size=7),
    bps=st.lists(st.integers(0, 10_000), min_size=6, max_size=6),
)
def test_property_the_chosen_set_is_signed_by_the_members_whose_sets_contain_it(
    sets: list[set[int]], bps: list[int]
) -> None:
    accepted = _accepting(sets)
    chosen = compute_signable_items(SEVEN, bps, accepted)
    if chosen:
        signers = [a for a, s in accepted.items() if chosen <= s]
        assert is_batch_signed(SEVEN, [bps[i] for i in chosen], signers)
    # and no single item signable alone is lost when nothing at all was chosen
    alone = [
        i
        for i in range(6)
        if is_batch_signed(SEVEN, [bps[i]], [a for a, s in accepted.items() if i in s])
    ]
    assert bool(chosen) == bool(alone)
