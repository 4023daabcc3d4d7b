"""Render every results table of the manual (and the README's results at a glance) from the
committed results files, ``benchmarks/results/*.json``, so that no figure is typed by hand.

    python benchmarks/render_docs.py            # (re)write the generated pages
    python benchmarks/render_docs.py --check    # CI: exit 1 when a committed page differs

What it writes (all committed; never edit them by hand, edit a renderer here):

- ``docs/_generated/<stem>.md``: the tables of one results file (``<stem>.json``), made by the
  renderer registered for that stem in :data:`RENDERERS`, or by :func:`generic` for a file that
  has none yet (its scalar settings and the first table-like list it holds). The manual's pages
  include them with ``--8<-- "_generated/<stem>.md"``.
- ``docs/results/index.md``: every results file, each section including its generated page; a
  new results file appears there as soon as it is rendered.
- ``docs/img/results/*.png``: copies of the plots in ``benchmarks/results/``.
- ``README.md``, between ``<!-- glance:begin -->`` and ``<!-- glance:end -->``: one row per
  method (:data:`GLANCE`): the paper's claim, the verdict with its figures, a link.

``--check`` renders into memory and compares: any difference (a hand-edited figure, a results
file changed without re-rendering, a generated page left over from a removed file) is printed
as a unified diff and the exit status is 1.

Adding a results file: run this script; the generic renderer covers it. Adding a renderer:
``@renderer("stem")`` on a function ``(data: dict) -> str`` returning Markdown.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import statistics
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs"
GENERATED = DOCS / "_generated"
IMAGES = DOCS / "img" / "results"
README = ROOT / "README.md"
GLANCE_BEGIN, GLANCE_END = "<!-- glance:begin -->", "<!-- glance:end -->"

Renderer = Callable[[dict[str, Any]], str]
RENDERERS: dict[str, Renderer] = {}
#: stem -> (section of the results index, one-line description)
SECTIONS: dict[str, tuple[str, str]] = {}
ORDER = ["DeepMAD and the Dense Optimizer", "Structure learning (SNG / ASNG)", "HBDE",
         "SWAT-NN", "Pipeline, sweeps, deployment", "History (superseded runs)", "Other"]


def renderer(stem: str, section: str, about: str) -> Callable[[Renderer], Renderer]:
    def register(fn: Renderer) -> Renderer:
        RENDERERS[stem] = fn
        SECTIONS[stem] = (section, about)
        return fn

    return register


# -- formatting ----------------------------------------------------------------------------


def table(header: Sequence[str], rows: Iterable[Sequence[Any]],
          align: str | None = None) -> str:
    """A Markdown table; ``align``: one letter per column, l or r (default: r for numbers)."""
    rows = [["" if v is None else str(v) for v in r] for r in rows]
    if align is None:
        align = "".join("r" if rows and all(_numeric(r[i]) for r in rows if r[i]) else "l"
                        for i in range(len(header)))
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _numeric(text: str) -> bool:
    t = text.replace(",", "").replace("%", "").replace(" ", "").replace("x", "")
    try:
        float(t)
    except ValueError:
        return False
    return True


def pct(x: float | None, nd: int = 2) -> str:
    """A fraction as percent: ``0.9134 -> '91.34 %'``."""
    return "" if x is None else f"{100 * x:.{nd}f} %"


def num(x: float | None, nd: int = 2) -> str:
    """Fixed decimals with thousands separators."""
    return "" if x is None else f"{x:,.{nd}f}"


def sig(x: float | None, digits: int = 3) -> str:
    """``digits`` significant digits, thousands separated, no exponent above 1e-4."""
    if x is None:
        return ""
    if x == 0:
        return "0"
    mag = math.floor(math.log10(abs(x)))
    nd = max(0, digits - 1 - mag)
    if abs(x) < 1e-4:
        return f"{x:.{digits - 1}e}"
    return f"{x:,.{nd}f}"


def intc(x: float | None) -> str:
    return "" if x is None else f"{round(x):,}"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def span(xs: Iterable[float], fmt: Callable[[float], str] = sig, sep: str = "-") -> str:
    xs = list(xs)
    lo, hi = min(xs), max(xs)
    return fmt(lo) if fmt(lo) == fmt(hi) else f"{fmt(lo)}{sep}{fmt(hi)}"


def source(stem: str, data: dict[str, Any]) -> str:
    """The provenance line of a generated page."""
    env = (data.get("environment") or data.get("machine") or {})
    env = env if isinstance(env, dict) else {}
    bits = [f"torch {env['torch']}" if env.get("torch") else None,
            f"recorded {env['created'][:10]}" if env.get("created") else None]
    bits = [b for b in bits if b]
    return (f"*From `benchmarks/results/{stem}.json`" + (f" ({', '.join(bits)})" if bits else "")
            + ".*\n")


# -- DeepMAD and the Dense Optimizer -------------------------------------------------------


@renderer("design_speed", ORDER[0], "DeepMAD search within ResNet-18/34/50's budgets")
def design_speed(d: dict[str, Any]) -> str:
    rows = []
    for label, b in d["budgets"].items():
        objs = [r["objective"] for r in b["runs"]]
        rows.append((f"{label}: {sig(b['budgets']['macs'])} / {sig(b['budgets']['params'])}",
                     f"{b['published']['name']}: {intc(b['published']['objective'])}",
                     f"{intc(min(objs))} to {intc(max(objs))}",
                     f"{b['median_search_seconds']:.2f} / {b['median_cpu_seconds']:.2f}",
                     intc(b["median_candidates_per_second"])))
    n_runs = sum(len(b["runs"]) for b in d["budgets"].values())
    beat = sum(r["beats_published"] for b in d["budgets"].values() for r in b["runs"])
    return (f"{d['candidates']:,} candidates per search, {n_runs // len(d['budgets'])} seeds "
            "per budget, 224x224 input, headless backbone, rho <= 0.3, one process pinned to "
            "one core.\n\n"
            + table(["budget (MACs / params)", "published network (archopt's score)",
                     "objective found", "median search s (wall / CPU)",
                     "median candidates/s"], rows)
            + f"\n{beat} of {n_runs} searches scored above the published network. These are "
            "training-free scores: none of these designs was trained here.\n")


@renderer("dense_bnb", ORDER[0], "Dense Optimizer: exact branch-and-bound, DenseNet-BC budgets")
def dense_bnb(d: dict[str, Any]) -> str:
    rows = []
    for c in d["cases"]:
        des = c["design"]
        rows.append((f"{intc(c['params_budget'])} ({c['budget_label']})", f"{c['beta']:g}",
                     f"{c['wall_seconds']:.2f} / {c['cpu_seconds']:.2f}",
                     intc(c["nodes_explored"]),
                     f"{des['stem']}; {'/'.join(map(str, des['growth']))}; "
                     f"{'/'.join(map(str, des['layers']))}; "
                     f"{'/'.join(map(str, des['kernels']))}",
                     f"{c['gap']:g}", f"{num(c['objective'], 1)} "
                     f"({num(c['baseline']['objective'], 1)})"))
    g = d["grid"]
    same = sum(c["evolution"]["design"] == c["design"] for c in d["cases"])
    evo = [c["evolution"]["seconds"] for c in d["cases"]]
    return (f"{d['resolution']}x{d['resolution']}x{d['in_channels']} input, "
            f"{d['num_classes']} classes, {g['stages']} stages; the grid: growth "
            f"{g['growth'][0]} to {g['growth'][-1]}, {g['layers'][0]} to {g['layers'][-1]} "
            f"layers, kernels {' and '.join(map(str, g['kernels']))} per stage "
            f"({d['cases'][0]['grid_designs']:,} designs). One process pinned to one core.\n\n"
            + table(["params budget", "beta", "s (wall / CPU)", "nodes explored",
                     "design: stem; growth; layers; kernels", "gap",
                     "objective (DenseNet-BC of that size)"], rows, "lrrrlrl")
            + f"\nEvery search ended with gap {max(c['gap'] for c in d['cases']):g}: each "
            "design is the grid's optimum. An evolutionary search of "
            f"{d['cases'][0]['evolution']['candidates']:,} candidates "
            f"({span(evo, lambda x: f'{x:.2f}')} s) found the same design in {same} of "
            f"{len(d['cases'])} cases.\n")


@renderer("dense_ablation", ORDER[0], "Dense Optimizer designs for several beta, trained")
def dense_ablation(d: dict[str, Any]) -> str:
    rows = []
    for m in d["models"]:
        a = m["arch"]
        rows.append((m["name"], f"{a['stem']} / {','.join(map(str, a['growth']))} / "
                     f"{','.join(map(str, a['layers']))} / {','.join(map(str, a['kernels']))}",
                     intc(m["params"]), f"{m['macs'] / 1e6:.1f} M", intc(m["entropy"]),
                     pct(m["test_accuracy"]), pct(m["test_macro_f1"]),
                     intc(m["train_seconds"])))
    r = d["recipe"]
    accs = [m["test_accuracy"] for m in d["models"]]
    f1s = [m["test_macro_f1"] for m in d["models"]]
    return (f"Params budget {intc(d['budgets']['params'])} (DenseNet-BC L=100, k=12 at 28x28x1),"
            f" rho <= {d['budgets']['rho']}; each trained with one recipe ({r['optimizer']}, lr "
            f"{r['lr']}, {r['schedule']}, batch {r['batch_size']}, {r['epochs']} epochs) on "
            f"{d['train_images']:,} {d['dataset']} images, tested on {d['test_images']:,}.\n\n"
            + table(["model", "stem / growth / layers / kernels", "params", "MACs", "entropy",
                     "test acc", "macro-F1", "train s"], rows, "llrrrrrr")
            + f"\nThe spread is {100 * (max(accs) - min(accs)):.2f} points in test accuracy "
            f"and {100 * (max(f1s) - min(f1s)):.2f} in macro-F1, inside the noise of a "
            f"{d['test_images']:,}-image test set (one standard error is about "
            f"{100 * math.sqrt(0.25 / d['test_images']):.1f} point): this schedule cannot "
            "order them.\n")


@renderer("design_vs_baseline", ORDER[0], "A DeepMAD design vs ResNet-20 at equal MACs, trained")
def design_vs_baseline(d: dict[str, Any]) -> str:
    rows = [(m["name"], pct(m["test_accuracy"]), pct(m["test_macro_f1"]), intc(m["params"]),
             f"{m['macs'] / 1e6:.2f} M", m["layers"], intc(m["train_seconds"]))
            for m in d["models"]]
    r = d["recipe"]
    return (f"{d['dataset']}: a seeded {d['train_images']:,}-image training subset, "
            f"{d['test_images']:,} test images, {r['epochs']} epochs, one recipe for both "
            f"({r['optimizer']}, lr {r['lr']}, {r['schedule']}, batch {r['batch_size']}, "
            f"{r['augment']}). The design's only cost budget: the baseline's MACs "
            f"({intc(d['budgets']['macs'])}), rho <= {d['budgets']['rho']}, "
            f"{d['candidates']:,} candidates.\n\n"
            + table(["model", "test accuracy", "macro-F1", "params", "MACs", "layers",
                     "train s"], rows, "lrrrrrr"))


@renderer("sweep_design", ORDER[4], "`archopt design sweep` over five MACs budgets")
def sweep_design(d: dict[str, Any]) -> str:
    rows = [(("* " if r["pareto"] else "") + r["folder"], intc(r["macs"]), intc(r["params"]),
             r["layers"], num(r["objective"], 1), f"{r['effectiveness']:.3f}")
            for r in d["rows"]]
    return (f"{len(d['rows'])} designs ({d['space']} space), {d['wall_seconds']:.1f} s wall "
            f"in all; `*` = on the Pareto front of objective vs MACs.\n\n"
            + table(["design", "MACs", "params", "layers", "objective", "rho"], rows, "lrrrrr")
            + "\n![objective vs MACs](/img/results/sweep_design_pareto.png)\n")


# -- structure ------------------------------------------------------------------------------


@renderer("structure_claim", ORDER[1], "ICANN 2019 unit selection, the paper's dynamics")
def structure_claim(d: dict[str, Any]) -> str:
    s = d["setup"]
    method = [(k, g) for k, g in d["groups"].items() if g["kind"] == "method"]
    method.sort(key=lambda kg: -kg[1]["eps0"])
    rows = []
    for k, g in method:
        label = k.split("=", 1)[1]
        beyond = " (beyond the paper's grid)" if label in s["beyond_paper_grid"] else ""
        rows.append((label + beyond, pct(g["units_kept_fraction"]["median"], 1),
                     f"{g['paper_table1_units_kept_percent']} %"
                     if "paper_table1_units_kept_percent" in g else "",
                     pct(g["weight_usage_rate"]["median"], 1), pct(g["test_error"]["median"]),
                     pct(g["decided_fraction"]["median"], 0)))
    fixed = [g for g in d["groups"].values() if g["kind"] == "fixed"]
    drop = [g for g in d["groups"].values() if g["kind"] == "dropout"]
    brows = [("fixed " + " / ".join(k.split()[1] for k in d["groups"]
                                    if d["groups"][k]["kind"] == "fixed") + " units per layer",
              " / ".join(pct(g["weight_usage_rate"]["median"], 1) for g in fixed),
              " / ".join(pct(g["test_error"]["median"], 2) for g in fixed))]
    brows += [("full + dropout 0.5", pct(g["weight_usage_rate"]["median"], 0),
               pct(g["test_error"]["median"], 1)) for g in drop]
    c = d["comparison"]
    n_runs = len(d["runs"])
    seeds = len(s["seeds"])
    return (f"{s['network']} (d = {s['d']}), {s['data']}; SNG with eta = {s['eta']}, theta0 = "
            f"{s['theta0']}, lambda = {s['lambda']}, batch {s['method_batch']}, "
            f"{s['method_epochs']} epochs; {s['optimizer']}. Baselines see the same samples "
            f"(batch {s['baseline_batch']}, {s['baseline_epochs']} epochs). {seeds} seeds per "
            f"setting, {n_runs} runs in all; medians (quartiles in the file); decided = "
            f"{s['decided']}.\n\n"
            + table(["eps0", "units kept", "paper Table 1 units kept (d = 2,352)",
                     "weight usage", "test error", "decided bits"], rows, "lrrrrr")
            + "\n" + table(["baseline", "weight usage", "test error"], brows, "lll")
            + f"\nAgainst the fixed-structure curve interpolated at each run's weight usage, "
            f"{c['method_better_in_25_100']} of the {c['runs_in_25_100_percent_usage']} method "
            "runs between 25 % and 100 % usage have the lower test error.\n\n"
            "![test error vs units kept and weight usage](/img/results/structure_claim.png)\n")


@renderer("structure_fullwidth", ORDER[1], "the paper's 784x3 network, eps0 = 2^-7, partial")
def structure_fullwidth(d: dict[str, Any]) -> str:
    pts = [t for t in d["trajectory"] if "test_error" in t]
    head = ["epoch (iterations)"] + [f"{t['epoch']} ({t['step']:,})" for t in pts]
    rows = [["units kept (of 2,352)"] + [f"{t['mode_bits']:,}" for t in pts],
            ["mean theta"] + [f"{t['theta_mean']:.3f}" for t in pts],
            ["decided bits"] + [pct(t["decided_fraction"], 0) for t in pts],
            ["test error of M*"] + [pct(t["test_error"]) for t in pts]]
    return (f"784-784-784-784-10, eps0 = {d['penalty']}, SNG with eta = 1/d = 1/{d['d']}; "
            f"{d['epochs_done']} of the {d['epochs_planned']} planned epochs "
            f"({d['iterations_done']:,} iterations) were run, at a median "
            f"{d['seconds_per_epoch_median']:.0f} s per epoch on one thread (the whole "
            f"schedule: ~{d['projected_hours_for_all_epochs']:.1f} h).\n\n"
            + table(head, rows, "l" + "r" * len(pts)))


@renderer("structure_densenet", ORDER[1], "ICANN 2019 DenseNet connection selection, CPU scale")
def structure_densenet(d: dict[str, Any]) -> str:
    runs = {r["name"]: r for r in d["runs"]}
    rows = []
    for p in sorted(d["pairs"], key=lambda p: (-_eps(p["label"]), p["seed"])):
        m = runs[p["name"]]
        rows.append((p["label"], p["seed"], pct(p["usage"], 1),
                     " / ".join(map(str, m["connections_per_block"])),
                     pct(m.get("decided_fraction"), 0), pct(p["method_error"]),
                     pct(p["method_bn_recalibrated_error"]), pct(p["retrained_mstar_error"]),
                     f"{pct(p['random_error'])} ({pct(p['random_usage'], 1)})"))
    full = [r for r in d["runs"] if r["kind"] == "full"]
    bands = [(f"{100 * b['usage_range'][0]:.0f}-{min(100, 100 * b['usage_range'][1]):.0f} %",
              b["pairs"], b["method_wins"], f"{b['median_random_minus_method_points']:+.2f}",
              b["retrained_wins"], f"{b['median_random_minus_retrained_points']:+.2f}")
             for b in d["bands"]]
    dy = d["dynamics"]
    return (f"{d['spec']['name']} (d = {d['d']}) on {d['dataset']}, {d['epochs']} epochs = "
            f"{d['iterations']:,} iterations; SNG eta = {dy['eta']}, lambda = {dy['lambda']}, "
            f"batch {dy['batch_method']} (baselines {dy['batch_baselines']}), lr {dy['lr']}, "
            f"{dy['augment']}. The paper: {d['paper']['network']}.\n\n"
            + table(["eps0", "seed", "weight usage", "live connections per block",
                     "decided bits", "M* test error", "M* after BN re-estimation",
                     "M* retrained", "random selection (its usage)"], rows, "lrrlrrrrr")
            + "\nFull network (batch 64, same iterations): "
            + " / ".join(pct(r["test_error"]) for r in sorted(full, key=lambda r: r["seed"]))
            + " test error (seeds " + " / ".join(str(r["seed"]) for r in full) + ").\n\n"
            + "Per usage band (points: random's test error minus the other's; positive = the "
            "method's structure is better):\n\n"
            + table(["usage", "pairs", "M* wins", "median random - M*", "retrained M* wins",
                     "median random - retrained M*"], bands, "lrrrrr")
            + "\n![test error vs weight usage](/img/results/structure_densenet.png)\n")


def _eps(label: str) -> float:
    label = label.strip()
    sign = -1 if label.startswith("-") else 1
    label = label.lstrip("-")
    return sign * (2.0 ** float(label.split("^")[1]) if "^" in label else float(label))


@renderer("structure_densenet_step", ORDER[1], "cost of one SNG iteration of DenseNet-40 / -16")
def structure_densenet_step(d: dict[str, Any]) -> str:
    rows = [(r["network"], r["d"], intc(r["params_full"]), num(r["seconds_per_step_ms"], 1),
             num(r["paper_iterations_cpu_hours"], 1)) for r in d["runs"]]
    return (f"{d['runs'][0]['steps']} iterations each, {d['threads']} thread, "
            f"{d['dataset']}.\n\n"
            + table(["network", "d", "params", "ms per iteration",
                     "CPU-hours for the paper's 4.7e5 iterations"], rows, "lrrrr"))


@renderer("structure_step", ORDER[1], "cost of one SNG iteration vs fixed training")
def structure_step(d: dict[str, Any]) -> str:
    rows = []
    for t, r in sorted(d["results"].items(), key=lambda kv: int(kv[0])):
        ms = r["ms_per_iteration"]
        rows.append((t, f"{ms['sng']:.2f}", f"{ms['fixed64']:.2f}",
                     f"{r['ratio_sng_to_fixed64']:.2f}", f"{ms['bare']:.2f}",
                     f"{r['gflops']['sng']:.1f}", pct(r["sng_gflops_fraction_of_bare"], 0)))
    return (f"{d['network']}; {d['flops_per_iteration'] / 1e9:.3f} GFLOP per iteration "
            f"(torch.utils.flop_counter agrees: {d['flop_counter_check']}). Median of "
            f"{d['repeats']} x {d['steps']} iterations.\n\n"
            + table(["threads", "SNG ms", "fixed (batch 64) ms", "ratio", "bare chain ms",
                     "SNG GFLOP/s", "share of bare GFLOP/s"], rows))


@renderer("structure_digits", ORDER[1], "SNG vs ASNG on digits: the verb's defaults")
def structure_digits(d: dict[str, Any]) -> str:
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in d["runs"]:
        groups.setdefault((r["optimizer"], r["epochs"]), []).append(r)
    rows = []
    for (opt, ep), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0] != "sng")):
        rs.sort(key=lambda r: r["seed"])
        rows.append((opt.upper(), f"{ep} ({rs[0]['steps']:,})",
                     " / ".join(pct(r["test_accuracy"], 1) for r in rs),
                     " / ".join(pct(r["weight_usage_rate"], 1) for r in rs),
                     " / ".join(pct(r["decided_fraction"], 0) for r in rs)))
    seeds = sorted({r["seed"] for r in d["runs"]})
    return (f"Digits, eps0 = {d['penalty']}, the 3x784 supernet (d = {d['runs'][0]['d']:,}), "
            f"seeds {' / '.join(map(str, seeds))}, the same iterations for both optimisers.\n\n"
            + table(["optimiser", "epochs (steps)", "test accuracy", "weight usage",
                     "decided bits"], rows, "lrrrr"))


@renderer("structure_randomwalk", ORDER[1], "SNG on random losses: when a useless bit decides")
def structure_randomwalk(d: dict[str, Any]) -> str:
    rows = [(r["d"], sig(r["eps0"]), sig(r["eta"]), intc(r["iterations"]),
             intc(r["rule_drift_time"]), sig(r["predicted_scale"]), pct(r["decided_fraction"], 0),
             pct(r["kept_by_mode"], 0)) for r in d["rows"]]
    return table(["d", "eps0", "eta", "iterations", "drift time (the rule)", "predicted scale",
                  "useless bits decided", "kept by M*"], rows)


@renderer("sweep_structure", ORDER[4], "`archopt structure sweep`: in-process vs Ray, resume")
def sweep_structure(d: dict[str, Any]) -> str:
    ip, ray = d["in_process"], d["ray_2_workers"]
    kr = d["kill_and_resume"]
    states = [v["state"] for v in kr["status_at_kill"].values()]
    ran = kr["ran_in_resume"]
    attempts_after = [v["attempts"] for v in kr["status_after_resume"].values()]

    def trials(x: dict[str, Any]) -> str:
        return span(x["trial_seconds"].values(), lambda v: f"{v:.1f}", " to ")

    rows = [("in-process", f"{ip['wall_seconds']:.1f}", trials(ip)),
            (f"Ray, {ray.get('workers', 2)} workers", f"{ray['wall_seconds']:.1f}", trials(ray))]
    g = d["grid"]
    return (f"eps0 in {g['penalties']} x seeds {g['seeds']} on {g['dataset']} ({g['optimizer']},"
            f" {g['epochs']} epochs, one thread per trial, no baselines).\n\n"
            + table(["backend", "wall s", "trials s"], rows, "lrl")
            + f"\nSpeed-up on Ray: {d['speedup_wall']:.2f}x. Per-trial results identical on "
            f"Ray and in-process: {_yes(d['per_trial_results_identical_ray_vs_in_process'])}."
            "\n\n"
            f"Kill and resume: the sweep was killed with SIGKILL {kr['killed_after_seconds']:.1f}"
            f" s in, with {states.count('done')} trials done, {states.count('running')} running "
            f"and {states.count('pending')} pending; the rerun ran {sum(ran.values())} of them "
            f"(the interrupted ones at attempt {max(attempts_after)}) and none of the finished "
            f"ones. Results identical to the uninterrupted sweep: "
            f"{_yes(d['per_trial_results_identical_resumed_vs_in_process'])}. After the SIGKILL, "
            f"{len(kr['processes_left_in_the_killed_sweeps_session'])} processes of the local "
            "Ray the sweep had started were still alive (end them with `ray stop`).\n")


# -- HBDE -------------------------------------------------------------------------------------

_HBDE_ROWS = [("pretrained", "pre-trained (early-stopped)"), ("blocked", "blocked (no search)"),
              ("hbde", "**HBDE**"), ("adam", "Adam continued (lr 1e-3)"),
              ("random-blocks", "DE on random blocks")]


@renderer("hbde_claim", ORDER[2], "the HBDE paper's claim at CPU scale, 3 seeds x 2 settings")
def hbde_claim(d: dict[str, Any]) -> str:
    s = d["setup"]
    rows = []
    for setting, st in d["settings"].items():
        t = st["table"]
        for key, label in _HBDE_ROWS:
            m = t[key]
            extra = ""
            if key == "adam":
                extra = f"{span(m['steps'], intc)} steps"
            elif m.get("function_evaluations") and key != "blocked":
                extra = f"{span(m['function_evaluations'], intc)} FE"
            rows.append((setting, label, f"{100 * m['mean']:.2f} ± {100 * m['std']:.2f} %",
                         f"{100 * m['min']:.2f} - {100 * m['max']:.2f}", extra))
    h = s["hbde"]
    deltas = []
    for setting, st in d["settings"].items():
        t = st["table"]
        deltas.append((setting, f"{100 * t['hbde_minus_pretrained']['mean']:+.3f}",
                       f"{100 * t['hbde_minus_adam']['mean']:+.2f} ± "
                       f"{100 * t['hbde_minus_adam']['std']:.2f}",
                       f"{100 * t['hbde_minus_random-blocks']['mean']:+.1f}"))
    cpu = [c for st in d["settings"].values()
           for c in st["table"]["hbde"]["search_cpu_seconds"]]
    return (f"{s['model']}; pre-training {s['pretrain']['optimizer']} lr "
            f"{s['pretrain']['lr']}, early stopping on {s['pretrain']['early_stopping']} "
            f"(patience {s['pretrain']['patience']}). HBDE: N_bins = {h['n_bins']:,}, NP "
            f"{h['population']}, F {h['F']}, CR {h['CR']}, super-batches of "
            f"{h['super_batch']}, parents re-scored: {h['rescore']}, init range "
            f"`{h['init_range']}`. Each method: {s['seconds_per_run']:g} s of CPU time "
            f"({s['clock']}); HBDE searched {span(cpu, lambda x: f'{x:.1f}')} CPU-s. "
            f"Imbalanced: {s['imbalance']}. Mean ± standard deviation over "
            f"{d['settings']['balanced']['complete_seeds']} seeds.\n\n"
            + table(["setting", "method", "test macro-F1", "min - max", "FE / Adam steps"],
                    rows, "llrrr")
            + "\nDifferences in points of test macro-F1 (mean over seeds):\n\n"
            + table(["setting", "HBDE - pre-trained", "HBDE - Adam", "HBDE - random blocks"],
                    deltas, "lrrr")
            + "\n![test macro-F1 against CPU seconds](/img/results/hbde_claim.png)\n")


def _pm(m: dict[str, Any], fmt: str) -> str:
    """``mean ± std`` of a fraction, in percent (points for differences)."""
    return f"{fmt % (100 * m['mean'])} ± {100 * m['std']:.2f}"


@renderer("refine_compare", ORDER[2], "macro-F1 tuning: HBDE vs Adam, logit adjustment, bias")
def refine_compare(d: dict[str, Any]) -> str:
    s = d["setup"]
    rows = []
    for profile, p in d["profiles"].items():
        for method, m in p["table"].items():
            rows.append((profile, method, ", ".join(m["seeds"]), _pm(m["f1"], "%.2f %%"),
                         _pm(m["f1_minus_pretrained"], "%+.2f"),
                         _pm(m["balanced_accuracy"], "%.2f %%"),
                         _pm(m["balanced_accuracy_minus_pretrained"], "%+.2f"),
                         span(m["cpu_seconds"], lambda x: f"{x:.1f}")))
    return (f"{s['model']}. Imbalance profiles: "
            + "; ".join(f"`{k}`: {v}" for k, v in s["profiles"].items())
            + f" (seed {s['imbalance_seed']}). Validation: {s['validation']}. HBDE: {s['hbde']}"
            f"; {s['hbde_seconds']:g} CPU-s. Adam: {s['adam']}. Logit adjustment: "
            f"{s['logit_adjust']}. Bias tuning: {s['bias']}. Mean ± std over the seeds "
            "listed (test split).\n\n"
            + table(["profile", "method", "seeds", "test macro-F1", "- pre-trained (points)",
                     "balanced accuracy", "- pre-trained (points)", "CPU-s"], rows,
                    "lllrrrrr")
            + "\n![test macro-F1 by method](/img/results/refine_compare.png)\n")


def _shrink_rows(tab: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    rows = []
    for r in tab:
        cpu = r.get("cpu_seconds_total") or {}
        rows.append((r["level"], r["method"], ", ".join(map(str, r["seeds"])),
                     intc(r["params"]["median"]) if isinstance(r.get("params"), dict)
                     else intc(r.get("params")),
                     pct(r["test_error"]["median"]), span([r["test_error"]["min"],
                                                          r["test_error"]["max"]], pct, " - "),
                     num(cpu.get("median"), 0) if cpu else ""))
    return rows


@renderer("shrink_compare", ORDER[1], "learned structure vs Torch-Pruning, random, scratch")
def shrink_compare(d: dict[str, Any]) -> str:
    f = d["full_network"]["test_error"]
    out = (f"{d['network']}: {d['why_narrow']}. Search: {d['search']['optimizer']}, eta "
           f"{d['search']['eta']}, lambda {d['search']['lambda']}, batch "
           f"{d['search']['batch']}, {d['search']['epochs']} epochs. Every method ends at "
           f"archopt's params (within 1 %) and is fine-tuned {d['finetune']['epochs']} epochs "
           f"at batch {d['finetune']['batch']} ({d['finetune']['recipe']}); scratch: "
           f"{d['scratch_epochs']} epochs. Full network {pct(f['median'])} test error. Median "
           f"over seeds; CPU-s = total, search or full training included.\n\n"
           + table(["eps0", "method", "seeds", "params", "test error", "min - max", "CPU-s"],
                   _shrink_rows(d["table"]), "lllrrrr"))
    dn = d.get("densenet")
    if dn:
        tp = dn["torch_pruning"]
        out += (f"\nDenseNet: {dn['network']}; {dn['search']['epochs']} search epochs (batch "
                f"{dn['search']['batch']}, lr {dn['search']['lr']}, {dn['search']['augment']}); "
                f"full network trained {dn['full_network'][0]['epochs']} epochs; fine-tuning "
                f"{dn['finetune']['epochs']} epoch(s), scratch {dn['scratch_epochs']} epochs; "
                f"Torch-Pruning {tp['version']}; seeds {dn['seeds']}; complete: "
                f"{_yes(dn['complete'])}. Median over seeds; MACs beside params.\n\n"
                + table(["eps0", "method", "seeds", "params", "MACs", "test error", "min - max",
                         "CPU-s"],
                        [(*r[:4], intc(t["macs"]["median"]), *r[4:])
                         for r, t in zip(_shrink_rows(dn["table"]), dn["table"], strict=True)],
                        "lllrrrrr"))
    out += "\n" + shrink_verdict(d) + "\n"
    return out + "\n![test error against params](/img/results/shrink_compare.png)\n"


@renderer("design_claim", ORDER[0], "DeepMAD vs equal-budget ResNet and MobileNetV2, trained")
def design_claim(d: dict[str, Any]) -> str:
    r = d["recipe"]
    rows, diffs = [], []
    for g in d["claim"]:
        for net, n in g["networks"].items():
            a = n["test_accuracy"]
            rows.append((g["dataset"], g["budget"], net, n["name"], intc(n["macs"]),
                         intc(n["params"]), num(n.get("latency_ms")),
                         ", ".join(map(str, n["seeds"])), pct(a["mean"]),
                         span([a["min"], a["max"]], pct, " - ")))
        for base, p in g["design_minus_baseline"].items():
            diffs.append((g["dataset"], g["budget"], base,
                          ", ".join(f"s{k}: {100 * v:+.2f}" for k, v in p["per_seed"].items()),
                          f"{100 * p['mean']:+.2f}", _seeds_ahead(p)))
    rk = d["ranking"]
    return (f"One recipe: SGD (Nesterov) lr {r['lr']}, weight decay {r['weight_decay']}, batch "
            f"{r['batch_size']}, {d['epochs']} epochs ({r['warmup_epochs']} warm-up, "
            f"{r['schedule']}), augmentation {_augment(r['augment'])}; rho <= {d['rho']}; "
            f"{d['candidates']:,} design candidates. Runs done: {d['runs_done']} of "
            f"{d['runs_planned']} planned. Latency: batch 1, one thread, torch, measured after "
            "each run's training beside the grid's other training jobs (one or two, on two "
            "cores; median over seeds): it ranks the networks, it is not a quiet-machine "
            "figure.\n\n"
            + table(["data", "budget", "network", "name", "MACs", "params",
                     "latency ms (batch 1)", "seeds", "test accuracy", "min - max"], rows,
                    "llllrrrlrr")
            + "\nDesign minus baseline, points of test accuracy (paired by seed):\n\n"
            + table(["data", "budget", "baseline", "per seed", "mean", "design ahead"], diffs,
                    "lllllr")
            + _design_ranking(rk) + _design_verdict(d)
            + "\n![claim and ranking](/img/results/design_claim.png)\n")


@renderer("claim_step", ORDER[0], "one training step of the claim's networks: cost, floor, "
          "where the time goes")
def claim_step(d: dict[str, Any]) -> str:
    ref = d["dense_conv_reference"]
    classes = list(d["results"][0]["time_share"])
    rows = [(r["budget"], r["name"], intc(r["macs"]), num(r["trainer_cpu_s"], 3),
             num(r["bare_cpu_s"], 3), num(r["trainer_over_bare"]),
             num(r["gflops_per_s_trainer"], 1), *(pct(r["time_share"][c], 0) for c in classes),
             intc(r["projected_run_cpu_s"]),
             (f"{intc(r['recorded_run_cpu_s_median'])} ({r['recorded_runs']})"
              if r.get("recorded_run_cpu_s_median") else ""))
            for r in d["results"]]
    load = d["machine"].get("load_average_1_5_15_at_start") or []
    return (f"Batch {d['batch_size']}, {'x'.join(map(str, d['input_shape']))}, "
            f"{d['threads']} thread, channels-last; process-CPU seconds per step, median of "
            f"{d['repeats']} x {d['steps']} steps (load average at the start: "
            f"{', '.join(f'{x:.1f}' for x in load)}). Trainer: archopt's loader and step; bare: "
            "a plain torch loop on one batch. GFLOP/s: 3x the forward FLOPs of "
            "torch.utils.flop_counter per CPU second; one dense 3x3 convolution (64 channels, "
            f"28x28) reaches {num(ref['gflops_per_s'], 1)} GFLOP/s. Shares: self CPU time of "
            f"one step by operator class. A claim run is {d['steps_per_run']:,} steps: the trainer "
            "step times that (projected) beside the median process-CPU seconds that "
            "design_claim.json records for the finished runs one process trained whole (how many "
            "in brackets; they add evaluation and checkpoints, and ran beside another worker).\n\n"
            + table(["budget", "network", "MACs", "trainer s", "bare s", "trainer / bare",
                     "GFLOP/s", *classes, "run CPU-s (projected)", "run CPU-s (recorded)"],
                    rows, "llrrrrrrrrrrr"))


def _seeds_ahead(p: dict[str, Any], unit: str = "") -> str:
    """How many of a paired comparison's seeds the design is ahead on, then the ties:
    ``"2 of 3<unit>, 1 level"``."""
    level = f", {p['ties']} level" if p.get("ties") else ""
    return f"{p['design_wins']} of {p['n']}{unit}{level}"


def _augment(aug: str | dict[str, str]) -> str:
    """The recipe's augmentation, one for every dataset or per dataset."""
    if isinstance(aug, str):
        return aug
    return ", ".join(f"{v} on {k}" for k, v in aug.items())


def _design_ranking(rk: dict[str, Any]) -> str:
    out = (f"\nRanking at {rk['budget']} MACs ({rk['dataset']}, the same recipe on a seeded "
           f"{rk.get('train_images', 60000):,} of the training images, full test set): "
           f"{rk['architectures']} of {rk['architectures_planned']} architectures trained, "
           f"seed {rk['seed']}")
    if rk.get("seed_noise_abs_diff_median") is not None:
        out += (f"; a second seed for {len(rk['second_seed'])} of them differs by a median "
                f"{100 * rk['seed_noise_abs_diff_median']:.2f} points")
    out += ".\n\n"
    if rk.get("correlations"):
        out += table(["proxy", "Spearman rho", "p", "Kendall tau", "p"],
                     [(k, num(c["spearman"], 2), num(c.get("spearman_p"), 3),
                       num(c["kendall"], 2), num(c.get("kendall_p"), 3))
                      for k, c in rk["correlations"].items()], "lrrrr")
    return out


def _design_verdict(d: dict[str, Any]) -> str:
    v = d.get("verdict")
    if not v:
        return ""
    lines = [f"- {c}" for c in v["claim"]] + ([f"- ranking: {v['ranking']}"]
                                                if v.get("ranking") else [])
    return "\nVerdict (from the figures above):\n\n" + "\n".join(lines) + "\n"


def _hbde_small(d: dict[str, Any]) -> str:
    t, b, h = d["table"], d["budget"], d["hbde"]
    rows = [("pre-trained", num(t["macro_f1_pretrained"], 4), ""),
            ("after blocking", num(t["macro_f1_blocked"], 4), ""),
            ("HBDE", num(t["macro_f1_hbde"], 4),
             f"{t['search_seconds']:.1f} / {t['search_cpu_seconds']:.1f}"),
            (f"Adam, lr {b['adam_lr']:g}, same search time ({t['adam_steps']:,} steps)",
             num(t["macro_f1_adam"], 4),
             f"{t['search_seconds_adam']:.1f} / {t['search_cpu_seconds_adam']:.1f}"),
            (f"DE on random blocks, same search time "
             f"({t['function_evaluations_random_blocks']:,} FE)",
             num(t["macro_f1_random-blocks"], 4),
             f"{t['search_seconds_random-blocks']:.1f} / "
             f"{t['search_cpu_seconds_random-blocks']:.1f}")]
    sweep = "; ".join(f"{r['n_bins']:,} bins -> {r['blocked_dimensions']:,} blocks, "
                      f"{r['test']:.4f}" for r in d["sweep"]["rows"])
    return (f"Fashion-MNIST, `{b['spec']}` ({t['D']:,} parameters) pre-trained "
            f"{b['pretrain_epochs']} epoch with Adam; N_bins = {b['n_bins']:,} gives D' = "
            f"{t['D_prime']:,} ({h['reduction']}x); NP = {b['population']}, G = "
            f"{b['generations']} ({t['function_evaluations']:,} evaluations), super-batch "
            f"{b['super_batch']}, parents re-scored: {b['rescore']}; {h['degenerate_blocks']:,} "
            f"of the {t['D_prime']:,} blocks could not move (run before `init_range=\"bin\"` "
            "became the default).\n\n"
            + table(["test macro-F1", "value", "search s (wall / CPU)"], rows, "lrr")
            + f"\nBlocking sweep (test macro-F1 after blocking): {sweep}.\n")


@renderer("hbde_fashion", ORDER[2], "HBDE on a one-epoch CNN (before `init_range=bin`)")
def hbde_fashion(d: dict[str, Any]) -> str:
    return _hbde_small(d)


@renderer("hbde-rescore_fashion", ORDER[2], "the same with parents re-scored")
def hbde_rescore_fashion(d: dict[str, Any]) -> str:
    return _hbde_small(d)


def _hbde_throughput(d: dict[str, Any]) -> str:
    s = d["setting"]
    rows = [(r["path"] + (f" ({r['chunk']} per call)" if r.get("chunk") else ""),
             f"{r['evals_per_s']:.2f}", f"{r['evals_per_cpu_s']:.2f}") for r in d["results"]]
    return (f"`{s['spec']}` ({s['macs_per_image'] / 1e6:.1f} M MACs per image, "
            f"{s['params']:,} parameters), D' = {s['blocked_dimensions']:,}, super-batch "
            f"{s['super_batch']}, {s['threads']} thread, median of {s['repeats']} rounds.\n\n"
            + table(["evaluation path", "evaluations / wall-s", "evaluations / CPU-s"], rows,
                    "lrr"))


@renderer("hbde_throughput_cpu_resnet18", ORDER[2], "population evaluation, ImageNet-stem R18")
def hbde_throughput_r18(d: dict[str, Any]) -> str:
    return _hbde_throughput(d)


@renderer("hbde_throughput_cpu", ORDER[2], "population evaluation, CIFAR-stem ResNet-18")
def hbde_throughput_cifar(d: dict[str, Any]) -> str:
    return _hbde_throughput(d)


# -- SWAT-NN --------------------------------------------------------------------------------


@renderer("latent_throughput", ORDER[3], "autoencoder training step on a CPU, both presets")
def latent_throughput(d: dict[str, Any]) -> str:
    shares = list(d["results"][0]["profile_share"])
    rows = [(f"{r['preset']}, {r['activation']}", intc(r["params"]),
             f"{r['steps_per_cpu_s']:.1f}",
             f"{r['gflops_per_cpu_s']:.1f} ({pct(r['share_of_matmul_floor'], 0)})",
             *(pct(r["profile_share"][k], 0) for k in shares)) for r in d["results"]]
    by = {r["preset"]: r for r in d["results"]}
    ratio_flops = by["paper"]["flops_per_step"] / by["cpu"]["flops_per_step"]
    ratio_params = by["paper"]["params"] / by["cpu"]["params"]
    speed = [c["steps_per_cpu_s"] / p["steps_per_cpu_s"]
             for c in d["results"] if c["preset"] == "cpu"
             for p in d["results"] if p["preset"] == "paper"
             and p["activation"] == c["activation"]]
    return (f"One training step (a batch of 32 random MLPs), one thread; steps per process-CPU "
            f"second; the matmul floor is a bare 512x512 float32 matmul loop on the same "
            f"thread ({d['matmul_floor_gflops']:.1f} GFLOP/s).\n\n"
            + table(["preset", "params", "steps / CPU-s", "GFLOP / CPU-s (of the floor)",
                     *shares], rows, "l" + "r" * (3 + len(shares)))
            + f"\nThe paper preset does {ratio_flops:.1f}x the FLOPs per step of the CPU preset "
            f"({ratio_params:.1f}x the parameters); the CPU preset runs "
            f"{span(speed, lambda x: f'{x:.1f}')}x as many steps per CPU-second.\n")


def _mdpe_table(v: dict[str, Any]) -> str:
    rows = []
    for depth, r in [*sorted(v["by_depth"].items()), ("all", v)]:
        rows.append((depth, f"{r['val_mdpe']:.1f}", f"{r['val_mdpe_authors']:.1f}",
                     f"{r['constant_mdpe']:.1f} / {r['constant_mdpe_authors']:.1f}",
                     f"{r['affine_mdpe']:.1f} / {r['affine_mdpe_authors']:.1f}",
                     pct(r["beats_constant"], 1),
                     f"{r['coverage_mdpe']:.1f} / {r['coverage_mdpe_authors']:.1f}",
                     pct(r["coverage_beats_constant"], 1)))
    return table(["depth", "MdPE ours", "MdPE authors'", "constant ours / authors'",
                  "affine ours / authors'", "beat the constant",
                  "coverage MdPE ours / authors'", "coverage beats the constant"], rows,
                 "lrrrrrrr")


def _shipped(d: dict[str, Any]) -> str:
    out = []
    for r in d["results"]:
        v = r["shipped_float16"]
        out.append(f"**{r['activation']}**: {r['steps']:,} steps, "
                   f"{r['train_cpu_minutes']:.1f} CPU-minutes, {r['params']:,} parameters, "
                   f"shipped file {r['bytes'] / 1e6:.2f} MB; validation of the shipped "
                   f"(float16) copy on {v['val_mlps']} validation MLPs, coverage on "
                   f"{v['coverage_mlps']}.\n\n" + _mdpe_table(v))
        traj = r.get("val_trajectory")
        if traj:
            pts = ", ".join(f"{t['step'] // 1000}k: {t['val_mdpe']:.1f}" for t in traj
                            if t["step"] % 25000 == 0)
            out.append(f"Encoder MdPE (%) during training: {pts}.\n")
    return "\n".join(out)


@renderer("latent_shipped_sigmoid", ORDER[3], "the shipped sigmoid autoencoder, validated")
def latent_shipped_sigmoid(d: dict[str, Any]) -> str:
    return _shipped(d)


@renderer("latent_shipped_leaky_relu", ORDER[3], "the shipped leaky-ReLU autoencoder, validated")
def latent_shipped_leaky_relu(d: dict[str, Any]) -> str:
    return _shipped(d)


@renderer("latent_coverage_untrained", ORDER[3], "decoder coverage: untrained vs shipped")
def latent_coverage_untrained(d: dict[str, Any]) -> str:
    rows = [(r["activation"], r["model"], intc(r["steps"]), f"{r['val_mdpe']:.1f}",
             f"{r['constant_mdpe']:.1f}", f"{r['coverage_mdpe']:.1f}",
             pct(r["coverage_beats_constant"], 1)) for r in d["results"]]
    return (f"The same validation MLPs ({d['results'][0]['coverage_mlps']}), decoders frozen, "
            "z optimised per MLP (MdPE in %).\n\n"
            + table(["activation", "autoencoder", "steps", "encoder MdPE", "constant MdPE",
                     "coverage MdPE", "coverage beats the constant"], rows, "llrrrrr"))


def _search_rows(d: dict[str, Any], activation: str | None = None) -> list[dict[str, Any]]:
    rows = [r for r in d["results"] if activation is None or r["activation"] == activation]
    seen, out = set(), []
    for r in sorted(rows, key=lambda r: (r["activation"], r["seed"])):
        if (r["activation"], r["seed"]) not in seen:
            seen.add((r["activation"], r["seed"]))
            out.append(r)
    return out


@renderer("latent_search", ORDER[3], "SWAT-NN search vs predict-the-mean vs prune-and-fine-tune")
def latent_search(d: dict[str, Any]) -> str:
    rs = _search_rows(d)
    rows = [(r["activation"], r["seed"], sig(r["test_mse"], 4), r["nonzero_weights"],
             r["active_neurons"], r["depth"],
             f"{sig(r['baseline']['test_mse'], 4)} ({r['baseline']['nonzero_weights']} w)",
             sig(r["baseline"]["dense_test_mse"], 4), sig(r["mean_predictor_test_mse"], 4))
            for r in rs]
    beat_mean = sum(r["test_mse"] < r["mean_predictor_test_mse"] for r in rs)
    beat_base = sum(r["test_mse"] < r["baseline"]["test_mse"] for r in rs)
    base_at_mean = sum(r["baseline"]["test_mse"] >= r["mean_predictor_test_mse"] for r in rs)
    worse = [r["test_mse"] / r["baseline"]["dense_test_mse"] for r in rs]
    cpu = [r["search_cpu_s"] for r in rs]
    s = d["settings"]
    old = d.get("superseded_sigmoid_25k_autoencoder", {}).get("results", [])
    old_text = ""
    if old:
        old_text = ("\nWith the sigmoid autoencoder shipped before (25,000 steps; kept in the "
                    "file) the same sigmoid searches gave "
                    + " / ".join(f"{sig(r['test_mse'], 4)} ({r['nonzero_weights']} w)"
                                 for r in _search_rows({"results": old}))
                    + ", against baselines at those counts of "
                    + " / ".join(sig(r["baseline"]["test_mse"], 4)
                                 for r in _search_rows({"results": old})) + ".\n")
    return (f"The paper's synthetic target (a random sparse MLP of width 5, "
            f"{s['target_depth']} hidden layers, 3 inputs, {s['samples']:,} samples), the latent "
            f"search with its defaults ({s['steps']:,} Adam steps per depth), against "
            "predict-the-mean and a baseline at exactly the search's non-zero count (dense "
            f"Adam, {s['baseline_steps']:,} steps, magnitude-pruned to that count, fine-tuned "
            "with the mask fixed). Test MSE in squared target units.\n\n"
            + table(["activation", "seed", "SWAT test MSE", "non-zero weights",
                     "active neurons", "depth", "baseline at the same count",
                     "dense Adam (unpruned)", "predict-the-mean"], rows, "lrrrrrrrr")
            + f"\nThe search beats predict-the-mean on {beat_mean} of {len(rs)} runs and the "
            f"pruned baseline at its count on {beat_base} of {len(rs)}; that baseline ends at "
            f"or above predict-the-mean on {base_at_mean} of {len(rs)}. Against the unpruned "
            f"Adam network the compact networks' test MSE is {span(worse, lambda x: sig(x, 2))}"
            f" times as large. Each search took {span(cpu, intc)} CPU-s (one thread).\n"
            + old_text)


def _untrained(d: dict[str, Any], activation: str) -> str:
    rs = _search_rows(d, activation)
    rows = [(r["activation"], r["seed"],
             f"{sig(r['test_mse'], 3)} ({r['nonzero_weights']} / {r['active_neurons']})",
             sig(r["baseline"]["test_mse"], 4), sig(r["mean_predictor_test_mse"], 4))
            for r in rs]
    cpu = [r["search_cpu_s"] for r in rs]
    return (f"The same search with an *untrained* {activation} autoencoder (`archopt latent "
            "train --steps 1`, the seed-0 initialisation).\n\n"
            + table(["activation", "seed", "test MSE (weights / neurons)",
                     "baseline at that count", "predict-the-mean"], rows, "lrrrr")
            + f"\nEach search took {span(cpu, intc)} CPU-s (one thread).\n")


@renderer("latent_search_untrained_sigmoid", ORDER[3], "the search with an untrained AE, sigmoid")
def latent_search_untrained_sigmoid(d: dict[str, Any]) -> str:
    return _untrained(d, "sigmoid")


@renderer("latent_search_untrained_leaky_relu", ORDER[3],
          "the search with an untrained AE, leaky-ReLU")
def latent_search_untrained_leaky_relu(d: dict[str, Any]) -> str:
    return _untrained(d, "leaky_relu")


@renderer("latent_geometry", ORDER[3], "is latent distance functional distance? pairs of known "
          "relation, trained vs untrained autoencoders")
def latent_geometry(d: dict[str, Any]) -> str:
    kinds = ["split", "permute", "dead", "deeper"]
    rows = []
    for r in sorted(d["results"], key=lambda r: (r["activation"] != "sigmoid", r["activation"],
                                                 not r["model"].startswith("untrained"),
                                                 r["model"] != "shipped", r["model"])):
        sp, cl = r["spearman"], r["closer"]
        rows.append((r["activation"], r["model"], f"{sp['all']:.3f}", f"{sp['unrelated']:.3f}",
                     f"{sp['perturbed']:.3f}", f"{cl['equivalent']:.3f}",
                     *(f"{cl[k]:.3f}" if k in cl else "n/a" for k in kinds)))
    s = d["settings"]
    return (f"Pairs per activation: {s['bases']} family MLPs per depth, each with a split-unit, "
            "permuted and dead-unit variant (for leaky-ReLU also depth-1 MLPs with an exactly "
            f"equivalent deeper one), {s['unrelated']} unrelated MLPs of the partner's depth and "
            f"3 perturbed copies; output distance on {s['points']:,} inputs. Spearman: latent "
            "vs output distance; closer: how often an equivalent partner is nearer in latent "
            "space than an unrelated one (0.5 = chance).\n\n"
            + table(["activation", "autoencoder", "Spearman all", "unrelated", "perturbed",
                     "closer (all equivalences)", *(f"closer: {k}" for k in kinds)], rows,
                    "ll" + "r" * 8))


@renderer("latent_finetune", ORDER[3], "fine-tuning with the contrastive term (ours) vs a "
          "control")
def latent_finetune(d: dict[str, Any]) -> str:
    rows = []
    for r in sorted(d["results"], key=lambda r: (r["activation"] != "sigmoid", r["activation"],
                                                 r["model"] != "shipped", r["model"])):
        g = r["geometry"]
        rows.append((r["activation"], r["model"], r.get("contrastive_weight", ""),
                     intc(r.get("finetune_steps")), num(r.get("finetune_cpu_minutes"), 1),
                     f"{r['val_mdpe']:.1f}", f"{r['constant_mdpe']:.1f}",
                     f"{g['spearman']['all']:.3f}", f"{g['spearman']['perturbed']:.3f}",
                     f"{g['closer']['equivalent']:.3f}"))
    return ("The shipped autoencoder trained further with its own losses (`ctl`) or with the "
            "contrastive term on equivalent pairs added (`ours`); MdPE in % on the fixed "
            "validation batches; geometry as in latent_geometry.\n\n"
            + table(["activation", "model", "contrastive weight", "extra steps", "CPU-min",
                     "encoder MdPE", "constant MdPE", "Spearman all", "Spearman perturbed",
                     "closer"], rows, "llrrrrrrrr"))


@renderer("latent_compare", ORDER[3], "a fair comparison: the search (trained / untrained AE) "
          "vs L0, IMP with rewinding, prune + fine-tune, dense narrow")
def latent_compare(d: dict[str, Any]) -> str:
    rs = d["results"]
    idx = {(r["target"], r["seed"], r["method"], r.get("matched_to")): r for r in rs}
    base = ["l0", "imp_rewind", "prune_finetune", "dense_narrow"]
    targets = [t for t in ("sigmoid", "leaky_relu", "diabetes") if any(r["target"] == t
                                                                      for r in rs)]
    rows = []
    for t in targets:
        for seed in sorted({r["seed"] for r in rs if r["target"] == t}):
            kinds = sorted({r["method"][7:] for r in rs if r["target"] == t
                            and r["seed"] == seed and r["method"].startswith("search_")},
                           key=lambda k: (k != "trained", k != "untrained", k))
            for k in kinds:
                s = idx[(t, seed, f"search_{k}", None)]
                cells = []
                for b in base:
                    r = idx.get((t, seed, b, k))
                    cells.append("" if r is None else sig(r["test_mse"], 3) + (
                        f" ({r['nonzero_weights']})"
                        if r["nonzero_weights"] != s["nonzero_weights"] else ""))
                mean = idx.get((t, seed, "mean", None))
                rows.append((t, seed, k, f"{sig(s['test_mse'], 3)} ({s['nonzero_weights']})",
                             *cells, sig(mean["test_mse"], 3) if mean else "",
                             intc(s["cpu_s"])))
    wins = []
    for t in targets:
        for k in ("trained", "untrained", "ours"):
            seeds = [s for s in sorted({r["seed"] for r in rs if r["target"] == t})
                     if (t, s, f"search_{k}", None) in idx]
            if not seeds:
                continue
            beaten = []
            for b in base:
                n = sum(idx[(t, s, b, k)]["test_mse"] < idx[(t, s, f"search_{k}", None)]
                        ["test_mse"] for s in seeds if (t, s, b, k) in idx)
                beaten.append(f"{b} {n}/{len(seeds)}")
            cpu = {b: statistics.median(idx[(t, s, b, k)]["cpu_s"] for s in seeds
                                        if (t, s, b, k) in idx) for b in base}
            wins.append((t, k, ", ".join(beaten), intc(statistics.median(
                idx[(t, s, f"search_{k}", None)]["cpu_s"] for s in seeds)),
                ", ".join(f"{b} {intc(c)}" for b, c in cpu.items())))
    vs = []
    for t in targets:
        seeds = [s for s in sorted({r["seed"] for r in rs if r["target"] == t})
                 if (t, s, "search_untrained", None) in idx]
        n = sum(idx[(t, s, "search_untrained", None)]["test_mse"]
                < idx[(t, s, "search_trained", None)]["test_mse"] for s in seeds)
        vs.append(f"{t} {n}/{len(seeds)}")
    st = d["settings"]
    return ("Every method: hidden depths 1-4 x "
            f"{st['restarts']} restarts x {st['steps']:,} full-batch Adam steps, the network "
            "with the lowest validation MSE kept; the baselines at the non-zero count of the "
            "search in the same row (dense narrow: at most that count; a count in brackets "
            "differs). Synthetic targets: the paper's random sparse MLP of width 5, depth 2, "
            f"{st['samples']:,} samples (50/30/20 %); diabetes: scikit-learn's, 3 features, "
            "standardised target. Test MSE (non-zero weights).\n\n"
            + table(["target", "seed", "search AE", "search", "L0", "IMP rewind",
                     "prune + FT", "dense narrow", "mean", "search CPU-s"], rows,
                    "lrlrrrrrrr")
            + "\nHow often each baseline's test MSE is below the search's, and median CPU-s:\n\n"
            + table(["target", "search AE", "baseline beats the search", "search CPU-s",
                     "baselines CPU-s"], wins, "lllrl")
            + "\nThe search with the untrained autoencoder has a lower test MSE than with the "
            "trained one on " + ", ".join(vs) + " seeds.\n")


# -- pipeline, deployment -----------------------------------------------------------------


@renderer("train_throughput", ORDER[4], "training-step throughput, ResNet-18 (CIFAR stem)")
def train_throughput(d: dict[str, Any]) -> str:
    rows, notes = [], []
    for r in d["results"]:
        runs = r["runs"]
        cpu = r.get("cpu_seconds") or {}
        rows.append((r["device"], r["threads"] or "",
                     f"{r['step_ms'] / 1e3:.2f} ({span(runs['step_s'], lambda x: f'{x:.2f}')})",
                     f"{r['step_images_per_s']:.1f}", f"{r['end_to_end_images_per_s']:.1f}",
                     f"{r['loader_ms_per_batch']:.1f} ms ({pct(r['loader_share_of_step'], 1)})",
                     (f"{cpu['step_ms'] / 1e3:.2f} / {cpu['end_to_end_ms'] / 1e3:.2f}"
                      if cpu else "not recorded")))
        key = "end_to_end_cpu_s" if "end_to_end_cpu_s" in runs else "end_to_end_s"
        base = "step_cpu_s" if key == "end_to_end_cpu_s" else "step_s"
        diff = [e - s_ for e, s_ in zip(runs[key], runs[base], strict=True)]
        spread = (max(runs[base]) - min(runs[base])) / statistics.median(runs[base])
        notes.append(
            f"End to end minus step only, paired per repeat ({'CPU' if 'cpu' in key else 'wall'}"
            f" seconds): {', '.join(f'{x:+.2f}' for x in diff)}. End to end does strictly more "
            f"work (the loader: {r['loader_ms_per_batch']:.1f} ms, "
            f"{pct(r['loader_share_of_step'], 1)} of a step), so a lower figure is not a faster "
            "path: the step-only call runs first in every repeat, and on this shared machine "
            f"one step's time varies by {pct(spread, 0)} of its median between repeats, CPU "
            "seconds included (the other core's jobs share memory bandwidth). The difference "
            "is within that spread; what the measurement shows is that the in-memory loader "
            "is not the bottleneck.")
    return (f"`{d['spec']}`, batch {d['batch_size']}, "
            f"{'x'.join(map(str, d['input_shape']))} ({d['macs_per_image'] / 1e6:.0f} M MACs "
            f"per image), median of {d['repeats']} repeats (min-max in brackets)"
            + (f", {d['results'][0]['order']}" if d["results"][0].get("order") else "")
            + ".\n\n"
            + table(["device", "threads", "s per step (wall)", "images/s (step)",
                     "images/s (end to end)", "loader per batch (share)",
                     "CPU s per step: step only / end to end"], rows, "lrrrrrr")
            + "\n" + "\n\n".join(notes) + "\n")


@renderer("export_roundtrip", ORDER[4], "ONNX export round trip of every model family")
def export_roundtrip(d: dict[str, Any]) -> str:
    rows = []
    for r in d["rows"]:
        t, o = r["torch_ms"], r["onnxruntime_ms"]
        rows.append((r["family"], intc(r["params"]), intc(r["bytes"]),
                     f"{r['max_abs_diff']:.1e}", f"{r['max_abs_output']:.1f}",
                     f"{t['1']:.3f}", f"{t['64']:.3f}", f"{o['1']:.3f}", f"{o['64']:.3f}",
                     f"{r['export_cpu_s']:.1f}"))
    speed1 = [r["torch_ms"]["1"] / r["onnxruntime_ms"]["1"] for r in d["rows"]]
    speed64 = [r["torch_ms"]["64"] / r["onnxruntime_ms"]["64"] for r in d["rows"]]
    env = d["environment"]
    return (f"Opset {d['rows'][0]['opset']}, dynamic batch; onnxruntime against PyTorch on a "
            f"batch of {d['check_batch']}; latency in ms per call (the whole batch), "
            f"{d['threads']} intra-op thread; torch {env['torch']}, onnxruntime "
            f"{env.get('onnxruntime', '?')}.\n\n"
            + table(["family", "params", "`.onnx` bytes", "max \\|ort - torch\\|",
                     "max \\|output\\|", "torch b1", "torch b64", "ort b1", "ort b64",
                     "export (CPU s)"], rows, "lrrrrrrrrr")
            + f"\nonnxruntime is {span(speed1, lambda x: f'{x:.0f}')}x faster at batch 1 and "
            f"{span(speed64, lambda x: f'{x:.1f}')}x at batch 64; every export agrees to "
            f"within {max(r['max_abs_diff'] for r in d['rows']):.1e}.\n")


def _walls(c: dict[str, Any]) -> str:
    runs = c.get("wall_s_runs")
    return f"{c['wall_s']:.1f}" + (f" ({', '.join(f'{w:.1f}' for w in runs)})" if runs else "")


@renderer("quickstart_fresh_venv", ORDER[4], "`archopt run` in a fresh venv, beside a busy loop")
def quickstart_fresh_venv(d: dict[str, Any]) -> str:
    rows = []
    for name, c in d["cases"].items():
        if "designed" not in c:
            continue
        env = {k: v for k, v in c["threads_env"].items() if v}
        nets = [("design", c["designed"])] + [(f"{k} baseline", v) for k, v in
                                              (c.get("baselines") or {}).items()]
        for i, (what, n) in enumerate(nets):
            rows.append((name if i == 0 else "",
                         (", ".join(f"{k}={v}" for k, v in env.items()) or "default")
                         if i == 0 else "",
                         c["torch_threads"] if i == 0 else "",
                         _walls(c) if i == 0 else "",
                         f"{what}: {n['name']}", intc(n["params"]), intc(n["macs"]),
                         pct(n["test_accuracy"]), pct(n["test_macro_f1"]),
                         num(n.get("seconds"), 1)))
    return ("`archopt run` (the digits default) from a fresh virtual environment (`pip install "
            "-e .`, no extras), with one CPU-bound busy loop on the other core. Wall seconds: "
            "the median, each run in brackets; the networks' figures are the last run's.\n\n"
            + table(["case", "thread setting", "torch threads", "wall s", "network", "params",
                     "MACs", "test acc", "macro-F1", "train s"], rows, "llrrlrrrrr"))


@renderer("digits_epochs", ORDER[4], "the quick start's epochs: accuracy at fewer epochs")
def digits_epochs(d: dict[str, Any]) -> str:
    rows = []
    for c in sorted(d["cases"].values(), key=lambda c: (c["batch_size"], c["epochs"])):
        for i, (net, n) in enumerate(c["networks"].items()):
            rows.append((c["epochs"] if i == 0 else "", c["batch_size"] if i == 0 else "",
                         f"{net}: {n['name']}", pct(n["test_accuracy_mean"]),
                         ", ".join(pct(a) for a in n["test_accuracy_seeds"]),
                         num(n["train_seconds"], 1)))
    return ("`archopt run --epochs E [--batch-size B] --seeds 3 --threads 1` on digits (the "
            "digits recipe: batch 64, 15 epochs; everything else unchanged). Test accuracy on "
            "the 450 test images (one image = 0.22 points), mean and each seed; train s: "
            "the network's training seconds over its seeds, on a loaded machine (not a "
            "timing).\n\n"
            + table(["epochs", "batch", "network", "test acc (mean)", "per seed",
                     "train s"], rows, "rrlrlr"))


@renderer("quickstart_step", ORDER[4], "the quick start's training step against a bare loop")
def quickstart_step(d: dict[str, Any]) -> str:
    rows = []
    for net, n in d["networks"].items():
        share = n["time_share"]
        rows.append((f"{net}: {n['name']}", num(n["epoch_cpu_s"], 2),
                     num(n["nchw_epoch_cpu_s"], 2), num(n["bare_epoch_cpu_s"], 2),
                     num(n["eval_cpu_s"], 2), num(n["projected_run_cpu_s"], 1),
                     pct(share["convolution"], 0), pct(share["batch norm"], 0)))
    return (f"One epoch of each quick-start network on digits ({d['batch_size']} images a "
            f"batch, {next(iter(d['networks'].values()))['steps_per_epoch']} steps), one "
            "thread, process-CPU seconds (median of "
            f"{d['repeats']}): archopt's step channels-last (the recipe) and NCHW, a bare torch "
            "loop on the same batches, one evaluation of the test images; run = (epoch + "
            f"evaluation) x {d['epochs']} epochs (all three: "
            f"{num(d['projected_training_cpu_s'], 1)} s); the share of the step's CPU time in "
            "convolutions and batch norm (torch.profiler).\n\n"
            + table(["network", "epoch s", "NCHW s", "bare loop s", "eval s", "run s",
                     "convolution", "batch norm"], rows, "lrrrrrrr"))


@renderer("bad_input_census", ORDER[4], "116 bad inputs through the `archopt` command")
def bad_input_census(d: dict[str, Any]) -> str:
    rows = [(k, v["tried"], v["handled"]) for k, v in d["by_kind"].items()]
    rows.append(("**all**", d["total"]["tried"], d["total"]["handled"]))
    return (f"{d['rule']}\n\n" + table(["kind of input", "tried", "handled"], rows, "lrr"))


# -- history ------------------------------------------------------------------------------


@renderer("structure_mnist", ORDER[5], "unit selection, 3 epochs, eta scaled 167x (superseded)")
def structure_mnist(d: dict[str, Any]) -> str:
    method = {m["label"]: m for m in d["method"]}
    rows = []
    for c in d["comparison"]:
        m = method.get(c["label"], {})
        units = m.get("units_per_layer", [])
        rows.append((c["label"], pct(sum(units) / 2352, 1) if units else "",
                     pct(c["weight_usage_rate"], 1), " / ".join(map(str, units)),
                     pct(c["test_error"]), f"width {c['baseline'].lstrip('w')}",
                     pct(c["baseline_test_error"])))
    return (f"The paper's 784x3 MLP, {d['optimizer'].upper()}, {d['epochs_method']} epochs "
            f"({d['steps_method']:,} steps), eta scaled to {d['theta_lr']:.4f} "
            f"({d['theta_lr_rule']}); baselines: fixed uniform widths at the same weight "
            f"count, {d['epochs_baselines']} epochs at twice the batch.\n\n"
            + table(["eps0", "units kept", "weight usage", "units per layer", "test error",
                     "uniform baseline", "its test error"], rows, "lrrlrlr")
            + "\n![test error vs weight usage](/img/results/structure_mnist.png)\n")


@renderer("structure_mnist_asng20", ORDER[5], "unit selection with ASNG, 20 epochs")
def structure_mnist_asng20(d: dict[str, Any]) -> str:
    rows = [(sig(r["penalty"]), pct(r["weight_usage_rate"], 1),
             " / ".join(map(str, r["units_per_layer"])), pct(r["test_error"]),
             f"{r['theta_mean']:.2f} / {pct(r['theta_decided'], 1)}") for r in d["runs"]]
    return (f"`{d['command']}` ({d['runs'][0]['steps']:,} steps).\n\n"
            + table(["eps0", "weight usage", "units per layer", "test error",
                     "theta: mean / share decided"], rows, "lrlrr"))


@renderer("quickstart", ORDER[5], "`archopt run` beside a busy loop (an earlier measurement)")
def quickstart(d: dict[str, Any]) -> str:
    rows = [(name, c.get("torch_threads", ""), f"{c['wall_s']:.1f}",
             "timed out" if c.get("timed_out") else c.get("rc"))
            for name, c in d["cases"].items() if "wall_s" in c]
    return table(["case", "torch threads", "wall s", "exit status"], rows, "lrrl")


# -- generic ------------------------------------------------------------------------------

_TABLE_KEYS = ("rows", "results", "cases", "runs", "models", "table", "summary")


def _scalar(v: Any) -> bool:
    return isinstance(v, (int, float, str, bool)) or v is None


def _cell(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v).lower() if v is not None else ""
    if isinstance(v, float):
        return sig(v, 4)
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def generic(d: dict[str, Any]) -> str:
    """A results file with no renderer yet: its scalar settings and its first list of records
    as a table (scalar fields only, at most 10 columns and 40 rows)."""
    out = []
    settings = [(k, _cell(v)) for k, v in d.items() if _scalar(v) and k != "benchmark"]
    if settings:
        out.append(table(["setting", "value"], settings, "ll"))
    for key in _TABLE_KEYS:
        rows = d.get(key)
        if isinstance(rows, dict) and rows and all(isinstance(v, dict) for v in rows.values()):
            rows = [{"name": k, **v} for k, v in rows.items()]
        if isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows):
            cols: list[str] = []
            for r in rows:
                cols += [k for k, v in r.items() if _scalar(v) and k not in cols]
            cols = cols[:10]
            body = [[_cell(r.get(c)) for c in cols] for r in rows[:40]]
            more = f"\n({len(rows) - 40} more rows in the file.)\n" if len(rows) > 40 else ""
            out.append(f"`{key}`:\n\n" + table(cols, body) + more)
            break
    if not out:
        out.append("(No table-like content; see the file.)\n")
    return "*No renderer for this file yet: its settings and first table as recorded.*\n\n" + \
        "\n".join(out)


# -- README: results at a glance ----------------------------------------------------------


def _load(stem: str) -> dict[str, Any]:
    return json.loads((RESULTS / f"{stem}.json").read_text(encoding="utf-8"))


def glance_deepmad() -> tuple[str, str, str, str]:
    d = _load("design_speed")
    runs = [r for b in d["budgets"].values() for r in b["runs"]]
    gain = [r["objective"] / b["published"]["objective"] - 1 for b in d["budgets"].values()
            for r in b["runs"]]
    secs = statistics.median(r["search_seconds"] for r in runs)
    return ("DeepMAD (CVPR 2023)", "entropy-maximising design beats hand-designed nets at "
            "equal budgets, training-free",
            f"Scores reproduce: {sum(r['beats_published'] for r in runs)}/{len(runs)} searches "
            f"beat the published DeepMAD-R18/34/50 objective (+{100 * min(gain):.1f} to "
            f"+{100 * max(gain):.1f} %) in ~{secs:.0f} s each;"
            " accuracy not reproduced (no ImageNet here)" + _glance_design_claim(),
            "methods/deepmad.md")


def _glance_design_claim() -> str:
    """The trained equal-budget comparison so far (design_claim.json), or nothing."""
    if not (RESULTS / "design_claim.json").exists():
        return ""
    d = _load("design_claim")
    out = []
    for g in d["claim"]:
        bits = [f"{100 * p['mean']:+.2f} points vs {g['networks'][base]['name']} "
                f"({_seeds_ahead(p, ' seeds ahead')})"
                for base, p in g["design_minus_baseline"].items()]
        if bits:
            out.append(f"{g['dataset']} {g['budget']} MACs" + ("" if g["complete"] else
                                                               " (partial)") + ": design "
                       + ", ".join(bits))
    rk = d["ranking"].get("spearman")
    om = d["ranking"].get("objective_minus", {}).get("macs")
    if rk:
        out.append(f"ranking {d['ranking']['architectures']} architectures: Spearman "
                   f"objective {rk['objective']:.2f}, params {rk['params']:.2f}, MACs "
                   f"{rk['macs']:.2f}"
                   + (f" (objective - MACs {om['difference']:+.2f}, interval "
                      f"{om['low']:+.2f} to {om['high']:+.2f})" if om else "")
                   + (f"; the design ranks {d['ranking']['design_rank']} of "
                      f"{d['ranking']['architectures']} by accuracy"
                      if "design_rank" in d["ranking"] else ""))
    if not out:
        return ""
    partial = ("; a group marked partial is unfinished"
               if d["runs_done"] < d["runs_planned"] else "")
    return (f". Trained at equal budgets ({d['runs_done']} of {d['runs_planned']} planned "
            f"runs{partial}): " + "; ".join(out))


def glance_dense() -> tuple[str, str, str, str]:
    d = _load("dense_bnb")
    a = _load("dense_ablation")
    accs = [m["test_accuracy"] for m in a["models"]]
    return ("Dense Optimizer (arXiv 2410.07499)", "entropy-optimal DenseNet-like designs "
            "beat DenseNet-BC at equal params",
            f"Exact optimum found (gap 0 in {len(d['cases'])}/{len(d['cases'])} cases, "
            f"<= {max(c['wall_seconds'] for c in d['cases']):.1f} s); trained on a CPU "
            f"schedule all designs are within {100 * (max(accs) - min(accs)):.2f} points "
            "of DenseNet-BC: not separable", "methods/dense-optimizer.md")


def glance_structure() -> tuple[str, str, str, str]:
    c = _load("structure_claim")["comparison"]
    dn = _load("structure_densenet")
    wins = sum(b["method_wins"] for b in dn["bands"])
    pairs = sum(b["pairs"] for b in dn["bands"])
    low = [b for b in dn["bands"] if b["usage_range"][1] <= 0.6]
    rw = sum(b["retrained_wins"] for b in low)
    rp = sum(b["retrained_pairs"] for b in low)
    return ("SNG / ASNG + complexity penalty (AAAI 2018, ICANN 2019)",
            "learned structures beat fixed / random ones at equal weight usage",
            f"Not reproduced as stated: the method's own network loses (MLP: "
            f"{c['method_better_in_25_100']}/{c['runs_in_25_100_percent_usage']} runs better "
            f"than fixed widths; DenseNet: {wins}/{pairs} vs random); its structures "
            f"retrained from scratch win {rw}/{rp} below 60 % usage" + _glance_shrink(),
            "methods/structure.md")


def _shrink_counts(pairs: list[dict[str, Any]]) -> str:
    """Per rival, over every level: seed pairs archopt wins / pairs, and the median over those
    pairs of the rival's error minus archopt's in points (positive: archopt better)."""
    out = []
    for v in dict.fromkeys(p["versus"] for p in pairs):
        sel = [p for p in pairs if p["versus"] == v]
        n = sum(len(p["seeds"]) for p in sel)
        wins = sum(p["archopt_wins"] for p in sel)
        med = statistics.median(x for p in sel for x in p["points_archopt_better"])
        out.append(f"{v} {wins}/{n} ({med:+.2f})")
    return ", ".join(out)


def shrink_verdict(d: dict[str, Any]) -> str:
    """The learned structure against each rival, both tasks, from shrink_compare.json."""
    out = (f"Seed pairs in which archopt's fine-tuned structure has less test error than the "
           f"rival, over every size (median of the rival's error minus archopt's, points; "
           f"positive: archopt better). MLP on MNIST: {_shrink_counts(d['pairs_vs_archopt'])}.")
    dn = _dn_clause(d)
    return out + (f" {dn}." if dn else "")


def _dn_clause(d: dict[str, Any]) -> str:
    """The DenseNet task's counts (shrink_compare.json), or nothing before its first pair."""
    dn = d.get("densenet") or {}
    if not dn.get("pairs_vs_archopt"):
        return ""
    return (f"DenseNet on Fashion-MNIST ({len(dn['full_network'])} seed(s), "
            f"{len(dn['search']['eps0_levels'])} sizes"
            f"{'' if dn['complete'] else ', grid incomplete'}): "
            f"{_shrink_counts(dn['pairs_vs_archopt'])}")


def _glance_shrink() -> str:
    """Learned structure vs Torch-Pruning at equal params (shrink_compare.json), or nothing."""
    if not (RESULTS / "shrink_compare.json").exists():
        return ""
    d = _load("shrink_compare")
    t = d["table"]
    err = {(r["level"], r["method"]): r["test_error"]["median"] for r in t}
    levels = sorted({r["level"] for r in t})
    lose = sum(err[(lv, "archopt")] > err[(lv, "tp-magnitude")] for lv in levels)
    gap = [100 * (err[(lv, "archopt")] - err[(lv, "tp-magnitude")]) for lv in levels]
    out = (f". Against Torch-Pruning at equal params and fine-tuning (MLP, MNIST, 3 seeds) "
           f"the learned structure loses at {lose}/{len(levels)} sizes "
           f"({span(gap, lambda x: f'{x:.2f}')} points more error)")
    dn = _dn_clause(d)
    return out + (f"; seed pairs it wins, {dn} (median points, + = archopt better)" if dn else "")


def glance_hbde() -> tuple[str, str, str, str]:
    st = _load("hbde_claim")["settings"]
    b, i = st["balanced"]["table"], st["imbalanced"]["table"]
    moved = (f"{100 * b['hbde_minus_pretrained']['mean']:+.2f} / "
             f"{100 * i['hbde_minus_pretrained']['mean']:+.2f}")
    return ("HBDE (arXiv 2408.07194)", "fine-tuning blocked weights with DE raises macro-F1 "
            "and beats continued Adam",
            f"Not reproduced: HBDE moved macro-F1 by {moved} points (balanced / "
            f"imbalanced); continued Adam beat it by {-100 * i['hbde_minus_adam']['mean']:.2f} "
            "points on the imbalanced data" + _glance_refine(), "methods/hbde.md")


def _glance_refine() -> str:
    """Refine methods side by side (refine_compare.json), or nothing."""
    if not (RESULTS / "refine_compare.json").exists():
        return ""
    bits = []
    for prof, p in _load("refine_compare")["profiles"].items():
        t = p["table"]
        seeds = len(t["hbde"]["seeds"]) if "hbde" in t else 0
        parts = ", ".join(f"{m} {100 * t[m]['f1_minus_pretrained']['mean']:+.2f}"
                          for m in ("hbde", "adam", "bias", "logit-adjust") if m in t)
        bits.append(f"{prof} ({seeds} seed{'s' if seeds != 1 else ''}): {parts}")
    done = all(len(p["table"].get("hbde", {}).get("seeds", [])) >= 3
               for p in _load("refine_compare")["profiles"].values())
    return (". Test macro-F1 points over the pre-trained model, " + "; ".join(bits)
            + ("" if done else " (partial)"))


def glance_swat() -> tuple[str, str, str, str]:
    s = _load("latent_search")
    rs = _search_rows(s)
    beat = sum(r["test_mse"] < r["baseline"]["test_mse"] for r in rs)
    u = _search_rows(_load("latent_search_untrained_sigmoid"), "sigmoid") + _search_rows(
        _load("latent_search_untrained_leaky_relu"), "leaky_relu")
    trained = {(r["activation"], r["seed"]): r for r in rs}
    better = sum(r["test_mse"] < trained[(r["activation"], r["seed"])]["test_mse"] for r in u
                 if (r["activation"], r["seed"]) in trained)
    return ("SWAT-NN (arXiv 2410.08339)", "searching an autoencoder's latent space finds "
            "compact MLPs, weights and shape together",
            f"Partly: the search beats prune-and-fine-tune at equal non-zero count on "
            f"{beat}/{len(rs)} runs, but an *untrained* autoencoder does better on "
            f"{better}/{len(u)}: the learned latent space is not what helps"
            + _glance_latent(), "methods/swat-nn.md")


def _glance_latent() -> str:
    """The fair comparison (latent_compare.json), or nothing."""
    if not (RESULTS / "latent_compare.json").exists():
        return ""
    text = (GENERATED / "latent_compare.md").read_text(encoding="utf-8") \
        if (GENERATED / "latent_compare.md").exists() else ""
    line = next((ln for ln in text.splitlines() if ln.startswith("The search with the "
                                                                    "untrained")), "")
    wins: dict[str, list[int]] = {}
    for r in _load("latent_compare")["summary"]:
        if r.get("matched_to") == "trained" and r.get("beats_search"):
            k, n = (int(x) for x in r["beats_search"].split("/"))
            w = wins.setdefault(r["method"].replace("_", " "), [0, 0])
            w[0], w[1] = w[0] + k, w[1] + n
    beaten = ", ".join(f"{m} {k}/{n}" for m, (k, n) in sorted(wins.items()))
    return (". Beside L0, IMP-rewind, prune + fine-tune and a dense narrow MLP with equal "
            "restarts, steps and validation selection (3 targets x 5 seeds; counts in the "
            "manual)" + (f": {line.rstrip('.').lower()}" if line else "")
            + (f"; each baseline has a lower test mse than the trained-autoencoder search "
               f"at the search's non-zero count on ({beaten}) runs: the learned latent "
               "space does not help; L0 and a dense narrow MLP are the better tools"
               if beaten else ""))


GLANCE: list[Callable[[], tuple[str, str, str, str]]] = [
    glance_deepmad, glance_dense, glance_structure, glance_hbde, glance_swat]


def render_glance(prefix: str = "docs/") -> str:
    """The results-at-a-glance table; links relative to ``prefix`` (the README's: docs/)."""
    rows = []
    for fn in GLANCE:
        method, claim, verdict, link = fn()
        rows.append((method, claim, verdict, f"[details]({prefix}{link})"))
    return table(["method", "the paper's claim", "our verdict (CPU scale)", "manual"], rows,
                 "llll")


# -- assembling -----------------------------------------------------------------------------


def render_all() -> dict[Path, bytes]:
    """Every generated file: path -> content."""
    out: dict[Path, bytes] = {}
    stems = sorted(p.stem for p in RESULTS.glob("*.json"))
    by_section: dict[str, list[str]] = {}
    for stem in stems:
        data = _load(stem)
        fn = RENDERERS.get(stem, generic)
        body = source(stem, data) + "\n" + fn(data)
        out[GENERATED / f"{stem}.md"] = body.encode("utf-8")
        section = SECTIONS.get(stem, ("Other", str(data.get("benchmark", stem))))[0]
        by_section.setdefault(section, []).append(stem)
    for png in sorted(RESULTS.glob("*.png")):
        out[IMAGES / png.name] = png.read_bytes()
    index = ["# Every results file\n",
             "Generated by `python benchmarks/render_docs.py` from `benchmarks/results/*.json`; "
             "do not edit. Each section is one results file, rendered by its renderer (or the "
             "generic one, for a file that has none yet). The method pages quote the same "
             "tables with their verdicts.\n"]
    for section in sorted(by_section, key=lambda s: ORDER.index(s) if s in ORDER else 99):
        index.append(f"## {section}\n")
        for stem in by_section[section]:
            about = SECTIONS.get(stem, (None, str(_load(stem).get("benchmark", stem))))[1]
            index.append(f"### `{stem}`: {about}\n\n--8<-- \"_generated/{stem}.md\"\n")
    out[DOCS / "results" / "index.md"] = "\n".join(index).encode("utf-8")
    out[GENERATED / "glance.md"] = render_glance("").encode("utf-8")
    if "shrink_compare" in stems:  # quoted by methods/structure.md
        sc = _load("shrink_compare")
        out[GENERATED / "shrink_compare_verdict.md"] = (
            source("shrink_compare", sc) + "\n" + shrink_verdict(sc) + "\n").encode("utf-8")
    readme = README.read_text(encoding="utf-8")
    if GLANCE_BEGIN in readme and GLANCE_END in readme:
        head, rest = readme.split(GLANCE_BEGIN, 1)
        _, tail = rest.split(GLANCE_END, 1)
        readme = (head + GLANCE_BEGIN + "\n" + render_glance() + GLANCE_END + tail)
    out[README] = readme.encode("utf-8")
    return out


def stale(rendered: dict[Path, bytes]) -> list[Path]:
    """Generated files on disk that no results file produces any more."""
    on_disk = [*GENERATED.glob("*.md"), *IMAGES.glob("*.png")]
    return sorted(p for p in on_disk if p not in rendered)


def check(rendered: dict[Path, bytes]) -> list[str]:
    """The differences between ``rendered`` and the files on disk, as readable lines."""
    problems = []
    for path, content in rendered.items():
        rel = path.relative_to(ROOT)
        if not path.exists():
            problems.append(f"{rel}: missing (run python benchmarks/render_docs.py)")
            continue
        have = path.read_bytes()
        if have == content:
            continue
        if path.suffix == ".png":
            problems.append(f"{rel}: differs from benchmarks/results/{path.name}")
            continue
        diff = difflib.unified_diff(have.decode("utf-8").splitlines(),
                                    content.decode("utf-8").splitlines(),
                                    f"{rel} (committed)", f"{rel} (from the results files)",
                                    lineterm="", n=0)
        problems.append(f"{rel}: differs from what the results files give:\n"
                        + "\n".join(diff))
    problems += [f"{p.relative_to(ROOT)}: no results file renders it any more"
                 for p in stale(rendered)]
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true",
                    help="compare with the committed pages; exit 1 on any difference")
    args = ap.parse_args(argv)
    rendered = render_all()
    if args.check:
        problems = check(rendered)
        for p in problems:
            print(p)
        n = len([p for p in rendered if p.suffix == ".md"])
        print(f"render check: {len(problems)} difference(s) in {n} generated pages"
              if problems else f"render check: all {n} generated pages match the results files")
        return 1 if problems else 0
    for path, content in rendered.items():
        if not path.exists() or path.read_bytes() != content:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            print(f"wrote {path.relative_to(ROOT)}")
    for p in stale(rendered):
        p.unlink()
        print(f"removed {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
