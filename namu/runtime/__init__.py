"""The runtime: artifacts, loading, and the executors (native kernel and reference)."""
