"""Write a design run as a result folder (DESIGN.md conventions, every write atomic):

- ``config.json``     the resolved request (space, budgets, solver settings) + environment;
- ``arch.json``       the designed spec (``archopt train`` and ``archopt score`` read it);
- ``design.json``     objective, entropy, effectiveness, stage entropies, MACs, params, layers,
                      budgets, seconds, candidates/s, solver statistics, top-k, thinned trace;
- ``summary.json``    the same figures (the name every verb's summary has);
- ``metrics.jsonl``   the full convergence trace, one row per evolution batch / bnb improvement;
- ``convergence.png`` best objective vs candidates (or nodes explored);
- ``network.png``     stage widths and depths of the design;
- ``powerlaw.png``    (densenet) stage entropies with the fitted power law.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from archopt.runs import ResultDir
from archopt.spaces.layers import stage_numbers

from .plots import plot_convergence, plot_network, plot_power_law
from .search import DesignResult

__all__ = ["write_design"]


def _unit_stages(result: DesignResult) -> list[int] | None:
    spec: Any = result.spec
    if spec.space in ("resnet", "mbv2"):
        st = stage_numbers([spec.stem.stride, *(b.stride for b in spec.blocks)])
        if spec.space == "mbv2" and spec.head_conv:
            st.append(st[-1])
        return st
    if spec.space == "densenet":
        return [1, *range(1, len(spec.stages) + 1)]
    return None


#: What :func:`write_design` may write.
_FILES = (ResultDir.CONFIG, ResultDir.ARCH, "design.json", ResultDir.SUMMARY, ResultDir.METRICS,
          "convergence.png", "network.png", "powerlaw.png")


def write_design(result: DesignResult, out: str | Path, config: dict[str, Any], *,
                 plots: bool = True) -> dict[str, Path]:
    """Write the result folder ``out``; returns the paths written by name.

    A write that fails (a full disk: :class:`~archopt.errors.WriteError`) removes the files
    this call had created, so the folder is as it was before: a design is cheap to redo.
    """
    from archopt.runs.locking import discard_on_failure

    rd = ResultDir(out)
    with discard_on_failure(rd.path, _FILES, lambda: False):
        paths = {"config": rd.write_config(config), "arch": rd.write_arch(result.spec.to_dict())}
        body = result.to_dict()
        if result.spec.space in ("resnet", "mbv2"):  # the toolbox's FLOPs beside our MACs
            from archopt.spaces.flops import toolbox_flops

            body["flops_tinynas"] = toolbox_flops(result.spec).as_dict()
        paths["design"] = rd.write_json("design.json", body)
        paths["summary"] = rd.write_summary(body)
        paths["metrics"] = rd.write_lines(ResultDir.METRICS, result.history)
        if plots:
            solver = result.solver
            xlabel = "nodes explored" if solver == "bnb" else (
                "designs scored" if solver == "exhaustive" else "candidates")
            paths["convergence"] = plot_convergence(
                result.history, rd.file("convergence.png"), xlabel=xlabel,
                title=f"{result.space} design ({solver}): best objective")
            paths["network"] = plot_network(result.spec, rd.file("network.png"),
                                            stage_of_unit=_unit_stages(result),
                                            title=f"designed {result.space} network")
            pl = result.metrics.get("power_law")
            if pl:
                paths["powerlaw"] = plot_power_law(result.metrics["stage_entropies"], pl["a"],
                                                   pl["b"], rd.file("powerlaw.png"))
    return paths
