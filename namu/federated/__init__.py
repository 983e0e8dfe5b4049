"""Federated learning: role contracts and the bundled implementations.

* :mod:`namu.federated.roles`: the ``Model``, ``DataSource``, ``Aggregator``, ``Codec``
  and ``PeerSelector`` contracts and the binding check;
* :mod:`namu.federated.models`: numpy softmax regression and a one-hidden-layer MLP,
  exportable to ONNX;
* :mod:`namu.federated.data`: scikit-learn's digits with a Dirichlet label partitioner;
* :mod:`namu.federated.aggregators`: FedAvg, coordinate-wise median and trimmed mean,
  central differential privacy;
* :mod:`namu.federated.codecs`, :mod:`namu.federated.selectors`: the wire encoding and
  client sampling.

Install with ``pip install "namu[federated]"`` (scikit-learn, for the digits data).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "MLP",
    "ROLES",
    "DifferentialPrivacy",
    "DigitsSource",
    "FedAvg",
    "Median",
    "RandomSelector",
    "SoftmaxRegression",
    "TensorCodec",
    "TrimmedMean",
    "bound",
    "check_binding",
    "digits",
    "dirichlet_partition",
]

_HOMES = {
    "MLP": "models", "SoftmaxRegression": "models",
    "ROLES": "roles", "check_binding": "roles", "bound": "roles",
    "DigitsSource": "data", "digits": "data", "dirichlet_partition": "data",
    "FedAvg": "aggregators", "Median": "aggregators", "TrimmedMean": "aggregators", "DifferentialPrivacy": "aggregators",
    "TensorCodec": "codecs", "RandomSelector": "selectors",
}


def __getattr__(name: str) -> Any:  # PEP 562: each module is imported when first used
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'namu.federated' has no attribute {name!r}")
    return getattr(importlib.import_module(f"namu.federated.{home}"), name)
