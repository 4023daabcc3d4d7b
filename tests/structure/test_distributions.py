"""Distributions: natural gradients against finite differences mapped through an inverse Fisher
matrix computed by enumeration (no closed form is trusted), sampling, range restriction."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from archopt.errors import ArchoptError
from archopt.structure.distributions import Bernoulli, Categorical


def _bern_logp(theta: np.ndarray, m: np.ndarray) -> float:
    return float(np.sum(m * np.log(theta) + (1 - m) * np.log(1 - theta)))


def _all_bits(d: int) -> list[np.ndarray]:
    return [np.array(b, dtype=float) for b in itertools.product([0, 1], repeat=d)]


def _fd(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(x)
    for i in range(len(x)):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


def _fisher_by_enumeration(logp, support, theta):
    """E[s s^T] with the score s = numerical gradient of ln p (enumerating the support)."""
    F = np.zeros((len(theta), len(theta)))
    for x in support:
        s = _fd(lambda t, x=x: logp(t, x), theta)
        F += np.exp(logp(theta, x)) * np.outer(s, s)
    return F


THETA = np.array([0.2, 0.5, 0.7, 0.93])
C = np.array([1.0, 3.0, 0.5, 2.0])


def test_bernoulli_penalty_natural_gradient_equals_inverse_fisher_times_fd_gradient():
    support = _all_bits(4)

    def expected_penalty(t):  # by enumeration, not sum(c * theta)
        return sum(np.exp(_bern_logp(t, m)) * float(C @ m) for m in support)

    grad = _fd(expected_penalty, THETA)
    F = _fisher_by_enumeration(_bern_logp, support, THETA)
    natural = np.linalg.solve(F, grad)
    dist = Bernoulli(4, THETA, margin=0)
    np.testing.assert_allclose(dist.natural_grad_expected_cost(C), natural, rtol=1e-5)
    np.testing.assert_allclose(natural, C * THETA * (1 - THETA), rtol=1e-5)  # ICANN eq. (5)
    np.testing.assert_allclose(np.linalg.inv(F), dist.inverse_fisher(), rtol=1e-5, atol=1e-9)


def test_bernoulli_natural_gradient_of_log_likelihood_is_m_minus_theta():
    support = _all_bits(4)
    F = _fisher_by_enumeration(_bern_logp, support, THETA)
    dist = Bernoulli(4, THETA, margin=0)
    for m in support:
        natural = np.linalg.solve(F, _fd(lambda t, m=m: _bern_logp(t, m), THETA))
        np.testing.assert_allclose(dist.natural_grad_log_prob(m.astype(bool))[0], natural,
                                   rtol=1e-5, atol=1e-8)
        assert dist.log_prob(m.astype(bool))[0] == pytest.approx(_bern_logp(THETA, m))


def test_bernoulli_fisher_norm():
    support = _all_bits(4)
    F = _fisher_by_enumeration(_bern_logp, support, THETA)
    g = np.array([0.3, -0.2, 0.05, 0.01])
    dist = Bernoulli(4, THETA, margin=0)
    w = dist.fisher_whiten(g)
    assert w @ w == pytest.approx(g @ F @ g, rel=1e-5)


# -- categorical: free coordinates eta = theta[:, :K-1], theta[:, K-1] = 1 - sum ----------------

CATS = (3, 2)
THETA_C = np.array([[0.2, 0.5, 0.3], [0.6, 0.4, 0.0]])
C_C = np.array([[1.0, 4.0, 2.0], [3.0, 0.5, 0.0]])


def _full(eta: np.ndarray) -> np.ndarray:
    t = np.zeros((2, 3))
    t[0, :2] = eta[:2]
    t[0, 2] = 1 - eta[:2].sum()
    t[1, 0] = eta[2]
    t[1, 1] = 1 - eta[2]
    return t


def _cat_logp(eta: np.ndarray, x: tuple[int, int]) -> float:
    t = _full(eta)
    return float(np.log(t[0, x[0]]) + np.log(t[1, x[1]]))


ETA = np.array([0.2, 0.5, 0.6])
SUPPORT_C = list(itertools.product(range(3), range(2)))


def test_categorical_penalty_natural_gradient_equals_inverse_fisher_times_fd_gradient():
    def expected_cost(eta):
        return sum(np.exp(_cat_logp(eta, x)) * (C_C[0, x[0]] + C_C[1, x[1]]) for x in SUPPORT_C)

    grad = _fd(expected_cost, ETA)
    F = _fisher_by_enumeration(_cat_logp, SUPPORT_C, ETA)
    natural = np.linalg.solve(F, grad)  # in the free coordinates
    got = Categorical(CATS, THETA_C, margin=0).natural_grad_expected_cost(C_C)
    np.testing.assert_allclose([got[0, 0], got[0, 1], got[1, 0]], natural, rtol=1e-5)
    # the dependent coordinates move by minus the sum of the free ones
    assert got[0, 2] == pytest.approx(-(got[0, 0] + got[0, 1]))
    assert got[1, 1] == pytest.approx(-got[1, 0])
    assert got[1, 2] == 0


def test_categorical_natural_gradient_of_log_likelihood_and_fisher_norm():
    F = _fisher_by_enumeration(_cat_logp, SUPPORT_C, ETA)
    dist = Categorical(CATS, THETA_C, margin=0)
    for x in SUPPORT_C:
        natural = np.linalg.solve(F, _fd(lambda e, x=x: _cat_logp(e, x), ETA))
        onehot = np.zeros((2, 3), dtype=bool)
        onehot[0, x[0]] = onehot[1, x[1]] = True
        got = dist.natural_grad_log_prob(onehot)[0]
        np.testing.assert_allclose([got[0, 0], got[0, 1], got[1, 0]], natural, rtol=1e-5,
                                   atol=1e-8)
        assert dist.log_prob(onehot)[0] == pytest.approx(_cat_logp(ETA, x))
    g_free = np.array([0.1, -0.3, 0.2])
    g = np.array([[0.1, -0.3, 0.2], [0.2, -0.2, 0.0]])
    w = dist.fisher_whiten(g)
    assert w @ w == pytest.approx(g_free @ F @ g_free, rel=1e-5)


def test_bernoulli_with_k2_categorical_agree():
    b = Bernoulli(3, [0.3, 0.6, 0.9], margin=0)
    cat = Categorical([2, 2, 2], np.array([[0.3, 0.7], [0.6, 0.4], [0.9, 0.1]]), margin=0)
    c = np.array([2.0, 1.0, 5.0])
    c2 = np.stack([c, np.zeros(3)], 1)
    np.testing.assert_allclose(cat.natural_grad_expected_cost(c2)[:, 0],
                               b.natural_grad_expected_cost(c))
    g = np.array([0.1, -0.2, 0.05])
    np.testing.assert_allclose(np.abs(cat.fisher_whiten(np.stack([g, -g], 1))),
                               np.abs(b.fisher_whiten(g)))


def test_sampling_frequencies_match_theta():
    rng = np.random.default_rng(0)
    n = 40_000
    b = Bernoulli(4, THETA, margin=0)
    freq = b.sample(n, rng).mean(0)
    assert np.all(np.abs(freq - THETA) < 4 * np.sqrt(THETA * (1 - THETA) / n))
    cat = Categorical(CATS, THETA_C, margin=0)
    x = cat.sample(n, rng)
    assert x.shape == (n, 2, 3) and np.all(x.sum(2) == 1) and not x[:, 1, 2].any()
    freq = x.mean(0)
    assert np.all(np.abs(freq - THETA_C) < 4 * np.sqrt(THETA_C * (1 - THETA_C) / n) + 1e-12)


def test_range_restriction_and_mode():
    b = Bernoulli(5, 0.5)
    b.theta[:] = [-0.3, 0.1, 0.5, 0.95, 1.4]
    b.restrict()
    np.testing.assert_allclose(b.theta, [0.2, 0.2, 0.5, 0.8, 0.8])  # [1/d, 1 - 1/d]
    assert b.mode().tolist() == [False, False, True, True, True]  # theta >= 0.5
    cat = Categorical([4, 4])
    cat.theta[0] = [0.97, 0.01, 0.01, 0.01]
    cat.restrict()
    m = 1 / (2 * 3)  # 1 / (D (K - 1))
    assert np.all(cat.theta >= m - 1e-12)
    np.testing.assert_allclose(cat.theta.sum(1), 1.0)
    assert cat.mode()[0].tolist() == [True, False, False, False]


def test_state_dict_round_trip_and_errors():
    b = Bernoulli(3, [0.2, 0.4, 0.6])
    b2 = Bernoulli(3)
    b2.load_state_dict(b.state_dict())
    np.testing.assert_array_equal(b2.theta, b.theta)
    with pytest.raises(ArchoptError, match="shape"):
        Bernoulli(4).load_state_dict(b.state_dict())
    with pytest.raises(ArchoptError, match="categorical"):
        Categorical([2, 3]).load_state_dict(b.state_dict())
    with pytest.raises(ArchoptError, match="d >= 1"):
        Bernoulli(0)
    with pytest.raises(ArchoptError, match="strictly between"):
        Bernoulli(3, 1.0)
    with pytest.raises(ArchoptError, match=r"\(lambda, 3\)"):
        b.check_samples(np.zeros((2, 4), dtype=bool))
    with pytest.raises(ArchoptError, match="0/1"):
        b.check_samples(np.full((2, 3), 2))
    with pytest.raises(ArchoptError, match="one-hot"):
        Categorical([2, 3]).check_samples(np.ones((1, 2, 3), dtype=bool))
