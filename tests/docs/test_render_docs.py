"""The manual's results tables are rendered from benchmarks/results (issue 24): the committed
pages match the files, a hand-edited figure fails the check, a new results file is picked up."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def render(tmp_path, monkeypatch):
    """benchmarks/render_docs.py working on a copy of the results, the docs and the README."""
    spec = importlib.util.spec_from_file_location("render_docs",
                                                  ROOT / "benchmarks" / "render_docs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    shutil.copytree(ROOT / "benchmarks" / "results", tmp_path / "benchmarks" / "results")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    monkeypatch.setattr(mod, "ROOT", tmp_path)
    monkeypatch.setattr(mod, "RESULTS", tmp_path / "benchmarks" / "results")
    monkeypatch.setattr(mod, "DOCS", tmp_path / "docs")
    monkeypatch.setattr(mod, "GENERATED", tmp_path / "docs" / "_generated")
    monkeypatch.setattr(mod, "IMAGES", tmp_path / "docs" / "img" / "results")
    monkeypatch.setattr(mod, "README", tmp_path / "README.md")
    return mod


def test_committed_pages_match_the_results_files(render, capsys):
    assert render.main(["--check"]) == 0, capsys.readouterr().out


def test_a_hand_edited_figure_fails_the_check(render, capsys):
    page = render.GENERATED / "hbde_claim.md"
    text = page.read_text()
    assert "91.33 ± 0.23 %" in text  # HBDE, balanced: the mean and sd over the 3 seeds
    page.write_text(text.replace("91.33 ± 0.23 %", "92.33 ± 0.23 %"))
    assert render.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "-| balanced | **HBDE** | 92.33 ± 0.23 %" in out
    assert "+| balanced | **HBDE** | 91.33 ± 0.23 %" in out
    assert render.main([]) == 0  # re-rendering restores it
    assert render.main(["--check"]) == 0


def test_the_glance_table_in_the_readme_is_checked(render, capsys):
    text = render.README.read_text()
    assert "9/9 searches" in text
    render.README.write_text(text.replace("9/9 searches", "8/9 searches"))
    assert render.main(["--check"]) == 1
    assert "README.md" in capsys.readouterr().out


def test_the_figures_are_computed_from_the_file(render):
    """An independent reading of hbde_claim.json gives the rendered mean and sd."""
    import statistics

    d = json.loads((render.RESULTS / "hbde_claim.json").read_text())
    f1 = [r["hbde"]["metric_after"] for r in d["settings"]["balanced"]["runs"].values()]
    expected = f"{100 * statistics.fmean(f1):.2f} ± {100 * statistics.stdev(f1):.2f} %"
    assert expected in render.hbde_claim(d)


def test_a_new_results_file_is_rendered_and_indexed(render, capsys):
    (render.RESULTS / "new_bench.json").write_text(json.dumps(
        {"benchmark": "new_bench", "device": "cpu", "rows": [{"name": "a", "score": 0.5},
                                                             {"name": "b", "score": 0.25}]}))
    assert render.main(["--check"]) == 1
    assert "new_bench.md: missing" in capsys.readouterr().out
    assert render.main([]) == 0
    page = (render.GENERATED / "new_bench.md").read_text()
    assert "| a | 0.5000 |" in page and "| b | 0.2500 |" in page
    assert '--8<-- "_generated/new_bench.md"' in (render.DOCS / "results" / "index.md").read_text()
    (render.RESULTS / "new_bench.json").unlink()
    assert render.main(["--check"]) == 1  # its page is stale now
    assert "no results file renders it" in capsys.readouterr().out
