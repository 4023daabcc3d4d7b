"""The last hard edges (issue 24): config files read bounded (no YAML aliases, a size limit),
and every writer turning a full disk or an unwritable folder into one line and exit 2 with
nothing half-written and completed work kept."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from archopt.errors import ArchoptError, WriteError
from archopt.runs import folders as runs
from archopt.runtime.configfile import MAX_CONFIG_BYTES, dump_yaml, read_yaml


def one_line_exit_2(res) -> str:
    """Exit 2, no traceback, and the error in one line, the last on stderr (progress lines of
    the work done before the failure may precede it)."""
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], res.stderr
    return errors[0]

# -- config files --------------------------------------------------------------------------


def _laughs(levels: int = 9) -> str:
    """The "billion laughs": 10 aliases per level, 10**levels leaves if expanded."""
    text = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    for i in range(1, levels + 1):
        text += f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n"
    return text + f"train: {{epochs: 1, junk: *a{levels}}}\n"


def test_yaml_aliases_refused_in_one_line(cli, tmp_path):
    cfg = tmp_path / "bomb.yaml"
    cfg.write_text(_laughs())
    out = tmp_path / "out"
    line = one_line_exit_2(cli("run", "--config", cfg, "--out", out))
    assert "aliases (*a0) are not accepted" in line and "line 2" in line
    assert not out.exists()


def test_merge_keys_are_aliases_too(tmp_path):
    p = tmp_path / "merge.yaml"
    p.write_text("base: &b {epochs: 1}\ntrain:\n  <<: *b\n")
    with pytest.raises(ArchoptError, match="aliases"):
        read_yaml(p)


def test_anchor_without_alias_is_fine(tmp_path):
    p = tmp_path / "anchor.yaml"
    p.write_text("train: &t {epochs: 2}\nseed: 3\n")
    assert read_yaml(p) == {"train": {"epochs": 2}, "seed": 3}


@pytest.mark.parametrize("name", ["big.yaml", "big.json"])
def test_oversized_config_refused_before_reading(cli, tmp_path, name):
    p = tmp_path / name
    p.write_text("#" * MAX_CONFIG_BYTES + "\n")  # one byte over, a comment: valid otherwise
    out = tmp_path / "out"
    args = ("run", "--config", p, "--out", out) if name.endswith("yaml") else ("score", p)
    line = one_line_exit_2(cli(*args))
    assert f"larger than {MAX_CONFIG_BYTES:,} bytes" in line
    assert not out.exists()


def test_a_device_is_cut_off_at_the_limit(tmp_path):
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    with pytest.raises(ArchoptError, match="larger than"):
        read_yaml("/dev/zero", limit=1024)


def test_run_yaml_has_no_aliases_and_reads_back(tmp_path):
    """What archopt writes, it reads: a value shared by two keys is written out twice."""
    from archopt.pipeline.config import RunConfig

    shared = {"epochs": 2}
    text = dump_yaml({"train": shared, "refine_options": shared})
    assert "*" not in text and "&" not in text
    cfg = RunConfig(train={"epochs": 2}, budget_macs=1e6).resolve()
    p = tmp_path / "run.yaml"
    p.write_text(cfg.to_yaml())
    assert RunConfig.from_yaml(p) == cfg


# -- writers: full disk, unwritable folder -------------------------------------------------


class _FullDisk:
    """``os.replace`` of the writers failing with ENOSPC for targets named ``name`` (the
    final step of an atomic write: what a full disk does to the temp file's last block)."""

    def __init__(self, monkeypatch, name: str) -> None:
        real = os.replace
        self.hits = 0

        def replace(src, dst, *a, **k):
            if Path(dst).name == name:
                self.hits += 1
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(src, dst, *a, **k)

        monkeypatch.setattr(runs.os, "replace", replace)


def test_atomic_write_on_a_full_disk_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "summary.json"
    runs.atomic_write_json(target, {"old": 1})

    class Full:  # the file object of os.fdopen: its write fails half-way
        def __init__(self, fd, mode):
            self.fh = open(fd, mode)  # noqa: SIM115

        def write(self, data):
            self.fh.write(data[: len(data) // 2])
            self.fh.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    monkeypatch.setattr(runs.os, "fdopen", Full)
    with pytest.raises(WriteError, match="No space left on device") as info:
        runs.atomic_write_json(target, {"new": 2})
    assert info.value.errno == errno.ENOSPC and isinstance(info.value, OSError)
    assert json.loads(target.read_text()) == {"old": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temp file left


def test_metrics_append_on_a_full_disk_leaves_no_partial_line(tmp_path, monkeypatch):
    rd = runs.ResultDir(tmp_path / "r")
    rd.append_metrics({"epoch": 1})
    before = rd.file("metrics.jsonl").read_bytes()

    def fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(runs.os, "fsync", fsync)
    with pytest.raises(WriteError):
        rd.append_metrics({"epoch": 2, "loss": 0.5})
    assert rd.file("metrics.jsonl").read_bytes() == before


def test_train_on_a_full_disk_is_one_line_and_leaves_nothing(cli, tmp_path, monkeypatch):
    full = _FullDisk(monkeypatch, "checkpoint.pt")
    out = tmp_path / "t"
    line = one_line_exit_2(cli("train", "cnn-small", "--data", "digits", "--epochs", "1",
                               "--train-size", "200", "--no-latency", "--out", out))
    assert full.hits == 1
    assert line.startswith(f"error: cannot write {out / 'checkpoint.pt'}: No space left")
    assert "no file was left half-written" in line
    assert not out.exists()  # nothing worth keeping had been written


def test_run_on_a_full_disk_keeps_the_completed_stages(cli, tmp_path, monkeypatch):
    """The disk fills while the baseline's checkpoint is written: the designed network's
    trained stage is kept, the message says --resume, and --resume then finishes the run."""
    args = ["run", "--budget-macs", "1.5e6", "--budget-params", "4e5", "--candidates", "600",
            "--epochs", "1", "--train-size", "300", "--test-size", "100", "--json",
            "--out", tmp_path / "run"]
    real = os.replace

    def replace(src, dst, *a, **k):
        if Path(dst).name == "checkpoint.pt" and Path(dst).parent.name == "baseline-resnet":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(src, dst, *a, **k)

    monkeypatch.setattr(runs.os, "replace", replace)
    line = one_line_exit_2(cli(*args))
    assert "rerun with --resume" in line and "completed before is kept" in line
    out = tmp_path / "run"
    assert (out / "designed" / "checkpoint.pt").exists()
    assert not (out / "baseline-resnet").exists()
    assert not list(out.rglob(".*.tmp"))

    monkeypatch.setattr(runs.os, "replace", real)  # space freed
    res = cli(*args, "--resume")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["designed"]["test_accuracy"] is not None and summary["baselines"]


@pytest.mark.parametrize("verb", ["design", "train"])
def test_unwritable_folder_is_one_line(cli, tmp_path, monkeypatch, verb):
    out = tmp_path / "locked" / "out"
    real = Path.mkdir

    def mkdir(self, *a, **k):
        if str(self).startswith(str(tmp_path / "locked")):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    args = (["design", "--space", "resnet", "--resolution", "8", "--budget-macs", "2e6",
             "--candidates", "300", "--out", out] if verb == "design" else
            ["train", "cnn-small", "--data", "digits", "--epochs", "1", "--out", out])
    line = one_line_exit_2(cli(*args))
    assert "Permission denied" in line and "not writable" in line


def test_design_on_a_full_disk_removes_its_files(cli, tmp_path, monkeypatch):
    _FullDisk(monkeypatch, "summary.json")
    out = tmp_path / "d"
    one_line_exit_2(cli("design", "--space", "resnet", "--resolution", "8", "--budget-macs",
                        "2e6", "--candidates", "300", "--out", out))
    assert not out.exists() or not any(out.iterdir())  # config / arch / design.json gone


def test_cli_safety_net_for_other_writers():
    """An OSError of a full disk from a writer outside archopt.runs is one line too; another
    OSError keeps its traceback."""
    import typer

    from archopt.cli.common import handle_errors

    @handle_errors
    def full():
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "plot.png")

    @handle_errors
    def other():
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    with pytest.raises(typer.Exit) as info:
        full()
    assert info.value.exit_code == 2
    with pytest.raises(OSError) as info2:
        other()
    assert info2.value.errno == errno.EIO


def test_lock_file_on_a_full_disk_leaves_no_folder(tmp_path, monkeypatch):
    from archopt.runs import locking

    def pwrite(fd, data, offset):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(locking.os, "pwrite", pwrite)
    out = tmp_path / "new"
    with pytest.raises(WriteError, match=r"\.archopt\.lock"), locking.lock_folder(out):
        pass
    assert not out.exists()


@pytest.mark.skipif(not (hasattr(os, "geteuid") and os.geteuid() == 0
                         and Path("/proc/mounts").exists()),
                    reason="mounting a small tmpfs needs root")
def test_a_real_full_disk(cli, tmp_path):
    """On a real 300 kB tmpfs (where this suite runs as root): `archopt train` of a model
    whose checkpoint (~0.9 MB) cannot fit."""
    import subprocess

    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        out = mnt / "t"
        line = one_line_exit_2(cli("train", "cnn-small", "--data", "digits", "--epochs", "1",
                                   "--train-size", "200", "--no-latency", "--out", out))
        assert "No space left on device" in line
        assert list(mnt.iterdir()) == []
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
