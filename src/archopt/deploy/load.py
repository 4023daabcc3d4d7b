"""Load the model of any result folder or checkpoint archopt writes, and export it to ONNX.

:func:`load_model` reads (``torch.load(weights_only=True)`` only; nothing in a file is run):

============================  =====================================================  ===========
what                          file it reads                                          ``kind``
============================  =====================================================  ===========
``archopt train`` folder      ``checkpoint.pt`` (archopt checkpoint with a spec)     trained
``archopt refine`` folder     ``checkpoint.pt`` (``meta.refined`` set)               refined
``archopt structure`` folder  ``model.pt`` (the compact network; not the supernet's  structure
                              ``checkpoint.pt``)
``archopt latent search``     ``model.pt`` (``{"spec", "state_dict", ...}``: the     latent
folder                        compact SWAT-NN MLP)
``archopt design`` folder     ``arch.json`` (built, weights initialised with the     design
                              design's seed: an untrained network)
``archopt run`` folder        its ``designed/`` stage (a folder above; the other     trained
                              stages are result folders of their own)
a ``.pt`` file / a JSON spec  as above                                               as above
============================  =====================================================  ===========

The module comes back in eval mode on the CPU (or ``device``) with these attributes:
``archopt_spec`` (the :class:`~archopt.spaces.ArchSpec`), ``archopt_input_shape`` (one example,
no batch axis: ``(C, H, W)`` for images, ``(features,)`` for tabular MLPs), ``archopt_meta``
(dataset facts: ``mean`` / ``std`` / ``class_names`` of the normalised input the network
expects, when the file has them), ``archopt_kind`` (table above) and ``archopt_source`` (the
file read).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from archopt.errors import ArchoptError, CheckpointError
from archopt.runs import atomic_write_bytes, read_json, torch_load
from archopt.spaces import ArchSpec, load_spec
from archopt.spaces.registry import spec_from_dict

__all__ = ["export_onnx", "load_model"]

_LATENT_KEYS = ("spec", "state_dict")


def _not_result(p: Path) -> ArchoptError:
    hint = (" (a latent autoencoder folder: export the compact MLP of `archopt latent search` "
            "instead)" if (p / "autoencoder.pt").exists() else "")
    return ArchoptError(f"{p} is not an archopt result folder: it holds none of model.pt, "
                        f"checkpoint.pt, arch.json or a run's designed/ stage{hint}")


def _resolve(p: Path) -> Path:
    """The file a result folder's model is read from (see the module docstring)."""
    for name in ("model.pt", "checkpoint.pt", "arch.json"):
        if (p / name).is_file():
            return p / name
    if (p / "designed").is_dir() and (p / "design").is_dir():  # an `archopt run` folder
        return _resolve(p / "designed")
    raise _not_result(p)


def _attach(model: nn.Module, spec: ArchSpec, meta: dict[str, Any], kind: str, source: Path,
            device: str | torch.device) -> nn.Module:
    shape = meta.get("input_shape")
    model.archopt_spec = spec
    model.archopt_input_shape = tuple(int(s) for s in shape) if shape else spec.input_shape()
    model.archopt_meta = meta
    model.archopt_kind = kind
    model.archopt_source = str(source)
    return model.to(device).eval()


def _from_spec_file(f: Path, device: str | torch.device) -> nn.Module:
    spec = load_spec(f)
    seed = 0
    cfg = f.parent / "config.json"
    if f.name == "arch.json" and cfg.is_file():
        seed = int(read_json(cfg).get("seed", 0) or 0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = spec.build()
    return _attach(model, spec, {"seed": seed, "trained": False}, "design", f, device)


def _from_torch_file(f: Path, device: str | torch.device) -> nn.Module:
    from archopt.training.checkpoint import CHECKPOINT_FORMAT
    from archopt.training.checkpoint import load_model as load_checkpoint_model

    obj = torch_load(f)
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        if obj.get("spec") is None:
            raise CheckpointError(
                f"{f} holds no architecture spec (a structure supernet's training state, or a "
                "user's own nn.Module): point at the finished result folder's model.pt, or use "
                "archopt.training.load_model(path, module=...)")
        model, spec, meta = load_checkpoint_model(f)
        cfg = meta.get("config") or {}
        kind = ("refined" if meta.get("refined") else
                "structure" if isinstance(cfg, dict) and "structure" in cfg else "trained")
        return _attach(model, spec, meta, kind, f, device)  # type: ignore[arg-type]
    if isinstance(obj, dict) and all(k in obj for k in _LATENT_KEYS):
        spec = spec_from_dict(obj["spec"])
        model = spec.build()
        try:
            model.load_state_dict(obj["state_dict"], strict=True)
        except RuntimeError as err:
            raise CheckpointError(f"{f}: weights do not fit the spec: "
                                  f"{' '.join(str(err).split())[:300]}") from None
        meta = {k: obj[k] for k in ("threshold", "depth") if k in obj}
        return _attach(model, spec, meta, "latent", f, device)
    raise CheckpointError(f"{f} is a torch file but not a model archopt wrote (neither an "
                          "archopt checkpoint nor a latent search model.pt)")


def load_model(path: str | os.PathLike[str], *, device: str | torch.device = "cpu"
               ) -> nn.Module:
    """The eval-ready network of a result folder or checkpoint (see the module docstring).

    Args:
        path: a result folder of ``archopt train / run / design / structure / refine / latent
            search``, one of their ``.pt`` files, or a JSON spec (built untrained).
        device: where to put the module.

    Returns: the ``nn.Module`` in eval mode with ``archopt_spec``, ``archopt_input_shape``,
        ``archopt_meta``, ``archopt_kind`` and ``archopt_source`` set. Image networks take
        normalised float input ``(B, C, H, W)``: ``(x / 255 - mean) / std`` with the meta's
        ``mean`` / ``std``; they return ``(B, num_classes)`` logits. Latent MLPs take
        ``(B, features)`` and return ``(B, 1)``.

    Raises:
        ArchoptError: the path does not exist, or is a folder that is not a result.
        CheckpointError: an unreadable or unsafe file (refused, never run), a checkpoint
            without a spec (a supernet's training state), weights that do not fit.
        InvalidSpec: a spec that no longer validates.
    """
    p = Path(path)
    if not p.exists():
        raise ArchoptError(f"{p} does not exist (expected a result folder or a checkpoint)")
    f = _resolve(p) if p.is_dir() else p
    if f.suffix == ".json":
        return _from_spec_file(f, device)
    return _from_torch_file(f, device)


def _check_out(out: Path) -> None:
    if out.is_dir():
        raise ArchoptError(f"--out {out} is a folder; name the file to write (e.g. "
                           f"{out / 'model.onnx'})")
    parent = out.parent if str(out.parent) else Path(".")
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise ArchoptError(f"cannot write {out}: {probe} is not a writable folder")


def export_onnx(source: str | os.PathLike[str] | nn.Module, out: str | os.PathLike[str], *,
                opset: int | None = None, batch_size: int | None = None,
                check_batch: int = 3, atol: float = 1e-4) -> dict[str, Any]:
    """Export a model to an ONNX file (written atomically) and check it with onnxruntime.

    Args:
        source: a result folder or checkpoint (read by :func:`load_model`), or a module that
            :func:`load_model` returned (it carries its input shape).
        out: the ``.onnx`` file (its folder is created).
        opset: the ONNX opset (default :data:`archopt.measure.onnx.DEFAULT_OPSET`).
        batch_size: None for a dynamic batch axis (default); an int fixes it.
        check_batch: the batch onnxruntime and torch are compared on (with a dynamic axis it
            differs from the batch of 2 traced at export, so the check exercises the axis).
        atol: the largest ``|onnxruntime - torch|`` accepted, relative to the largest
            ``|torch output|`` when that exceeds 1 (float32 round-off grows with the values).

    Returns: ``{"out", "bytes", "opset", "batch", "input_shape", "kind", "source",
        "check_batch", "max_abs_diff", "tolerance", "onnx", "onnxruntime", "torch"}``.
    Raises: MissingExtra (the onnx extra is not installed: the message names the pip command);
        ArchoptError (bad source or an unwritable ``out``; nothing written), ExportError
        (torch cannot export it, or onnxruntime's outputs differ by more than ``atol``).
    """
    from archopt._version import __version__
    from archopt.measure import onnx as export

    export.require_onnx()
    import onnx
    import onnxruntime

    target = Path(out)
    _check_out(target)
    model = source if isinstance(source, nn.Module) else load_model(source)
    spec = getattr(model, "archopt_spec", None)
    shape = getattr(model, "archopt_input_shape", None)
    if spec is None or shape is None:
        raise ArchoptError("export_onnx takes a path or a module that load_model returned")
    opset = opset or export.DEFAULT_OPSET
    meta = getattr(model, "archopt_meta", {}) or {}
    info = {"archopt_version": __version__, "archopt_kind": model.archopt_kind,
            "archopt_source": model.archopt_source, "archopt_spec": spec.to_dict(),
            "input_shape": list(shape),
            **{k: meta[k] for k in ("dataset", "mean", "std", "class_names") if k in meta}}
    blob = export.onnx_bytes(model, shape, opset=opset, batch_size=batch_size, metadata=info)
    b = batch_size or check_batch
    x = torch.randn((b, *shape), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = model.cpu()(x).numpy()
    got = export.ort_run(export.ort_session(blob), x)
    diff = float(abs(got - ref).max()) if got.shape == ref.shape else float("inf")
    tol = atol * max(1.0, float(abs(ref).max()))
    if not diff <= tol:
        raise export.ExportError(f"onnxruntime's outputs differ from torch's by {diff:.3g} > "
                                 f"{tol:.3g} on a batch of {b}; {target} not written")
    try:
        atomic_write_bytes(target, blob)
    except OSError as err:
        raise ArchoptError(f"cannot write {target}: {err.strerror or err}") from None
    return {"out": str(target), "bytes": len(blob), "opset": opset,
            "batch": "dynamic" if batch_size is None else batch_size,
            "input_shape": list(shape), "kind": model.archopt_kind,
            "source": model.archopt_source, "check_batch": b, "max_abs_diff": diff,
            "tolerance": tol, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
            "torch": torch.__version__}
