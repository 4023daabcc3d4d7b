"""``report.md`` and its plots for an ``archopt run`` result folder.

Everything is rebuilt from the files in the folder (``archopt report DIR``): the run's
``summary.json`` and ``config.json``, the design folder and the two training folders. Nothing is
recomputed but the training-free scores.
"""

from __future__ import annotations

import datetime as _dt
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from archopt.errors import ArchoptError
from archopt.runs import atomic_write_text, read_json, read_jsonl
from archopt.runs.plotting import new_figure, save_png
from archopt.spaces import ArchSpec, load_spec

__all__ = ["build_report", "results_rows"]

COLUMNS = ("model", "test accuracy", "test macro-F1", "params", "MACs", "CPU latency (ms/img)",
           "batch 64 (ms/img)", "ONNX Runtime (ms/img)", "entropy", "effectiveness",
           "params / design", "MACs / design", "latency / design")


def _pct(v: Any) -> str:
    return "-" if v is None else f"{100 * float(v):.2f} %"


def _num(v: Any, fmt: str = ",.0f") -> str:
    return "-" if v is None else format(float(v), fmt)


#: The results table's rows after the baselines: summary key, report label, short label.
ROW_LABELS = (("structured", "designed + structure", "+ structure"),
              ("refined", "designed + HBDE (macro-F1)", "+ HBDE"))


def baseline_rows(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The baselines of a run summary, family -> row (a summary written before equal-budget
    baselines has one ``baseline``: returned as ``{"baseline": row}``)."""
    if summary.get("baselines"):
        return dict(summary["baselines"])
    return {"baseline": summary["baseline"]} if summary.get("baseline") else {}


def results_rows(summary: dict[str, Any], *, short: bool = False) -> list[tuple[Any, ...]]:
    """The results table's rows: (model, acc, macro-F1, params, MACs, latency (torch, batch 1),
    latency (torch, batch 64), latency (onnxruntime, batch 1), entropy, rho, params ratio,
    MACs ratio, latency ratio) -- latencies in ms per example, ratios baseline / design, None
    where the summary lacks them (older summaries have batch-1 torch only); ``short`` labels for
    a terminal (the report's labels name the baselines). The HBDE row has macro-F1, params and
    MACs only."""
    def model(name: str, m: dict[str, Any]) -> tuple[Any, ...]:
        return (name, m.get("test_accuracy"), m.get("test_macro_f1"), m.get("params"),
                m.get("macs"), m.get("latency_ms"), m.get("latency_ms_b64"),
                m.get("latency_ms_onnxruntime"), m.get("entropy"), m.get("effectiveness"),
                m.get("params_ratio"), m.get("macs_ratio"), m.get("latency_ms_ratio"))

    rows = []
    if summary.get("designed"):
        rows.append(model("designed" if short else "designed (DeepMAD)", summary["designed"]))
    for fam, m in baseline_rows(summary).items():
        rows.append(model(fam if short else f"{fam}: {m.get('name', '?')}", m))
    for key, label, brief in ROW_LABELS:
        m = summary.get(key)
        if not m:
            continue
        name = brief if short else label
        if key == "refined" and m.get("method", "hbde") != "hbde":  # "+ HBDE" -> "+ bias"
            name = name.replace("HBDE", m["method"])
        if key == "refined":
            rows.append((name, None, m.get("test_macro_f1"), m.get("params"), m.get("macs"),
                         None, None, None, None, None, None, None, None))
        else:
            rows.append(model(name, m))
    return rows


def _structure_text(st: dict[str, Any] | None) -> str:
    """The report's section on the structure stage (empty when it did not run)."""
    if not st:
        return ""
    per = ", ".join(f"{full} -> {kept}" for full, kept in
                    zip(st["btn_full"], st["btn_per_superblock"], strict=True))
    return (
        "\n## Structure learning (channel selection)\n\n"
        f"The trained designed network was fine-tuned for {st['epochs']} epochs "
        f"({st['steps']:,} steps) jointly with a Bernoulli distribution over the inner "
        f"(bottleneck) channels of each superblock ({st['optimizer'].upper()}, complexity "
        f"penalty eps0 = {st['penalty']:g}, c_i = the parameters a channel carries); the final "
        "structure (theta >= 0.5) was compacted to a smaller ResNet. Inner channels per "
        f"superblock: {per}. Weight usage {_pct(st['weight_usage_rate'])} "
        f"({_num(st['params'])} of {_num(st['params_full'])} params), MACs {_num(st['macs'])} "
        f"of {_num(st['macs_full'])}; the compact network's logits equal the masked "
        f"supernet's to {st['compact_max_abs_logit_difference']:.1e}. Details: "
        "`structure/summary.json`, spec: `structure/arch.json`.\n")


def _markdown_table(rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = [str(r[0]), _pct(r[1]), _pct(r[2]), _num(r[3]), _num(r[4]),
                 _num(r[5], ".3f"), _num(r[6], ".4f"), _num(r[7], ".4f"), _num(r[8], ",.1f"),
                 _num(r[9], ".3f"), _num(r[10], ".2f"), _num(r[11], ".2f"), _num(r[12], ".2f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _latency_note(summary: dict[str, Any]) -> str:
    """What the latency columns measured (from the designed network's summary)."""
    d = summary.get("designed") or {}
    if d.get("latency_threads") is None:  # a summary written before torch.utils.benchmark
        return "Latency: median CPU forward time of one image (batch 1)."
    ort = ("; ONNX Runtime: the exported model at batch 1 with the same threads"
           if d.get("latency_ms_onnxruntime") is not None else
           "; ONNX Runtime: not measured (pip install 'archopt[onnx]')")
    return (f"Latency: CPU forward time per image by torch.utils.benchmark (median of "
            f"blocked_autorange), batch 1 and batch 64, {d['latency_threads']} thread(s){ort}.")


def _plot_scores(specs: dict[str, ArchSpec], rho0: float | None, path: Path) -> Path:
    from archopt.design import score_spec

    fig = new_figure((11.0, 3.8))
    ax1, ax2 = fig.subplots(1, 2)
    for i, (label, spec) in enumerate(specs.items()):
        s = score_spec(spec)
        stages = list(range(1, len(s.stage_entropies) + 1))
        ax1.plot(stages, s.stage_entropies, marker="o", color=f"C{i}",
                 label=f"{label} (H = {s.entropy:,.0f})")
        ax2.plot(stages, s.stage_effectiveness, marker="o", color=f"C{i}",
                 label=f"{label} (rho = {s.effectiveness:.3f})")
    if rho0 is not None:
        ax2.axhline(rho0, color="C3", ls="--", lw=1, label=f"rho_0 = {rho0}")
    ax1.set_title("stage entropy H_i (DeepMAD multi-scale entropy)", fontsize=10)
    ax2.set_title("effectiveness rho_i at each stage end", fontsize=10)
    for ax in (ax1, ax2):
        ax.set_xlabel("stage")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_png(fig, path)


def _plot_curves(histories: dict[str, list[dict[str, Any]]], path: Path) -> Path:
    fig = new_figure((11.0, 3.8))
    ax1, ax2 = fig.subplots(1, 2)
    for i, (label, rows) in enumerate(histories.items()):
        ep = [r["epoch"] for r in rows]
        ax1.plot(ep, [r.get("train_loss") for r in rows], color=f"C{i}", label=f"{label} train")
        ax1.plot(ep, [r.get("test_loss") for r in rows], color=f"C{i}", ls="--",
                 label=f"{label} test")
        ax2.plot(ep, [r.get("test_accuracy") for r in rows], color=f"C{i}", marker="o", ms=3,
                 label=label)
    ax1.set_title("loss (cross-entropy)", fontsize=10)
    ax2.set_title("test accuracy", fontsize=10)
    for ax in (ax1, ax2):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_png(fig, path)


def _design_command(run: dict[str, Any], design_cfg: dict[str, Any], out: str) -> str:
    parts = ["archopt", "design", "--space", run["space"], "--budget-macs",
             f"{run['budget_macs']:g}", "--budget-params", f"{run['budget_params']:g}",
             "--rho", f"{run['rho']:g}", "--resolution", str(design_cfg.get("resolution")),
             "--in-channels", str(design_cfg.get("in_channels")), "--num-classes",
             str(design_cfg.get("num_classes")), "--candidates", str(run["candidates"]),
             "--seed", str(run["seed"]), "--out", out]
    if run.get("budget_layers"):
        parts[4:4] = ["--budget-layers", str(run["budget_layers"])]
    return shlex.join(parts)


def _train_command(spec_path: str, run: dict[str, Any], out: str) -> str:
    t = run["train"]
    parts = ["archopt", "train", spec_path, "--data", run["data"], "--epochs", str(t["epochs"]),
             "--batch-size", str(t["batch_size"]), "--optimizer", t["optimizer"], "--lr",
             f"{t['lr']:g}", "--weight-decay", f"{t['weight_decay']:g}", "--schedule",
             t["schedule"], "--augment", t["augment"], "--seed", str(run["seed"]), "--out", out]
    if t.get("warmup_epochs"):
        parts[-4:-4] = ["--warmup", f"{t['warmup_epochs']:g}"]
    if run.get("data_dir"):
        parts[4:4] = ["--data-dir", run["data_dir"]]
    return shlex.join(parts)


def build_report(folder: str | Path) -> Path:
    """(Re)write ``report.md`` and its PNG plots in an ``archopt run`` result folder.

    Raises: ArchoptError when the folder holds no finished run (no ``summary.json``).
    """
    out = Path(folder)
    if not (out / "summary.json").exists() or not (out / "config.json").exists():
        raise ArchoptError(f"{out} holds no finished archopt run (summary.json and config.json "
                           "expected); run `archopt run --resume --out DIR` to finish it")
    summary = read_json(out / "summary.json")
    config = read_json(out / "config.json")
    run = config.get("run", {})
    design = read_json(out / "design" / "design.json")
    design_cfg = read_json(out / "design" / "config.json")
    folders = {"designed": "designed", **{
        fam: ("baseline" if fam == "baseline" else f"baseline-{fam}")
        for fam in baseline_rows(summary)}}
    specs = {k: load_spec(out / f / "arch.json") for k, f in folders.items()}

    from archopt.design.plots import plot_network

    plot_network(specs["designed"], out / "architecture.png",
                 title=f"designed network ({specs['designed'].macs():,} MACs)")
    for k, f in folders.items():
        if k != "designed":
            plot_network(specs[k], out / f"{f}_architecture.png", title=f"{k}: {specs[k].name}")
    _plot_scores(specs, run.get("rho"), out / "scores.png")
    _plot_curves({k: read_jsonl(out / f / "metrics.jsonl") for k, f in folders.items()},
                 out / "curves.png")
    comparison = summary.get("comparison", {})
    baseline_text = "\n\n".join(f"{k}: {specs[k].name}: ![{k}]({f}_architecture.png)"
                                 for k, f in folders.items() if k != "designed")
    train_lines = "\n    ".join(_train_command(f"{f}/arch.json", run, f)
                                for k, f in folders.items() if k != "designed")

    d = summary["designed"]
    stage_rows = "\n".join(
        f"| {s.stage if s.stage else 'head'} | {s.out_channels:,} | {s.out_res} | {s.layers} | "
        f"{s.macs:,} | {s.params:,} |" for s in specs["designed"].stage_table())
    env = config.get("environment", {})
    budgets = summary.get("budgets", {})
    refined = summary.get("refined")
    refine_text = _structure_text(summary.get("structured"))
    if refined and refined.get("method", "hbde") != "hbde":
        refine_text += (
            f"\n## Refinement: {refined['method']} ({refined['metric']})\n\n"
            "Per-class offsets chosen on a validation split held out of the training split "
            "and folded into the output layer's bias (no other weight changes). `archopt run "
            "--refine` uses the best method of archopt's refine comparison unless "
            "`refine_options.method` names another. Validation "
            f"{refined['metric']}: {_pct(refined.get('val_metric_before'))} -> "
            f"{_pct(refined.get('val_metric_after'))}; test: "
            f"{_pct(refined['metric_before'])} -> {_pct(refined['metric_after'])}. "
            "Details: `refine/summary.json`.\n")
    elif refined:
        refine_text += (
            "\n## HBDE refinement (macro-F1)\n\n"
            f"Histogram blocking shrank D = {refined['dimensions']:,} parameters to "
            f"D' = {refined['blocked_dimensions']:,} shared values; differential evolution then "
            f"searched them for {refined['function_evaluations']:,} function evaluations "
            f"({refined['seconds']:.1f} s). Test {refined['metric']}: "
            f"{_pct(refined['metric_before'])} trained, "
            f"{_pct(refined['metric_after_blocking'])} blocked, "
            f"{_pct(refined['metric_after'])} refined. Details: `refine/summary.json`.\n")
    stages = ["design", "training"] + [name for key, name in (("structured", "structure "
              "learning"), ("refined", "refinement")) if summary.get(key)]
    text = f"""# archopt run: {summary['data']}

{_dt.date.today().isoformat()} · archopt {env.get('archopt', '?')} · torch {env.get('torch', '?')}
· {env.get('processor', '?')} ({env.get('cpu_count', '?')} cores) · {summary['seconds']:.1f} s of
{', '.join(stages[:-1])} and {stages[-1]}.

A CNN designed by DeepMAD (maximum multi-scale entropy under an effectiveness bound and
MACs / params budgets; no training during the search) against hand-designed networks at equal
budgets (of each family -- CIFAR-style ResNet-(6n+2) over depth and width, MobileNetV2 over its
width multiplier -- the member with the most MACs within both the MACs and the params budget),
all trained with the same recipe on {summary['train_examples']:,} images and tested on
{summary['test_examples']:,}.

## Results (test split)

{_markdown_table(results_rows(summary))}

{comparison.get('verdict', '')}

{_latency_note(summary)} Entropy and effectiveness: DeepMAD's
training-free scores (`archopt score`).

## The designed network

Budgets: MACs <= {_num(budgets.get('macs'))}, params <= {_num(budgets.get('params'))},
effectiveness rho <= {budgets.get('rho')}{', layers <= ' + str(budgets['layers'])
                                           if budgets.get('layers') else ''}.
The evolutionary search scored {design['candidates']:,} candidates in
{design['seconds']:.2f} s ({design['candidates_per_second']:,.0f} candidates/s); objective
{design['objective']:,.1f}, entropy {design['entropy']:,.1f}, effectiveness
{design['effectiveness']:.3f}; {d['layers']} layers.

![designed network](architecture.png)

| stage | out channels | side | layers | MACs | params |
|---|---|---|---|---|---|
{stage_rows}

The baselines:

{baseline_text}

## Entropy and effectiveness, design vs baselines

![scores](scores.png)

## Training curves

![curves](curves.png)
{refine_text}
## Reproduce

The whole run, from its resolved options:

    archopt run --config {shlex.quote(str(out / 'run.yaml'))} --out NEW_DIR

Stage by stage:

    {_design_command(run, design_cfg, 'design')}
    {_train_command('design/arch.json', run, 'designed')}
    {train_lines}
"""
    return atomic_write_text(out / "report.md", text)
