"""Bundled ``Model`` implementations: pure-numpy classifiers whose parameters are plain
arrays, trained with minibatch SGD on the cross-entropy loss.

* :class:`SoftmaxRegression`: multinomial logistic regression, ``softmax(x @ W + b)``;
* :class:`MLP`: one hidden layer, ``softmax(relu(x @ W1 + b1) @ W2 + b2)``.

Both follow the ``Model`` role (:mod:`namu.federated.roles`): ``params()`` and
``set_params()`` move the parameters as a list of float64 arrays, ``train()`` runs local
epochs over a batch stream (with FedProx's proximal term when ``prox_mu > 0``: the loss
gains ``(mu / 2) * ||w - w_t||^2`` for the global parameters ``w_t`` the round started
from; Li et al., "Federated Optimization in Heterogeneous Networks", MLSys 2020),
``evaluate()`` reports loss and accuracy, ``num_samples`` the samples the last
``train()`` saw (FedAvg's weights). ``to_onnx()`` exports the model as a standard ONNX
graph (``Gemm``, ``Relu``, ``Softmax``) that onnxruntime runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import onnx

__all__ = ["MLP", "SoftmaxRegression"]

Batches = Iterable[tuple[np.ndarray, np.ndarray]]


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def _cross_entropy(probs: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None)).mean())


class _Classifier:
    """What both models share: SGD over batches, FedProx, evaluation, the params list."""

    _params: list[np.ndarray]
    #: samples seen by the last ``train`` call (FedAvg weighs contributions by it)
    num_samples: int

    def __init__(self, n_features: int, n_classes: int, *, lr: float, weight_decay: float) -> None:
        if n_features < 1 or n_classes < 2:
            raise ValueError(f"a classifier needs n_features >= 1 and n_classes >= 2, got {n_features} and {n_classes}")
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        self.n_features = n_features
        self.n_classes = n_classes
        self.lr = lr
        self.weight_decay = weight_decay
        self.num_samples = 0

    def params(self) -> list[np.ndarray]:
        """Copies of the parameter arrays, in a fixed order."""
        return [p.copy() for p in self._params]

    def set_params(self, params: list[np.ndarray]) -> None:
        """Replace the parameters (copied; shapes must match).

        Raises:
            ValueError: a different number of arrays, or an array of another shape.
        """
        if len(params) != len(self._params):
            raise ValueError(f"expected {len(self._params)} parameter arrays, got {len(params)}")
        for i, (old, new) in enumerate(zip(self._params, params)):
            if np.shape(new) != old.shape:
                raise ValueError(f"parameter {i} has shape {old.shape}, got {np.shape(new)}")
        self._params = [np.array(p, dtype=np.float64) for p in params]

    def train(self, batches: Batches | Callable[[int], Batches], *, epochs: int = 1, prox_mu: float = 0.0,
              anchor: list[np.ndarray] | None = None) -> float:
        """Run ``epochs`` passes of minibatch SGD; the mean training loss of the last pass.

        Args:
            batches: ``(x, y)`` pairs (``x`` float, shape ``(n, n_features)``; ``y`` int
                labels, shape ``(n,)``), or a callable ``epoch -> batches`` for more than
                one epoch (a ``DataSource``'s ``batches``).
            epochs: local epochs (>= 1).
            prox_mu: FedProx's ``mu``: the loss adds ``(mu / 2) * ||w - anchor||^2``.
            anchor: the global parameters the round started from (default: the
                parameters at the start of this call).
        """
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        anchor = [a.copy() for a in (anchor if anchor is not None else self._params)]
        seen, total_loss = 0, 0.0
        for epoch in range(epochs):
            stream = batches(epoch) if callable(batches) else batches
            seen, total_loss = 0, 0.0
            for x, y in stream:
                loss, grads = self._loss_and_grads(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.int64))
                for p, g, a in zip(self._params, grads, anchor):
                    step = g + self.weight_decay * p
                    if prox_mu:
                        step = step + prox_mu * (p - a)  # gradient of (mu/2)||w - w_t||^2
                    p -= self.lr * step
                seen += len(y)
                total_loss += loss * len(y)
        self.num_samples = seen
        return total_loss / seen if seen else 0.0

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """``{"loss": mean cross-entropy, "accuracy": fraction correct}`` on ``(x, y)``."""
        probs = self.predict_proba(np.asarray(x, dtype=np.float64))
        y = np.asarray(y, dtype=np.int64)
        return {"loss": _cross_entropy(probs, y), "accuracy": float((probs.argmax(axis=1) == y).mean())}

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities, shape ``(n, n_classes)``."""
        raise NotImplementedError

    def _loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, list[np.ndarray]]:
        raise NotImplementedError

    def _onnx_nodes(self, helper: Any, names: list[str]) -> list[Any]:
        raise NotImplementedError

    def to_onnx(self) -> onnx.ModelProto:
        """The model as an ONNX graph: input ``x`` (float32, ``[N, n_features]``), output
        ``probabilities`` (float32, ``[N, n_classes]``), parameters as initializers."""
        from onnx import TensorProto, helper, numpy_helper

        names = [f"p{i}" for i in range(len(self._params))]
        initializers = [numpy_helper.from_array(p.astype(np.float32), name) for p, name in zip(self._params, names)]
        graph = helper.make_graph(
            self._onnx_nodes(helper, names),
            type(self).__name__,
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", self.n_features])],
            [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", self.n_classes])],
            initializers,
        )
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], producer_name="namu.federated")


class SoftmaxRegression(_Classifier):
    """Multinomial logistic regression, ``softmax(x @ W + b)``; parameters ``[W, b]``
    (``W`` of shape ``(n_features, n_classes)``, zeros at the start: the loss is convex).

    Args:
        n_features: input width.
        n_classes: number of classes (>= 2).
        lr: SGD step size.
        weight_decay: L2 penalty's coefficient.
    """

    def __init__(self, n_features: int, n_classes: int, *, lr: float = 0.1, weight_decay: float = 0.0) -> None:
        super().__init__(n_features, n_classes, lr=lr, weight_decay=weight_decay)
        self._params = [np.zeros((n_features, n_classes)), np.zeros(n_classes)]

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        w, b = self._params
        return _softmax(x @ w + b)

    def _loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, list[np.ndarray]]:
        probs = self.predict_proba(x)
        delta = probs.copy()
        delta[np.arange(len(y)), y] -= 1.0
        delta /= len(y)
        return _cross_entropy(probs, y), [x.T @ delta, delta.sum(axis=0)]

    def _onnx_nodes(self, helper: Any, names: list[str]) -> list[Any]:
        return [
            helper.make_node("Gemm", ["x", names[0], names[1]], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ]


class MLP(_Classifier):
    """One hidden layer: ``softmax(relu(x @ W1 + b1) @ W2 + b2)``; parameters ``[W1, b1,
    W2, b2]``, weights drawn with He initialization (He et al., 2015) from ``seed``.

    Args:
        n_features: input width.
        n_classes: number of classes (>= 2).
        hidden: hidden units.
        seed: the initialization's seed (every client and the server make the same start).
        lr: SGD step size.
        weight_decay: L2 penalty's coefficient.
    """

    def __init__(self, n_features: int, n_classes: int, *, hidden: int = 32, seed: int = 0, lr: float = 0.1,
                 weight_decay: float = 0.0) -> None:
        super().__init__(n_features, n_classes, lr=lr, weight_decay=weight_decay)
        if hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {hidden}")
        rng = np.random.default_rng(seed)
        self.hidden = hidden
        self._params = [
            rng.normal(0.0, np.sqrt(2.0 / n_features), (n_features, hidden)),
            np.zeros(hidden),
            rng.normal(0.0, np.sqrt(2.0 / hidden), (hidden, n_classes)),
            np.zeros(n_classes),
        ]

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        w1, b1, w2, b2 = self._params
        return _softmax(np.maximum(x @ w1 + b1, 0.0) @ w2 + b2)

    def _loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, list[np.ndarray]]:
        w1, b1, w2, b2 = self._params
        pre = x @ w1 + b1
        h = np.maximum(pre, 0.0)
        probs = _softmax(h @ w2 + b2)
        delta = probs.copy()
        delta[np.arange(len(y)), y] -= 1.0
        delta /= len(y)
        back = (delta @ w2.T) * (pre > 0)
        return _cross_entropy(probs, y), [x.T @ back, back.sum(axis=0), h.T @ delta, delta.sum(axis=0)]

    def _onnx_nodes(self, helper: Any, names: list[str]) -> list[Any]:
        return [
            helper.make_node("Gemm", ["x", names[0], names[1]], ["pre"]),
            helper.make_node("Relu", ["pre"], ["hidden"]),
            helper.make_node("Gemm", ["hidden", names[2], names[3]], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ]
