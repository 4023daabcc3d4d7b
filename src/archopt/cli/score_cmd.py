"""``archopt score SPEC`` (cost model, training-free scores, per-stage table) and
``archopt summary SPEC`` (the built module's layer table)."""

from __future__ import annotations

from typing import Annotated

import typer

from archopt.cli.common import JsonOpt, handle_errors, print_json, print_kv, print_table
from archopt.errors import InvalidSpec
from archopt.measure import module_table
from archopt.spaces import load_spec

SpecArg = Annotated[str, typer.Argument(
    help="A catalog name (resnet18, deepmad-r18, densenet-bc-100-12, ...), a JSON spec, a "
         "TinyNAS structure file, a result folder or a checkpoint.")]
ResOpt = Annotated[int | None, typer.Option("--resolution", help="Input side length.")]
ClassesOpt = Annotated[int | None, typer.Option(
    "--num-classes", help="Override the classifier size (0 = headless backbone).")]
ChannelsOpt = Annotated[int | None, typer.Option("--in-channels", help="Override input channels.")]
BetaOpt = Annotated[float | None, typer.Option(
    "--beta", help="Objective weight: DeepMAD depth-penalty ratio (default 10) or Dense "
    "Optimizer power-law weight (default 0.1).")]


def score_summary(spec_ref: str, resolution: int | None, num_classes: int | None,
                  in_channels: int | None, beta: float | None = None) -> dict:
    """Resolve the spec and compute its cost summary and training-free scores (entropy,
    effectiveness, objective; see :func:`archopt.design.score_spec`) -- what ``archopt score``
    prints. Per-stage entropy / effectiveness are added to the stage rows."""
    from archopt.design import score_spec

    spec = load_spec(spec_ref, num_classes=num_classes)
    if in_channels is not None:
        spec = spec.replace(in_channels=in_channels)
    summary = spec.cost_summary(resolution)
    if spec.space in ("resnet", "mbv2"):
        from archopt.spaces.flops import toolbox_flops

        summary["flops_tinynas"] = toolbox_flops(spec, summary["resolution"]).as_dict()
    try:
        scores = score_spec(spec, summary["resolution"], beta=beta).as_dict()
    except InvalidSpec as err:  # e.g. an MLP without hidden layers has no entropy
        summary["scores_error"] = str(err)
        return summary
    hs, rhos = scores.pop("stage_entropies"), scores.pop("stage_effectiveness")
    summary.update(scores)
    if spec.space != "mlp":
        for row in summary["stages"]:
            if 1 <= row["stage"] <= len(hs):
                row["entropy"] = hs[row["stage"] - 1]
                row["effectiveness"] = rhos[row["stage"] - 1]
    else:
        summary["layer_entropies"] = hs
    return summary


_LABELS = {"beta": "beta (depth-penalty weight)"}


def print_score(summary: dict) -> None:
    print_kv(summary.get("name") or summary["space"], [
        ("space", summary["space"]), ("resolution", summary["resolution"]),
        ("MACs", summary["macs"]),
        *((("FLOPs (TinyNAS convention, headless)", summary["flops_tinynas"]["total"]),)
          if "flops_tinynas" in summary else ()),
        ("params", summary["params"]), ("layers", summary["layers"]),
        *((_LABELS.get(k, k.replace("_", " ")), v) for k, v in summary.items()
          if isinstance(v, float)),
        *((f"power law {k}", v) for k, v in (summary.get("power_law") or {}).items()),
    ])
    print_table("stages", ["stage", "out channels", "out res", "layers", "MACs", "params",
                           "entropy", "rho"],
                [("head" if s["stage"] == 0 else s["stage"], s["out_channels"], s["out_res"],
                  s["layers"], s["macs"], s["params"], s.get("entropy"), s.get("effectiveness"))
                 for s in summary["stages"]])


def register(app: typer.Typer) -> None:
    @app.command("score")
    @handle_errors
    def score(spec: SpecArg, resolution: ResOpt = None, num_classes: ClassesOpt = None,
              in_channels: ChannelsOpt = None, beta: BetaOpt = None,
              json_: JsonOpt = False) -> None:
        """MACs, params, layers, entropy, effectiveness, objective and a per-stage table of an
        architecture spec (catalog name, JSON, TinyNAS / DeepMAD structure file).

        MACs count convolutions and linear layers (the classifier included). For resnet and
        mbv2 specs, FLOPs under the DeepMAD / TinyNAS toolbox's convention are shown beside
        them: MACs plus BatchNorm (2 per output element), activations, residual additions and
        pooling, without the classifier (the toolbox's networks are headless). A TinyNAS
        structure file is scored headless unless --num-classes says otherwise."""
        summary = score_summary(spec, resolution, num_classes, in_channels, beta)
        if json_:
            print_json(summary)
        else:
            print_score(summary)

    @app.command("summary")
    @handle_errors
    def summary(spec: SpecArg, resolution: ResOpt = None, num_classes: ClassesOpt = None,
                json_: JsonOpt = False) -> None:
        """The built module's layer table (torch's own shapes, params and MACs)."""
        s = load_spec(spec, num_classes=num_classes)
        s.check_memory(resolution=resolution, batch_size=1)  # one forward pass, refused early
        rows = module_table(s.build(), s.input_shape(resolution))
        if json_:
            print_json([r._asdict() for r in rows])
            return
        print_table(s.name or s.space, ["layer", "type", "output", "params", "MACs"],
                    [(r.name, r.type, "x".join(map(str, r.output_shape)), r.params, r.macs)
                     for r in rows if r.params or r.macs or r.type not in ("Identity",)],
                    caption=f"total: {sum(r.params for r in rows):,} params, "
                            f"{sum(r.macs for r in rows):,} MACs")
