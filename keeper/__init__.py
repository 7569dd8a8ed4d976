"""Keeper network: staked keepers in stake-weighted quorums agree off-chain with EIP-712
threshold signatures and execute on-chain jobs exactly once."""

__version__ = "0.1.0"
