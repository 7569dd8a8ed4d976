"""A deployed keeper network on the in-process chain, driven the way the protocol describes.

Tests read as: given a network with keepers and a job, when the quorum signs a report and the
executor submits it, then the chain records (or rejects) it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3 import AsyncWeb3
from web3.contract import AsyncContract
from web3.logs import DISCARD
from web3.types import TxReceipt

from keeper.chain.contracts import (
    JOB_VIEW_FIELDS,
    Deployment,
    DeployParams,
    bind,
    deploy_contract,
    deploy_contracts,
    transact,
)
from keeper.chain.embedded import EmbeddedChain
from keeper.core.quorum import Member, compute_quorum_of, pack_signatures, unpack_member
from keeper.core.report import Batch, Domain, Report, sign_batch, sign_report
from keeper.errors import ContractRevert
from keeper.store.db import Store

TIME, CRON, EVENT, CONDITION = 0, 1, 2, 3
# A Time, Cron or Event item's payload: empty, since the job's call lives in its forwarder's
# code (any other payload is skipped with PayloadMismatch).
NO_PAYLOAD = b""
ETHER = 10**18
ZERO32 = b"\x00" * 32


def time_trigger(interval: int) -> bytes:
    return abi_encode(["uint64"], [interval])


def cron_trigger(expr: str) -> bytes:
    return abi_encode(["string"], [expr])


def event_trigger(emitter: str, topics: Sequence[bytes] = (), confirmations: int = 0) -> bytes:
    padded = list(topics) + [ZERO32] * (4 - len(topics))
    return abi_encode(["address", "bytes32[4]", "uint16"], [emitter, padded, confirmations])


def condition_trigger(
    resolver: str, calldata: bytes, mode: int = 0, min_interval: int = 1
) -> bytes:
    return abi_encode(
        ["address", "bytes", "uint8", "uint64"], [resolver, calldata, mode, min_interval]
    )


SEED_DELAY_BLOCKS = 2  # KeeperRegistry.SEED_DELAY_BLOCKS


# The checks `execute` applies per item: a failed one skips its item (JobSkipped with the
# error's selector) instead of reverting the batch.
SKIP_ERRORS = frozenset(
    {
        "UnknownJob",
        "JobIsPaused",
        "JobIsCancelled",
        "WrongRound",
        "MaxExecutionsReached",
        "JobExpired",
        "InsufficientBalance",
        "PayloadTooLong",
        "PayloadMismatch",
        "CursorOutOfRange",
        "CursorNotRaised",
        "CursorInFuture",
        "CursorBeforeStart",
        "CursorOffGrid",
        "JobNotStarted",
        "LogNotConfirmed",
        "CursorMismatch",
        "ConditionTooSoon",
        "InsufficientStake",
    }
)


def execute_error(name: str) -> str:
    """The revert a batch of one gets when its item fails the check `name`: a per-item check
    skips the item, and a batch with nothing executed reverts `NothingExecuted`."""
    return "NothingExecuted" if name in SKIP_ERRORS else name


async def reverts(awaitable: Awaitable[Any], name: str) -> ContractRevert:
    """Awaits a transaction or call that must revert with the custom error `name`."""
    with pytest.raises(ContractRevert) as info:
        await awaitable
    assert info.value.error_name == name, str(info.value)
    return info.value


async def skips(awaitable: Awaitable[Any], name: str) -> ContractRevert:
    """Awaits an `execute` of a batch of one whose item must fail the per-item check `name`:
    the item is skipped, so the batch reverts `NothingExecuted`."""
    assert name in SKIP_ERRORS, name
    return await reverts(awaitable, "NothingExecuted")


def gas_cost(receipt: TxReceipt) -> int:
    """What the sender paid for a transaction, in wei."""
    return int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])


MIN_EPOCH_BLOCKS = 30  # KeeperRegistry.MIN_EPOCH_BLOCKS


def selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


@dataclass
class Net:
    """A deployed network: deployer, a job owner, keeper accounts, a demo target."""

    chain: EmbeddedChain
    w3: AsyncWeb3[Any]
    deployment: Deployment
    params: DeployParams
    registry: AsyncContract
    tm: AsyncContract
    target: AsyncContract
    deployer: LocalAccount
    owner: LocalAccount
    keepers: list[LocalAccount]
    domain: Domain
    registered: list[LocalAccount] = field(default_factory=list)

    # ----------------------------------------------------------------- plumbing

    async def tx(
        self, fn: Any, sender: LocalAccount | str, value: int = 0, gas: int | None = None
    ) -> TxReceipt:
        """Sends a contract call; reverts raise keeper.errors.ContractRevert with the error name."""
        address = sender if isinstance(sender, str) else sender.address
        params: dict[str, Any] = {"from": address, "value": value}
        if gas is not None:
            params["gas"] = gas
        return await transact(self.w3, fn, params)  # type: ignore[arg-type]

    async def block_number(self) -> int:
        return int(await self.w3.eth.block_number)

    async def timestamp(self) -> int:
        return int((await self.w3.eth.get_block("latest"))["timestamp"])

    def mine(self, blocks: int = 1) -> None:
        self.chain.mine(blocks)

    def time_travel(self, timestamp: int) -> None:
        self.chain.time_travel(timestamp)

    async def balance(self, address: str) -> int:
        return int(await self.w3.eth.get_balance(address))

    async def events(self, contract: AsyncContract, name: str, receipt: TxReceipt) -> list[Any]:
        return list(getattr(contract.events, name)().process_receipt(receipt, errors=DISCARD))

    async def open_store(self, path: Path, operator: str | None = None) -> Store:
        """A keeper's store for this network (its operator: keeper 0 unless named)."""
        return await Store.open(
            path,
            chain_id=self.deployment.chain_id,
            registry=self.deployment.registry,
            task_manager=self.deployment.task_manager,
            operator=operator or self.keepers[0].address,
        )

    # ----------------------------------------------------------------- keepers

    async def register(
        self, keeper: LocalAccount, stake: int = ETHER, endpoint: str | None = None
    ) -> TxReceipt:
        url = endpoint or f"http://127.0.0.1:{9000 + self.keepers.index(keeper)}"
        receipt = await self.tx(self.registry.functions.register(url), keeper, value=stake)
        self.registered.append(keeper)
        return receipt

    async def register_keepers(self, stakes: Sequence[int]) -> list[LocalAccount]:
        chosen = self.keepers[len(self.registered) : len(self.registered) + len(stakes)]
        for keeper, stake in zip(chosen, stakes, strict=True):
            await self.register(keeper, stake)
        return chosen

    async def rotate(self, sender: LocalAccount | None = None) -> TxReceipt:
        """Both steps of a rotation: arm it, mine up to its seed block, finish it. Returns the
        receipt of the step that started the epoch."""
        receipt = await self.arm_rotation(sender)
        if not await self.events(self.registry, "RotationArmed", receipt):
            return receipt  # a rotation armed earlier was finished by this call
        # one block more than the delay: anvil estimates gas in the latest block's context
        self.mine(SEED_DELAY_BLOCKS + 1)
        return await self.tx(self.registry.functions.rotate(), sender or self.deployer)

    async def arm_rotation(self, sender: LocalAccount | None = None) -> TxReceipt:
        """The first `rotate()` call alone."""
        return await self.tx(self.registry.functions.rotate(), sender or self.deployer)

    async def age_epoch(self) -> None:
        """Mines until a transaction sent next lands MIN_EPOCH_BLOCKS after the current epoch's
        start block: from then on a keeper-set change lets `rotate()` arm before epochLength."""
        _, start_block, *_ = await self.registry.functions.epochState().call()
        missing = int(start_block) + MIN_EPOCH_BLOCKS - 1 - await self.block_number()
        if missing > 0:
            self.mine(missing)

    async def epoch(self) -> int:
        return int(await self.registry.functions.currentEpoch().call())

    async def quorums(self, epoch: int | None = None) -> list[list[Member]]:
        """Member lists of an epoch, read from QuorumFormed logs as keepers do."""
        e = await self.epoch() if epoch is None else epoch
        logs = await self.registry.events.QuorumFormed().get_logs(
            from_block=self.deployment.block, argument_filters={"epoch": e}
        )
        ordered = sorted(logs, key=lambda log: log["args"]["quorum"])
        return [[unpack_member(bytes(w)) for w in log["args"]["members"]] for log in ordered]

    async def quorum_for_job(
        self, job_id: int, epoch: int | None = None
    ) -> tuple[int, list[Member]]:
        e = await self.epoch() if epoch is None else epoch
        seed = bytes(await self.registry.functions.epochSeed(e).call())
        quorums = await self.quorums(e)
        index = compute_quorum_of(seed, job_id, len(quorums))
        return index, quorums[index]

    def account_of(self, address: str) -> LocalAccount:
        for acct in self.keepers:
            if acct.address.lower() == address.lower():
                return acct
        raise KeyError(address)

    # ----------------------------------------------------------------- jobs

    def spec(
        self,
        kind: int,
        trigger: bytes,
        call_data: bytes,
        target: str | None = None,
        gas_limit: int = 200_000,
        threshold_bps: int = 6667,
        start_time: int = 0,
        end_time: int = 0,
        max_executions: int = 0,
        max_gas_price: int = 0,
    ) -> tuple[Any, ...]:
        return (
            target or self.target.address,
            call_data,
            kind,
            trigger,
            gas_limit,
            threshold_bps,
            start_time,
            end_time,
            max_executions,
            max_gas_price,
        )

    async def required_deposit(self, gas_limit: int = 200_000, max_gas_price: int = 0) -> int:
        return int(await self.tm.functions.requiredDeposit(gas_limit, max_gas_price).call())

    async def create_job(
        self, spec: tuple[Any, ...], value: int | None = None, owner: LocalAccount | None = None
    ) -> int:
        deposit = value if value is not None else 10 * await self.required_deposit(spec[4], spec[9])
        receipt = await self.tx(
            self.tm.functions.createJob(spec), owner or self.owner, value=deposit
        )
        (event,) = await self.events(self.tm, "JobCreated", receipt)
        return int(event["args"]["jobId"])

    async def job(self, job_id: int) -> dict[str, Any]:
        values = await self.tm.functions.getJob(job_id).call()
        return dict(zip(JOB_VIEW_FIELDS, values, strict=True))

    # ----------------------------------------------------------------- reports

    async def make_report(
        self,
        job_id: int,
        cursor: int,
        payload: bytes,
        executor: str,
        *,
        round_: int | None = None,
        epoch: int | None = None,
        check_block: int | None = None,
        check_block_hash: bytes | None = None,
        payload_hash: bytes | None = None,
        deadline: int | None = None,
        quorum: int | None = None,
    ) -> Report:
        """A report as an honest leader builds it: latest block as check block, next round,
        the job's quorum in the report's epoch."""
        latest = await self.block_number()
        cb = latest if check_block is None else check_block
        cb_hash = check_block_hash
        if cb_hash is None:
            cb_hash = bytes((await self.w3.eth.get_block(cb))["hash"]) if cb <= latest else ZERO32
        rnd = (await self.job(job_id))["round"] if round_ is None else round_
        e = await self.epoch() if epoch is None else epoch
        if quorum is None:
            quorum = (await self.quorum_for_job(job_id, e))[0] if e > 0 else 0
        return Report(
            jobId=job_id,
            round=rnd,
            epoch=e,
            cursor=cursor,
            checkBlock=cb,
            checkBlockHash=cb_hash,
            payloadHash=keccak(payload) if payload_hash is None else payload_hash,
            executor=executor,
            deadline=latest + 20 if deadline is None else deadline,
            quorum=quorum,
        )

    def sign(self, report: Report, signers: Sequence[LocalAccount]) -> dict[str, bytes]:
        """Each signer's signature over `report` as a batch of one."""
        return {s.address: sign_report(s.key, report, self.domain) for s in signers}

    def sign_batch(self, batch: Batch, signers: Sequence[LocalAccount]) -> dict[str, bytes]:
        return {s.address: sign_batch(s.key, batch, self.domain) for s in signers}

    async def execute(
        self,
        report: Report,
        payload: bytes,
        members: Sequence[Member],
        signatures: dict[str, bytes] | None = None,
        *,
        bitmap: int | None = None,
        packed: bytes | None = None,
        sender: LocalAccount | str | None = None,
        gas: int | None = None,
    ) -> TxReceipt:
        """Submits `report` as a batch of one; by default signed by every member, sent by the
        report's executor."""
        return await self.execute_batch(
            [report],
            [payload],
            members,
            signatures,
            bitmap=bitmap,
            packed=packed,
            sender=sender,
            gas=gas,
        )

    def execute_fn(
        self,
        reports: Sequence[Report],
        payloads: Sequence[bytes],
        members: Sequence[Member],
        signatures: dict[str, bytes] | None = None,
        *,
        bitmap: int | None = None,
        packed: bytes | None = None,
    ) -> Any:
        """The `execute` call of `reports` (one header) with `payloads`; by default signed by
        every member over the batch of all of them."""
        batch = Batch.of(reports)
        sigs = (
            signatures
            if signatures is not None
            else self.sign_batch(batch, [self.account_of(m.address) for m in members])
        )
        auto_bitmap, auto_packed = pack_signatures(members, sigs)
        items = [(r.jobId, r.round, r.cursor, p) for r, p in zip(reports, payloads, strict=True)]
        return self.tm.functions.execute(
            batch.header.as_tuple(),
            items,
            [m.word for m in members],
            auto_bitmap if bitmap is None else bitmap,
            auto_packed if packed is None else packed,
        )

    async def execute_batch(
        self,
        reports: Sequence[Report],
        payloads: Sequence[bytes],
        members: Sequence[Member],
        signatures: dict[str, bytes] | None = None,
        *,
        bitmap: int | None = None,
        packed: bytes | None = None,
        sender: LocalAccount | str | None = None,
        gas: int | None = None,
    ) -> TxReceipt:
        """Submits `execute` of the batch of `reports` (one header, in order) with their
        `payloads`; by default signed by every member, sent by the batch's executor."""
        fn = self.execute_fn(reports, payloads, members, signatures, bitmap=bitmap, packed=packed)
        return await self.tx(fn, sender or reports[0].executor, gas=gas)

    async def execute_round(self, job_id: int, cursor: int, payload: bytes, **kw: Any) -> TxReceipt:
        """The honest path: the job's quorum signs the next round and its first member submits."""
        _, members = await self.quorum_for_job(job_id)
        executor = members[0].address
        report = await self.make_report(job_id, cursor, payload, executor, **kw)
        return await self.execute(report, payload, members)


def network_params(target_quorum_size: int = 4) -> DeployParams:
    """The tests' network: 1 ether minimum stake, short unbonding, hour-long epochs."""
    return DeployParams(
        min_stake=ETHER,
        unbonding_period=100,
        epoch_length=3600,
        target_quorum_size=target_quorum_size,
        gas_price_cap=100 * 10**9,
        premium=10**14,
    )


async def make_net(
    keepers: int = 8, params: DeployParams | None = None, chain: EmbeddedChain | None = None
) -> Net:
    """Deploys a fresh network: accounts[0] deploys, [1] owns jobs, the rest are keepers."""
    chain = chain or EmbeddedChain(accounts=keepers + 2)
    w3 = chain.web3()
    p = params or network_params()
    deployer, owner, *keeper_accounts = chain.accounts
    deployment = await deploy_contracts(w3, deployer.address, p)
    contracts = bind(w3, deployment)
    target = await deploy_contract(w3, "DemoTarget", deployer.address, 60)
    return Net(
        chain=chain,
        w3=w3,
        deployment=deployment,
        params=p,
        registry=contracts.registry,
        tm=contracts.task_manager,
        target=target,
        deployer=deployer,
        owner=owner,
        keepers=keeper_accounts,
        domain=Domain(chain_id=deployment.chain_id, verifying_contract=deployment.task_manager),
    )
