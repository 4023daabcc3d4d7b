"""Budgets: every returned design meets every budget; infeasible requests name the binding
budget and a value that is indeed feasible."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archopt.design import Budgets, DenseGrid, DesignOptions, design, parse_amount
from archopt.errors import InfeasibleBudget, InvalidSpec
from archopt.spaces import load_spec

FAST = DesignOptions(candidates=1500, seed=0, batch=128)


def _check(result, budgets: Budgets) -> None:
    spec = result.spec
    res = spec.resolution
    m = result.metrics
    # recount from the spec itself (cost model) and the reference scorer
    assert m["macs"] == (spec.macs(res) if spec.space != "mlp" else spec.macs())
    assert m["params"] == spec.params()
    for name, limit in (("macs", budgets.macs), ("params", budgets.params),
                        ("layers", budgets.layers), ("effectiveness", budgets.rho)):
        if limit is not None:
            assert m[name] <= limit, (name, m[name], limit)
    for row in result.top:
        for name, limit in (("macs", budgets.macs), ("params", budgets.params),
                            ("layers", budgets.layers), ("effectiveness", budgets.rho)):
            if limit is not None:
                assert row[name] <= limit


def _genuine(err: InfeasibleBudget) -> None:
    """A refusal must name a budget, and the value it says is needed must really exceed it."""
    assert err.budget in ("macs", "params", "layers", "effectiveness")
    assert err.needed is None or err.needed > err.limit, (err.budget, err.needed, err.limit)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(space=st.sampled_from(["resnet", "mbv2"]), macs=st.floats(2e8, 3e9),
       params=st.floats(3e6, 3e7), layers=st.one_of(st.none(), st.integers(20, 200)),
       rho=st.floats(0.3, 0.8), seed=st.integers(0, 10))
def test_every_design_meets_every_budget(space, macs, params, layers, rho, seed):
    b = Budgets(macs=macs, params=params, layers=layers, rho=rho)
    try:
        r = design(space, b, resolution=224, options=DesignOptions(candidates=1500, seed=seed,
                                                                   batch=128))
    except InfeasibleBudget as err:
        _genuine(err)
        return
    _check(r, b)


@settings(max_examples=6, deadline=None)
@given(params=st.floats(5e4, 2e6), rho=st.floats(0.02, 0.5), layers=st.integers(2, 30))
def test_mlp_designs_meet_budgets(params, rho, layers):
    b = Budgets(params=params, rho=rho, layers=layers)
    try:
        r = design("mlp", b, in_channels=1, resolution=28, num_classes=10, options=FAST)
    except InfeasibleBudget as err:
        _genuine(err)
        return
    _check(r, b)


@settings(max_examples=6, deadline=None)
@given(params=st.floats(1e5, 2e6), rho=st.floats(0.2, 0.8), solver=st.sampled_from(
    ["bnb", "evolution"]))
def test_dense_designs_meet_budgets(params, rho, solver):
    b = Budgets(params=params, rho=rho)
    grid = DenseGrid(growth=(8, 12, 16, 24), layers=tuple(range(4, 17, 2)), kernels=(3, 5))
    try:
        r = design("densenet", b, resolution=32, grid=grid, solver=solver, options=FAST)
    except InfeasibleBudget as err:
        _genuine(err)
        return
    _check(r, b)


def test_infeasible_names_budget_and_needed_value_is_feasible():
    b = Budgets(macs=1e6, params=11.69e6, rho=0.3)
    with pytest.raises(InfeasibleBudget) as info:
        design("resnet", b, resolution=224, options=FAST)
    err = info.value
    assert err.budget == "macs" and err.limit == 1e6 and err.needed > 1e6
    assert "macs" in str(err) and "--budget-macs" in str(err)
    # the value it names is enough for the seed: the same request with it succeeds
    r = design("resnet", Budgets(macs=err.needed, params=11.69e6, rho=0.3), resolution=224,
               options=FAST)
    assert r.metrics["macs"] <= err.needed


def test_infeasible_rho_is_named():
    # rho_0 below what even the widest seed reaches
    with pytest.raises(InfeasibleBudget) as info:
        design("resnet", Budgets(macs=2e9, params=12e6, rho=0.001), resolution=224,
               options=FAST)
    assert info.value.budget == "effectiveness" and info.value.needed > 0.001


def test_user_seed_over_budget():
    with pytest.raises(InfeasibleBudget) as info:
        design("resnet", Budgets(macs=1e9, params=20e6, rho=0.3), resolution=224,
               init="deepmad-r18", num_classes=0, options=FAST)
    spec = load_spec("deepmad-r18", num_classes=0)
    assert info.value.budget == "macs" and info.value.needed == spec.macs()


def test_dense_infeasible_names_params():
    with pytest.raises(InfeasibleBudget) as info:
        design("densenet", Budgets(params=1000, rho=0.5), resolution=32,
               grid=DenseGrid(growth=(8, 12), layers=(4, 6), kernels=(3,)))
    assert info.value.budget == "params" and info.value.needed > 1000


def test_parse_amount():
    assert parse_amount("1.82G") == 1.82e9
    assert parse_amount("11.69M") == pytest.approx(11.69e6)
    assert parse_amount("800k") == 800e3
    assert parse_amount("1.82e9") == 1.82e9
    assert parse_amount(None) is None
    for bad in ("abc", "-5", "0", "1.5X"):
        with pytest.raises(InvalidSpec):
            parse_amount(bad)
    with pytest.raises(InvalidSpec):
        Budgets(macs=-1)
