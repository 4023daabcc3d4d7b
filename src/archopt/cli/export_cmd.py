"""``archopt export RESULT_OR_CHECKPOINT --format onnx --out model.onnx``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from archopt.cli.common import JsonOpt, handle_errors, print_json, print_kv
from archopt.errors import UnknownName

FORMATS = ("onnx",)


def register(app: typer.Typer) -> None:
    @app.command("export")
    @handle_errors
    def export(
        source: Annotated[str, typer.Argument(
            help="A result folder (train, run, design, structure, refine, latent search) or "
                 "one of their .pt checkpoints.")],
        out: Annotated[Path, typer.Option("--out", help="The file to write (e.g. model.onnx).")],
        format_: Annotated[str, typer.Option("--format", help="Export format: onnx.")] = "onnx",
        opset: Annotated[int | None, typer.Option(
            "--opset", help="ONNX opset version, 18 or higher [default: 18].")] = None,
        batch_size: Annotated[int | None, typer.Option(
            "--batch-size", min=1,
            help="Fix the batch axis to this size [default: dynamic].")] = None,
        json_: JsonOpt = False,
    ) -> None:
        """Export a model archopt wrote to ONNX (atomic write), with a dynamic batch axis and a
        named opset, then check it: onnxruntime's outputs must equal PyTorch's within 1e-4 (times
        the largest output magnitude when above 1) on a batch of 3, another size than the
        traced batch of 2. The spec, input shape, opset and the dataset's mean / std (inputs are
        normalised images) are stored as the model's metadata. Needs the onnx extra:
        pip install 'archopt\\[onnx]'."""
        from archopt.deploy import export_onnx

        if format_.lower() not in FORMATS:
            raise UnknownName(f"unknown export format {format_!r} (known: "
                              f"{', '.join(FORMATS)})")
        info = export_onnx(source, out, opset=opset, batch_size=batch_size)
        if json_:
            print_json(info)
            return
        batch = "batch" if info["batch"] == "dynamic" else info["batch"]
        print_kv(f"exported {info['kind']} model", [
            ("source", info["source"]), ("written", info["out"]),
            ("size (bytes)", info["bytes"]), ("opset", info["opset"]),
            ("input", " x ".join(map(str, [batch, *info["input_shape"]]))),
            (f"max |onnxruntime - torch| (batch {info['check_batch']})", info["max_abs_diff"]),
        ])
