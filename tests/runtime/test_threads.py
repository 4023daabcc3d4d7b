"""The thread policy (archopt.runtime.threads) and the --threads option of every verb that
trains."""

from __future__ import annotations

import pytest
import torch

from archopt.errors import ArchoptError
from archopt.runtime import threads as th

TRAINING_VERBS = [("train",), ("run",), ("structure",), ("structure", "sweep"), ("refine",),
                  ("latent", "train"), ("latent", "search")]


@pytest.fixture()
def machine(monkeypatch):
    """A fake machine: ``machine(cores, load_avg, runnable_now)``; environment cleared."""
    for name in ("ARCHOPT_THREADS", "OMP_NUM_THREADS", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)

    def set_(cores: int, avg: float, now: int | None) -> None:
        monkeypatch.setattr(th.os, "sched_getaffinity", lambda _pid: set(range(cores)))
        monkeypatch.setattr(th.os, "getloadavg", lambda: (avg, avg, avg))
        monkeypatch.setattr(th, "_runnable_now", lambda: now)

    return set_


@pytest.mark.parametrize(("cores", "avg", "now", "expected"), [
    (2, 0.0, 0, 2),     # idle: every core
    (2, 1.0, 1, 1),     # one other CPU-bound job: one thread, not two
    (2, 0.15, 1, 1),    # a job started seconds ago: the load average lags, the count does not
    (2, 1.1, 0, 1),     # the average still remembers a job that just paused
    (2, 6.0, 5, 1),     # overloaded: never below one
    (8, 2.4, 2, 6),     # 8 - 2.4 = 5.6 -> 6
    (8, 2.6, 1, 5),     # 8 - 2.6 = 5.4 -> 5
    (1, 0.0, None, 1),  # no /proc/loadavg
])
def test_auto_subtracts_the_machines_load_from_the_cores(machine, cores, avg, now, expected):
    machine(cores, avg, now)
    choice = th.resolve_threads()
    assert (choice.threads, choice.source, choice.cores) == (expected, "auto", cores)
    assert choice.reduced == (expected < cores)


def test_precedence_option_then_archopt_env_then_omp(machine, monkeypatch):
    machine(4, 3.0, 3)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert (th.resolve_threads().threads, th.resolve_threads().source) == (3, "OMP_NUM_THREADS")
    monkeypatch.setenv("ARCHOPT_THREADS", "2")
    assert (th.resolve_threads().threads, th.resolve_threads().source) == (2, "ARCHOPT_THREADS")
    assert (th.resolve_threads(4).threads, th.resolve_threads(4).source) == (4, "option")
    assert not th.resolve_threads(1).reduced  # only auto "reduces"


def test_torchrun_ranks_share_the_cores(machine, monkeypatch):
    machine(8, 0.0, 0)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert th.resolve_threads().threads == 2


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5"])
def test_a_bad_environment_value_is_a_user_error(machine, monkeypatch, bad):
    machine(2, 0.0, 0)
    monkeypatch.setenv("ARCHOPT_THREADS", bad)
    with pytest.raises(ArchoptError, match="ARCHOPT_THREADS must be a positive integer"):
        th.resolve_threads()


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_a_bad_count_is_a_user_error(bad):
    with pytest.raises(ArchoptError, match="--threads must be a positive integer"):
        th.resolve_threads(bad)


def test_thread_limit_sets_and_restores_torch():
    before = torch.get_num_threads()
    with th.thread_limit(1) as choice:
        assert torch.get_num_threads() == 1 == choice.threads
    assert torch.get_num_threads() == before


def test_machine_load_reads_the_real_machine():
    assert th.machine_load() >= 0.0
    assert th.available_cores() >= 1


@pytest.mark.parametrize("verb", TRAINING_VERBS, ids=" ".join)
def test_every_training_verb_has_threads(cli, verb):
    r = cli(*verb, "--help")
    assert r.exit_code == 0, r.output
    assert "--threads" in r.output


@pytest.mark.parametrize("verb", TRAINING_VERBS, ids=" ".join)
def test_threads_zero_is_refused_in_one_line(cli, verb):
    r = cli(*verb, "--threads", "0")
    assert r.exit_code == 2
    assert "Traceback" not in r.output
