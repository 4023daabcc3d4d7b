"""`archopt run --refine`: the method defaults to the refine comparison's best and is named in
the summary and the report."""

from __future__ import annotations

from archopt.pipeline.config import RunConfig
from archopt.pipeline.run import run_pipeline
from archopt.refine.config import RUN_METHOD, RefineConfig

TINY = dict(budget_macs=1.5e6, budget_params=4e5, candidates=600,
            train={"epochs": 2, "batch_size": 128})


def test_the_default_method_is_the_comparisons_best_and_hbde_defaults_only_for_hbde():
    cfg = RunConfig(refine=True).resolve()
    assert cfg.refine_options["method"] == RUN_METHOD
    RefineConfig(**cfg.refine_options)  # a valid refine config
    bias = RunConfig(refine=True, refine_options={"method": "bias"}).resolve().refine_options
    assert bias["method"] == "bias" and "population" not in bias
    hbde = RunConfig(refine=True, refine_options={"method": "hbde"}).resolve().refine_options
    assert hbde["population"] == 20 and hbde["generations"] == 30


def test_run_with_refine_reports_the_method(tmp_path):
    cfg = RunConfig(**TINY, refine=True,
                    refine_options={"method": "bias", "bias_evaluations": 600})
    res = run_pipeline(cfg, tmp_path / "r", progress=False)
    ref = res.summary["refined"]
    assert ref["method"] == "bias"
    assert ref["val_metric_after"] >= ref["val_metric_before"]
    report = (res.out / "report.md").read_text()
    assert "## Refinement: bias (f1)" in report and "designed + bias" in report
    assert (res.out / "refine" / "checkpoint.pt").is_file()
