"""EIP-55 checksum addresses, memoised.

eth-utils spends ~35 us per call (hex, keccak, a character loop), and a node checksums the same
few addresses (its quorum's members, the TaskManager) many times per request: once each is
enough. Invalid input still raises eth-utils' ValueError (errors are not cached).
"""

from __future__ import annotations

from functools import lru_cache

from eth_utils.address import to_checksum_address

CACHED_ADDRESSES = 65536


@lru_cache(maxsize=CACHED_ADDRESSES)
def checksum_address(address: str | bytes) -> str:
    """The EIP-55 form of a 20-byte address given as hex text or bytes."""
    return str(to_checksum_address(address))
