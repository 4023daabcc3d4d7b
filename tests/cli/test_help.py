"""CLI polish (issue 24): one line per verb in `archopt --help`, help texts shown as typed (no
bracket swallowed into a stray " ."), one name per option across verbs (old names hidden
aliases), tables without empty columns that fit 80 columns."""

from __future__ import annotations

import re

import pytest
import typer.main

from archopt.cli import SHORT_HELP, app


def _commands():
    group = typer.main.get_command(app)
    ctx = type(group).context_class(group)

    def walk(cmd, path):
        yield path, cmd
        if hasattr(cmd, "commands"):
            for name in cmd.list_commands(ctx):
                yield from walk(cmd.get_command(ctx, name), [*path, name])

    return list(walk(group, []))


def test_top_level_help_lists_each_verb_on_one_line(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    res = cli("--help")
    assert res.exit_code == 0, res.output
    rows = [line for line in res.output.splitlines() if line.startswith("│ ")
            and line.split()[1] in SHORT_HELP]
    assert [line.split()[1] for line in rows] == list(SHORT_HELP)  # every verb, in order
    for line in rows:
        verb = line.split()[1]
        assert SHORT_HELP[verb] in line  # whole, on the verb's own line
    # nothing else in the panel: no continuation lines
    panel = res.output.split("Commands")[1]
    body = [line for line in panel.splitlines() if line.startswith("│ ")]
    assert len(body) == len(SHORT_HELP)


@pytest.mark.parametrize("path", [p for p, _ in _commands()], ids=" ".join)
def test_help_has_no_stray_dot_and_keeps_defaults(cli, monkeypatch, path):
    monkeypatch.setenv("COLUMNS", "200")  # one line per option: what was typed is visible
    res = cli(*path, "--help")
    assert res.exit_code == 0, res.output
    assert not re.search(r"\w \.( |$)", res.output, re.M), res.output


def test_bracketed_defaults_are_shown(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    out = cli("train", "--help").output
    assert "[default: 5e-4 sgd, 0 adam, 0.05 adamw]" in out
    assert "CPU threads for torch [default: auto" in out


def test_every_option_has_help():
    for path, cmd in _commands():
        for p in cmd.params:
            if p.param_type_name == "option" and not p.hidden:
                assert p.help, (path, p.opts)


def test_train_size_is_one_name_everywhere_old_name_hidden(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    for verb in (["run"], ["train"], ["structure"], ["structure", "sweep"]):
        out = cli(*verb, "--help").output
        assert "--train-size" in out and "--train-subset" not in out, verb
    for verb in (["run"], ["structure"], ["structure", "sweep"]):
        out = cli(*verb, "--help").output
        assert "--test-size" in out and "--test-subset" not in out, verb


def test_old_option_name_still_works_and_a_conflict_is_refused(cli, tmp_path):
    res = cli("train", "cnn-small", "--data", "digits", "--epochs", "1", "--no-latency",
              "--train-subset", "100", "--json", "--out", tmp_path / "a")
    assert res.exit_code == 0, res.output
    res = cli("train", "cnn-small", "--data", "digits", "--epochs", "1", "--train-size", "100",
              "--train-subset", "200", "--out", tmp_path / "b")
    assert res.exit_code == 2 and "disagree" in res.stderr
    assert not (tmp_path / "b").exists()


def test_tables_drop_empty_columns_and_fit_80_columns(capsys, monkeypatch):
    from rich.console import Console

    from archopt.cli import common, run_cmd

    monkeypatch.setattr(common, "console", Console(width=80, force_terminal=False))
    row = {"test_accuracy": 0.9956, "test_macro_f1": 0.9956, "params": 489_978,
           "macs": 1_996_480, "latency_ms": 0.95, "latency_ms_onnxruntime": None,
           "entropy": 3276.0, "effectiveness": 0.292}
    base = {**row, "params": 174_970, "macs": 1_648_256, "params_ratio": 0.357,
            "macs_ratio": 0.826, "latency_ms_ratio": 0.64}
    summary = {"data": "digits", "seconds": 15.6, "designed": row,
               "baselines": {"resnet": {**base, "name": "ResNet-14 (width 16)"},
                             "mbv2": {**base, "name": "MobileNetV2 (width 0.35)"}},
               "structured": row, "refined": {"test_macro_f1": 0.9956, "params": 489_978,
                                              "macs": 1_996_480}}
    run_cmd.print_results(summary, __import__("pathlib").Path("runs/x"))
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80
    header = next(line for line in lines if "model" in line)
    assert "ort" not in header.split() and "onnxruntime" not in out  # no onnxruntime figure
    assert "…" not in out  # nothing cut
    assert "+ structure" in out and "designed" in out and "mbv2" in out
    assert "0.175M x0.36" in out  # a baseline's cost and its ratio to the design's, whole
