"""Gas of `execute`, `createJob` and `rotate()` on the in-process chain (eth-tester, py-evm).

Run: .venv/bin/python benchmarks/gas.py   (writes the gas section of docs/benchmarks.md)

Every job calls its target through its own JobForwarder (TaskManager -> forwarder -> target),
and `JobExecuted.gasUsed` measures the call into the forwarder, hop included. So the target's
own gas is measured apart, as the contracts before the forwarder measured it around their
direct call (one cold CALL into the target plus the target's execution): eth_estimateGas of the
target's calldata sent straight from the job's forwarder address, at the block before the
execution, minus the 21,000 base and the calldata's intrinsic gas, plus 2,600 for the cold
account access (the target is warm as a transaction's `to`, cold inside `execute`).
Overhead = the transaction's gas minus that, so the 21,000 base, all calldata and the forwarder
hop (`JobExecuted.gasUsed` minus the target's own gas) count as overhead.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import platform
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eth.estimators.gas import binary_gas_search_exact

from keeper.chain.artifacts import ARTIFACTS_DIR
from keeper.chain.contracts import DeployParams, call, deploy_contract
from keeper.chain.embedded import EmbeddedChain
from keeper.core.quorum import is_quorum_signed
from keeper.core.report import Batch
from keeper.errors import ContractRevert
from tests.harness import (
    CONDITION,
    CRON,
    ETHER,
    EVENT,
    NO_PAYLOAD,
    SEED_DELAY_BLOCKS,
    TIME,
    Net,
    condition_trigger,
    cron_trigger,
    event_trigger,
    make_net,
    selector,
    time_trigger,
)

ROOT = Path(__file__).resolve().parents[1]
ON_TIME = selector("onTime()")  # the Time jobs' callData, in their forwarders' code
THRESHOLD_BPS = 6667
QUORUM_SIZES = (1, 4, 7, 10, 16)
ROTATE_SIZES = (8, 32, 128)
DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- gas:begin -->", "<!-- gas:end -->"
CONTRACT_FILES = ("contracts/TaskManager.sol", "contracts/KeeperRegistry.sol",
                  "contracts/JobForwarder.sol", "contracts/artifacts")  # fmt: skip

TX_BASE_GAS = 21_000
COLD_ACCOUNT_ACCESS_GAS = 2_600  # EIP-2929
FRESH_SLOT_GAS = 22_100  # cold SSTORE of a zero slot: 2,100 + 20,000
WARM_UPDATE_GAS = 5_000  # cold SSTORE of a non-zero slot to another non-zero value: 2,100 + 2,900
COLD_SLOAD_GAS = 2_100
CREATE_GAS = 32_000
CODE_DEPOSIT_GAS = 200  # a byte of runtime code
INITCODE_WORD_GAS = 2  # EIP-3860, paid by CREATE2 and by a creation transaction alike
CREATE2_HASH_WORD_GAS = 6  # CREATE2 only
FORWARDER_TAIL_BYTES = 96  # after the callData in a forwarder's code: TaskManager, target, length
MAX_CALLDATA = 4096  # TaskManager.MAX_CALLDATA
# A Time job's callData of the maximum length, few zero bytes (as in tests/integration)
LONGEST_CALL = bytes((i * 7 + 1) % 256 for i in range(MAX_CALLDATA))
LONGEST_ROW = f"Time, {MAX_CALLDATA:,}-byte callData"

# Figures of commit 8587483, the contracts before v2 (target called directly), for comparison.
PREVIOUS = "8587483"
PREVIOUS_OVERHEAD_7 = 85_260  # 5-of-7 overhead: tx gas 100,483 - JobExecuted.gasUsed 15,223
PREVIOUS_CALLDATA_7 = 11_900
PREVIOUS_EVM_7 = 52_360
# This script's target-gas definition run against 8587483's contracts (TaskManager as sender)
# gives 15,197: the old JobExecuted.gasUsed (15,223) also held 26 gas of TaskManager's own
# opcodes between its two gasleft() reads.
PREVIOUS_MEASURE_EXCESS = 26
OVERHEAD_RISE_LIMIT = 3_000
PREVIOUS_CREATE = {"Time": 131_469, "Cron": 135_182, "Event": 134_324, "Condition": 111_424}
# Figures of commit af515cc (the contracts up to a0dffef): every Time, Cron or Event item
# carried the job's callData as its payload, checked against the job's callDataHash slot.
EMBED_BEFORE = "af515cc"
EMBED_BEFORE_CREATE = {"Time": 319_077, "Cron": 322_799, "Event": 321_944, "Condition": 299_382}
EMBED_BEFORE_RUNTIME = 500  # bytes of the forwarder's code then
# Overhead of a batch by quorum size and items, and the forwarder hop, then.
EMBED_BEFORE_BATCH = {
    4: {1: 75_070, 2: 95_317, 10: 257_380, 64: 1_351_256},
    7: {1: 86_348, 2: 106_595, 10: 268_634, 64: 1_362_522},
}
EMBED_BEFORE_HOP = 2_852
PREVIOUS_ROTATE = {8: 206_772, 32: 618_525, 128: 2_454_146}  # one call then
# The single execution before batches (one report, one job per `execute`), measured with this
# script's definition at commit 88394fc (its tree extracted by `git archive`, its
# measure_execute run): overhead by quorum size.
SINGLE = "88394fc"
SINGLE_OVERHEAD = {4: 76_237, 7: 87_465}
PROFILED = "cd3492d"  # the commit whose batch path the opcode profile in the text describes
BATCH_SIZES = (1, 2, 10, 64)  # 64 = TaskManager.MAX_BATCH_ITEMS
BATCH_QUORUMS = (4, 7)
AIM_PER_JOB_AT_10 = 15_000
AIM_PER_ADDITIONAL = 10_000


def min_signers(n: int, bps: int) -> int:
    """Fewest equal-stake signers that meet both rules: the stake threshold and a strict
    majority of members by count."""
    return next(k for k in range(1, n + 1) if is_quorum_signed(k, n, k, n, bps))


def calldata_gas(data: bytes) -> int:
    """Intrinsic calldata gas: 4 per zero byte, 16 per non-zero byte."""
    return sum(4 if b == 0 else 16 for b in data)


def estimate_gas(net: Net, tx: dict[str, Any], block: int | str = "latest") -> int:
    """eth_estimateGas to the gas. eth-tester's default search stops within 21,000 of the
    answer, so the exact binary search is set on the chain (again: a snapshot revert rebuilds
    it). web3's provider sends block numbers as hex, which eth-tester refuses, so this asks
    eth-tester itself."""
    net.chain.backend.chain.gas_estimator = binary_gas_search_exact
    return int(net.chain.tester.estimate_gas({**tx, "gas_price": 0}, block_number=block))


async def target_gas(net: Net, job_id: int, call_data: bytes, block: int) -> int:
    """The target's own gas as the contracts before the forwarder measured it around their
    direct call: a call of `call_data` from the job's forwarder at `block`'s state, less the
    transaction's intrinsic gas, plus the cold account access the call pays inside execute.

    Same caller, calldata and storage as the forwarder's call, so the target runs the same code
    on the same cold slots. The smallest sufficient gas equals the gas used here: the demo
    target gets no refund (its counters go from non-zero to non-zero, or from zero on the first
    round) and leaves more than the 2,300 SSTORE stipend after each store."""
    forwarder = await net.tm.functions.forwarderOf(job_id).call()
    target = (await net.job(job_id))["target"]
    tx = {"from": forwarder, "to": target, "data": "0x" + call_data.hex()}
    estimate = estimate_gas(net, tx, block)
    return estimate - TX_BASE_GAS - calldata_gas(call_data) + COLD_ACCOUNT_ACCESS_GAS


async def run_time_round(net: Net, job_id: int, slot: int, signers: int) -> dict[str, int]:
    """Executes one Time round signed by the first `signers` members (its item's payload empty:
    the job's call is in its forwarder's code)."""
    _, members = await net.quorum_for_job(job_id)
    executor = members[0].address
    report = await net.make_report(job_id, slot, NO_PAYLOAD, executor)
    sigs = net.sign(report, [net.account_of(m.address) for m in members[:signers]])
    receipt = await net.execute(report, NO_PAYLOAD, members, sigs)
    (event,) = await net.events(net.tm, "JobExecuted", receipt)
    tx = await net.w3.eth.get_transaction(receipt["transactionHash"])
    target = await target_gas(net, job_id, ON_TIME, int(receipt["blockNumber"]) - 1)
    return {
        "total": int(receipt["gasUsed"]),
        "executed": int(event["args"]["gasUsed"]),
        "target": target,
        "calldata": calldata_gas(bytes(tx["input"])),
    }


async def short_of_quorum(net: Net, job_id: int, slot: int, signers: int) -> str:
    """The error `execute` gives with only `signers` signatures (eth_call). eth-tester runs a
    call in the latest block's context, so the report is checked one block earlier."""
    _, members = await net.quorum_for_job(job_id)
    executor = members[0].address
    check_block = await net.block_number() - 1
    report = await net.make_report(job_id, slot, NO_PAYLOAD, executor, check_block=check_block)
    sigs = net.sign(report, [net.account_of(m.address) for m in members[:signers]])
    fn = net.execute_fn([report], [NO_PAYLOAD], members, sigs)
    try:
        await call(fn, {"from": executor})
    except ContractRevert as exc:
        return exc.error_name
    raise RuntimeError(f"execute accepted {signers} signers of {len(members)}")


async def single_quorum_net(n: int) -> Net:
    params = DeployParams(
        min_stake=ETHER,
        unbonding_period=100,
        epoch_length=3600,
        target_quorum_size=n,
        gas_price_cap=100 * 10**9,
        premium=10**14,
    )
    net = await make_net(keepers=max(n, 1), params=params)
    await net.register_keepers([ETHER] * n)
    await net.rotate()
    return net


async def measure_execute(n: int) -> dict[str, Any]:
    net = await single_quorum_net(n)
    job_id = await net.create_job(net.spec(TIME, time_trigger(60), selector("onTime()")))
    start = (await net.job(job_id))["startTime"]
    k = min_signers(n, THRESHOLD_BPS)
    net.time_travel(max(start + 60, await net.timestamp()) + 1)
    fewer = await short_of_quorum(net, job_id, start + 60, k - 1)
    rows: list[dict[str, int]] = []
    for i in range(3):  # the first round pays for fresh storage; later ones are steady state
        slot = start + 60 * (i + 1)
        net.time_travel(max(slot, await net.timestamp()) + 1)
        rows.append(await run_time_round(net, job_id, slot, k))
    last, first = rows[-1], rows[0]
    overhead = last["total"] - last["target"]
    result: dict[str, Any] = {
        "n": n,
        "signers": k,
        "fewer_error": fewer,
        "total": last["total"],
        "target": last["target"],
        "executed": last["executed"],
        "hop": last["executed"] - last["target"],
        "overhead": overhead,
        "first_overhead": first["total"] - first["target"],
        "calldata": last["calldata"],
        "evm": overhead - TX_BASE_GAS - last["calldata"],
    }
    if n > k:  # marginal cost of one more signature at this quorum size
        slot = start + 60 * 4
        net.time_travel(max(slot, await net.timestamp()) + 1)
        more = await run_time_round(net, job_id, slot, n)
        result["per_signer"] = ((more["total"] - more["target"]) - overhead) / (n - k)
    return result


async def measure_batches(n: int) -> dict[str, Any]:
    """`execute` of batches of BATCH_SIZES Time jobs in an n-member quorum, the fewest signers
    that meet the threshold. Every job has a DemoTarget of its own (distinct jobs have distinct
    targets: no item finds another's target warm) and has executed once before (steady state);
    the executor has earned before. Overhead = transaction gas minus every item's target gas."""
    net = await single_quorum_net(n)
    k = min_signers(n, THRESHOLD_BPS)
    _, members = await net.quorum_for_job(1)
    signers = [net.account_of(m.address) for m in members[:k]]
    executor = members[0].address
    most = max(BATCH_SIZES)
    start = await net.timestamp() + 3_600  # after the jobs' and targets' creation blocks
    job_ids = []
    for _ in range(most):
        target = await deploy_contract(net.w3, "DemoTarget", net.deployer.address, 60)
        spec = net.spec(TIME, time_trigger(60), selector("onTime()"), target=target.address,
                        start_time=start)  # fmt: skip
        job_ids.append(await net.create_job(spec))

    async def run(jobs: list[int], slot: int) -> dict[str, int]:
        head = await net.make_report(jobs[0], slot, NO_PAYLOAD, executor)
        reports = [head] + [
            replace(head, jobId=j, round=(await net.job(j))["round"]) for j in jobs[1:]
        ]
        sigs = net.sign_batch(Batch.of(reports), signers)
        receipt = await net.execute_batch(reports, [NO_PAYLOAD] * len(jobs), members, sigs)
        events = await net.events(net.tm, "JobExecuted", receipt)
        if len(events) != len(jobs):
            raise RuntimeError(f"{len(events)} of {len(jobs)} items executed")
        block = int(receipt["blockNumber"]) - 1
        targets = [await target_gas(net, j, ON_TIME, block) for j in jobs]
        tx = await net.w3.eth.get_transaction(receipt["transactionHash"])
        return {
            "total": int(receipt["gasUsed"]),
            "target": sum(targets),
            "calldata": calldata_gas(bytes(tx["input"])),
        }

    net.time_travel(start + 1)
    await run(job_ids, start)  # first executions: fresh target slots, the executor's credit
    rows: dict[int, dict[str, int]] = {}
    for i, size in enumerate(BATCH_SIZES):
        slot = start + 60 * (i + 1)
        net.time_travel(max(slot, await net.timestamp()) + 1)
        # the jobs not in this batch skip a slot: their next round takes the next due one
        jobs = job_ids[:size]
        row = await run(jobs, slot)
        row["overhead"] = row["total"] - row["target"]
        rows[size] = row
    return {"n": n, "signers": k, "rows": rows}


def forwarder_code() -> tuple[bytes, int]:
    """JobForwarder's init code and the length of JobForwarderRuntime's code, which a
    forwarder's code starts with (the job's callData and three words follow it)."""
    init = json.loads((ARTIFACTS_DIR / "JobForwarder.json").read_text())["bytecode"]
    runtime = json.loads((ARTIFACTS_DIR / "JobForwarderRuntime.json").read_text())
    code = bytes.fromhex(runtime["deployedBytecode"].removeprefix("0x"))
    return bytes.fromhex(init.removeprefix("0x")), len(code)


async def measure_create_job() -> dict[str, Any]:
    net = await make_net(keepers=1)
    tgt = net.target.address
    specs = {
        "Time": net.spec(TIME, time_trigger(60), selector("onTime()")),
        "Cron": net.spec(CRON, cron_trigger("*/5 * * * *"), selector("onCron()")),
        "Event": net.spec(EVENT, event_trigger(tgt, [b"\x11" * 32], 2), selector("onEvent()")),
        "Condition": net.spec(CONDITION, condition_trigger(tgt, selector("checker()")), b""),
        LONGEST_ROW: net.spec(TIME, time_trigger(60), LONGEST_CALL),
    }
    kinds: dict[str, int] = {}
    for name, spec in specs.items():
        # warm the job counter and the owner's forwarder nonce so each kind is measured alike
        await net.create_job(spec)
        deposit = 10 * await net.required_deposit()
        receipt = await net.tx(net.tm.functions.createJob(spec), net.owner, value=deposit)
        kinds[name] = int(receipt["gasUsed"])
    # The forwarder's CREATE2, measured as a creation transaction of the same init code sent
    # from the TaskManager's address (its constructor calls its deployer back for the target
    # and callData, warm either way, and outside a createJob gets none: a forwarder with empty
    # callData): less the transaction's intrinsic gas, plus the hashing CREATE2 pays and a
    # creation transaction does not.
    init, runtime_len = forwarder_code()
    runtime_len += FORWARDER_TAIL_BYTES
    words = (len(init) + 31) // 32
    created = estimate_gas(net, {"from": net.tm.address, "data": "0x" + init.hex()})
    create2 = created - TX_BASE_GAS - calldata_gas(init) + CREATE2_HASH_WORD_GAS * words
    deposit_gas = CODE_DEPOSIT_GAS * runtime_len
    init_gas = (INITCODE_WORD_GAS + CREATE2_HASH_WORD_GAS) * words
    return {
        "kinds": kinds,
        "create2": create2,
        "runtime_len": runtime_len,
        "init_len": len(init),
        "init_words": words,
        "deposit_gas": deposit_gas,
        "init_gas": init_gas,
        "constructor": create2 - CREATE_GAS - deposit_gas - init_gas,
    }


async def measure_rotate(k: int) -> tuple[int, int]:
    """(arm, finish) gas of a due rotation after a first epoch."""
    params = DeployParams(
        min_stake=ETHER,
        unbonding_period=100,
        epoch_length=3600,
        target_quorum_size=4,
        gas_price_cap=100 * 10**9,
        premium=10**14,
    )
    net = await make_net(keepers=k, params=params, chain=EmbeddedChain(accounts=k + 2))
    await net.register_keepers([ETHER + i for i in range(k)])
    await net.rotate()  # the first epoch writes fresh slots; measure a re-formation
    net.time_travel(await net.timestamp() + 3601)
    arm = await net.arm_rotation()
    if not await net.events(net.registry, "RotationArmed", arm):
        raise RuntimeError("the first rotate() call did not arm")
    net.mine(SEED_DELAY_BLOCKS + 1)
    finish = await net.tx(net.registry.functions.rotate(), net.deployer)
    if not await net.events(net.registry, "EpochStarted", finish):
        raise RuntimeError("the second rotate() call did not start the epoch")
    return int(arm["gasUsed"]), int(finish["gasUsed"])


def git_label() -> str:
    """`git rev-parse --short HEAD`, flagged when the contracts differ from it."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", *CONTRACT_FILES],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return f"{commit} (with uncommitted contract changes)" if dirty else commit


ANALYSIS = """
### Against the aim (5-of-7 overhead <= 60,000; <= 4,500 per extra signer)

Measured: a 5-of-7 execution costs {overhead:,} gas of overhead (21,000 base + {calldata:,}
calldata + {evm:,} EVM, of which {hop:,} the forwarder hop), and each extra signer
{per_signer:,.0f}. {per_signer_verdict} The 60,000 aim is not met, and cannot be with one
ECDSA signature per signer and a forwarder per job:

- Floor without any quorum logic: 21,000 base + 5 x (3,000 `ecrecover` + ~1,040 for 65 bytes of
  calldata) + 7 member words (~3,200 calldata) + the report (~2,300 calldata) is ~46,700; the
  state an execution must touch (job slot read and write ~5,000, the executor's credit ~5,000
  warm or 22,100 fresh, the `JobExecuted` log ~2,800) brings it to ~59,500, and the forwarder
  hop (a cold call into the job's forwarder, 2,600, and the forwarder's code: {hop:,} measured)
  to ~{floor:,}, past 60,000 before the epoch and quorum lookup (one cold call and two cold
  slots alone are ~6,800), the EIP-712 digest and the checks.
- Already done: the job's hot state in one slot (balance, cursor, round, status, kind,
  threshold, gas limit), forwarder and schedule in a second, limits read only when set or when
  the job is paused or cancelled; the registry's current epoch (number, start block, count,
  128-bit seed) in one slot; `ecrecover` straight from calldata; members checked by one hash
  instead of read from storage; the forwarder keeps its target and its job's callData in its
  own code (no storage read and no callData in the report per call) and copies no return
  data.
- What would reach it: (1) a threshold Schnorr signature (FROST, one DKG per epoch) checked with
  the `ecrecover` trick costs one recovery and no member list for the whole quorum, about
  19,000 less for 5-of-7; (2) batching several jobs' rounds into one `execute` (built since:
  the batch section above) amortizes the 21,000 base, the signatures and the registry lookup
  (Chainlink's `transmit` does this), though not the hop: each job still pays its own cold
  call into its forwarder;
  (3) BLS via EIP-2537 needs a two-pair pairing (~103,000 gas) and pays off only past ~25
  signers. (1) and (2) together would put a 5-of-7 round well under 60,000.
- For scale: Chainlink Automation v2.1 spends 101,408 gas on a `transmit` of one upkeep with 2
  signatures whose target uses 9,084 (92,324 overhead) and ~7,050 per extra signature; our
  4-member quorum (3 signers) costs {four:,} of overhead. Chainlink 2.1 also calls each upkeep
  through a forwarder of its own (`AutomationForwarder`), which measures the upkeep's gas
  around its call to the target, so its overhead includes its forwarder hop as ours does.
"""


# Gas of what every executed item must touch with today's storage layout (EIP-2929 prices);
# the forwarder hop is measured (the single execution's).
ITEM_FLOOR = (
    ("job state slot: cold read, write (round, cursor, balance)", 2_100 + 2_900),
    ("job config slot (forwarder, schedule): cold read", 2_100),
    ("`JobExecuted` log: 3 topics, 5 data words", 375 + 3 * 375 + 8 * 160),
)
HOP_ROW = "the forwarder hop: cold account, call, forwarder code (measured above)"


def batch_lines(batches: list[dict[str, Any]], hop: int) -> list[str]:
    """The batch section: overhead per job by batch size, against the single execution."""
    lines = [
        "",
        f"### `execute` of a batch (issue 14), against the single execution of commit {SINGLE}",
        "",
        "Batches of Time jobs of one quorum, each job with a DemoTarget of its own (no item "
        "finds another's target warm), every job and the executor past their first execution "
        "(steady state); the fewest signers that meet 6667 bps. Overhead = transaction gas "
        "minus every item's target gas (as above); per job = overhead / items; per additional "
        "job = (overhead of the batch - overhead of the batch of one) / (items - 1). "
        f"Commit {SINGLE} had one `execute` per job: its overhead per job is its single "
        f"execution's (this script's `measure_execute` run on its tree).",
        "",
        "| quorum | signers | items | tx gas | target gas | overhead | per job "
        "| per additional job | calldata | "
        f"commit {SINGLE}, per job |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for b in batches:
        one = b["rows"][1]["overhead"]
        for size, r in b["rows"].items():
            per_job = r["overhead"] / size
            extra = "-" if size == 1 else f"{(r['overhead'] - one) / (size - 1):,.0f}"
            lines.append(
                f"| {b['n']} | {b['signers']} | {size} | {r['total']:,} | {r['target']:,} "
                f"| {r['overhead']:,} | {per_job:,.0f} | {extra} | {r['calldata']:,} "
                f"| {SINGLE_OVERHEAD[b['n']]:,} |"
            )
    seven = next((b for b in batches if b["n"] == 7), None)
    if seven is None:
        return lines
    rows = seven["rows"]
    one, ten, most = rows[1], rows[10], rows[max(rows)]
    per_ten = ten["overhead"] / 10
    extra_ten = (ten["overhead"] - one["overhead"]) / 9
    span = max(rows) - 10
    marginal = (most["overhead"] - ten["overhead"]) / span
    marginal_calldata = (most["calldata"] - ten["calldata"]) / span
    floor_rows = [*ITEM_FLOOR[:2], (HOP_ROW, hop), *ITEM_FLOOR[2:]]
    floor = sum(g for _, g in floor_rows)
    single = SINGLE_OVERHEAD[7]

    def verdict(value: float, aim: float) -> str:
        return "**met**" if value <= aim else f"**missed** by {value - aim:,.0f}"

    lines += [
        "",
        "Against the aims (5-of-7):",
        "",
        f"- A batch of one: {one['overhead']:,} of overhead against {single:,} for the "
        f"single execution at {SINGLE} ({one['overhead'] - single:+,}): "
        f"{verdict(one['overhead'], single)}.",
        f"- Per job in a batch of 10: {per_ten:,.0f} (aim {AIM_PER_JOB_AT_10:,}): "
        f"{verdict(per_ten, AIM_PER_JOB_AT_10)}.",
        f"- Each additional job: {extra_ten:,.0f} from 1 to 10 items, {marginal:,.0f} from 10 "
        f"to {max(rows)} (aim {AIM_PER_ADDITIONAL:,}): {verdict(extra_ten, AIM_PER_ADDITIONAL)}.",
        "",
        f"Where an additional job's {marginal:,.0f} goes (from 10 to {max(rows)} items): "
        f"{marginal_calldata:,.0f} of calldata (its 192 canonical bytes: the item's offset, "
        "four head words and the payload's length, zero: a Time item carries no payload, its "
        "job's call is in the forwarder's code; most of them zero bytes), and what every "
        "executed item must touch with today's storage layout:",
        "",
    ]
    lines += [f"- {name}: {gas:,}" for name, gas in floor_rows]
    rest = marginal - marginal_calldata - floor
    shared = one["overhead"] - marginal
    per_most = most["overhead"] / max(rows)
    lines += [
        "",
        f"That is {floor:,} of state, hop and log, {floor + marginal_calldata:,.0f} with the "
        "calldata: the floor of a job in a batch with today's storage layout, whatever the "
        f"batch shares (the design's estimate was ~16,500). The other {rest:,.0f} are the "
        "TaskManager's own opcodes per item. An opcode profile of the batch of two against "
        f"the batch of one by source line (py-evm, the TaskManager's own gas; commit {PROFILED}) "
        "puts ~1,370 in compiler-generated code (the job's mapping slot and storage pointers, "
        "in the item and again in its settlement, and the stack shuffling between the item's "
        "private functions), ~480 in the payload, item and quorum hashes, ~200 in the "
        "settlement's warm read and write of the state slot, and the rest (~2,000) in the "
        "item's checks, the call's gas bounds and memory, the outcome word and the two loops' "
        f"own code. So the {AIM_PER_ADDITIONAL:,} aim per additional job is missed: its floor "
        f"alone is {floor + marginal_calldata:,.0f}; reaching it would take the job's config "
        "in one slot with its state (one cold read fewer: -2,100), no log per item, and the "
        "whole item path in assembly (at most the ~3,000 of plain opcodes above). The config "
        "cannot join the state slot: its 256 bits are full, and the forwarder's address alone "
        "is 160. So with what the issue itself requires of every item (the job's own "
        "forwarder as its target's caller, its round, cursor and balance kept on chain), an "
        "item costs at least 5,000 (its state slot written) + 2,100 (its config read) + 2,600 "
        f"(its forwarder, a cold account) + {marginal_calldata:,.0f} (its calldata) = "
        f"{9_700 + marginal_calldata:,.0f} before a single check, bill or log: above "
        f"the {AIM_PER_ADDITIONAL:,} aim. Per job in a batch of 10 adds at least a tenth of "
        "21,000 and of five signatures (an `ecrecover` of 3,000 and 65 bytes of calldata "
        f"each): {(21_000 + 5 * (3_000 + 65 * 16)) / 10 + 9_700 + marginal_calldata:,.0f}, "
        f"with 300 or so left under the {AIM_PER_JOB_AT_10:,} aim for the header, the epoch, "
        "the earnings and every check, bill and log: neither aim can be met without giving up "
        "a per-job forwarder or per-job state.",
        "",
        f"The shared part (21,000 base, header and member words, the signatures and their "
        f"calldata, the epoch slot, the executor's credit) is {shared:,.0f} (the batch of one's "
        "overhead less an additional job's cost), and falls per job as 1/items: per job in a "
        f"batch of 10 is {per_ten:,.0f}, in a batch of {max(rows)} {per_most:,.0f} "
        "(Chainlink Automation 2.3's own accounting gives ~19,300 per upkeep at 10). At the "
        f"floor, a batch of 10 would cost {shared / 10 + floor + marginal_calldata:,.0f} per "
        f"job (a tenth of the shared part and the floor): the {AIM_PER_JOB_AT_10:,} aim is out "
        "of reach with this storage layout and one ECDSA signature per signer. The batch of "
        f"one costs {one['overhead'] - single:+,} against {SINGLE}'s single execution.",
        "",
        f"What cut the batch path (commit {PROFILED} against 7b09112, 5-of-7, batches of 1, 2 "
        "and 10 measured in one run before and after each step):",
        "",
        "- The items read from calldata in assembly once, at offsets checked canonical "
        "(`_hashItems`, `_checkCanonicalCalldata`: the compiler's decoder bounds-checked every "
        "member access of the nested array of dynamic structs; the length check alone does not "
        "fix the offsets, so the items', members' and signatures' offsets, each item's and each "
        "payload's are checked too): batch of one -1,085, per additional job -700.",
        "- The job's state and config slots read as words once and the state written once "
        "(no `JobState memory`/`JobConfig memory` copies), each item charged once after the "
        "loop (own gas and share in one balance write, no `Outcome[]` array: one memory word "
        "per item), the batch's price and funding price computed once (per job only when it "
        "has a `maxGasPrice`), unchecked loop counters: batch of one -5,775, per additional "
        "job -5,670.",
        "- Together: batch of one 93,101 -> 86,241 (below the single execution), per "
        "additional job 26,511 -> 20,136 (1 to 10 items), runtime 24,359 -> 23,376 bytes.",
    ]
    lines += embed_lines(batches, hop)
    return lines


def embed_lines(batches: list[dict[str, Any]], hop: int) -> list[str]:
    """Against EMBED_BEFORE: the job's call moved from every item into its forwarder's code."""
    lines = [
        "",
        f"What moving a Time, Cron or Event job's call into its forwarder's code changed "
        f"(against commit {EMBED_BEFORE}, whose items carried the job's callData as their "
        "payload, hashed and compared with the job's `callDataHash` slot): per item, the cold "
        "read of that slot (2,100), the payload's word of calldata and its hashing are gone; "
        "the forwarder now reads its TaskManager, target and the callData from its own code "
        f"(`codecopy`) instead of two immutables (hop {EMBED_BEFORE_HOP:,} -> {hop:,}).",
        "",
        "| quorum | items | overhead | "
        f"commit {EMBED_BEFORE} | difference | per job | commit {EMBED_BEFORE}, per job |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for b in batches:
        old = EMBED_BEFORE_BATCH[b["n"]]
        for size, r in b["rows"].items():
            lines.append(
                f"| {b['n']} | {size} | {r['overhead']:,} | {old[size]:,} "
                f"| {r['overhead'] - old[size]:+,} | {r['overhead'] / size:,.0f} "
                f"| {old[size] / size:,.0f} |"
            )
    seven = next((b for b in batches if b["n"] == 7), None)
    if seven is not None:
        rows, old = seven["rows"], EMBED_BEFORE_BATCH[7]
        most = max(rows)
        now = (rows[most]["overhead"] - rows[10]["overhead"]) / (most - 10)
        then = (old[most] - old[10]) / (most - 10)
        lines += [
            "",
            f"5-of-7: per additional job (10 to {most} items) {then:,.0f} -> {now:,.0f} "
            f"({now - then:+,.0f}); the batch of one {old[1]:,} -> {rows[1]['overhead']:,} "
            f"({rows[1]['overhead'] - old[1]:+,}). The cost moved to `createJob`, once per job: "
            f"{CODE_DEPOSIT_GAS} gas of code deposit per byte of callData (next section).",
        ]
    return lines


def limit_lines(seven: dict[str, Any]) -> list[str]:
    """The issue's limit: the 5-of-7 overhead at most 3,000 above 8587483's."""
    new = seven["overhead"]
    rise = new - PREVIOUS_OVERHEAD_7
    like_for_like = rise - PREVIOUS_MEASURE_EXCESS
    v2_rest = SINGLE_OVERHEAD[7] - PREVIOUS_OVERHEAD_7 - EMBED_BEFORE_HOP
    verdict = (
        f"**Within** the limit of +{OVERHEAD_RISE_LIMIT:,}."
        if rise <= OVERHEAD_RISE_LIMIT
        else f"**Not within** the limit of +{OVERHEAD_RISE_LIMIT:,}: it is "
        f"{rise - OVERHEAD_RISE_LIMIT:,} over (at most "
        f"{PREVIOUS_OVERHEAD_7 + OVERHEAD_RISE_LIMIT:,} was allowed)."
    )
    return [
        "",
        f"### Against the limit (5-of-7 overhead at most {OVERHEAD_RISE_LIMIT:,} above "
        f"commit {PREVIOUS}'s)",
        "",
        "| 5-of-7 | overhead | of which calldata | of which EVM | of which forwarder hop |",
        "|---|---:|---:|---:|---:|",
        f"| this commit | {new:,} | {seven['calldata']:,} | {seven['evm']:,} | {seven['hop']:,} |",
        f"| commit {PREVIOUS} | {PREVIOUS_OVERHEAD_7:,} | {PREVIOUS_CALLDATA_7:,} "
        f"| {PREVIOUS_EVM_7:,} | - |",
        f"| difference | {rise:+,} | {seven['calldata'] - PREVIOUS_CALLDATA_7:+,} "
        f"| {seven['evm'] - PREVIOUS_EVM_7:+,} | {seven['hop']:+,} |",
        "",
        f"{new:,} against {PREVIOUS_OVERHEAD_7:,}: {rise:+,}. {verdict} Since issue 14 the "
        f"figure is the batch of one, {new - SINGLE_OVERHEAD[7]:+,} against the single "
        f"execution of commit {SINGLE} ({SINGLE_OVERHEAD[7]:,}, within the limit): the batch "
        "path's cost is in the section above (and since commit "
        f"{EMBED_BEFORE} a Time item carries no payload: {new - EMBED_BEFORE_BATCH[7][1]:+,} for "
        "the single job). Up to commit "
        f"{SINGLE}: the forwarder hop alone was {EMBED_BEFORE_HOP:,}; the other {v2_rest:+,} "
        "were v2's other changes "
        "to the `execute` path: the quorum commitments now live in the TaskManager, which saves "
        "the call to the registry (a cold account and a call, about 3,700), against the "
        "canonical-calldata length check, the majority count, the halt-block and gas-price "
        "bounds, the balance read again after the call, the forwarder's calldata (a 32-byte "
        "gas word ahead of the payload), and since commit f9e2f5e about 1,070 for the "
        "failure and funding records: the `failing` flag read after the call (a run of "
        "failures ends with a success) and the minimum balance at this block's price, computed "
        "after the payment for `JobUnderfunded`; calldata differs by a few dozen gas from run "
        "to run with the zero bytes of signatures and hashes. The two figures are "
        f"not quite one definition: {PREVIOUS}'s overhead subtracted `JobExecuted.gasUsed`, "
        f"which held {PREVIOUS_MEASURE_EXCESS} gas of TaskManager's own opcodes besides the "
        "target (the target-gas definition above, run against that commit's contracts, gives "
        f"15,197 where `JobExecuted.gasUsed` was 15,223). On this page's definition "
        f"{PREVIOUS}'s overhead is {PREVIOUS_OVERHEAD_7 + PREVIOUS_MEASURE_EXCESS:,} and the "
        f"rise {like_for_like:+,}, "
        + (
            "also within the limit."
            if like_for_like <= OVERHEAD_RISE_LIMIT
            else "also over the limit."
        ),
    ]


def create_lines(creates: dict[str, Any]) -> list[str]:
    kinds: dict[str, int] = creates["kinds"]

    def before(k: str, table: dict[str, int]) -> str:
        if k not in table:
            return "- | -"
        return f"{table[k]:,} | {kinds[k] - table[k]:+,}"

    lines = [
        "",
        "### `createJob` per trigger kind",
        "",
        f"| kind | gas | commit {EMBED_BEFORE} | difference | commit {PREVIOUS} | difference |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {k} | {v:,} | {before(k, EMBED_BEFORE_CREATE)} | {before(k, PREVIOUS_CREATE)} |"
        for k, v in kinds.items()
    ]
    create2 = creates["create2"]
    storage = FRESH_SLOT_GAS + WARM_UPDATE_GAS
    moved = FRESH_SLOT_GAS + COLD_SLOAD_GAS
    time_call = len(ON_TIME)
    time_create2 = create2 + CODE_DEPOSIT_GAS * time_call
    delta = kinds["Time"] - PREVIOUS_CREATE["Time"]
    longest = kinds[LONGEST_ROW] - kinds["Time"]
    per_byte = longest / (MAX_CALLDATA - time_call)
    runtime = creates["runtime_len"] - FORWARDER_TAIL_BYTES
    lines += [
        "",
        "Each `createJob` deploys the job's forwarder, whose code is JobForwarderRuntime's "
        f"{runtime} bytes followed by the job's callData (Time, Cron and Event jobs; none for a "
        f"Condition job) and {FORWARDER_TAIL_BYTES} bytes (the TaskManager, the target, the "
        "callData's length). With no callData its CREATE2 costs "
        f"{create2:,}: {CREATE_GAS:,} for the CREATE2, {creates['deposit_gas']:,} for its "
        f"{creates['runtime_len']} bytes of code at {CODE_DEPOSIT_GAS} a byte, "
        f"{creates['init_gas']} for its {creates['init_words']} words of init code "
        f"({INITCODE_WORD_GAS} + {CREATE2_HASH_WORD_GAS} a word) and {creates['constructor']:,} "
        "for its constructor, which reads the target and callData back from the TaskManager "
        "and appends them to the runtime code (measured as a creation transaction of the same "
        "init code from the TaskManager's address: eth_estimateGas less 21,000 and its "
        "calldata, plus CREATE2's hashing). **Each byte of callData adds "
        f"{CODE_DEPOSIT_GAS} gas of code deposit**, paid once at creation: a Time job's "
        f"{time_call}-byte `onTime()` makes it about {time_create2:,}. Its storage: "
        f"`jobOfForwarder[forwarder]` {FRESH_SLOT_GAS:,} (a fresh slot) and "
        f"`forwarderNonce[owner]` {WARM_UPDATE_GAS:,} ({FRESH_SLOT_GAS:,} for an owner's first "
        f"job), {storage:,} in all, so about {time_create2 + storage:,} with the CREATE2. "
        f"Since commit {PREVIOUS} the target also moved out of the config slot (which now holds "
        f"the forwarder) into a slot of its own, {FRESH_SLOT_GAS:,}, and the `ForbiddenTarget` "
        f"check reads `jobOfForwarder[target]`, {COLD_SLOAD_GAS:,}. Of a Time job's "
        f"{delta:+,} against {PREVIOUS} that is {time_create2 + storage + moved:,}; the other "
        f"{delta - time_create2 - storage - moved:,} are copying the init code to memory, the "
        "salt and address hashes, the callData's round trip through transient storage, and "
        "the `maxGasPrice` and forwarder words in the calldata and in `JobCreated`.",
        "",
        f"The {MAX_CALLDATA:,}-byte row is a Time job with the longest callData (few zero bytes): "
        f"{longest:+,} against the 4-byte one, {per_byte:,.0f} a byte: {CODE_DEPOSIT_GAS} of "
        "code deposit, 16 of `createJob`'s calldata and 8 of `JobCreated`'s data (both paid "
        "before this change too), the rest the transient round trip (a store, a load and a "
        "clear per word) and the memory copies.",
        "",
        f"What moving the call into the forwarder changed (against commit {EMBED_BEFORE}, whose "
        f"forwarder kept its target as an immutable, {EMBED_BEFORE_RUNTIME} bytes of code): "
        f"the Time job's createJob {kinds['Time'] - EMBED_BEFORE_CREATE['Time']:+,}, the "
        f"Condition job's (no callData in its forwarder) "
        f"{kinds['Condition'] - EMBED_BEFORE_CREATE['Condition']:+,}: the forwarder's code is "
        f"{EMBED_BEFORE_RUNTIME - creates['runtime_len']} bytes shorter without callData (no "
        "Solidity dispatcher, no immutables: everything is read from the code's tail), and "
        f"{CODE_DEPOSIT_GAS} a byte longer with it.",
    ]
    return lines


def render(
    execs: list[dict[str, Any]],
    batches: list[dict[str, Any]],
    creates: dict[str, Any],
    rotates: dict[int, tuple[int, int]],
    label: str,
    day: str,
) -> str:
    lines = [
        BEGIN,
        "## Gas (in-process chain)",
        "",
        f"Commit {label}, {day} (a Time, Cron or Event job's call lives in its forwarder's "
        "code: its items carry no payload); older figures are other commits', named so.",
        "",
        "Command: `.venv/bin/python benchmarks/gas.py` (eth-tester 0.14 / py-evm, EVM prague, "
        f"solc 0.8.30 via-IR, 5,000 optimizer runs). Machine: {platform.machine()}, "
        f"{platform.system()}, Python {platform.python_version()}; gas does not depend on it.",
        "",
        "### `execute` of one Time job, threshold 6667 bps, equal stakes",
        "",
        "Steady state (the executor has earned before). Target gas: what the contracts before "
        "the forwarder measured around their direct call, one cold CALL into the target plus "
        "the target's execution. `JobExecuted.gasUsed` now measures the call into the job's "
        "forwarder (the forwarder and its call to the target), so the target's gas is measured "
        "apart: eth_estimateGas (py-evm's exact binary search; eth-tester's default stops "
        "within 21,000) of the target's `onTime()` sent straight from the "
        "job's forwarder (`forwarderOf(jobId)`) at the block before the execution, less 21,000 "
        "and the 4-byte calldata's 64, plus 2,600 for the cold account access (the target is "
        "warm as a transaction's `to`, cold inside `execute`). Same caller, calldata and "
        "storage, so the target runs the same code on the same cold slots; it gets no refund "
        "and no stipend check binds, so the smallest sufficient gas is the gas used. Overhead "
        "= transaction gas minus target gas: the 21,000 base, all calldata and the forwarder "
        "hop are overhead. Forwarder hop = `JobExecuted.gasUsed` minus target gas: the cold "
        "call into the forwarder (2,600), the forwarder's code (it reads its TaskManager, "
        "target and the job's callData from its own code's tail) and the few TaskManager "
        "opcodes between its two `gasleft()` reads.",
        "",
        "| quorum | signers | tx gas | target gas | overhead | of which calldata | of which EVM "
        "| first-round overhead | per extra signer | forwarder hop |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in execs:
        per = f"{r['per_signer']:,.0f}" if "per_signer" in r else "-"
        lines.append(
            f"| {r['n']} | {r['signers']} | {r['total']:,} | {r['target']:,} | {r['overhead']:,} "
            f"| {r['calldata']:,} | {r['evm']:,} | {r['first_overhead']:,} | {per} "
            f"| {r['hop']:,} |"
        )
    fewer = "; ".join(f"{r['n']}: {r['signers'] - 1} give `{r['fewer_error']}`" for r in execs)
    lines += [
        "",
        "Signers: the fewest that meet both rules of `execute`, 6667 bps of the stake and a "
        "strict majority of the members by count (`keeper.core.quorum.is_quorum_signed`); with "
        "equal stakes the stake rule decides, so the count rule changes none of them. One "
        f"fewer is refused on chain ({fewer}; the count is checked first). Per extra signer: "
        "at the same quorum, all "
        "members signing minus the threshold signing, divided by the extra signatures (65 "
        "bytes of calldata and one `ecrecover` each). The first round's target gas includes "
        "its counters' fresh slots, as `JobExecuted.gasUsed` did before.",
    ]
    seven = next((r for r in execs if r["n"] == 7), None)
    four = next((r for r in execs if r["n"] == 4), None)
    lines += batch_lines(batches, seven["hop"] if seven is not None else EMBED_BEFORE_HOP)
    if seven is not None:
        lines += limit_lines(seven)
    lines += create_lines(creates)
    if seven is not None and four is not None:
        over = [r for r in execs if r.get("per_signer", 0) > 4_500]
        verdict = (
            "The per-signer aim (4,500) is met at every quorum size."
            if not over
            else "The per-signer aim (4,500) is missed at "
            + ", ".join(f"{r['n']} members ({r['per_signer']:,.0f})" for r in over)
            + ": a signature's calldata cost varies with its zero bytes."
        )
        lines += ANALYSIS.format(
            overhead=seven["overhead"],
            calldata=seven["calldata"],
            evm=seven["evm"],
            hop=seven["hop"],
            floor=round(59_500 + seven["hop"], -2),
            per_signer=seven.get("per_signer", 0),
            four=four["overhead"],
            per_signer_verdict=verdict,
        ).splitlines()
    lines += [
        "",
        "### `rotate()` (target quorum size 4, re-forming an existing epoch)",
        "",
        "Two calls: the first arms the rotation (freezes the keeper set and names the seed "
        f"block, {SEED_DELAY_BLOCKS} blocks ahead); the second, after the seed block, seeds "
        "the epoch with its hash and forms the quorums. Measured on a due rotation (the epoch "
        f"length passed) after a first epoch; commit {PREVIOUS} did it all in one call.",
        "",
        f"| keepers | quorums | arm | finish | both | commit {PREVIOUS} (one call) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {k} | {max(1, k // 4)} | {arm:,} | {finish:,} | {arm + finish:,} "
        f"| {PREVIOUS_ROTATE[k]:,} |"
        for k, (arm, finish) in rotates.items()
    ]
    per_keeper = ", ".join(
        f"{(finish - PREVIOUS_ROTATE[k]) / k:,.0f} at {k}" for k, (_, finish) in rotates.items()
    )
    arm = next(iter(rotates.values()))[0]
    lines += [
        "",
        f"The arm is a transaction of its own: 21,000 base + {arm - TX_BASE_GAS:,} for its "
        "checks, its write of the timing slot and `RotationArmed`. The finish alone costs more "
        f"than {PREVIOUS}'s one call by, per keeper, {per_keeper}: one cold slot read "
        "(2,100) per keeper, since forming the frozen set reads each keeper's "
        "`registeredBlock`, which lies in the second slot of its record, and the hand-over of "
        "the epoch to the TaskManager (`recordEpoch`: a call, two header slots and one slot "
        "per quorum, which the registry no longer writes itself), a fixed cost that weighs "
        "most at 8 keepers. The finish varies by up to about 1% from run to run: the seed (a "
        "block hash) decides the sort's swaps.",
        "",
        END,
    ]
    return "\n".join(lines)


def write(section: str) -> None:
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n\n" + BEGIN + "\n" + END + "\n"
    if BEGIN not in text:
        text += "\n" + BEGIN + "\n" + END + "\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    DOCS.write_text(head + section + tail)


async def main() -> None:
    label, day = git_label(), datetime.date.today().isoformat()
    execs = [await measure_execute(n) for n in QUORUM_SIZES]
    for r in execs:
        print(r)
    batches = [await measure_batches(n) for n in BATCH_QUORUMS]
    for b in batches:
        print(b)
    creates = await measure_create_job()
    print(creates)
    rotates = {k: await measure_rotate(k) for k in ROTATE_SIZES}
    print(rotates)
    write(render(execs, batches, creates, rotates, label, day))
    print(f"wrote {DOCS}")


if __name__ == "__main__":
    asyncio.run(main())
