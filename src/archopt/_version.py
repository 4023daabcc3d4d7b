"""The package version (one place; read by config.json records and ONNX metadata)."""

__version__ = "0.1.0"
