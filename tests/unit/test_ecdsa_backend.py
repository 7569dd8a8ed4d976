"""Agreement signs and recovers several ECDSA signatures per round: the node must run them on
libsecp256k1 (coincurve), not on eth-keys' pure-Python fallback (docs/benchmarks.md)."""

from eth_keys.backends import get_backend
from eth_keys.backends.coincurve import CoinCurveECCBackend


def test_eth_keys_uses_libsecp256k1() -> None:
    assert isinstance(get_backend(), CoinCurveECCBackend)
