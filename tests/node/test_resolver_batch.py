"""Condition resolvers are read in one JSON-RPC batch at the check block (anvil over HTTP)."""

from __future__ import annotations

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak

from keeper.chain.anvil import AnvilProcess, dev_accounts
from keeper.chain.contracts import deploy_contract, transact
from keeper.chain.reader import ChainReader
from keeper.chain.rpc import disconnect
from tests.anvil import AnvilChain, TcpProxy


def selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


async def test_resolvers_are_called_in_one_batch_at_the_check_block(anvil: AnvilProcess) -> None:
    # given a demo target whose resolver turns true only after request(5), behind a proxy that
    # counts the HTTP connections the reader opens
    w3 = AnvilChain(anvil, accounts=2).web3()
    deployer = dev_accounts(1)[0]
    target = await deploy_contract(w3, "DemoTarget", deployer.address, 60)
    before = int(await w3.eth.block_number)
    await transact(w3, target.functions.request(5), {"from": deployer.address})
    after = int(await w3.eth.block_number)
    proxy = TcpProxy(anvil.port)
    await proxy.start()
    reader_w3 = AnvilChain(anvil).web3(proxy.url)
    try:
        reader = ChainReader(reader_w3)
        calls = [
            (target.address, selector("checker()")),
            (target.address, selector("checkUpkeep(bytes)") + abi_encode(["bytes"], [b"x"])),
            (target.address, selector("noSuchFunction()")),
        ]
        # when the reader evaluates them at two check blocks
        at_before = await reader.call_resolvers(calls, before)
        at_after = await reader.call_resolvers(calls, after)
    finally:
        await disconnect(reader_w3)
        await disconnect(w3)
        await proxy.stop()
    # then each check block gives its own answer, and a reverting resolver gives None
    can_before, _ = abi_decode(["bool", "bytes"], at_before[0] or b"")
    can_after, payload = abi_decode(["bool", "bytes"], at_after[0] or b"")
    assert (can_before, can_after) == (False, True)
    assert payload == selector("onCondition(uint256)") + abi_encode(["uint256"], [5])
    assert at_before[1] is not None and at_after[1] is not None
    assert at_before[2] is None and at_after[2] is None
    # and the three calls of each evaluation went out as one HTTP request each time
    assert proxy.requests == 2
