"""One sweep runner for every sweep verb (``structure sweep``, ``design sweep``, ``refine
--seeds``): a grid of trials, each a function call that writes its own result folder, run as Ray
tasks (``pip install 'archopt[distributed]'``) or one after another in this process.

A trial is ``(name, fn, params)``: ``fn`` is the dotted path of an importable function
(``"archopt.structure.sweep:structure_trial"``) called as ``fn(out=SWEEP/name, progress=...,
**params, **shared)``; it writes ``SWEEP/name`` exactly as the single-run verb does and returns a
JSON-ready row for the combined table. ``params`` is JSON (recorded); ``shared`` holds objects
passed to every trial but not recorded (a loaded dataset; under Ray put in the object store
once), and replaces a parameter of the same name (the dataset object standing for its recorded
name).

The sweep folder holds:

- ``grid.json``   the trials (name, function, parameters), in order;
- ``status.json`` per trial: ``state`` (``pending`` / ``running`` / ``done`` / ``failed``),
  ``attempts`` (how many times it was started), ``error`` (one line, for a failed trial),
  ``seconds``, ``threads``, ``pid``/``host`` of the process that ran it, and its ``row``;
- the combined table (``sweep.json``) and plot, written by the verb from the rows.

Resume: rerunning a sweep into the same folder skips the trials that are ``done`` with the same
parameters, and runs the others (pending, failed, or left ``running`` by a killed sweep; each
trial's own ``--resume`` continues from its checkpoint). A ``done`` trial whose recorded
parameters differ is refused (:class:`~archopt.errors.ArchoptError`) before anything runs. A
trial that raises is recorded as ``failed`` with its error; the others go on.

Only the driver writes ``grid.json`` / ``status.json`` (atomically, under the sweep folder's lock);
each trial holds its own result folder's lock while it runs and sets its torch threads
(:mod:`archopt.runtime.threads`) so that N concurrent trials do not oversubscribe the cores.

Example::

    from archopt.runs.sweeps import Trial, run_trials
    outcome = run_trials("runs/sw", [Trial("a", "mymod:trial", {"x": 1})], backend="local")
    outcome.rows()
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import importlib
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from archopt.errors import ArchoptError
from archopt.runs import atomic_write_json, read_json, to_jsonable

__all__ = [
    "RAY_HINT",
    "SweepOutcome",
    "Trial",
    "TrialOutcome",
    "check_address",
    "choose_backend",
    "execute_trial",
    "parse_list",
    "parse_seeds",
    "ray_available",
    "run_trials",
    "sweep_session",
]

#: The line a sweep prints when it runs in-process because Ray is not installed.
RAY_HINT = ("Ray is not installed: the trials run one after another in this process; "
            "pip install 'archopt[distributed]' runs them in parallel (--workers N)")

GRID = "grid.json"
STATUS = "status.json"

Backend = Literal["auto", "ray", "local"]


@dataclass(frozen=True)
class Trial:
    """One point of a sweep.

    Attributes:
        name: its result folder inside the sweep folder (unique in the sweep; one path
            component: no ``/``, not ``.`` or ``..``).
        fn: ``"package.module:function"``; called as ``fn(out=..., progress=..., **params,
            **shared)``, returns a JSON-ready dict (the trial's row).
        params: JSON-ready keyword arguments, recorded in ``grid.json``.
    """

    name: str
    fn: str
    params: dict[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        """A hash of ``fn`` and ``params`` (what makes two trials the same)."""
        text = json.dumps({"fn": self.fn, "params": to_jsonable(self.params)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class TrialOutcome:
    """A trial's state after the sweep: ``state`` is ``done`` or ``failed`` (or ``pending``
    when the sweep stopped before it); ``row`` is what the trial returned; ``ran`` says
    whether this invocation ran it (False: reused from an earlier, finished invocation)."""

    name: str
    state: str
    row: dict[str, Any] | None = None
    error: str | None = None
    attempts: int = 0
    seconds: float | None = None
    ran: bool = False


@dataclass
class SweepOutcome:
    """The trials of one :func:`run_trials` call, in grid order, and how they were run."""

    trials: list[TrialOutcome]
    backend: str
    workers: int
    threads: int
    wall_seconds: float

    def rows(self) -> list[dict[str, Any] | None]:
        """Each trial's row (None for a trial that did not finish)."""
        return [t.row for t in self.trials]

    @property
    def failed(self) -> list[TrialOutcome]:
        return [t for t in self.trials if t.state != "done"]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary: backend, workers, threads per trial, wall seconds, and per trial
        its state, attempts, whether it ran now, error."""
        return {"backend": self.backend, "workers": self.workers,
                "threads_per_trial": self.threads, "wall_seconds": self.wall_seconds,
                "trials": [{"name": t.name, "state": t.state, "attempts": t.attempts,
                            "ran": t.ran, "seconds": t.seconds, "error": t.error}
                           for t in self.trials]}


def parse_list(text: str | None, what: str, parse: Callable[[str], Any]) -> list[Any]:
    """``"1e6,2e6, 4e6"`` -> ``[parse("1e6"), ...]``.

    Raises: ArchoptError (one line naming ``what``) for an empty list or an item ``parse``
        rejects (its own message is kept when it raises an ArchoptError).
    """
    items = [p.strip() for p in (text or "").split(",")]
    if not any(items):
        raise ArchoptError(f"{what}: the list is empty (expected comma-separated values, "
                           "e.g. 1e6,2e6,4e6)")
    if not all(items):
        raise ArchoptError(f"{what}: empty item in {text!r} (expected comma-separated values)")
    out = []
    for p in items:
        try:
            out.append(parse(p))
        except ArchoptError:
            raise
        except (ValueError, TypeError):
            raise ArchoptError(f"{what}: cannot read {p!r} in {text!r}") from None
    return out


def parse_seeds(text: str | None) -> list[int] | None:
    """``--seeds 0,1,2`` -> ``[0, 1, 2]`` (None when not given). Raises ArchoptError for a
    non-integer, a negative or a repeated seed."""
    if text is None:
        return None
    seeds = parse_list(text, "--seeds", int)
    if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ArchoptError(f"--seeds: expected distinct non-negative integers, got {text!r}")
    return seeds


def ray_available() -> bool:
    """True when ``import ray`` works (the ``distributed`` extra is installed)."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def _resolve(path: str) -> Callable[..., Any]:
    mod, _, name = path.partition(":")
    fn = importlib.import_module(mod)
    for part in name.split("."):
        fn = getattr(fn, part)
    return fn  # type: ignore[return-value]


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    if isinstance(err, ArchoptError):
        return text or type(err).__name__
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def execute_trial(fn: str, folder: str, params: Mapping[str, Any], threads: int,
                  shared: Mapping[str, Any] | None = None, progress: bool = False
                  ) -> dict[str, Any]:
    """Run one trial in this process (what a Ray task runs): set torch's threads, hold the
    trial folder's lock, call ``fn``. Never raises for the trial's own error (only for Ctrl-C):
    returns ``{"ok": bool, "row" | "error": ..., "seconds", "threads", "pid", "host"}``."""
    from archopt.runs.locking import lock_folder
    from archopt.runtime.threads import thread_limit

    t0 = time.perf_counter()
    info: dict[str, Any] = {"pid": os.getpid(), "host": socket.gethostname(),
                            "threads": threads}
    try:
        with thread_limit(threads), lock_folder(folder):
            kwargs = {**params, **_fetch_shared(shared)}
            row = _resolve(fn)(out=Path(folder), progress=progress, **kwargs)
        info.update(ok=True, row=to_jsonable(row))
    except Exception as err:  # a trial's failure is data, not a crash
        info.update(ok=False, error=_one_line(err))
    info["seconds"] = time.perf_counter() - t0
    return info


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


class _Book:
    """``grid.json`` + ``status.json`` of a sweep folder (the driver is the only writer)."""

    def __init__(self, out: Path, trials: Sequence[Trial]) -> None:
        self.out = out
        self.grid_path, self.status_path = out / GRID, out / STATUS
        old_grid = read_json(self.grid_path) if self.grid_path.exists() else {"trials": []}
        self.status: dict[str, dict[str, Any]] = (
            read_json(self.status_path) if self.status_path.exists() else {})
        names = [t.name for t in trials]
        bad = [n for n in names if not n or "/" in n or os.sep in n or n in (".", "..")]
        if bad:
            raise ArchoptError(f"a trial's name must be one folder name, got {bad[0]!r}")
        if len(set(names)) != len(names):
            raise ArchoptError(f"the sweep names a trial twice: {names}")
        for t in trials:
            st = self.status.get(t.name)
            if st and st.get("state") == "done" and st.get("key") != t.key():
                raise ArchoptError(
                    f"{out} holds a sweep whose trial {t.name} finished with other options; "
                    "rerun with the same options to resume it, or choose another --out")
        # the grid keeps earlier trials (e.g. a sweep's first phase) and adds/updates these
        merged = {g["name"]: g for g in old_grid.get("trials", [])}
        for t in trials:
            merged[t.name] = {"name": t.name, "fn": t.fn, "params": to_jsonable(t.params),
                              "key": t.key()}
        atomic_write_json(self.grid_path, {"trials": list(merged.values())})
        for t in trials:
            st = self.status.get(t.name)
            if not (st and st.get("state") == "done"):
                self.status[t.name] = {"state": "pending", "attempts":
                                       (st or {}).get("attempts", 0), "key": t.key(),
                                       **({"previous_error": st["error"]}
                                          if st and st.get("error") else {})}
        self.save()

    def save(self) -> None:
        atomic_write_json(self.status_path, self.status)

    def start(self, name: str) -> None:
        st = self.status[name]
        st.update(state="running", attempts=st.get("attempts", 0) + 1, started=_now())
        st.pop("error", None)
        self.save()

    def finish(self, name: str, result: dict[str, Any]) -> None:
        st = self.status[name]
        st.update(finished=_now(), seconds=result.get("seconds"), threads=result.get("threads"),
                  pid=result.get("pid"), host=result.get("host"))
        if result.get("ok"):
            st.update(state="done", row=result.get("row"))
            st.pop("previous_error", None)
        else:
            st.update(state="failed", error=result.get("error"))
            st.pop("row", None)
        self.save()

    def todo(self, trials: Sequence[Trial]) -> list[Trial]:
        return [t for t in trials if self.status[t.name].get("state") != "done"]


def _all_done(out: Path, trials: Sequence[Trial]) -> bool:
    """Every trial already done with the same parameters (a rerun needs no Ray)."""
    try:
        st = read_json(out / STATUS) if (out / STATUS).exists() else {}
    except ArchoptError:
        return False
    return all(st.get(t.name, {}).get("state") == "done" and st[t.name].get("key") == t.key()
               for t in trials)


def _default_workers() -> int:
    from archopt.runtime.threads import available_cores

    return available_cores()


def _trial_threads(threads: int | None, workers: int, backend: str) -> int:
    """--threads if given; in-process the thread policy; under Ray the cores / workers (1 on
    a cluster whose worker count is not known yet, ``workers == 0``)."""
    from archopt.runtime.threads import available_cores, resolve_threads

    if threads is not None:
        return resolve_threads(threads).threads
    if backend == "local":
        return resolve_threads(None).threads
    return max(1, available_cores() // workers) if workers else 1


def check_address(address: str, timeout: float = 5.0) -> None:
    """Refuse at once an ``--address`` that names no reachable Ray cluster (Ray itself retries
    for minutes): ``auto`` needs a cluster started on this machine (``ray start --head``) or
    ``$RAY_ADDRESS``; ``HOST:PORT`` / ``ray://HOST:PORT`` must accept a TCP connection within
    ``timeout`` seconds.

    Raises: ArchoptError (one line) naming the address and what was expected."""
    if address == "auto":
        if os.environ.get("RAY_ADDRESS"):
            return check_address(os.environ["RAY_ADDRESS"], timeout)
        if not Path("/tmp/ray/ray_current_cluster").exists():
            raise ArchoptError("--address auto: no Ray cluster runs on this machine (start one "
                               "with `ray start --head`, or give HOST:PORT)")
        return None
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ArchoptError(f"--address {address!r}: expected auto, HOST:PORT or "
                           "ray://HOST:PORT (e.g. 10.0.0.5:6379)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as err:
        raise ArchoptError(f"cannot reach a Ray cluster at --address {address}: "
                           f"{err.strerror or type(err).__name__} (is `ray start --head` "
                           "running there?)") from None
    return None


@contextlib.contextmanager
def _ray_session(workers: int, address: str | None) -> Iterator[Any]:
    """``ray`` initialised: the caller's session if one is up, else a local Ray of ``workers``
    CPUs or a connection to ``address`` (shut down afterwards)."""
    import logging

    import ray

    if address:
        check_address(address)
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "logging_level": logging.ERROR, "configure_logging": True}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=max(1, workers), **kwargs)
    except Exception as err:  # ConnectionError, RuntimeError, ValueError ...
        where = f"the Ray cluster at --address {address}" if address else "a local Ray"
        raise ArchoptError(f"cannot start {where}: {_one_line(err)}"
                           + (" (is `ray start --head` running there?)" if address else "")
                           ) from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _run_ray(book: _Book, todo: Sequence[Trial], out: Path, threads: int, workers: int,
             address: str | None, shared: Mapping[str, Any], echo: Callable[[str], None],
             done: Callable[[Trial, dict[str, Any]], None]) -> int:
    with _ray_session(workers, address) as ray:
        if address or workers <= 0:
            cpus = int(ray.cluster_resources().get("CPU", 1))
            workers = max(1, cpus // threads) if workers <= 0 else workers
        remote = ray.remote(num_cpus=threads, max_retries=0)(execute_trial)
        shared_refs = {k: ray.put(v) for k, v in shared.items()}
        queue, flight = list(todo), {}
        try:
            while queue or flight:
                while queue and len(flight) < workers:
                    t = queue.pop(0)
                    book.start(t.name)
                    ref = remote.remote(t.fn, str(out / t.name), t.params, threads,
                                        _SharedRefs(shared_refs), False)
                    flight[ref] = t
                ready, _ = ray.wait(list(flight), num_returns=1)
                for ref in ready:
                    t = flight.pop(ref)
                    try:
                        result = ray.get(ref)
                    except Exception as err:  # a worker died, ...
                        result = {"ok": False, "error": f"Ray: {_one_line(err)}"}
                    done(t, result)
        except BaseException:
            for ref in flight:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            raise
    return workers


class _SharedRefs(dict):  # type: ignore[type-arg]
    """Object refs of the shared values; Ray resolves refs only at the top level of a task's
    arguments, so the task fetches them itself (see :func:`_fetch_shared`)."""


def _fetch_shared(shared: Mapping[str, Any] | None) -> dict[str, Any]:
    if isinstance(shared, _SharedRefs):
        import ray

        return {k: ray.get(v) for k, v in shared.items()}
    return dict(shared or {})


def choose_backend(backend: Backend, address: str | None = None,
                   echo: Callable[[str], None] | None = None) -> str:
    """``"ray"`` or ``"local"`` for a request (see :func:`run_trials`); ``auto`` without Ray
    says :data:`RAY_HINT` through ``echo``.

    Raises: ArchoptError for an unknown backend, or Ray asked for (``backend="ray"``,
        ``address``) but not installed."""
    if backend not in ("auto", "ray", "local"):
        raise ArchoptError(f"unknown sweep backend {backend!r} (auto, ray, local)")
    have_ray = ray_available()
    if backend == "ray" or address:
        if not have_ray:
            raise ArchoptError("Ray is not installed: pip install 'archopt[distributed]' "
                               "(or drop --address)")
        if backend == "local":
            raise ArchoptError("--address needs the Ray backend, not in-process")
        return "ray"
    if backend == "auto":
        if not have_ray and echo is not None:
            echo(RAY_HINT)
        return "ray" if have_ray else "local"
    return "local"


@contextlib.contextmanager
def sweep_session(backend: Backend = "auto", workers: int | None = None,
                  address: str | None = None, echo: Callable[[str], None] | None = None
                  ) -> Iterator[str]:
    """Start Ray once for several :func:`run_trials` calls (a sweep in phases); yields the
    backend to pass them (``"ray"`` or ``"local"``). Raises as :func:`choose_backend` and,
    for a cluster that cannot be reached or a Ray that cannot start, ArchoptError."""
    chosen = choose_backend(backend, address, echo)
    if chosen == "local":
        yield chosen
        return
    with _ray_session(workers or (0 if address else _default_workers()), address):
        yield chosen


def run_trials(out: str | Path, trials: Sequence[Trial], *, backend: Backend = "auto",
               workers: int | None = None, address: str | None = None,
               threads: int | None = None, shared: Mapping[str, Any] | None = None,
               progress: bool = True, echo: Callable[[str], None] | None = None
               ) -> SweepOutcome:
    """Run the trials that are not done yet; record grid and status in ``out``.

    Args:
        out: the sweep folder (locked for the call; one sub-folder per trial).
        trials: the grid (names unique).
        backend: ``"ray"`` (Ray tasks: a local Ray of ``workers`` CPUs, or the cluster at
            ``address``, or the Ray session the caller already started), ``"local"`` (one
            after another in this process), ``"auto"`` (Ray when installed, else local with
            one line, :data:`RAY_HINT`, through ``echo``).
        workers: trials run at once under Ray (default: the cores available; with
            ``address``, the cluster's CPUs / ``threads``).
        address: an existing Ray cluster (``"auto"``, ``"HOST:PORT"``, ``"ray://HOST:PORT"``);
            archopt must be importable on its nodes.
        threads: torch threads per trial (default: in-process, the thread policy of
            :mod:`archopt.runtime.threads`; under Ray, cores / workers, at least 1).
        shared: objects passed to every trial as keyword arguments, not recorded.
        progress: in-process trials show their progress bars; every finished trial is one
            line through ``echo``.
        echo: where status lines go (default: stderr).

    Returns: :class:`SweepOutcome` (trials in the order given).
    Raises: ArchoptError for a bad request (duplicate names, ``ray`` asked for but not
        installed, a cluster that cannot be reached, a finished trial recorded with other
        options); a trial's own error is never raised, it is recorded.
    """
    from archopt.runs.locking import lock_folder

    echo = echo or (lambda s: print(s, file=sys.stderr, flush=True))
    out = Path(out)
    if workers is not None and workers < 1:
        raise ArchoptError(f"--workers must be a positive integer, got {workers}")
    chosen = choose_backend(backend, address, echo)
    if chosen == "local":
        n_workers = 1
    elif workers:
        n_workers = workers
    else:  # a cluster, or a Ray session already up: as many as its CPUs hold (see _run_ray)
        import ray

        n_workers = 0 if address or ray.is_initialized() else _default_workers()
    per_trial = _trial_threads(threads, n_workers, chosen)
    t0 = time.perf_counter()
    # Ray first (a cluster that cannot be reached is refused before anything is written)
    session = (_ray_session(n_workers or _default_workers(), address)
               if chosen == "ray" and not _all_done(out, trials) else contextlib.nullcontext())
    with session, lock_folder(out):
        book = _Book(out, trials)
        todo = book.todo(trials)
        ran: set[str] = set()
        count = {"n": 0}

        def done(t: Trial, result: dict[str, Any]) -> None:
            book.finish(t.name, result)
            ran.add(t.name)
            count["n"] += 1
            state = "done" if result.get("ok") else f"FAILED: {result.get('error')}"
            secs = result.get("seconds")
            echo(f"[{count['n']}/{len(todo)}] {t.name}: {state}"
                 + (f" ({secs:.1f} s)" if isinstance(secs, (int, float)) else ""))

        if len(todo) < len(trials):
            echo(f"{len(trials) - len(todo)} of {len(trials)} trials already done in {out}; "
                 f"running {len(todo)}")
        if todo and chosen == "ray":
            n_workers = _run_ray(book, todo, out, per_trial, n_workers, address,
                                 dict(shared or {}), echo, done)
        else:
            for t in todo:
                book.start(t.name)
                done(t, execute_trial(t.fn, str(out / t.name), t.params, per_trial,
                                      shared, progress))
        outcomes = []
        for t in trials:
            st = book.status[t.name]
            outcomes.append(TrialOutcome(t.name, st.get("state", "pending"), st.get("row"),
                                         st.get("error"), st.get("attempts", 0),
                                         st.get("seconds"), t.name in ran))
    return SweepOutcome(outcomes, chosen, n_workers, per_trial, time.perf_counter() - t0)
