"""How a leader cuts the rounds it leads at a head into batches, and how many rounds of one
Event job a batch carries: pure rules, no chain."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from keeper.chain.calls import compute_execute_gas
from keeper.core.triggers import MAX_EVENT_ITEMS, compute_event_item_count
from keeper.node.leader import plan_batches


def within(limit: int, members: int = 7) -> object:
    def fits(items: list[int]) -> bool:
        return compute_execute_gas(items, members) <= limit

    return fits


def test_rounds_that_fit_in_one_block_go_out_as_one_batch() -> None:
    units = [[100_000] for _ in range(10)]
    assert plan_batches(units, within(15_000_000)) == [[100_000] * 10]


def test_large_jobs_are_cut_greedily_in_order_each_batch_within_the_gas_limit() -> None:
    # given 64 rounds of 5,000,000 gas each, and a 15,000,000 gas limit
    units = [[5_000_000 + i] for i in range(64)]
    # when they are planned
    batches = plan_batches(units, within(15_000_000))
    # then every round goes out once, in order, each batch within the limit
    assert [g for batch in batches for g in batch] == [u[0] for u in units]
    assert all(compute_execute_gas(batch, 7) <= 15_000_000 for batch in batches)
    assert len(batches) == 32  # two 5M jobs fit under 15M with their overhead, three do not


def test_a_round_too_large_for_any_batch_goes_alone() -> None:
    assert plan_batches([[10], [99], [10]], lambda b: sum(b) <= 20) == [[10], [99], [10]]


def test_a_jobs_later_rounds_follow_its_first_and_are_left_out_where_they_do_not_fit() -> None:
    # given a job with one round, an Event job with five, and another job, three items a batch
    units = [["a0"], ["e0", "e1", "e2", "e3", "e4"], ["b0"]]
    batches = plan_batches(units, lambda b: len(b) <= 3)
    # then the Event job's rounds stay together after its first, in the batch where most of
    # them fit, and the rest wait for a later head
    assert batches == [["a0"], ["e0", "e1", "e2"], ["b0"]]
    # and where the whole job fits beside the others, it goes with them
    assert plan_batches(units, lambda b: len(b) <= 7) == [
        ["a0", "e0", "e1", "e2", "e3", "e4", "b0"]
    ]


def test_a_unit_that_does_not_start_in_the_current_batch_starts_the_next() -> None:
    units = [["a0", "a1"], ["e0", "e1", "e2"]]
    assert plan_batches(units, lambda b: len(b) <= 3) == [["a0", "a1"], ["e0", "e1", "e2"]]


@given(st.lists(st.lists(st.integers(1, 10), min_size=1, max_size=5), max_size=20))
def test_a_plan_keeps_order_each_units_first_item_and_a_prefix_of_the_rest(
    units: list[list[int]],
) -> None:
    items = [(u, k, size) for u, unit in enumerate(units) for k, size in enumerate(unit)]
    batches = plan_batches(
        [[(u, k, s) for k, s in enumerate(unit)] for u, unit in enumerate(units)],
        lambda b: sum(s for *_, s in b) <= 12,
    )
    planned = [item for batch in batches for item in batch]
    assert planned == sorted(planned)  # in order, nothing twice
    assert all((u, 0, unit[0]) in planned for u, unit in enumerate(units))
    for u in range(len(units)):
        kept = [k for uu, k, _ in planned if uu == u]
        assert kept == list(range(len(kept)))  # a prefix of the unit
        assert len({i for i, batch in enumerate(batches) for x in batch if x[0] == u}) == 1
    assert set(planned) <= set(items)
    assert all(sum(s for *_, s in b) <= 12 or len(b) == 1 for b in batches)


def test_an_event_job_takes_up_to_the_maximum_within_its_executions_and_balance() -> None:
    assert compute_event_item_count(0, 0, 1000) == MAX_EVENT_ITEMS
    assert compute_event_item_count(10, 7, 1000) == 3  # three executions left
    assert compute_event_item_count(0, 0, 5) == 5  # the balance pays for five
    assert compute_event_item_count(0, 0, 1000, limit=20) == 20
    # and the round that is due anyway is always one
    assert compute_event_item_count(0, 0, 0) == 1
