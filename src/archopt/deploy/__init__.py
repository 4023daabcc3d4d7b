"""Deployment: the model of any result folder or checkpoint, loaded or exported to ONNX.

``archopt.load_model`` and ``archopt.export_onnx`` are these two functions (see
:mod:`archopt.deploy.load`).
"""

from archopt.deploy.load import export_onnx, load_model

__all__ = ["export_onnx", "load_model"]
