"""``archopt design``: budgets in, an architecture out, no training (DeepMAD / Dense Optimizer).

Thin: parses options, calls :func:`archopt.design.design`, writes the result folder with
:func:`archopt.design.output.write_design`, prints a table or ``--json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from archopt.cli.common import JsonOpt, SeedOpt, handle_errors, print_json, print_kv, print_table
from archopt.errors import InvalidSpec

__all__ = ["parse_int_list", "register"]


def parse_int_list(text: str | None, what: str) -> tuple[int, ...] | None:
    """``"8:48:4"`` (inclusive range, step optional) or ``"3,5"`` -> a tuple of ints."""
    if text is None:
        return None
    try:
        if ":" in text:
            parts = [int(p) for p in text.split(":")]
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] < 1):
                raise ValueError
            lo, hi = parts[0], parts[1]
            step = parts[2] if len(parts) == 3 else 1
            vals = tuple(range(lo, hi + 1, step))
        else:
            vals = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise InvalidSpec(f"{what}: cannot read {text!r} (expected START:STOP[:STEP], "
                          "inclusive, or a list such as 3,5)") from None
    if not vals:
        raise InvalidSpec(f"{what}: {text!r} selects no value")
    return vals


def register(app: typer.Typer) -> None:
    @app.command("design")
    @handle_errors
    def design_cmd(
        space: Annotated[str, typer.Option(
            "--space", help="resnet | mbv2 | mlp (DeepMAD) or densenet (Dense Optimizer).")]
            = "resnet",
        budget_macs: Annotated[str | None, typer.Option(
            "--budget-macs", help="MACs budget per image, e.g. 1.82e9 or 1.82G: convolutions "
            "and linear layers. The DeepMAD / TinyNAS toolbox budgets FLOPs instead, which add "
            "BatchNorm, activations, residual additions and pooling and leave out the "
            "classifier (about 1-5 % more for its ResNets; DeepMAD-R18: +1.4 %); the design "
            "reports both, and `archopt score` shows them for any spec.")] = None,
        budget_params: Annotated[str | None, typer.Option(
            "--budget-params", help="Parameter budget (BN included), e.g. 11.69M.")] = None,
        budget_layers: Annotated[int | None, typer.Option(
            "--budget-layers", help="Max main-path weight layers.")] = None,
        rho: Annotated[float | None, typer.Option(
            "--rho", help="Effectiveness bound rho_0 (DeepMAD: 0.3 resnet, 0.5 mbv2).")] = None,
        resolution: Annotated[int | None, typer.Option(
            "--resolution", help="Input side length (e.g. 224, 32, 28).")] = None,
        in_channels: Annotated[int, typer.Option(
            "--in-channels", help="Input channels (mlp: input features = C x R x R, or C "
            "when --resolution is not given).")] = 3,
        num_classes: Annotated[int | None, typer.Option(
            "--num-classes", help="Classifier outputs; 0 = headless backbone (DeepMAD's "
            "budgets). Default: 0 for resnet/mbv2, 10 for densenet/mlp.")] = None,
        solver: Annotated[str | None, typer.Option(
            "--solver", help="evolution (all spaces), bnb or exhaustive (densenet). "
            "Default: evolution; bnb for densenet.")] = None,
        candidates: Annotated[int, typer.Option(
            "--candidates", help="Evolution: candidates to generate.")] = 500_000,
        beta: Annotated[float | None, typer.Option(
            "--beta", help="DeepMAD depth-penalty ratio (default 10) / Dense Optimizer "
            "power-law weight (default 0.1).")] = None,
        init: Annotated[str | None, typer.Option(
            "--init", help="Seed structure (catalog name, JSON spec or TinyNAS file); "
            "default: the TinyNAS start scaled to fit.")] = None,
        population: Annotated[int, typer.Option("--population", help="Evolution: "
                                                "population size.")] = 256,
        mutations: Annotated[int, typer.Option("--mutations", help="Evolution: mutations "
                                               "per child.")] = 2,
        batch: Annotated[int, typer.Option("--batch", help="Evolution: children per "
                                           "ask/tell round.")] = 256,
        top_k: Annotated[int, typer.Option("--top-k", help="Distinct best designs to "
                                           "report.")] = 10,
        stages: Annotated[int, typer.Option("--stages", help="densenet: dense stages.")] = 3,
        grid_growth: Annotated[str, typer.Option(
            "--grid-growth", help="densenet: growth rates, START:STOP:STEP or a list.")]
            = "8:48:4",
        grid_layers: Annotated[str, typer.Option(
            "--grid-layers", help="densenet: layers per stage.")] = "4:40",
        grid_kernels: Annotated[str, typer.Option(
            "--grid-kernels", help="densenet: kernels.")] = "3,5",
        grid_stem: Annotated[str | None, typer.Option(
            "--grid-stem", help="densenet: stem widths to search (default: 2 x g_1).")] = None,
        time_limit: Annotated[float | None, typer.Option(
            "--time-limit", help="Stop the solver after this many seconds.")] = None,
        node_limit: Annotated[int | None, typer.Option(
            "--node-limit", help="bnb: stop after this many nodes.")] = None,
        max_designs: Annotated[int, typer.Option(
            "--max-designs", help="exhaustive: refuse grids larger than this.")] = 10_000_000,
        no_plots: Annotated[bool, typer.Option("--no-plots", help="Skip the PNG plots.")]
            = False,
        seed: SeedOpt = 0,
        out: Annotated[Path | None, typer.Option(
            "--out", help="Result folder (default: runs/design-SPACE).")] = None,
        json_: JsonOpt = False,
    ) -> None:
        """Design an architecture within MACs / params / layers / rho budgets, without
        training: DeepMAD entropy maximisation (resnet, mbv2, mlp) or the Dense Optimizer
        (densenet, exact branch-and-bound). Writes arch.json, design.json and plots."""
        from archopt.design import Budgets, DenseGrid, DesignOptions, design, parse_amount
        from archopt.design.output import write_design
        from archopt.locking import lock_folder
        from archopt.progress import progress

        budgets = Budgets(macs=parse_amount(budget_macs, "--budget-macs"),
                          params=parse_amount(budget_params, "--budget-params"),
                          layers=budget_layers, rho=rho)
        grid = None
        if space == "densenet":
            grid = DenseGrid(growth=parse_int_list(grid_growth, "--grid-growth"),
                             layers=parse_int_list(grid_layers, "--grid-layers"),
                             kernels=parse_int_list(grid_kernels, "--grid-kernels"),
                             stem=parse_int_list(grid_stem, "--grid-stem"), stages=stages)
        options = DesignOptions(candidates=candidates, population=population,
                                mutations=mutations, batch=batch, seed=seed, top_k=top_k,
                                time_limit=time_limit, node_limit=node_limit,
                                max_designs=max_designs)
        uses_evolution = (solver or ("bnb" if space == "densenet" else "evolution")) \
            == "evolution"
        with progress(candidates if uses_evolution else None, f"design {space}",
                      enabled=not json_) as bar:
            result = design(space, budgets, solver=solver, resolution=resolution,
                            in_channels=in_channels, num_classes=num_classes, init=init,
                            beta=beta, grid=grid, options=options, progress=bar)
        folder = out or Path("runs") / f"design-{space}"
        config = {"command": "design", "space": space, "solver": result.solver,
                  "budgets": budgets.as_dict(), "resolution": resolution,
                  "in_channels": in_channels, "num_classes": num_classes, "init": init,
                  "beta": beta, "seed": seed, "options": options.__dict__,
                  "grid": None if grid is None else grid.as_dict()}
        with lock_folder(folder):
            write_design(result, folder, config, plots=not no_plots)
        if json_:
            print_json(result.to_dict())
            return
        m = result.metrics
        rows = [("objective", m["objective"]), ("entropy", m["entropy"]),
                ("effectiveness", m["effectiveness"]), ("MACs", m["macs"])]
        if result.spec.space in ("resnet", "mbv2"):
            from archopt.spaces.flops import toolbox_flops

            rows.append(("FLOPs (TinyNAS convention, headless)",
                         toolbox_flops(result.spec, resolution).total))
        rows += [("params", m["params"]), ("layers", m["layers"])]
        if "power_law" in m:
            pl = m["power_law"]
            rows += [("power law a", pl["a"]), ("power law b", pl["b"]), ("S = a - b", pl["S"]),
                     ("R^2", pl["r2"])]
        else:
            rows.append(("depth penalty", m["depth_penalty"]))
        rows += [("seconds", result.seconds), ("candidates", result.candidates),
                 ("candidates/s", result.candidates_per_second)]
        if result.solver == "bnb":
            st = result.stats
            rows += [("nodes explored", st["nodes_explored"]),
                     ("pruned by budget", st["pruned_budget"]),
                     ("pruned by bound", st["pruned_bound"]), ("gap", st["gap"])]
        print_kv(f"{space} design ({result.solver})", rows)
        print_table("budgets", ["budget", "limit", "design"],
                    [(k, v, m[k2]) for k, v, k2 in (
                        ("MACs", budgets.macs, "macs"), ("params", budgets.params, "params"),
                        ("layers", budgets.layers, "layers"),
                        ("rho", budgets.rho, "effectiveness")) if v is not None])
        print_table("stages", ["stage", "entropy", "rho"],
                    [(i + 1, h, r) for i, (h, r) in enumerate(
                        zip(m["stage_entropies"], m["stage_effectiveness"], strict=False))])
        typer.echo(f"wrote {folder}/arch.json, design.json, plots")
