"""Gas of `execute`, `createJob` and `rotate()` on the in-process chain (eth-tester, py-evm).

Run: .venv/bin/python benchmarks/gas.py   (writes the gas section of docs/benchmarks.md)

Overhead = the transaction's gas minus the target's own gas (JobExecuted.gasUsed, measured by
TaskManager around the call), so the 21,000 base and all calldata count as overhead.
"""

from __future__ import annotations

import asyncio
import platform
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keeper.chain.contracts import DeployParams
from keeper.chain.embedded import EmbeddedChain
from keeper.core.quorum import is_quorum_signed
from tests.harness import (
    CONDITION,
    CRON,
    ETHER,
    EVENT,
    TIME,
    Net,
    condition_trigger,
    cron_trigger,
    event_trigger,
    make_net,
    selector,
    time_trigger,
)

THRESHOLD_BPS = 6667
QUORUM_SIZES = (1, 4, 7, 10, 16)
ROTATE_SIZES = (8, 32, 128)
DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
BEGIN, END = "<!-- gas:begin -->", "<!-- gas:end -->"


def min_signers(n: int, bps: int) -> int:
    """Fewest equal-stake signers that meet the threshold."""
    return next(k for k in range(1, n + 1) if is_quorum_signed(k, n, k, n, bps))


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


async def run_time_round(net: Net, job_id: int, slot: int, signers: int) -> tuple[int, int]:
    """Executes one Time round signed by the first `signers` members; (tx gas, target gas)."""
    payload = selector("onTime()")
    _, members = await net.quorum_for_job(job_id)
    executor = members[0].address
    report = await net.make_report(job_id, slot, payload, executor)
    sigs = net.sign(report, [net.account_of(m.address) for m in members[:signers]])
    receipt = await net.execute(report, payload, members, sigs)
    (event,) = await net.events(net.tm, "JobExecuted", receipt)
    tx = await net.w3.eth.get_transaction(receipt["transactionHash"])
    CALLDATA_GAS[0] = calldata_gas(bytes(tx["input"]))
    return int(receipt["gasUsed"]), int(event["args"]["gasUsed"])


CALLDATA_GAS = [0]


def calldata_gas(data: bytes) -> int:
    """Intrinsic calldata gas: 4 per zero byte, 16 per non-zero byte."""
    return sum(4 if b == 0 else 16 for b in data)


async def measure_execute(n: int) -> dict[str, Any]:
    net = await single_quorum_net(n)
    job_id = await net.create_job(net.spec(TIME, time_trigger(60), selector("onTime()")))
    start = (await net.job(job_id))["startTime"]
    k = min_signers(n, THRESHOLD_BPS)
    rows: list[tuple[int, int]] = []
    for i in range(3):  # the first round pays for fresh storage; later ones are steady state
        slot = start + 60 * (i + 1)
        net.time_travel(max(slot, await net.timestamp()) + 1)
        rows.append(await run_time_round(net, job_id, slot, k))
    total, target = rows[-1]
    calldata = CALLDATA_GAS[0]
    first_total, first_target = rows[0]
    result: dict[str, Any] = {
        "n": n,
        "signers": k,
        "total": total,
        "target": target,
        "overhead": total - target,
        "first_overhead": first_total - first_target,
        "calldata": calldata,
        "evm": total - target - 21_000 - calldata,
    }
    if n > k:  # marginal cost of one more signature at this quorum size
        slot = start + 60 * 4
        net.time_travel(max(slot, await net.timestamp()) + 1)
        more_total, more_target = await run_time_round(net, job_id, slot, n)
        result["per_signer"] = ((more_total - more_target) - (total - target)) / (n - k)
    return result


async def measure_create_job() -> dict[str, int]:
    net = await make_net(keepers=1)
    tgt = net.target.address
    specs = {
        "Time": net.spec(TIME, time_trigger(60), selector("onTime()")),
        "Cron": net.spec(CRON, cron_trigger("*/5 * * * *"), selector("onCron()")),
        "Event": net.spec(EVENT, event_trigger(tgt, [b"\x11" * 32], 2), selector("onEvent()")),
        "Condition": net.spec(CONDITION, condition_trigger(tgt, selector("checker()")), b""),
    }
    out: dict[str, int] = {}
    for name, spec in specs.items():
        await net.create_job(spec)  # warm the counter slot so each kind is measured alike
        deposit = 10 * await net.required_deposit()
        receipt = await net.tx(net.tm.functions.createJob(spec), net.owner, value=deposit)
        out[name] = int(receipt["gasUsed"])
    return out


async def measure_rotate(k: int) -> int:
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
    receipt = await net.rotate()
    return int(receipt["gasUsed"])


ANALYSIS = """
### Against the aim (5-of-7 overhead <= 60,000; <= 4,500 per extra signer)

Measured: a 5-of-7 execution costs {overhead:,} gas of overhead (21,000 base + {calldata:,}
calldata + {evm:,} EVM), and each extra signer {per_signer:,.0f}. {per_signer_verdict} The
60,000 aim is not met, and cannot be with one ECDSA signature per signer:

- Floor without any quorum logic: 21,000 base + 5 x (3,000 `ecrecover` + ~1,040 for 65 bytes of
  calldata) + 7 member words (~3,200 calldata) + the report (~2,300 calldata) is ~46,700; the
  state an execution must touch (job slot read and write ~5,000, the executor's credit ~5,000
  warm or 22,100 fresh, the `JobExecuted` log ~2,800) brings it to ~59,500, leaving ~500 gas for
  the epoch and quorum lookup (one cold call and two cold slots alone are ~6,800), the EIP-712
  digest and the checks.
- Already done: the job's hot state in one slot (balance, cursor, round, status, kind,
  threshold, gas limit), target and schedule in a second, limits read only when set; the
  registry's current epoch (number, start block, count, 128-bit seed) in one slot; `ecrecover`
  straight from calldata; members checked by one hash instead of read from storage.
- What would reach it: (1) a threshold Schnorr signature (FROST, one DKG per epoch) checked with
  the `ecrecover` trick costs one recovery and no member list for the whole quorum, about
  19,000 less for 5-of-7; (2) batching several jobs' rounds into one `execute` amortizes the
  21,000 base, the signatures and the registry lookup (Chainlink's `transmit` does this);
  (3) BLS via EIP-2537 needs a two-pair pairing (~103,000 gas) and pays off only past ~25
  signers. (1) and (2) together would put a 5-of-7 round well under 60,000.
- For scale: Chainlink Automation v2.1 spends 101,408 gas on a `transmit` of one upkeep with 2
  signatures whose target uses 9,084 (92,324 overhead) and ~7,050 per extra signature; our
  4-member quorum (3 signers) costs {four:,} of overhead.
"""


def render(execs: list[dict[str, Any]], creates: dict[str, int], rotates: dict[int, int]) -> str:
    lines = [
        BEGIN,
        "## Gas (in-process chain)",
        "",
        "Command: `.venv/bin/python benchmarks/gas.py` (eth-tester 0.14 / py-evm, EVM prague, "
        f"solc 0.8.30 via-IR, 10,000 optimizer runs). Machine: {platform.machine()}, "
        f"{platform.system()}, Python {platform.python_version()}; gas does not depend on it.",
        "",
        "### `execute` of one Time job, threshold 6667 bps, equal stakes",
        "",
        "Steady state (the executor has earned before). Overhead = transaction gas minus the "
        "target's own gas (`JobExecuted.gasUsed`, the call itself included); the 21,000 base and "
        "all calldata are overhead.",
        "",
        "| quorum | signers | tx gas | target gas | overhead | of which calldata | of which EVM "
        "| first-round overhead | per extra signer |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in execs:
        per = f"{r['per_signer']:,.0f}" if "per_signer" in r else "-"
        lines.append(
            f"| {r['n']} | {r['signers']} | {r['total']:,} | {r['target']:,} | {r['overhead']:,} "
            f"| {r['calldata']:,} | {r['evm']:,} | {r['first_overhead']:,} | {per} |"
        )
    lines += [
        "",
        "Per extra signer: at the same quorum, all members signing minus the threshold signing, "
        "divided by the extra signatures (65 bytes of calldata and one `ecrecover` each).",
        "",
        "### `createJob` per trigger kind",
        "",
        "| kind | gas |",
        "|---|---:|",
    ]
    lines += [f"| {k} | {v:,} |" for k, v in creates.items()]
    seven = next((r for r in execs if r["n"] == 7), None)
    four = next((r for r in execs if r["n"] == 4), None)
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
            per_signer=seven.get("per_signer", 0),
            four=four["overhead"],
            per_signer_verdict=verdict,
        ).splitlines()
    lines += [
        "",
        "### `rotate()` (target quorum size 4, re-forming an existing epoch)",
        "",
        "| keepers | quorums | gas |",
        "|---:|---:|---:|",
    ]
    lines += [f"| {k} | {max(1, k // 4)} | {v:,} |" for k, v in rotates.items()]
    lines += ["", END]
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
    execs = [await measure_execute(n) for n in QUORUM_SIZES]
    for r in execs:
        print(r)
    creates = await measure_create_job()
    print(creates)
    rotates = {k: await measure_rotate(k) for k in ROTATE_SIZES}
    print(rotates)
    write(render(execs, creates, rotates))
    print(f"wrote {DOCS}")


if __name__ == "__main__":
    asyncio.run(main())
