"""A byzantine keeper among five with equal stakes: the test holds its key and acts for it (its
process never runs), the other four run honestly and always hold the 2/3 threshold.

(a) As a leader it sends the members batches with a wrong cursor or payload: every
    member refuses, and its own signature plus any single honest one never reaches the
    threshold, so nothing of its making executes while the honest members keep the schedule.
(b) Signing two different results for the same (jobId, round, checkBlock, checkBlockHash) is
    equivocation, and (a)'s wrong reports are just that: a member sent both proves it with
    `slashEquivocation` by itself, the stake goes (10% to that member), and the running keepers
    rotate the byzantine keeper out of every quorum.

The module shares one network; (b) slashes the byzantine keeper, so it runs after (a).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from web3 import AsyncWeb3
from web3.logs import DISCARD

from keeper.chain.calls import compute_execute_gas
from keeper.chain.contracts import revert_of
from keeper.core.messages import (
    SIGNATURE_HEADER,
    BatchRequest,
    encode_batch,
    format_signature_header,
    sign_body,
)
from keeper.core.quorum import Member, pack_signatures, unpack_member
from keeper.core.report import Batch, Domain, Report, sign_batch, sign_report
from keeper.errors import ContractRevert
from tests.e2e.cluster import ETHER, Cluster, start_cluster

STAKE = 2
KEEPERS = 5
INTERVAL = 10
GAS_LIMIT = 200_000
THRESHOLD_BPS = 6667
TURN_BLOCKS = 4  # a backup waits this long for the (absent) byzantine leader
FIRST_JOB = 1  # TaskManager.nextJobId starts at 1
TIME_CALLDATA = keccak(text="onTime()")[:4]
CRON_CALLDATA = keccak(text="onCron()")[:4]
# A Time or Cron item's payload: the job's call is in its forwarder's code
NO_PAYLOAD = b""
NEVER_DUE_CRON = "0 0 1 1 *"  # next fire is next New Year: never due during the test
STATUS_SLASHED = 3  # KeeperRegistry.Status.Slashed


@dataclass
class Net:
    cluster: Cluster
    byzantine: int
    honest: list[int]
    time_job: int | None = None

    @property
    def byz(self) -> LocalAccount:
        return self.cluster.keepers[self.byzantine].account

    @property
    def domain(self) -> Domain:
        d = self.cluster.deployment
        return Domain(d.chain_id, d.task_manager)

    def honest_accounts(self) -> list[LocalAccount]:
        return [self.cluster.keepers[i].account for i in self.honest]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    tmp: Path = tmp_path_factory.mktemp("byzantine")
    cluster = start_cluster(tmp, stakes=(STAKE,) * KEEPERS, start=False, turn_blocks=TURN_BLOCKS)
    try:
        # Any keeper will do: its process never runs, so the rounds it ranks first for wait
        # TURN_BLOCKS for a backup.
        byzantine = 0
        honest = [i for i in range(KEEPERS) if i != byzantine]
        for i in honest:
            cluster.start(i)
        yield Net(cluster, byzantine, honest)
    finally:
        cluster.stop_all()


# ---------------------------------------------------------------------- chain helpers


async def wait_for_epoch(net: Net, w3: AsyncWeb3[Any], above: int = 0) -> int:
    registry = (await net.cluster.contracts(w3)).registry

    async def formed() -> bool:
        return int(await registry.functions.currentEpoch().call()) > above

    await net.cluster.wait_until(formed, 120, f"an epoch after {above}")
    return int(await registry.functions.currentEpoch().call())


async def quorums_of(net: Net, w3: AsyncWeb3[Any], epoch: int) -> list[list[Member]]:
    registry = (await net.cluster.contracts(w3)).registry
    logs = await registry.events.QuorumFormed().get_logs(
        from_block=net.cluster.deployment.block, argument_filters={"epoch": epoch}
    )
    logs = sorted(logs, key=lambda lg: int(lg["args"]["quorum"]))
    return [[unpack_member(bytes(w)) for w in lg["args"]["members"]] for lg in logs]


async def job_view(w3: AsyncWeb3[Any], net: Net, job_id: int) -> dict[str, Any]:
    tm = (await net.cluster.contracts(w3)).task_manager
    outputs = next(i for i in tm.abi if i.get("name") == "getJob")["outputs"][0]["components"]
    names = [str(c["name"]) for c in outputs]
    return dict(zip(names, await tm.functions.getJob(job_id).call(), strict=True))


async def create_job(
    net: Net, w3: AsyncWeb3[Any], kind: int, trigger: bytes, calldata: bytes, start: int = 0
) -> int:
    tm = (await net.cluster.contracts(w3)).task_manager
    target = await net.cluster.deploy_target(w3)
    spec = (target.address, calldata, kind, trigger, GAS_LIMIT, THRESHOLD_BPS, start, 0, 0, 0)
    deposit = 40 * int(await tm.functions.requiredDeposit(GAS_LIMIT, 0).call())
    receipt = await net.cluster.owner_tx(w3, tm.functions.createJob(spec), value=deposit)
    return int(tm.events.JobCreated().process_receipt(receipt)[0]["args"]["jobId"])


async def ensure_time_job(net: Net, w3: AsyncWeb3[Any]) -> int:
    """The module's Time job every 10 s (job 1)."""
    if net.time_job is None:
        net.time_job = await create_job(
            net, w3, 0, abi_encode(["uint64"], [INTERVAL]), TIME_CALLDATA
        )
        assert net.time_job == FIRST_JOB
    return net.time_job


async def first_block_at(w3: AsyncWeb3[Any], timestamp: int) -> Any:
    """Waits for the first block whose timestamp reaches `timestamp` (polling, the loop free)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while loop.time() < deadline:
        block = await w3.eth.get_block("latest")
        if int(block["timestamp"]) >= timestamp:
            return block
        await asyncio.sleep(0.2)
    raise AssertionError(f"no block reached timestamp {timestamp}")


async def simulate_execute(
    w3: AsyncWeb3[Any],
    net: Net,
    report: Report,
    payload: bytes,
    members: Sequence[Member],
    signers: Sequence[LocalAccount],
    block: int,
) -> ContractRevert | None:
    """eth_call of `execute` of `report` alone (a batch of one) by its executor at `block`: the
    revert, or None."""
    tm = (await net.cluster.contracts(w3)).task_manager
    signatures = {str(a.address): sign_report(a.key, report, net.domain) for a in signers}
    bitmap, packed = pack_signatures(members, signatures)
    item = (report.jobId, report.round, report.cursor, payload)
    words = [m.word for m in members]
    data = tm.encode_abi("execute", args=[report.header.as_tuple(), [item], words, bitmap, packed])
    call = {
        "from": report.executor,
        "to": tm.address,
        "data": data,
        "gas": compute_execute_gas([GAS_LIMIT], len(members)),
    }
    try:
        await w3.eth.call(call, block)  # type: ignore[arg-type]
    except Exception as exc:
        revert = revert_of(exc)
        if revert is None:
            raise
        return revert
    return None


async def post_as_leader(
    http: aiohttp.ClientSession, net: Net, endpoint: str, report: Report, payload: bytes
) -> tuple[int, str]:
    """POST /v1/reports/batch of `report` alone from the byzantine keeper, signed like an
    honest leader would sign it; returns (status, error code) of the item."""
    byz = net.byz
    batch = Batch.of([report])
    request = BatchRequest.of(
        byz.address, report.checkBlock, batch, [payload], sign_batch(byz.key, batch, net.domain)
    )
    body = encode_batch(request)
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: format_signature_header(sign_body(byz.key, body)),
    }
    timeout = aiohttp.ClientTimeout(total=20)
    async with http.post(
        endpoint + "/v1/reports/batch", data=body, headers=headers, timeout=timeout
    ) as response:
        answer = await response.json()
        if response.status != 200:
            return response.status, str(answer["error"])
        (result,) = answer["results"]
        return (200, "signed") if result is True else (result["status"], result["error"])


# ---------------------------------------------------------------------- (a) wrong reports


async def test_members_refuse_a_byzantine_leaders_wrong_reports(net: Net) -> None:
    cluster = net.cluster
    w3 = cluster.web3()
    epoch = await wait_for_epoch(net, w3)
    (members,) = await quorums_of(net, w3, epoch)
    everyone = {cluster.keepers[i].account.address for i in range(KEEPERS)}
    assert {m.address for m in members} == everyone  # the byzantine keeper is a member
    honest = net.honest_accounts()
    honest_addresses = {a.address for a in honest}

    # given a Time job every 10 s, and a Cron job that is never due
    job_id = await ensure_time_job(net, w3)
    # (it starts a minute in the past, so a whole-minute cursor is on-chain valid at once)
    now = int((await w3.eth.get_block("latest"))["timestamp"])
    cron_trigger = abi_encode(["string"], [NEVER_DUE_CRON])
    cron_id = await create_job(net, w3, 1, cron_trigger, CRON_CALLDATA, start=now - now % 60 - 60)

    async def round_open(r: int) -> bool:
        return int((await job_view(w3, net, job_id))["round"]) == r

    await cluster.wait_until(lambda: round_open(1), 120, "round 0 to execute")
    view = await job_view(w3, net, job_id)
    start, slot = int(view["startTime"]), int(view["lastCursor"]) + INTERVAL

    # when, at the first block where round 1 is due, the byzantine leader proposes wrong results
    block = await first_block_at(w3, slot)
    check = Report(
        jobId=job_id,
        round=1,
        epoch=epoch,
        cursor=slot,
        checkBlock=int(block["number"]),
        checkBlockHash=bytes(block["hash"]),
        payloadHash=keccak(NO_PAYLOAD),
        executor=net.byz.address,
        deadline=int(block["number"]) + 40,
    )
    wrong = {
        "off the grid": (replace(check, cursor=slot - 3), NO_PAYLOAD, "CursorMismatch"),
        "a future slot": (
            replace(check, cursor=slot + 100 * INTERVAL),
            NO_PAYLOAD,
            "CursorMismatch",
        ),
        "a wrong payload": (  # the job's own callData: a Time item carries none
            replace(check, payloadHash=keccak(TIME_CALLDATA)),
            TIME_CALLDATA,
            "PayloadMismatch",
        ),
    }
    cron_view = await job_view(w3, net, cron_id)
    cron_report = replace(
        check,
        jobId=cron_id,
        round=0,
        cursor=int(block["timestamp"]) - int(block["timestamp"]) % 60,  # a whole minute
        payloadHash=keccak(NO_PAYLOAD),
    )
    assert int(cron_view["startTime"]) <= cron_report.cursor
    wrong["an undue Cron fire"] = (cron_report, NO_PAYLOAD, "NotDue")
    endpoints = [cluster.keepers[i].endpoint for i in net.honest]
    async with aiohttp.ClientSession() as http:
        answers = await asyncio.gather(
            *(
                post_as_leader(http, net, endpoint, report, payload)
                for report, payload, _ in wrong.values()
                for endpoint in endpoints
            )
        )

    # then every honest member refuses every one of them, naming what is wrong
    expected = [(422, code) for _, _, code in wrong.values() for _ in endpoints]
    per_report = len(endpoints)
    by_case = {name: answers[k * per_report : (k + 1) * per_report] for k, name in enumerate(wrong)}
    assert list(answers) == expected, by_case

    # and even had one honest member been fooled, its signature and the byzantine keeper's
    # execute nothing: two of five members are too few signers (TooFewSigners, the whole
    # batch); had three been fooled, the Time reports still break the cursor or payload rule
    # on-chain (the item is skipped, and a batch that executes nothing reverts
    # NothingExecuted). The Cron report (which the contract cannot judge) with two fooled has
    # 60% of the stake, short of 2/3 (skipped for InsufficientStake)
    at = int(block["number"]) + 1
    await first_block_at(w3, int(block["timestamp"]) + 1)  # block `at` exists
    for name in ("off the grid", "a future slot", "a wrong payload"):
        report, payload, _ = wrong[name]
        for fooled, error in ((honest[:1], "TooFewSigners"), (honest[:3], "NothingExecuted")):
            signers = [net.byz, *fooled]
            revert = await simulate_execute(w3, net, report, payload, members, signers, at)
            assert revert is not None and revert.error_name == error, (name, revert)
    for fooled in honest:
        revert = await simulate_execute(
            w3, net, cron_report, NO_PAYLOAD, members, [net.byz, fooled], at
        )
        assert revert is not None and revert.error_name == "TooFewSigners", revert
    revert = await simulate_execute(
        w3, net, cron_report, NO_PAYLOAD, members, [net.byz, *honest[:2]], at
    )
    assert revert is not None and revert.error_name == "NothingExecuted", revert
    # (the report is otherwise valid: three fooled members would have carried it)
    assert (
        await simulate_execute(
            w3, net, cron_report, NO_PAYLOAD, members, [net.byz, *honest[:3]], at
        )
        is None
    )

    # and the honest members execute the real rounds on schedule, round 1 by a backup
    async def executed(n: int) -> bool:
        return len(await cluster.executions(w3, job_id)) >= n

    await cluster.wait_until(lambda: executed(3), 120, "rounds 1 and 2")
    executions = await cluster.executions(w3, job_id)
    rounds = [int(e["args"]["round"]) for e in executions]
    assert rounds == list(range(len(rounds))), rounds
    cursors = [int(e["args"]["cursor"]) for e in executions]
    assert cursors[1] == slot
    assert all((c - start) % INTERVAL == 0 for c in cursors), cursors
    assert all(b - a == INTERVAL for a, b in itertools.pairwise(cursors)), cursors
    assert {e["args"]["executor"] for e in executions} <= honest_addresses
    # and nothing carries a byzantine cursor or payload
    assert not {slot - 3, slot + 100 * INTERVAL} & set(cursors)
    target = cluster.target_at(w3, str(view["target"]))
    assert int(await target.functions.cronCount().call()) == 0
    assert int(await target.functions.timeCount().call()) == len(executions)
    assert await cluster.executions(w3, cron_id) == []
    assert int((await job_view(w3, net, cron_id))["round"]) == 0


# ---------------------------------------------------------------------- (b) equivocation


async def test_equivocation_is_slashed_and_the_keeper_rotated_out(net: Net) -> None:
    cluster = net.cluster
    w3 = cluster.web3()
    contracts = await cluster.contracts(w3)
    registry, tm = contracts.registry, contracts.task_manager
    epoch = await wait_for_epoch(net, w3)
    job_id = await ensure_time_job(net, w3)

    async def executed_after(block: int) -> bool:
        return any(e["blockNumber"] > block for e in await cluster.executions(w3, job_id))

    await cluster.wait_until(lambda: executed_after(0), 120, "the Time job to execute")
    honest_addresses = {a.address for a in net.honest_accounts()}
    (members,) = await quorums_of(net, w3, epoch)
    assert net.byz.address in {m.address for m in members}

    # given the byzantine keeper signed different results for one (jobId, round, checkBlock,
    # checkBlockHash) and sent them to the honest members: in (a) its wrong reports for round
    # 1 all shared one check block, and otherwise (this test run alone) it does so now
    async def slashed_logs() -> list[Any]:
        return list(
            await registry.events.Slashed().get_logs(
                from_block=cluster.deployment.block, argument_filters={"keeper": net.byz.address}
            )
        )

    if not await slashed_logs():
        view = await job_view(w3, net, job_id)
        block = await w3.eth.get_block("latest")
        a = Report(
            jobId=job_id,
            round=int(view["round"]),
            epoch=epoch,
            cursor=int(view["lastCursor"]) + INTERVAL,
            checkBlock=int(block["number"]),
            checkBlockHash=bytes(block["hash"]),
            payloadHash=keccak(NO_PAYLOAD),
            executor=net.byz.address,
            deadline=int(block["number"]) + 40,
        )
        async with aiohttp.ClientSession() as http:
            for report in (a, replace(a, cursor=a.cursor + INTERVAL)):
                await post_as_leader(
                    http, net, cluster.keepers[net.honest[0]].endpoint, report, NO_PAYLOAD
                )

    # then a member that was sent both proves it on-chain by itself (slashEquivocation with
    # the two signed reports): the whole stake goes, 10% of it to that member
    async def is_slashed() -> bool:
        return bool(await slashed_logs())

    await cluster.wait_until(is_slashed, 60, "an honest member to prove the equivocation")
    (slashed,) = await slashed_logs()
    reporter = slashed["args"]["reporter"]
    assert reporter in honest_addresses
    assert int(slashed["args"]["amount"]) == STAKE * ETHER
    assert int(slashed["args"]["reward"]) == STAKE * ETHER // 10
    receipt = await w3.eth.get_transaction_receipt(slashed["transactionHash"])
    assert receipt["from"] == reporter
    (proven,) = tm.events.EquivocationProven().process_receipt(receipt, errors=DISCARD)
    assert proven["args"]["keeper"] == net.byz.address
    stake, status, *_ = await registry.functions.keeperInfo(net.byz.address).call()
    assert (int(stake), int(status)) == (0, STATUS_SLASHED)
    mined = int(receipt["blockNumber"])

    # and the running keepers rotate by themselves (the keeper set changed), leaving the
    # slashed keeper out of every quorum of the new epoch
    new_epoch = await wait_for_epoch(net, w3, above=epoch)
    quorums = await quorums_of(net, w3, new_epoch)
    assert quorums, f"no QuorumFormed logs for epoch {new_epoch}"
    in_quorums = [m.address for quorum in quorums for m in quorum]
    assert net.byz.address not in in_quorums
    assert sorted(in_quorums) == sorted(honest_addresses)

    # and the honest four keep executing the job in the new epoch
    (started,) = await registry.events.EpochStarted().get_logs(
        from_block=mined, argument_filters={"epoch": new_epoch}
    )
    await cluster.wait_until(
        lambda: executed_after(int(started["blockNumber"])), 120, "an execution in the new epoch"
    )
    executions = await cluster.executions(w3, job_id)
    rounds = [int(e["args"]["round"]) for e in executions]
    assert rounds == list(range(len(rounds))), rounds
    assert {e["args"]["executor"] for e in executions} <= honest_addresses
