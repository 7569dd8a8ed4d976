"""Operational watch over the node: psutil load sampling and Prometheus metrics."""
