"""Bundled ``DataSource``: scikit-learn's ``load_digits`` (1,797 8x8 images of the digits
0-9, shipped with scikit-learn: nothing downloads), split into a held-out test set and
partitioned over clients by label with a Dirichlet distribution.

:func:`dirichlet_partition` is the non-IID split of Hsu, Qi and Brown ("Measuring the
Effects of Non-Identical Data Distribution for Federated Visual Classification", 2019),
as Flower's ``DirichletPartitioner`` and FedML use it: for each class, the share each
client gets is drawn from ``Dir(alpha)``; a small ``alpha`` gives each client few classes.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np

__all__ = ["DigitsSource", "digits", "dirichlet_partition"]


@functools.lru_cache(maxsize=4)
def digits(test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)`` of scikit-learn's digits: pixels scaled to
    ``[0, 1]`` (float64, 64 features), a stratified test split of ``test_fraction`` drawn
    with ``seed``. Cached: every client of a process shares the arrays (read-only)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x, y = data.data / 16.0, data.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), dtype=bool)
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        test[rng.choice(members, size=round(len(members) * test_fraction), replace=False)] = True
    arrays = (x[~test], y[~test], x[test], y[test])
    for array in arrays:
        array.setflags(write=False)
    return arrays


def dirichlet_partition(labels: np.ndarray, n_clients: int, *, alpha: float, seed: int, min_size: int = 10,
                        max_tries: int = 100) -> list[np.ndarray]:
    """Indices of ``labels`` for each of ``n_clients`` clients, label shares drawn from
    ``Dir(alpha)`` per class; drawn again (up to ``max_tries`` times, from the same seeded
    generator) until every client holds at least ``min_size`` samples.

    Args:
        labels: int labels, shape ``(n,)``.
        n_clients: clients (>= 1).
        alpha: concentration (> 0); smaller is more skewed.
        seed: the generator's seed: the same arguments give the same partition.
        min_size: fewest samples a client may get.

    Returns:
        One sorted index array per client; together they hold every index once.

    Raises:
        ValueError: bad arguments, or no draw within ``max_tries`` met ``min_size``.
    """
    labels = np.asarray(labels)
    if n_clients < 1 or alpha <= 0 or min_size < 0:
        raise ValueError(f"need n_clients >= 1, alpha > 0, min_size >= 0; got {n_clients}, {alpha}, {min_size}")
    if n_clients * min_size > len(labels):
        raise ValueError(f"{n_clients} clients of at least {min_size} samples need {n_clients * min_size}; there are {len(labels)}")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    for _ in range(max_tries):
        parts: list[list[np.ndarray]] = [[] for _ in range(n_clients)]
        for label in classes:
            members = rng.permutation(np.flatnonzero(labels == label))
            shares = rng.dirichlet(np.full(n_clients, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(members)).astype(int)
            for client, chunk in enumerate(np.split(members, cuts)):
                parts[client].append(chunk)
        partition = [np.sort(np.concatenate(p)) for p in parts]
        if min(len(p) for p in partition) >= min_size:
            return partition
    raise ValueError(f"no Dirichlet(alpha={alpha}) draw in {max_tries} gave every one of {n_clients} clients "
                     f"{min_size} samples; raise alpha or lower min_size")


class DigitsSource:
    """One client's share of the digits training set (the ``DataSource`` role).

    Args:
        client: this client's index, ``0 <= client < n_clients``.
        n_clients: clients the training set is partitioned over.
        alpha: the Dirichlet concentration (:func:`dirichlet_partition`).
        seed: the partition's seed; shuffling per epoch derives from it too.
        batch_size: samples per batch.
        min_size: fewest samples a client may get.
    """

    def __init__(self, client: int, n_clients: int, *, alpha: float = 0.5, seed: int = 0, batch_size: int = 16,
                 min_size: int = 10) -> None:
        if not 0 <= client < n_clients:
            raise ValueError(f"client must be in [0, {n_clients}), got {client}")
        x, y, _, _ = digits()
        self.indices = dirichlet_partition(y, n_clients, alpha=alpha, seed=seed, min_size=min_size)[client]
        self.x, self.y = x[self.indices], y[self.indices]
        self.client, self.seed, self.batch_size = client, seed, batch_size

    def batches(self, epoch: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The client's samples as shuffled ``(x, y)`` batches, the order fixed by
        ``(seed, client, epoch)``."""
        order = np.random.default_rng((self.seed, self.client, epoch)).permutation(len(self.y))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            yield self.x[chunk], self.y[chunk]

    def labels(self) -> np.ndarray:
        """The client's labels."""
        return self.y

    def size(self) -> int:
        """How many samples the client holds."""
        return len(self.y)
