"""Bundled ``Aggregator`` implementations: the server side of a round.

A round calls ``begin(global_params)``, then ``contribute(peer, params, num_samples)``
once per answering client (a second contribution from the same peer in a round replaces
the first: a retried send must not count twice), then ``aggregate()`` for the new global
parameters. Contributions are combined in peer-id order, whatever order they arrived
in, so a run is bit-for-bit reproducible. ``state()``/``restore()`` give the buffer of a
round in flight, for snapshots.

* :class:`FedAvg`: the mean weighted by sample counts (McMahan et al., "Communication-
  Efficient Learning of Deep Networks from Decentralized Data", AISTATS 2017); FedProx
  aggregates the same way (its proximal term is the client's);
* :class:`Median` and :class:`TrimmedMean`: coordinate-wise robust statistics (Yin et
  al., "Byzantine-Robust Distributed Learning", ICML 2018);
* :class:`DifferentialPrivacy`: central DP around another aggregator: each client's
  update (its parameters minus the round's global ones) is clipped to ``clip_norm`` in
  L2, the inner aggregate of the clipped updates gets Gaussian noise of standard deviation
  ``noise_multiplier * clip_norm / n`` (the DP-FedAvg of McMahan et al., "Learning
  Differentially Private Recurrent Language Models", ICLR 2018).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["DifferentialPrivacy", "FedAvg", "Median", "TrimmedMean"]

Params = list[np.ndarray]


class _Buffered:
    """A round's contributions by peer, combined in peer order."""

    def __init__(self) -> None:
        self._contributions: dict[str, tuple[Params, int]] = {}
        self._global: Params | None = None

    def begin(self, global_params: Params) -> None:
        """Start a round from ``global_params`` (the buffer empties)."""
        self._global = [np.array(p, dtype=np.float64) for p in global_params]
        self._contributions = {}

    def contribute(self, peer: str, params: Params, num_samples: int) -> None:
        """Add ``peer``'s parameters, trained on ``num_samples`` samples; a second
        contribution from ``peer`` in this round replaces its first.

        Raises:
            ValueError: ``num_samples`` is negative, or the arrays do not match earlier ones.
        """
        if num_samples < 0:
            raise ValueError(f"num_samples must be >= 0, got {num_samples}")
        arrays = [np.array(p, dtype=np.float64) for p in params]
        reference = self._global or next((c[0] for c in self._contributions.values()), None)
        if reference is not None and [a.shape for a in arrays] != [r.shape for r in reference]:
            raise ValueError(f"peer {peer!r} sent arrays of shapes {[a.shape for a in arrays]}, expected {[r.shape for r in reference]}")
        self._contributions[str(peer)] = (arrays, int(num_samples))

    @property
    def peers(self) -> list[str]:
        """The peers that contributed this round, in order."""
        return sorted(self._contributions)

    def aggregate(self) -> Params:
        """The new global parameters; the buffer empties.

        Raises:
            ValueError: nobody contributed.
        """
        if not self._contributions:
            raise ValueError("no client contributed to this round")
        ordered = [self._contributions[p] for p in self.peers]
        result = self._combine([c[0] for c in ordered], np.array([c[1] for c in ordered], dtype=np.float64))
        self._contributions = {}
        return result

    def _combine(self, params: list[Params], weights: np.ndarray) -> Params:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """The round in flight (global parameters and contributions), for a snapshot."""
        return {"global": self._global, "contributions": dict(self._contributions)}

    def restore(self, state: dict[str, Any]) -> None:
        """Continue the round ``state()`` saved."""
        self._global = state["global"]
        self._contributions = dict(state["contributions"])


class FedAvg(_Buffered):
    """The sample-weighted mean of the contributions (all weights zero: the plain mean)."""

    def _combine(self, params: list[Params], weights: np.ndarray) -> Params:
        if weights.sum() == 0:
            weights = np.ones_like(weights)
        weights = weights / weights.sum()
        out = []
        for layer in zip(*params):
            acc = np.zeros_like(layer[0])
            for w, array in zip(weights, layer):  # in peer order: the same sum every time
                acc += w * array
            out.append(acc)
        return out


class Median(_Buffered):
    """The coordinate-wise median (sample counts are ignored: robustness, not weighting)."""

    def _combine(self, params: list[Params], weights: np.ndarray) -> Params:
        return [np.median(np.stack(layer), axis=0) for layer in zip(*params)]


class TrimmedMean(_Buffered):
    """The coordinate-wise mean after dropping the ``beta`` fraction largest and smallest
    values of each coordinate.

    Args:
        beta: fraction trimmed from each end, ``0 <= beta < 0.5``.
    """

    def __init__(self, beta: float = 0.1) -> None:
        super().__init__()
        if not 0 <= beta < 0.5:
            raise ValueError(f"beta must be in [0, 0.5), got {beta}")
        self.beta = beta

    def _combine(self, params: list[Params], weights: np.ndarray) -> Params:
        k = int(self.beta * len(params))
        out = []
        for layer in zip(*params):
            stacked = np.sort(np.stack(layer), axis=0)
            out.append(stacked[k : len(params) - k].mean(axis=0))
        return out


class DifferentialPrivacy:
    """Central differential privacy around ``inner``: clipped updates, Gaussian noise.

    Args:
        inner: the aggregator of the clipped client parameters (FedAvg, usually).
        clip_norm: the largest L2 norm of a client's update (over all its arrays), > 0.
        noise_multiplier: noise standard deviation in units of ``clip_norm / n`` (n the
            clients of the round), >= 0.
        seed: the noise generator's seed.

    Attributes:
        clip_norm, noise_multiplier: as given (reported with each round).
        last_noise_std: the standard deviation of the last round's noise.
        clipped: how many updates the last round clipped.
    """

    def __init__(self, inner: _Buffered, *, clip_norm: float, noise_multiplier: float, seed: int = 0) -> None:
        if clip_norm <= 0 or noise_multiplier < 0:
            raise ValueError(f"need clip_norm > 0 and noise_multiplier >= 0, got {clip_norm} and {noise_multiplier}")
        self.inner = inner
        self.clip_norm = clip_norm
        self.noise_multiplier = noise_multiplier
        self._rng = np.random.default_rng(seed)
        self._global: Params | None = None
        self.last_noise_std = 0.0
        self.clipped = 0
        self._clipped_peers: set[str] = set()

    def begin(self, global_params: Params) -> None:
        self._global = [np.array(p, dtype=np.float64) for p in global_params]
        self._clipped_peers = set()
        self.inner.begin(global_params)

    def contribute(self, peer: str, params: Params, num_samples: int) -> None:
        """Clip ``peer``'s update to ``clip_norm``, then hand it to the inner aggregator.

        Raises:
            RuntimeError: no round began (the update needs the round's global parameters).
        """
        if self._global is None:
            raise RuntimeError("DifferentialPrivacy.contribute before begin(): the update is relative to the round's parameters")
        update = [np.asarray(p, dtype=np.float64) - g for p, g in zip(params, self._global)]
        norm = float(np.sqrt(sum(float((u * u).sum()) for u in update)))
        scale = min(1.0, self.clip_norm / norm) if norm > 0 else 1.0
        self._clipped_peers.discard(str(peer))
        if scale < 1.0:
            self._clipped_peers.add(str(peer))
        self.inner.contribute(peer, [g + scale * u for g, u in zip(self._global, update)], num_samples)

    @property
    def peers(self) -> list[str]:
        return self.inner.peers

    def aggregate(self) -> Params:
        """The inner aggregate with Gaussian noise ``N(0, (noise_multiplier * clip_norm / n)^2)``
        added to every coordinate."""
        n = len(self.inner.peers)
        mean = self.inner.aggregate()
        self.clipped = len(self._clipped_peers)
        self.last_noise_std = self.noise_multiplier * self.clip_norm / max(n, 1)
        return [m + self._rng.normal(0.0, self.last_noise_std, m.shape) for m in mean]

    def report(self) -> dict[str, float]:
        """What the last round did: ``clip_norm``, ``noise_multiplier``, ``noise_std``, ``clipped``."""
        return {"clip_norm": self.clip_norm, "noise_multiplier": self.noise_multiplier,
                "noise_std": self.last_noise_std, "clipped": self.clipped}

    def state(self) -> dict[str, Any]:
        return {"inner": self.inner.state(), "global": self._global, "rng": self._rng.bit_generator.state,
                "clipped_peers": sorted(self._clipped_peers)}

    def restore(self, state: dict[str, Any]) -> None:
        self.inner.restore(state["inner"])
        self._global = state["global"]
        self._rng.bit_generator.state = state["rng"]
        self._clipped_peers = set(state["clipped_peers"])
