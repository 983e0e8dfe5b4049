"""The runtime: artifacts, loading, the executors (native kernel and reference), result caches and checkpoints."""
