"""Bundled ``Codec``: parameters to and from the wire.

:class:`TensorCodec` encodes each array as a serialized ONNX ``TensorProto`` (the wire
envelope's payload type), keeping dtype and shape; ``dtype="float16"`` halves the bytes
sent at the cost of precision (decoded back to float64).
"""

from __future__ import annotations

import numpy as np

__all__ = ["TensorCodec"]


class TensorCodec:
    """Arrays as serialized ONNX ``TensorProto`` messages.

    Args:
        dtype: the dtype on the wire (``"float64"``, ``"float32"`` or ``"float16"``).
    """

    def __init__(self, dtype: str = "float64") -> None:
        if dtype not in ("float64", "float32", "float16"):
            raise ValueError(f"dtype must be float64, float32 or float16, got {dtype!r}")
        self.dtype = dtype

    def encode(self, params: list[np.ndarray]) -> list[bytes]:
        """One serialized ``TensorProto`` per array."""
        from onnx import numpy_helper

        return [numpy_helper.from_array(np.asarray(p).astype(self.dtype), f"p{i}").SerializeToString() for i, p in enumerate(params)]

    def decode(self, payload: list[bytes]) -> list[np.ndarray]:
        """The arrays again, as float64."""
        from onnx import TensorProto, numpy_helper

        out = []
        for data in payload:
            tensor = TensorProto()
            tensor.ParseFromString(data)
            out.append(numpy_helper.to_array(tensor).astype(np.float64))
        return out
