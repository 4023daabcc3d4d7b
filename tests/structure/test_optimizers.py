"""Ranking utility, SNG and ASNG: hand-computed steps, clipping, ties, checkpoints, toy problems."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from archopt.errors import ArchoptError, CheckpointError, UnknownName
from archopt.structure import ASNG, SNG, Bernoulli, Categorical, make_optimizer, ranking_utility

# -- utility ------------------------------------------------------------------------------------


def test_utility_lambda2_best_gets_plus_one():
    assert ranking_utility([0.3, 0.5]).tolist() == [1.0, -1.0]
    assert ranking_utility([0.5, 0.3]).tolist() == [-1.0, 1.0]


def test_utility_ties_share_the_average():
    assert ranking_utility([0.4, 0.4]).tolist() == [0.0, 0.0]
    assert ranking_utility([1.0, 1.0, 3.0, 4.0]).tolist() == [0.5, 0.5, 0.0, -1.0]
    assert ranking_utility([2.0, 2.0, 2.0, 2.0]).tolist() == [0.0] * 4
    # NaN is the worst loss; two NaNs tie
    assert ranking_utility([float("nan"), 0.1]).tolist() == [-1.0, 1.0]
    assert ranking_utility([np.nan, np.nan, 0.1, 0.2]).tolist() == [-0.5, -0.5, 1.0, 0.0]


def test_utility_larger_lambda_and_weight():
    # lambda = 8: ceil(8/4) = 2 best get +1, 2 worst -1
    u = ranking_utility([5, 1, 2, 8, 3, 4, 7, 6])
    assert u.tolist() == [0, 1, 1, -1, 0, 0, -1, 0]
    assert ranking_utility([5, 1, 2, 8, 3, 4, 7, 6], weight=0.5).tolist() == \
        [0, 0.5, 0.5, -0.5, 0, 0, -0.5, 0]
    # lambda = 5: ceil(5/4) = 2
    assert ranking_utility([3, 1, 2, 5, 4]).tolist() == [0, 1, 1, -1, -1]
    with pytest.raises(ArchoptError, match="lambda >= 2"):
        ranking_utility([1.0])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-5, 5), min_size=2, max_size=12))
def test_utility_sums_to_zero_and_is_invariant_to_monotone_transforms(losses):
    f = np.array(losses, dtype=float)
    u = ranking_utility(f)
    assert u.sum() == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(ranking_utility(np.exp(f) * 3 + 1), u)
    # better loss never gets a smaller utility
    order = np.argsort(f)
    assert np.all(np.diff(u[order]) <= 1e-12)


# -- SNG --------------------------------------------------------------------------------------


def test_sng_one_step_by_hand():
    opt = SNG(Bernoulli(3), penalty=0.5, costs=[1.0, 2.0, 4.0])
    masks = np.array([[1, 0, 1], [0, 0, 1]], dtype=bool)
    opt.tell(masks, [0.2, 0.9])
    # u = (+1, -1); (1/2) sum u (M - 0.5) = (0.5, 0, 0); eps = 0.5 / 4 = 0.125;
    # penalty = eps * c * 0.25 = (0.03125, 0.0625, 0.125); eta = 1/3
    expected = 0.5 + np.array([0.5 - 0.03125, -0.0625, -0.125]) / 3
    np.testing.assert_allclose(opt.theta, expected)
    assert opt.eps == 0.125 and opt.eta == pytest.approx(1 / 3)


def test_sng_clips_to_one_over_d():
    opt = SNG(Bernoulli(4), eta=10.0)
    opt.tell(np.array([[1, 0, 1, 0], [0, 1, 1, 0]], dtype=bool), [0.0, 1.0])
    np.testing.assert_allclose(opt.theta, [0.75, 0.25, 0.5, 0.5])  # [1/d, 1 - 1/d]


def test_sng_only_differing_bits_move_and_ties_do_nothing():
    opt = SNG(Bernoulli(6))
    m = np.array([[1, 1, 0, 0, 1, 0], [1, 0, 0, 1, 1, 0]], dtype=bool)
    opt.tell(m, [0.1, 0.2])
    moved = opt.theta != 0.5
    assert moved.tolist() == [False, True, False, True, False, False]
    before = opt.theta.copy()
    opt.tell(m, [0.3, 0.3])  # tie, no penalty
    np.testing.assert_array_equal(opt.theta, before)


def test_negative_penalty_grows_bits_without_loss_signal():
    opt = SNG(Bernoulli(5), penalty=-(2**-3))
    m = np.zeros((2, 5), dtype=bool)
    for _ in range(10):
        opt.tell(m, [1.0, 1.0])
    assert np.all(opt.theta > 0.5)


def test_tell_validates_input():
    opt = SNG(Bernoulli(3))
    with pytest.raises(ArchoptError, match="2 structures but 3 losses"):
        opt.tell(np.zeros((2, 3), dtype=bool), [1, 2, 3])
    with pytest.raises(ArchoptError, match=r"\(lambda, 3\)"):
        opt.tell(np.zeros((2, 4), dtype=bool), [1, 2])
    with pytest.raises(ArchoptError, match="lambda"):
        SNG(Bernoulli(3), lam=1)
    with pytest.raises(ArchoptError, match="costs"):
        SNG(Bernoulli(3), costs=[1, 2])
    with pytest.raises(ArchoptError, match="positive maximum"):
        SNG(Bernoulli(3), costs=[0, 0, 0])
    with pytest.raises(UnknownName, match="sng, asng"):
        make_optimizer("adam", 3)


def _torch_round_trip(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("cls", [SNG, ASNG])
def test_state_dict_continues_exactly(cls):
    rng = np.random.default_rng(1)
    a = cls(Bernoulli(8), penalty=2**-4, seed=3)
    for _ in range(7):
        a.tell(a.ask(), rng.random(2))
    state = _torch_round_trip(a.state_dict())  # plain data: weights_only loading accepts it
    b = cls(Bernoulli(8), penalty=2**-4, seed=99)
    b.load_state_dict(state)
    for _ in range(5):
        losses = rng.random(2)
        ma, mb = a.ask(), b.ask()
        np.testing.assert_array_equal(ma, mb)
        a.tell(ma, losses)
        b.tell(mb, losses)
    np.testing.assert_array_equal(a.theta, b.theta)
    other = ASNG if cls is SNG else SNG
    with pytest.raises(CheckpointError, match="optimiser state is for"):
        other(Bernoulli(8)).load_state_dict(state)


def _toy_loss(m: np.ndarray, rng: np.random.Generator) -> float:
    """Bits 0-9 help (each lowers the loss by 1), bits 10-19 never matter; plus noise."""
    return -float(m[:10].sum()) + rng.normal(0, 0.5)


@pytest.mark.parametrize("name", ["sng", "asng"])
def test_bits_that_never_help_are_switched_off(name):
    rng = np.random.default_rng(0)
    opt = make_optimizer(name, Bernoulli(20), penalty=2**-3, seed=0)
    for _ in range(3000):
        masks = opt.ask()
        opt.tell(masks, [_toy_loss(m, rng) for m in masks])
    mode = opt.mode()
    assert mode[:10].all(), opt.theta[:10]
    assert not mode[10:].any(), opt.theta[10:]
    assert np.all(opt.theta[10:] < 0.2)  # driven towards the bound 1/d


def test_without_penalty_useless_bits_are_not_driven_off():
    rng = np.random.default_rng(0)
    opt = SNG(Bernoulli(20), penalty=0.0, seed=0)
    for _ in range(3000):
        masks = opt.ask()
        opt.tell(masks, [_toy_loss(m, rng) for m in masks])
    assert opt.mode()[:10].all()
    # no drift: the useless bits random-walk around 0.5 instead of sitting at 1/d
    assert 0.25 < opt.theta[10:].mean() < 0.75


# -- ASNG -------------------------------------------------------------------------------------


def test_asng_one_step_by_hand():
    opt = ASNG(Bernoulli(4))
    opt.tell(np.array([[1, 0, 0, 0], [0, 0, 0, 0]], dtype=bool), [0.0, 1.0])
    # G = (0.5, 0, 0, 0); ||G||_F = 0.5 / sqrt(0.25) = 1; theta_0 = 0.5 + 1 * 0.5 / 1 -> clip 0.75
    np.testing.assert_allclose(opt.theta, [0.75, 0.5, 0.5, 0.5])
    beta = 1 / math.sqrt(4)
    s = math.sqrt(beta * (2 - beta))
    gamma = beta * (2 - beta)
    np.testing.assert_allclose(opt.s, [s, 0, 0, 0], rtol=1e-7)
    assert opt.gamma == pytest.approx(gamma)
    assert opt.Delta == pytest.approx(math.exp(beta * (gamma - s * s / 1.5)), rel=1e-7)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_asng_step_stays_large_on_signal_and_shrinks_on_noise(seed):
    rng = np.random.default_rng(seed)
    signal = ASNG(Bernoulli(10), seed=seed)
    noise = ASNG(Bernoulli(10), seed=seed)
    for _ in range(100):
        m = signal.ask()
        signal.tell(m, [-m[0].sum(), -m[1].sum()])  # onemax: a consistent direction
        noise.tell(noise.ask(), rng.random(2))  # losses unrelated to the structure
    assert noise.delta < 0.2  # pure noise: ||s||^2 ~ gamma < alpha gamma, Delta grows
    assert signal.delta > 3 * noise.delta


def test_asng_categorical_finds_the_target():
    target = np.array([2, 0, 3, 1, 1])
    opt = ASNG(Categorical([4] * 5), seed=0)
    for _ in range(600):
        x = opt.ask()
        opt.tell(x, [float((xi.argmax(1) != target).sum()) for xi in x])
    assert opt.mode().argmax(1).tolist() == target.tolist()
    np.testing.assert_allclose(opt.theta.sum(1), 1.0)
    assert opt.theta.min() >= 1 / (5 * 3) - 1e-12


def test_sng_categorical_with_penalty_prefers_cheap_choices():
    # no loss signal (ties): the penalty alone moves every variable to its cheapest choice
    costs = np.array([[3.0, 1.0, 2.0]] * 3)
    opt = SNG(Categorical([3, 3, 3]), penalty=1.0, costs=costs, eta=0.5, seed=0)
    for _ in range(300):
        opt.tell(opt.ask(), [0.0, 0.0])
    assert opt.mode().argmax(1).tolist() == [1, 1, 1]
