"""A first look at the network on an embedded chain: deploy, register keepers, form a quorum.

This is the stand-in main command until the live devnet (every node running) lands.
"""

from __future__ import annotations

import asyncio

from web3.types import Wei

from keeper.chain.contracts import DeployParams, bind, deploy_contracts, transact
from keeper.chain.embedded import EmbeddedChain

ETHER = 10**18


async def _demo(keepers: int = 4) -> None:
    chain = EmbeddedChain(accounts=keepers + 2)
    w3 = chain.web3()
    deployer = chain.accounts[0]
    deployment = await deploy_contracts(w3, deployer.address, DeployParams())
    print(f"deployed KeeperRegistry at {deployment.registry}")
    print(f"deployed TaskManager    at {deployment.task_manager} (chain {deployment.chain_id})")
    contracts = bind(w3, deployment)
    for i, acct in enumerate(chain.accounts[2 : 2 + keepers]):
        stake = (i + 1) * ETHER
        fn = contracts.registry.functions.register(f"http://127.0.0.1:{8701 + i}")
        await transact(w3, fn, {"from": acct.address, "value": Wei(stake)})
        print(f"registered keeper {acct.address} with {i + 1} ether")
    await transact(w3, contracts.registry.functions.rotate(), {"from": deployer.address})
    epoch = await contracts.registry.functions.currentEpoch().call()
    count = await contracts.registry.functions.quorumCount(epoch).call()
    print(f"epoch {epoch} started with {count} quorum(s)")


def run_devnet_demo() -> None:
    asyncio.run(_demo())
