"""Bundled ``PeerSelector``: which of the available peers a round asks."""

from __future__ import annotations

import numpy as np

__all__ = ["RandomSelector"]


class RandomSelector:
    """``n`` of the available peers, drawn without replacement; the draw depends only on
    ``(seed, round)`` and the set of peers, not on their order (so a restarted server asks
    the same peers). ``n`` at least the number available: all of them.

    Args:
        seed: the draw's seed.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def sample(self, peers: list[str], n: int, round: int) -> list[str]:  # noqa: A002 - the round number
        """Up to ``n`` of ``peers``, sorted."""
        available = sorted(set(peers))
        if n >= len(available):
            return available
        rng = np.random.default_rng((self.seed, round))
        return sorted(rng.choice(available, size=n, replace=False).tolist())
