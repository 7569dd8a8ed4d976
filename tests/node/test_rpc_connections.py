"""The RPC connections a node opens are closed when it stops, so nothing is left for aiohttp
to warn about ("Unclosed client session") or for the OS to hold."""

from __future__ import annotations

from typing import Any

import aiohttp
from web3 import AsyncHTTPProvider, AsyncWeb3

from keeper.chain.anvil import AnvilProcess
from keeper.chain.embedded import EmbeddedChain
from keeper.chain.rpc import connect, disconnect


def _sessions(w3: AsyncWeb3[Any]) -> list[aiohttp.ClientSession]:
    provider = w3.provider
    assert isinstance(provider, AsyncHTTPProvider)
    return [session for _, session in provider._request_session_manager.session_cache.items()]


async def test_disconnect_closes_the_sessions_a_node_opened(anvil: AnvilProcess) -> None:
    # given a node's web3 that has made a call (its provider keeps the session for reuse)
    w3 = connect(anvil.url, lean=True)
    assert int(await w3.eth.chain_id) == 31337
    sessions = _sessions(w3)
    assert sessions and not any(s.closed for s in sessions)
    # when it is disconnected, then every session it held is closed and none is kept
    await disconnect(w3)
    assert all(s.closed for s in sessions)
    assert _sessions(w3) == []
    # and a second disconnect is harmless
    await disconnect(w3)


async def test_disconnect_leaves_an_in_process_chain_alone() -> None:
    w3 = EmbeddedChain(accounts=1).web3()
    await disconnect(w3)
    assert int(await w3.eth.block_number) >= 0
