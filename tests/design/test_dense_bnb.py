"""Branch-and-bound against exhaustive enumeration; the bound against brute force; the pruning
claims (costs and rho only grow as stages are added)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from archopt.design import (
    Budgets,
    DenseBnB,
    DenseGrid,
    DenseLayout,
    DesignOptions,
    design,
    enumerate_grid,
    exhaustive_dense,
    score_spec,
)
from archopt.errors import InfeasibleBudget, InvalidSpec


def _random_problem(rng: np.random.Generator):
    s = int(rng.integers(1, 4))
    grid = DenseGrid(
        growth=tuple(int(x) for x in rng.choice(np.arange(4, 44, 4), int(rng.integers(1, 4)),
                                                replace=False)),
        layers=tuple(int(x) for x in rng.choice(np.arange(1, 24), int(rng.integers(1, 5)),
                                                replace=False)),
        kernels=(3,) if rng.random() < 0.4 else (3, 5),
        stem=None if rng.random() < 0.5 else tuple(int(x) for x in rng.choice(
            [8, 16, 24, 32, 48], 2, replace=False)),
        stages=s)
    layout = DenseLayout(stages=s, in_channels=int(rng.choice([1, 3])), num_classes=10,
                         resolution=int(rng.choice([28, 32])),
                         beta=float(rng.choice([0.0, 0.001, 0.1, 10.0])),
                         compression=float(rng.choice([0.5, 1.0])))
    ev = layout.evaluate(enumerate_grid(grid, 0, grid.size()))
    q = rng.uniform(0.05, 0.95, 3)
    budgets = Budgets(params=float(np.quantile(ev.params, q[0])),
                      macs=float(np.quantile(ev.macs, q[1])) if rng.random() < 0.5 else None,
                      layers=float(np.quantile(ev.layers, 0.9)) if rng.random() < 0.3 else None,
                      rho=float(np.quantile(ev.effectiveness, 0.3 + 0.7 * q[2])))
    return layout, grid, budgets


@pytest.mark.parametrize("seed", range(40))
def test_bnb_equals_exhaustive(seed):
    layout, grid, budgets = _random_problem(np.random.default_rng(seed))
    try:
        ex = exhaustive_dense(layout, grid, budgets)
    except InfeasibleBudget:
        with pytest.raises(InfeasibleBudget):
            DenseBnB(layout, grid, budgets).solve()
        return
    res = DenseBnB(layout, grid, budgets).solve()
    assert res.stats.complete and res.stats.gap == 0.0
    assert res.objective == pytest.approx(ex.objective, rel=1e-10, abs=1e-9)
    # the returned design really has that objective and meets every budget
    ev = layout.evaluate(res.genotype[None, :])
    assert ev.objective[0] == pytest.approx(res.objective, rel=1e-12)
    assert budgets.feasible(ev.macs, ev.params, ev.layers, ev.effectiveness)[0]


def _prefix_key(row: np.ndarray, depth: int, s: int) -> tuple:
    return (int(row[0]), *(int(row[1 + a * s + i]) for a in range(3) for i in range(depth)))


@pytest.mark.parametrize("seed", range(12))
def test_bound_never_cuts_off_the_optimum(seed):
    layout, grid, budgets = _random_problem(np.random.default_rng(100 + seed))
    if grid.stages < 2:
        layout = DenseLayout(stages=2, beta=layout.beta, resolution=32)
        grid = DenseGrid(grid.growth, grid.layers, grid.kernels, grid.stem, 2)
    s = grid.stages
    rows = enumerate_grid(grid, 0, grid.size())
    ev = layout.evaluate(rows)
    ok = budgets.feasible(ev.macs, ev.params, ev.layers, ev.effectiveness)
    best: dict[tuple, float] = {}
    for depth in range(1, s):
        for row, obj, f in zip(rows, ev.objective, ok, strict=True):
            if f:
                key = (depth, *_prefix_key(row, depth, s))
                best[key] = max(best.get(key, -np.inf), float(obj))
    bb = DenseBnB(layout, grid, budgets)
    frontier = [bb.root()]
    checked = 0
    for depth in range(1, s):
        nxt = []
        for nodes in frontier:
            for i in range(len(nodes)):
                kids = bb.children(nodes, i)
                ub = bb.bound(kids)
                inside = bb.within_budget(kids)
                for c in range(len(kids)):
                    row = bb.genotype(np.concatenate([kids.choice[c],
                                                      np.zeros(s - depth, dtype=np.int64)]))
                    truth = best.get((depth, *_prefix_key(row, depth, s)), -np.inf)
                    if truth > -np.inf:
                        assert inside[c], "a node with a feasible completion was budget-pruned"
                        assert ub[c] >= truth - 1e-9 * abs(truth), (depth, ub[c], truth)
                        checked += 1
                nxt.append(kids.take(np.nonzero(inside)[0]))
        frontier = nxt
    assert checked > 0 or not ok.any()


def test_costs_and_rho_only_grow_along_a_path():
    layout = DenseLayout(stages=3, beta=0.1)
    grid = DenseGrid()
    bb = DenseBnB(layout, grid, Budgets())
    rng = np.random.default_rng(0)
    for _ in range(20):
        node, prev = bb.root(), None
        for _depth in range(3):
            kids = bb.children(node, 0)
            pick = int(rng.integers(len(kids)))
            node = kids.take(np.array([pick]))
            if prev is not None:
                assert node.P[0] >= prev.P[0] and node.M[0] >= prev.M[0]
                assert node.n[0] > prev.n[0] and node.rho[0] >= prev.rho[0]
            prev = node
        ev = layout.evaluate(bb.genotype(node.choice[0])[None, :])
        assert node.P[0] == ev.params[0] and node.M[0] == ev.macs[0]
        assert node.rho[0] == pytest.approx(ev.effectiveness[0], rel=1e-12)
        assert bb.leaf_objective(node)[0] == pytest.approx(ev.objective[0], rel=1e-12)


def test_exhaustive_refuses_large_grids():
    layout = DenseLayout(stages=3)
    with pytest.raises(InvalidSpec, match=r"539,353,144 designs.*limit.*bnb"):
        exhaustive_dense(layout, DenseGrid(), Budgets(params=8e5))


def test_bnb_design_matches_spec_torch_and_reference():
    grid = DenseGrid(growth=(8, 12, 16), layers=tuple(range(4, 13)), kernels=(3, 5))
    r = design("densenet", Budgets(params=2e5, rho=0.5), resolution=28, in_channels=1,
               num_classes=10, grid=grid, beta=0.1)
    spec = r.spec
    assert r.stats["complete"] and r.stats["gap"] == 0.0
    assert r.stats["nodes_explored"] > 0 and r.stats["pruned_budget"] > 0
    ref = score_spec(spec, beta=0.1)
    assert r.metrics["objective"] == pytest.approx(ref.objective, rel=1e-12)
    assert r.metrics["power_law"]["r2"] == pytest.approx(ref.power_law.r2)
    model = spec.build().eval()
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(torch.zeros(1, 1, 28, 28))
    assert fc.get_total_flops() // 2 == r.metrics["macs"] == spec.macs()
    assert sum(p.numel() for p in model.parameters()) == r.metrics["params"] <= 2e5
    # the evolutionary solver on the same problem cannot beat the proven optimum
    evo = design("densenet", Budgets(params=2e5, rho=0.5), resolution=28, in_channels=1,
                 num_classes=10, grid=grid, beta=0.1, solver="evolution",
                 options=DesignOptions(candidates=3000))
    assert evo.metrics["objective"] <= r.metrics["objective"] + 1e-9
    assert evo.metrics["params"] <= 2e5 and evo.metrics["effectiveness"] <= 0.5


def test_bnb_reports_gap_when_stopped():
    layout = DenseLayout(stages=3, beta=0.1)
    res = DenseBnB(layout, DenseGrid(), Budgets(params=15e6, rho=0.5)).solve(node_limit=5000)
    assert not res.stats.complete and res.stats.gap >= 0.0
    full = DenseBnB(layout, DenseGrid(), Budgets(params=15e6, rho=0.5)).solve()
    assert res.objective <= full.objective + 1e-9
    assert res.objective + res.stats.gap >= full.objective - 1e-6
