"""The node's Prometheus metrics, in a registry of its own.

Each `NodeMetrics` owns a `CollectorRegistry` instead of using prometheus_client's global
default, so several nodes in one process (devnet, tests) never share or clash on counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from keeper.core.load import LoadSample

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
EXECUTION_RESULTS = ("success", "failure")


class NodeMetrics:
    """Counters and gauges the node's loops update; `render` is the `/metrics` body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.rounds_started = Counter(
            "keeper_rounds_started", "Rounds this node started as leader.", registry=r
        )
        self.reports_signed = Counter(
            "keeper_reports_signed", "Reports this node signed for a leader.", registry=r
        )
        self.executions_submitted = Counter(
            "keeper_executions_submitted", "execute transactions this node sent.", registry=r
        )
        self.executions = Counter(
            "keeper_executions",
            "JobExecuted events seen for this node's jobs, by target result.",
            ["result"],
            registry=r,
        )
        for result in EXECUTION_RESULTS:
            self.executions.labels(result=result)
        self.rounds_failed = Counter(
            "keeper_rounds_failed", "Rounds this node led that did not execute.", registry=r
        )
        self.rpc_errors = Counter("keeper_rpc_errors", "Failed JSON-RPC calls.", registry=r)
        self.peer_rejections = Counter(
            "keeper_peer_rejections",
            "Peer requests rejected, by error code (sent or received).",
            ["code"],
            registry=r,
        )
        self.blocks_behind = Gauge(
            "keeper_blocks_behind", "Chain head minus the last processed block.", registry=r
        )
        self.head_block = Gauge("keeper_head_block", "Latest chain head seen.", registry=r)
        self.load_cpu_percent = Gauge(
            "keeper_load_cpu_percent", "CPU of the node process (100 = one core).", registry=r
        )
        self.load_memory_percent = Gauge(
            "keeper_load_memory_percent", "Memory in use on the host.", registry=r
        )
        self.overloaded = Gauge(
            "keeper_overloaded", "1 when the node reports itself overloaded.", registry=r
        )
        # What an operator watches over a month: the gas money left, what it earned and has
        # not withdrawn, and what it has in flight.
        self.balance_wei = Gauge(
            "keeper_balance_wei", "The keeper account's ETH balance, in wei.", registry=r
        )
        self.earnings_wei = Gauge(
            "keeper_earnings_wei",
            "Earnings credited in the TaskManager and not yet withdrawn, in wei.",
            registry=r,
        )
        self.pending_transactions = Gauge(
            "keeper_pending_transactions", "Transactions this node sent, not yet mined.", registry=r
        )

    def record_execution(self, success: bool, count: int = 1) -> None:
        if count > 0:
            self.executions.labels(result="success" if success else "failure").inc(count)

    def record_rejection(self, code: str) -> None:
        self.peer_rejections.labels(code=code).inc()

    def record_load(self, sample: LoadSample) -> None:
        self.load_cpu_percent.set(sample.cpu_percent)
        self.load_memory_percent.set(sample.memory_percent)
        self.overloaded.set(1 if sample.overloaded else 0)

    def render(self) -> bytes:
        """The Prometheus text exposition of this node's registry."""
        return generate_latest(self.registry)
