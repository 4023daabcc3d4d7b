"""Exact branch-and-bound over the discrete Dense Optimizer space.

The program (Liu et al., arXiv 2410.07499, section III.D; specs/dense_optimizer.md sections 4-5)::

    maximise  H + beta * (a - b)
    s.t.      params <= B_params, MACs <= B_macs, layers <= B_layers, rho <= rho_0,
              (g_i, L_i, k_i) from the grid for every stage i, stem width from its grid

Branching is stage by stage: a node at depth j fixes the stem and stages 1..j; its children are
the |G| x |L| x |K| choices of stage j+1, evaluated together as arrays.

Pruning by budget is exact: params, MACs and layers only grow as stages are added (every term
is positive), and a stage's effectiveness rho_i is final once the stage is closed (it only
involves layers up to its end), so ``max`` over the closed stages can only grow. A partial design
that breaks a budget, or whose cheapest completion (every remaining stage at the grid minimum,
which is the cheapest since costs grow with g, L, k and the input width) does, is dropped.

The bound (admissible: never below the best feasible completion; a property test checks it
against brute force) uses that every stage entropy H_i grows with g, L, k, the stage's input
width and the entropy sum before it:

- a node whose only open stage is the last (depth S-1): for the known input width ``w_0``, the
  choices q of the last stage sorted by their cost; ``H_S(q) = A_q (T + D_q)`` with
  ``A_q = log c_q + 2 log r_S`` and ``D_q`` the stage's entropy sum, so
  ``max_{q affordable} H_S(q) <= T * max A_q + max A_q D_q`` where both maxima are prefix maxima
  along the cost order (one table row per ``w_0``, looked up by binary search on the remaining
  params / MACs / layers; the smallest of the three bounds holds). The objective is then bounded
  over ``H_S`` in ``[H_S(q_min), that bound]``: it is ``alpha_S H_S + beta (a - b)`` with a and b
  the power-law fit, convex in H_S for the last stage when the fit coefficients allow it (checked),
  so its maximum is at an end of the interval; otherwise the terms are bounded separately.
- deeper open subtrees: interval propagation stage by stage (input width, entropy sum and cost
  lower bounds), every open stage taking its best affordable choice at the upper ends of its
  inputs, and the power-law term bounded over the box of log stage entropies (``log a`` and
  ``b`` are linear in them; each is bounded coordinate-wise).

Order: best-first on the bound (a heap), after an initial dive along the best child so that an
incumbent exists from the start. The search stops when no open node's bound exceeds the
incumbent (gap 0: the design is the global optimum of the grid) or at a node / time limit, when
the reported gap is ``max open bound - incumbent``.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from archopt.errors import InfeasibleBudget, InvalidSpec

from .budgets import Budgets
from .dense import DenseGrid, DenseLayout, power_law_coefficients, transition
from .scores import stage_weights

__all__ = ["BnBResult", "BnBStats", "DenseBnB"]

_INF = math.inf


@dataclass
class Nodes:
    """A batch of partial designs at one depth (every field an array over the batch).

    ``choice`` (N, depth) holds the stage-choice indices (stage 1's index also encodes the stem
    option); ``c`` the last closed stage's output width, ``T`` / ``n`` the entropy sum and conv
    count to its end, ``P`` / ``M`` params and MACs so far (including the transition after the
    last closed stage, or the head at the leaves), ``rho`` the max effectiveness over the closed
    stages, ``H`` (N, depth) the stage entropies.
    """

    depth: int
    choice: np.ndarray
    c: np.ndarray
    T: np.ndarray
    n: np.ndarray
    P: np.ndarray
    M: np.ndarray
    rho: np.ndarray
    H: np.ndarray

    def __len__(self) -> int:
        return len(self.c)

    def take(self, idx: np.ndarray) -> Nodes:
        return Nodes(self.depth, self.choice[idx], self.c[idx], self.T[idx], self.n[idx],
                     self.P[idx], self.M[idx], self.rho[idx], self.H[idx])


@dataclass
class BnBStats:
    """Search statistics.

    Attributes:
        nodes_explored: partial and complete designs whose state was computed.
        nodes_expanded: nodes whose children were generated.
        leaves: complete designs evaluated.
        pruned_budget: designs dropped because they (or their cheapest completion) break a budget.
        pruned_bound: nodes dropped because their bound was below the incumbent.
        gap: max open bound - incumbent (0 when the search completed).
        complete: True when the optimum is proven (gap 0).
        seconds: wall time.
        trace: ``(seconds, nodes_explored, incumbent)`` at every improvement.
    """

    nodes_explored: int = 0
    nodes_expanded: int = 0
    leaves: int = 0
    pruned_budget: int = 0
    pruned_bound: int = 0
    gap: float = 0.0
    complete: bool = False
    seconds: float = 0.0
    trace: list[tuple[float, int, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The figures without the trace."""
        return {k: v for k, v in asdict(self).items() if k != "trace"}


@dataclass
class BnBResult:
    """The best design found (its genotype row) and the search statistics."""

    genotype: np.ndarray
    objective: float
    stats: BnBStats


class _LastStageTable:
    """Per input width ``w_0``: the last stage's choices sorted by params / MACs / layers with
    prefix maxima of ``A_q`` and ``A_q D_q`` (see module docstring)."""

    def __init__(self, owner: DenseBnB) -> None:
        self.o = owner
        self.rows: dict[int, tuple[Any, ...]] = {}

    def row(self, w0: int) -> tuple[Any, ...]:
        r = self.rows.get(w0)
        if r is not None:
            return r
        o = self.o
        i = o.S - 1
        st = o.layout.stage(float(w0), o.gq, o.lq, o.kq, i)
        hp, hm = o.layout.head_cost(st.c_out)
        a = np.log(st.c_out) + 2.0 * math.log(o.sides[i])
        ad = a * st.t_sum
        out: list[tuple[np.ndarray, ...] | None] = []
        for cost, limit in ((st.params + hp, o.BP), (st.macs + hm, o.BM), (st.layers, o.BL)):
            if not math.isfinite(limit):
                out.append(None)  # budget not set: no table
                continue
            order = np.argsort(cost, kind="stable")
            out.append((cost[order], np.maximum.accumulate(a[order]),
                        np.maximum.accumulate(ad[order])))
        q = o.qmin
        r = (out, float(a[q]), float(st.t_sum[q]))
        self.rows[w0] = r
        return r


class DenseBnB:
    """Branch-and-bound for one (layout, grid, budgets) problem.

    Args:
        layout: the fixed part (input, classes, compression, alpha, beta; ``layout.stages``
            must equal ``grid.stages``).
        grid: the choices per stage and for the stem.
        budgets: params / MACs / layers / rho budgets (any may be None).

    Raises: InvalidSpec when the layout and grid disagree on the number of stages.
    """

    def __init__(self, layout: DenseLayout, grid: DenseGrid, budgets: Budgets) -> None:
        if layout.stages != grid.stages:
            raise InvalidSpec(f"layout has {layout.stages} stages, grid {grid.stages}")
        self.layout, self.grid, self.budgets = layout, grid, budgets
        self.S = grid.stages
        self.sides = layout.sides()
        self.alpha = stage_weights(self.S, layout.alpha)
        self.beta = float(layout.beta)
        self.gq, self.lq, self.kq = (x.astype(float) for x in grid.stage_choices())
        self.nq = len(self.gq)
        self.qmin = int(np.lexsort((self.kq, self.lq, self.gq))[0])  # (g, L, k) all minimal
        stems = grid.stem_choices()
        if stems is None:
            self.c0_1 = 2.0 * self.gq
            self.q1 = np.arange(self.nq)
        else:
            self.c0_1 = np.repeat(np.asarray(stems, dtype=float), self.nq)
            self.q1 = np.tile(np.arange(self.nq), len(stems))
        self.BP = _INF if budgets.params is None else float(budgets.params)
        self.BM = _INF if budgets.macs is None else float(budgets.macs)
        self.BL = _INF if budgets.layers is None else float(budgets.layers)
        self.R = _INF if budgets.rho is None else float(budgets.rho)
        if self.S >= 2:
            self.pc, self.pd = power_law_coefficients(self.S)
        self.table = _LastStageTable(self)
        self.stats = BnBStats()

    # -- genotype ---------------------------------------------------------------------------
    def genotype(self, choice: np.ndarray) -> np.ndarray:
        """The genotype row ``[c0, g.., L.., k..]`` of a full choice vector."""
        q = [int(self.q1[choice[0]])] + [int(x) for x in choice[1:]]
        c0 = int(self.c0_1[choice[0]])
        g = [int(self.gq[x]) for x in q]
        L = [int(self.lq[x]) for x in q]
        k = [int(self.kq[x]) for x in q]
        return np.asarray([c0, *g, *L, *k], dtype=np.int64)

    # -- tree ---------------------------------------------------------------------------------
    def root(self) -> Nodes:
        z = np.zeros(1)
        return Nodes(0, np.zeros((1, 0), dtype=np.int64), z, z, z, z, z, z, np.zeros((1, 0)))

    def children(self, node: Nodes, i: int) -> Nodes:
        """Exact states of all children of node ``i`` of ``node`` (no budget check)."""
        lay, j = self.layout, node.depth
        if j == 0:
            t0, p0, m0 = lay.stem_cost(self.c0_1)
            w0, tb, nb, pb, mb = self.c0_1, t0, 1.0, p0, m0
            qs = self.q1
            rho0 = 0.0
        else:
            c = float(node.c[i])
            w0 = math.floor(lay.compression * c + 1e-9) or 1.0
            tb = float(node.T[i]) + 0.5 * math.log(c)
            nb, pb, mb = float(node.n[i]) + 1.0, float(node.P[i]), float(node.M[i])
            qs = np.arange(self.nq)
            rho0 = float(node.rho[i])
        st = lay.stage(w0, self.gq[qs], self.lq[qs], self.kq[qs], j)
        T = tb + st.t_sum
        n = nb + st.layers
        H = (np.log(st.c_out) + 2.0 * math.log(self.sides[j])) * T
        rho = np.maximum(rho0, n / np.exp(2.0 * T / n))
        P = pb + st.params
        M = mb + st.macs
        if j + 1 < self.S:
            _, _, tp, tm = transition(st.c_out, self.sides[j], lay.compression)
        else:
            tp, tm = lay.head_cost(st.c_out)
        m = len(qs)
        choice = np.empty((m, j + 1), dtype=np.int64)
        choice[:, :j] = node.choice[i]
        choice[:, j] = np.arange(m)
        hist = np.empty((m, j + 1))
        hist[:, :j] = node.H[i]
        hist[:, j] = H
        return Nodes(j + 1, choice, st.c_out, T, n, P + tp, M + tm, rho, hist)

    def within_budget(self, nodes: Nodes) -> np.ndarray:
        """Mask of nodes whose closed part meets every budget (exact pruning)."""
        extra = 1.0 if nodes.depth < self.S else 0.0  # the transition that follows
        return ((nodes.P <= self.BP) & (nodes.M <= self.BM) & (nodes.n + extra <= self.BL)
                & (nodes.rho <= self.R))

    def leaf_objective(self, nodes: Nodes) -> np.ndarray:
        h = nodes.H
        ent = h @ self.alpha
        if self.S == 1:
            return ent + self.beta * h[:, 0]
        y = np.log(h)
        return ent + self.beta * (np.exp(y @ self.pc) - y @ self.pd)

    # -- bounds -------------------------------------------------------------------------------
    def bound(self, nodes: Nodes) -> np.ndarray:
        """Admissible upper bound of the objective over each node's feasible completions
        (``-inf`` when none can be feasible). Leaves get their exact objective."""
        if nodes.depth == self.S:
            return self.leaf_objective(nodes)
        if nodes.depth == 0:
            return np.array([_INF])
        if nodes.depth == self.S - 1:
            return self._bound_last(nodes)
        return self._bound_intervals(nodes)

    def _pl_upper(self, y_lo: np.ndarray, y_hi: np.ndarray) -> np.ndarray:
        """Upper bound of ``a - b`` over the box ``y_lo <= log H <= y_hi`` (rows)."""
        if self.S == 1:
            return np.exp(y_hi[:, 0])
        c, d = self.pc, self.pd
        ea = np.where(c > 0, y_hi, y_lo) @ c
        eb = np.where(d > 0, y_lo, y_hi) @ d
        return np.exp(ea) - eb

    def _bound_last(self, nodes: Nodes) -> np.ndarray:
        lay = self.layout
        w0 = np.maximum(1.0, np.floor(lay.compression * nodes.c + 1e-9))
        tb = nodes.T + 0.5 * np.log(nodes.c)
        rem = (self.BP - nodes.P, self.BM - nodes.M, self.BL - nodes.n - 1.0)
        h_hi = np.full(len(nodes), _INF)
        h_lo = np.empty(len(nodes))
        keys, inv = np.unique(w0, return_inverse=True)
        for u, key in enumerate(keys):
            sel = np.nonzero(inv == u)[0]
            tables, a_min, d_min = self.table.row(int(key))
            h_lo[sel] = a_min * (tb[sel] + d_min)
            for table, r in zip(tables, rem, strict=True):
                if table is None:
                    continue
                cost, pa, pad = table
                pos = np.searchsorted(cost, r[sel], side="right") - 1
                ok = pos >= 0
                pc = np.where(ok, pos, 0)
                hb = np.where(ok, tb[sel] * pa[pc] + pad[pc], -_INF)
                h_hi[sel] = np.minimum(h_hi[sel], hb)
        if not np.isfinite(h_hi).all():
            # no budget bounds some rows: the best choice over the whole grid
            free = np.isposinf(h_hi)
            if free.any():
                st = lay.stage(w0[free, None], self.gq, self.lq, self.kq, self.S - 1)
                a = np.log(st.c_out) + 2.0 * math.log(self.sides[-1])
                h_hi[free] = (a * (tb[free, None] + st.t_sum)).max(axis=1)
        dead = ~(h_hi > -_INF)
        h_hi = np.where(dead, h_lo, np.maximum(h_hi, h_lo))
        fixed = nodes.H @ self.alpha[:-1]
        a_s = self.alpha[-1]
        if self.beta == 0.0:
            ub = fixed + a_s * h_hi
        elif self.S == 1:
            ub = fixed + (a_s + self.beta) * h_hi
        else:
            yf = np.log(nodes.H)
            c, d = self.pc, self.pd
            cs, ds = c[-1], d[-1]
            base_a = yf @ c[:-1]
            base_b = yf @ d[:-1]

            def phi(h: np.ndarray) -> np.ndarray:
                y = np.log(h)
                return a_s * h + self.beta * (np.exp(base_a + cs * y) - (base_b + ds * y))

            if (cs <= 0 or cs >= 1) and ds >= 0:  # convex in H_S: max at an end
                ub = fixed + np.maximum(phi(h_lo), phi(h_hi))
            else:
                y_lo, y_hi = np.log(h_lo), np.log(h_hi)
                ea = base_a + np.where(cs > 0, cs * y_hi, cs * y_lo)
                eb = base_b + np.where(ds > 0, ds * y_lo, ds * y_hi)
                ub = fixed + a_s * h_hi + self.beta * (np.exp(ea) - eb)
        return np.where(dead, -_INF, ub)

    def _bound_intervals(self, nodes: Nodes) -> np.ndarray:
        with np.errstate(all="ignore"):  # rows found dead early carry -inf / nan; masked below
            ub, alive = self._intervals(nodes)
        return np.where(alive, ub, -_INF)

    def _intervals(self, nodes: Nodes) -> tuple[np.ndarray, np.ndarray]:
        lay = self.layout
        N, j = len(nodes), nodes.depth
        c_lo = c_hi = nodes.c
        t_lo = t_hi = nodes.T
        n_lo = nodes.n
        p_lo, m_lo = nodes.P, nodes.M
        alive = np.ones(N, dtype=bool)
        y_lo = np.empty((N, self.S))
        y_hi = np.empty((N, self.S))
        y_lo[:, :j] = y_hi[:, :j] = np.log(nodes.H)
        free_h = np.zeros(N)
        g, L, k = self.gq[None, :], self.lq[None, :], self.kq[None, :]
        q = self.qmin
        for i in range(j, self.S):
            w_lo = np.maximum(1.0, np.floor(lay.compression * c_lo + 1e-9))
            w_hi = np.maximum(1.0, np.floor(lay.compression * c_hi + 1e-9))
            tb_lo = t_lo + 0.5 * np.log(c_lo)
            tb_hi = t_hi + 0.5 * np.log(c_hi)
            nb = n_lo + 1.0
            lo = lay.stage(w_lo[:, None], g, L, k, i)
            hi = lay.stage(w_hi[:, None], g, L, k, i)
            if i + 1 < self.S:
                _, _, ep, em = transition(lo.c_out, self.sides[i], lay.compression)
                extra_n = 1.0
            else:
                ep, em = lay.head_cost(lo.c_out)
                extra_n = 0.0
            cost_p = p_lo[:, None] + lo.params + ep
            cost_m = m_lo[:, None] + lo.macs + em
            feas = ((cost_p <= self.BP) & (cost_m <= self.BM)
                    & (nb[:, None] + lo.layers + extra_n <= self.BL))
            alive &= feas.any(axis=1)
            t_q = tb_hi[:, None] + hi.t_sum
            h_q = (np.log(hi.c_out) + 2.0 * math.log(self.sides[i])) * t_q
            t_min = tb_lo + lo.t_sum[:, q]
            h_min = (np.log(lo.c_out[:, q]) + 2.0 * math.log(self.sides[i])) * t_min
            h_hi = np.maximum(np.where(feas, h_q, -_INF).max(axis=1), h_min)
            y_lo[:, i], y_hi[:, i] = np.log(h_min), np.log(h_hi)
            free_h += self.alpha[i] * h_hi
            c_hi = np.maximum(np.where(feas, hi.c_out, -_INF).max(axis=1), lo.c_out[:, q])
            t_hi = np.maximum(np.where(feas, t_q, -_INF).max(axis=1), t_min)
            c_lo, t_lo = lo.c_out[:, q], t_min
            n_lo = nb + lo.layers[:, q]
            p_lo, m_lo = cost_p[:, q], cost_m[:, q]
        fixed = nodes.H @ self.alpha[:j]
        return fixed + free_h + self.beta * self._pl_upper(y_lo, y_hi), alive

    # -- search -------------------------------------------------------------------------------
    def _grow(self, node: Nodes, i: int) -> tuple[Nodes, np.ndarray]:
        """Children of node i that survive budget checks, with their bounds."""
        kids = self.children(node, i)
        self.stats.nodes_expanded += 1
        self.stats.nodes_explored += len(kids)
        ok = self.within_budget(kids)
        kids = kids.take(np.nonzero(ok)[0])
        ub = self.bound(kids) if len(kids) else np.zeros(0)
        live = ub > -_INF
        self.stats.pruned_budget += int((~ok).sum() + (~live).sum())
        return kids.take(np.nonzero(live)[0]), ub[live]

    def solve(self, *, time_limit: float | None = None, node_limit: int | None = None,
              on_progress: Callable[[BnBStats, float], None] | None = None) -> BnBResult:
        """Run the search (see module docstring).

        Returns: :class:`BnBResult` (``stats.complete`` tells whether optimality is proven).
        Raises: InfeasibleBudget when no design of the grid meets the budgets.
        """
        t0 = time.perf_counter()
        st = self.stats = BnBStats()
        best_obj, best_choice = -_INF, None
        heap: list[tuple[float, int, int, Nodes, int]] = []
        counter = 0

        def tol() -> float:
            return 1e-9 * max(1.0, abs(best_obj)) if math.isfinite(best_obj) else 0.0

        def consider(kids: Nodes, ub: np.ndarray) -> None:
            nonlocal best_obj, best_choice, counter
            if kids.depth == self.S:
                st.leaves += len(kids)
                if len(kids):
                    b = int(np.argmax(ub))
                    if ub[b] > best_obj:
                        best_obj, best_choice = float(ub[b]), kids.choice[b].copy()
                        st.trace.append((time.perf_counter() - t0, st.nodes_explored, best_obj))
                return
            keep = ub >= best_obj - tol()
            st.pruned_bound += int((~keep).sum())
            for i in np.nonzero(keep)[0]:
                counter += 1
                heapq.heappush(heap, (-float(ub[i]), -kids.depth, counter, kids, int(i)))

        # initial dive: follow the best child down to a leaf
        node, idx = self.root(), 0
        while True:
            kids, ub = self._grow(node, idx)
            if kids.depth == self.S or not len(kids):
                consider(kids, ub)
                break
            b = int(np.argmax(ub))
            rest = np.ones(len(kids), dtype=bool)
            rest[b] = False
            consider(kids.take(np.nonzero(rest)[0]), ub[rest])
            node, idx = kids.take(np.array([b])), 0
        stopped = False
        while heap:
            neg_ub, _, _, nodes, i = heap[0]
            if -neg_ub < best_obj - tol():
                break
            if (node_limit is not None and st.nodes_explored >= node_limit) or (
                    time_limit is not None and time.perf_counter() - t0 > time_limit):
                stopped = True
                break
            heapq.heappop(heap)
            kids, ub = self._grow(nodes, i)
            consider(kids, ub)
            if on_progress is not None and st.nodes_expanded % 2000 == 0:
                on_progress(st, best_obj)
        if stopped and heap:
            st.gap = max(0.0, -heap[0][0] - best_obj)
        st.pruned_bound += 0 if stopped else len(heap)
        st.complete = not stopped
        st.seconds = time.perf_counter() - t0
        if best_choice is None:
            if stopped:
                raise InfeasibleBudget("branch-and-bound stopped before finding a design within "
                                       "the budgets; raise the node / time limit",
                                       budget=None)
            self._raise_infeasible()
        return BnBResult(self.genotype(best_choice), best_obj, st)

    def _raise_infeasible(self) -> None:
        L, k = min(self.grid.layers), min(self.grid.kernels)
        g = min(self.grid.growth)
        stems = self.grid.stem_choices()
        c0 = min(stems) if stems else 2 * g
        row = np.asarray([c0, *[g] * self.S, *[L] * self.S, *[k] * self.S], dtype=np.int64)
        ev = self.layout.evaluate(row[None, :])
        cost_only = Budgets(macs=self.budgets.macs, params=self.budgets.params,
                            layers=self.budgets.layers)
        cost_only.require({"macs": float(ev.macs[0]), "params": float(ev.params[0]),
                           "layers": float(ev.layers[0]), "effectiveness": 0.0},
                          "the smallest design of the grid (every stage at its minimum)",
                          hint="no design of the grid can meet the budgets")
        raise InfeasibleBudget(
            f"no design of the grid meets the effectiveness budget rho <= {self.budgets.rho} "
            "together with the other budgets; raise --rho or the budgets, or widen the grid",
            budget="effectiveness", limit=self.budgets.rho, needed=None)
