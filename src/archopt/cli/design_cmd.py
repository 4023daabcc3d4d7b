"""``archopt design``: budgets in, an architecture out, no training (DeepMAD / Dense Optimizer).

Thin: parses options, calls :func:`archopt.design.design`, writes the result folder with
:func:`archopt.design.output.write_design`, prints a table or ``--json``.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

import typer

from archopt.cli.common import (
    JsonOpt,
    SeedOpt,
    ThreadsOpt,
    handle_errors,
    print_json,
    print_kv,
    print_table,
    with_options,
)
from archopt.cli.sweep_common import echo as sweep_echo
from archopt.cli.sweep_common import finish_sweep, sweep_options
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


SpaceOpt = Annotated[str, typer.Option(
    "--space", help="resnet | mbv2 | mlp (DeepMAD) or densenet (Dense Optimizer).")]
BudgetParamsOpt = Annotated[str | None, typer.Option(
    "--budget-params", help="Parameter budget (BN included), e.g. 11.69M.")]
BudgetLayersOpt = Annotated[int | None, typer.Option(
    "--budget-layers", help="Max main-path weight layers.")]
RhoOpt = Annotated[float | None, typer.Option(
    "--rho", help="Effectiveness bound rho_0 (DeepMAD: 0.3 resnet, 0.5 mbv2).")]
ResolutionOpt = Annotated[int | None, typer.Option(
    "--resolution", help="Input side length (e.g. 224, 32, 28).")]
InChannelsOpt = Annotated[int, typer.Option(
    "--in-channels", help="Input channels (mlp: input features = C x R x R, or C when "
    "--resolution is not given).")]
NumClassesOpt = Annotated[int | None, typer.Option(
    "--num-classes", help="Classifier outputs; 0 = headless backbone (DeepMAD's budgets). "
    "Default: 0 for resnet/mbv2, 10 for densenet/mlp.")]
SolverOpt = Annotated[str | None, typer.Option(
    "--solver", help="evolution (all spaces), bnb or exhaustive (densenet). Default: "
    "evolution; bnb for densenet.")]
CandidatesOpt = Annotated[int, typer.Option("--candidates", help="Evolution: candidates to "
                                                                 "generate.")]
BetaOpt = Annotated[float | None, typer.Option(
    "--beta", help="DeepMAD depth-penalty ratio (default 10) / Dense Optimizer power-law "
    "weight (default 0.1).")]
InitOpt = Annotated[str | None, typer.Option(
    "--init", help="Seed structure (catalog name, JSON spec or TinyNAS file); default: the "
    "TinyNAS start scaled to fit.")]
PopulationOpt = Annotated[int, typer.Option("--population", help="Evolution: population "
                                                                 "size.")]
MutationsOpt = Annotated[int, typer.Option("--mutations", help="Evolution: mutations per "
                                                               "child.")]
BatchOpt = Annotated[int, typer.Option("--batch", help="Evolution: children per ask/tell "
                                                       "round.")]
TopKOpt = Annotated[int, typer.Option("--top-k", help="Distinct best designs to report.")]
StagesOpt = Annotated[int, typer.Option("--stages", help="densenet: dense stages.")]
GridGrowthOpt = Annotated[str, typer.Option(
    "--grid-growth", help="densenet: growth rates, START:STOP:STEP or a list.")]
GridLayersOpt = Annotated[str, typer.Option("--grid-layers", help="densenet: layers per "
                                                                  "stage.")]
GridKernelsOpt = Annotated[str, typer.Option("--grid-kernels", help="densenet: kernels.")]
GridStemOpt = Annotated[str | None, typer.Option(
    "--grid-stem", help="densenet: stem widths to search (default: 2 x g_1).")]
TimeLimitOpt = Annotated[float | None, typer.Option(
    "--time-limit", help="Stop the solver after this many seconds.")]
NodeLimitOpt = Annotated[int | None, typer.Option(
    "--node-limit", help="bnb: stop after this many nodes.")]
MaxDesignsOpt = Annotated[int, typer.Option(
    "--max-designs", help="exhaustive: refuse grids larger than this.")]
NoPlotsOpt = Annotated[bool, typer.Option("--no-plots", help="Skip the PNG plots.")]

_MACS_HELP = ("MACs budget per image, e.g. 1.82e9 or 1.82G: convolutions and linear layers. "
              "The DeepMAD / TinyNAS toolbox budgets FLOPs instead, which add BatchNorm, "
              "activations, residual additions and pooling and leave out the classifier "
              "(about 1-5 % more for its ResNets; DeepMAD-R18: +1.4 %); the design reports "
              "both, and `archopt score` shows them for any spec.")


def design_options(
    budget_layers: BudgetLayersOpt = None,
    rho: RhoOpt = None,
    resolution: ResolutionOpt = None,
    in_channels: InChannelsOpt = 3,
    num_classes: NumClassesOpt = None,
    solver: SolverOpt = None,
    candidates: CandidatesOpt = 500_000,
    beta: BetaOpt = None,
    init: InitOpt = None,
    population: PopulationOpt = 256,
    mutations: MutationsOpt = 2,
    batch: BatchOpt = 256,
    top_k: TopKOpt = 10,
    stages: StagesOpt = 3,
    grid_growth: GridGrowthOpt = "8:48:4",
    grid_layers: GridLayersOpt = "4:40",
    grid_kernels: GridKernelsOpt = "3,5",
    grid_stem: GridStemOpt = None,
    time_limit: TimeLimitOpt = None,
    node_limit: NodeLimitOpt = None,
    max_designs: MaxDesignsOpt = 10_000_000,
    no_plots: NoPlotsOpt = False,
    seed: SeedOpt = 0,
) -> SimpleNamespace:
    """The options ``design`` and ``design sweep`` share, as one record (an option block:
    :func:`~archopt.cli.common.with_options`)."""
    return SimpleNamespace(**locals())


def _grid_and_options(space: str, d: SimpleNamespace) -> tuple[Any, Any]:
    """The densenet grid (None for the other spaces) and the solver settings."""
    from archopt.design import DenseGrid, DesignOptions

    grid = None
    if space == "densenet":
        grid = DenseGrid(growth=parse_int_list(d.grid_growth, "--grid-growth"),
                         layers=parse_int_list(d.grid_layers, "--grid-layers"),
                         kernels=parse_int_list(d.grid_kernels, "--grid-kernels"),
                         stem=parse_int_list(d.grid_stem, "--grid-stem"), stages=d.stages)
    options = DesignOptions(candidates=d.candidates, population=d.population,
                            mutations=d.mutations, batch=d.batch, seed=d.seed, top_k=d.top_k,
                            time_limit=d.time_limit, node_limit=d.node_limit,
                            max_designs=d.max_designs)
    return grid, options


def register(app: typer.Typer) -> None:
    dapp = typer.Typer(help="Design an architecture within budgets, without training "
                            "(DeepMAD / Dense Optimizer).", no_args_is_help=False)

    @dapp.callback(invoke_without_command=True)
    @handle_errors
    @with_options(d=design_options)
    def design_cmd(
        ctx: typer.Context,
        space: SpaceOpt = "resnet",
        budget_macs: Annotated[str | None, typer.Option("--budget-macs", help=_MACS_HELP)
                               ] = None,
        budget_params: BudgetParamsOpt = None,
        d: Any = None,
        out: Annotated[Path | None, typer.Option(
            "--out", help="Result folder (default: runs/design-SPACE).")] = None,
        json_: JsonOpt = False,
    ) -> None:
        """Design an architecture within MACs / params / layers / rho budgets, without
        training: DeepMAD entropy maximisation (resnet, mbv2, mlp) or the Dense Optimizer
        (densenet, exact branch-and-bound). Writes arch.json, design.json and plots.
        `archopt design sweep` designs one per budget of a list."""
        if ctx.invoked_subcommand is not None:
            return
        from archopt.design import Budgets, parse_amount
        from archopt.design.sweep import design_to_folder
        from archopt.runtime.progress import progress

        budgets = Budgets(macs=parse_amount(budget_macs, "--budget-macs"),
                          params=parse_amount(budget_params, "--budget-params"),
                          layers=d.budget_layers, rho=d.rho)
        grid, options = _grid_and_options(space, d)
        uses_evolution = (d.solver or ("bnb" if space == "densenet" else "evolution")) \
            == "evolution"
        folder = out or Path("runs") / f"design-{space}"
        with progress(d.candidates if uses_evolution else None, f"design {space}",
                      enabled=not json_) as bar:
            result = design_to_folder(folder, space, budgets, solver=d.solver,
                                      resolution=d.resolution, in_channels=d.in_channels,
                                      num_classes=d.num_classes, init=d.init, beta=d.beta,
                                      grid=grid, options=options, plots=not d.no_plots,
                                      progress=bar)
        if json_:
            print_json(result.to_dict())
            return
        m = result.metrics
        rows = [("objective", m["objective"]), ("entropy", m["entropy"]),
                ("effectiveness", m["effectiveness"]), ("MACs", m["macs"])]
        if result.spec.space in ("resnet", "mbv2"):
            from archopt.spaces.flops import toolbox_flops

            rows.append(("FLOPs (TinyNAS convention, headless)",
                         toolbox_flops(result.spec, d.resolution).total))
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

    @dapp.command("sweep")
    @handle_errors
    @with_options(sw=sweep_options, d=design_options)
    def design_sweep_cmd(
        out: Annotated[Path, typer.Option("--out", help="Sweep folder (one design folder per "
                                                        "budget).")],
        budget_macs: Annotated[str | None, typer.Option(
            "--budget-macs", help="Comma-separated MACs budgets, one design each (e.g. "
                                  "1e6,2e6,4e6 or 250k,1M).")] = None,
        budget_params: Annotated[str | None, typer.Option(
            "--budget-params", help="Comma-separated parameter budgets (with --budget-macs: "
                                    "every combination).")] = None,
        sw: Any = None,
        threads: ThreadsOpt = None,
        space: SpaceOpt = "resnet",
        d: Any = None,
        json_: JsonOpt = False,
    ) -> None:
        """One design per budget of --budget-macs (x --budget-params x --seeds), as Ray
        tasks (--workers N, --address) or in this process without Ray; each design folder is
        what `archopt design --out` writes. Writes OUT/sweep.json (the table, Pareto flags),
        OUT/pareto.png (objective vs MACs), OUT/grid.json, OUT/status.json. Rerunning
        resumes; exit 1 when a design failed (e.g. an infeasible budget; the others finish).
        """
        from archopt.design import parse_amount
        from archopt.design.sweep import run_design_sweep
        from archopt.errors import ArchoptError
        from archopt.runs.sweeps import parse_list, parse_seeds

        if budget_macs is None and budget_params is None:
            raise ArchoptError("design sweep needs --budget-macs and/or --budget-params, "
                               "comma-separated (e.g. --budget-macs 1e6,2e6,4e6)")
        macs = [None] if budget_macs is None else parse_list(
            budget_macs, "--budget-macs", lambda t: parse_amount(t, "--budget-macs"))
        params = [None] if budget_params is None else parse_list(
            budget_params, "--budget-params", lambda t: parse_amount(t, "--budget-params"))
        grid, options = _grid_and_options(space, d)
        t = run_design_sweep(out, space, macs=macs, params=params, layers=d.budget_layers,
                             rho=d.rho, seeds=parse_seeds(sw.seeds), solver=d.solver,
                             resolution=d.resolution, in_channels=d.in_channels,
                             num_classes=d.num_classes, init=d.init, beta=d.beta, grid=grid,
                             options=options, plots=not d.no_plots, backend=sw.backend,
                             workers=sw.workers, address=sw.address, threads=threads,
                             progress=not json_, echo=sweep_echo)
        if json_:
            print_json({**t, "out": str(out)})
            finish_sweep(t["rows"], [t["runner"]], "", quiet=True)
            return
        from archopt.design.sweep import amount_label

        rows = t["rows"]
        cols = [("design", lambda r: ("* " if r.get("pareto") else "  ") + r["folder"])]
        if budget_macs is not None:
            cols.append(("MACs budget", lambda r: amount_label(r["budget_macs"])))
        if budget_params is not None:
            cols.append(("params budget", lambda r: amount_label(r["budget_params"])))
        if sw.seeds is not None:
            cols.append(("seed", lambda r: r.get("seed")))
        cols += [(name, lambda r, k=key: r.get(k)) for name, key in (
            ("objective", "objective"), ("MACs", "macs"), ("params", "params"),
            ("layers", "layers"), ("rho", "effectiveness"), ("solver s", "seconds"))]
        print_table(f"{space} designs (* = on the Pareto front of objective vs MACs)",
                    [c[0] for c in cols], [[f(r) for _, f in cols] for r in rows])
        finish_sweep(t["rows"], [t["runner"]], f"table in {out / 'sweep.json'}, plot in "
                                               f"{out / 'pareto.png'}")

    app.add_typer(dapp, name="design")
