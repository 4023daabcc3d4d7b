"""DE/rand/1/bin: operators checked by brute force, selection, convergence, resume, errors."""

from __future__ import annotations

import itertools

import pytest
import torch

from archopt.errors import ArchoptError
from archopt.refine.de import DifferentialEvolution


def _de(np_: int = 6, d: int = 5, **kw) -> DifferentialEvolution:
    return DifferentialEvolution(-torch.ones(d), torch.ones(d), population=np_, **kw)


def _start(de: DifferentialEvolution, fitness=None) -> torch.Tensor:
    pop = de.ask()
    de.tell(torch.arange(de.NP, dtype=torch.float64) if fitness is None else fitness)
    return pop


def _mutants(pop: torch.Tensor, i: int, F: float) -> list[torch.Tensor]:
    others = [j for j in range(len(pop)) if j != i]
    return [pop[a] + F * (pop[b] - pop[c]) for a, b, c in itertools.permutations(others, 3)]


def test_initial_population_inside_ranges_with_x0_member():
    low = torch.tensor([0.0, -1.0, 5.0, 2.0])
    high = torch.tensor([1.0, 1.0, 5.0, 2.5])
    x0 = torch.tensor([0.5, 0.0, 5.0, 2.2])
    de = DifferentialEvolution(low, high, population=50, x0=x0, seed=1)
    pop = de.ask()
    assert pop.shape == (50, 4) and pop.dtype == torch.float32
    assert torch.equal(pop[0], x0)
    assert bool(((pop >= low) & (pop <= high)).all())
    assert bool((pop[:, 2] == 5.0).all())  # a one-value range stays put
    assert float(pop[1:, 0].std()) > 0.2  # uniform on [0, 1] (std 0.29), not a constant


def test_cr_zero_changes_exactly_one_gene_to_a_rand1_mutant():
    de = _de(np_=6, d=5, CR=0.0, F=0.7, seed=3)
    pop = _start(de)
    trials = de.ask()
    for i in range(6):
        diff = torch.nonzero(trials[i] != pop[i]).flatten()
        assert diff.numel() == 1  # the forced j_rand gene only
        j = int(diff)
        assert any(torch.isclose(m[j], trials[i, j], rtol=0, atol=1e-6)
                   for m in _mutants(pop, i, 0.7))


def test_cr_one_gives_the_full_mutant_of_three_distinct_others():
    de = _de(np_=7, d=6, CR=1.0, F=0.5, seed=4)
    pop = _start(de)
    trials = de.ask()
    for i in range(7):
        assert any(torch.allclose(m, trials[i], rtol=0, atol=1e-6)
                   for m in _mutants(pop, i, 0.5))


def test_crossover_rate_is_respected_on_average():
    de = DifferentialEvolution(-torch.ones(400), torch.ones(400), population=20, CR=0.3, seed=0)
    pop = _start(de)
    frac = float((de.ask() != pop).float().mean())
    assert 0.27 < frac < 0.33


def test_deferred_selection_strictly_better_only():
    de = _de(np_=5, d=3, seed=0)
    _start(de, torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0], dtype=torch.float64))
    parents = de.population.clone()
    trials = de.ask()
    replaced = de.tell(torch.tensor([0.5, 1.0, 2.0, float("nan"), 0.9999], dtype=torch.float64))
    assert replaced.tolist() == [True, False, False, False, True]
    assert torch.equal(de.population[0], trials[0])
    assert torch.equal(de.population[1], parents[1])
    assert de.fitness.tolist() == [0.5, 1.0, 1.0, 1.0, 0.9999]
    assert de.evaluations == 10 and de.generation == 1


def test_converges_on_a_convex_toy():
    d = 8
    centre = torch.linspace(-2, 2, d)

    def sphere(x: torch.Tensor) -> torch.Tensor:
        return ((x.double() - centre) ** 2).sum(dim=1)

    de = DifferentialEvolution(-5 * torch.ones(d), 5 * torch.ones(d), population=30, seed=0)
    first = None
    for _ in range(400):
        pop = de.ask()
        de.tell(sphere(pop))
        first = de.best_fitness if first is None else first
    assert first > 1.0  # a random start is far from the optimum ...
    assert de.best_fitness < 1e-6  # ... and DE finds it
    assert torch.allclose(de.best, centre, atol=1e-3)


def test_block_mean_member_best_never_worsens():
    d = 20
    centre = torch.zeros(d)
    x0 = torch.full((d,), 0.05)

    def f(x: torch.Tensor) -> torch.Tensor:
        return ((x.double() - centre) ** 2).sum(dim=1)

    f0 = float(f(x0[None]))
    best = []
    de = DifferentialEvolution(-3 * torch.ones(d), 3 * torch.ones(d), population=10, x0=x0,
                               seed=2)
    for _ in range(30):
        de.tell(f(de.ask()))
        best.append(de.best_fitness)
    assert best[0] == f0  # x0 is the best of a random population here
    assert all(b <= f0 for b in best)
    assert all(b2 <= b1 for b1, b2 in itertools.pairwise(best))
    no_x0 = DifferentialEvolution(-3 * torch.ones(d), 3 * torch.ones(d), population=10, seed=2)
    no_x0.tell(f(no_x0.ask()))
    assert no_x0.best_fitness > f0  # without the member the start is worse


def test_rescore_replaces_parent_objectives_and_counts_fe():
    de = _de(np_=4, d=2)
    _start(de)
    de.rescore(torch.full((4,), 7.0))
    assert de.fitness.tolist() == [7.0] * 4 and de.evaluations == 8


def test_state_dict_resume_is_bit_identical():
    def f(x):
        return (x.double() ** 2).sum(1)

    a = _de(np_=8, d=4, seed=5)
    for _ in range(10):
        a.tell(f(a.ask()))
    b = _de(np_=8, d=4, seed=5)
    for _ in range(4):
        b.tell(f(b.ask()))
    state = b.state_dict()
    c = _de(np_=8, d=4, seed=5)
    c.load_state_dict(state)
    for _ in range(6):
        c.tell(f(c.ask()))
    assert torch.equal(a.population, c.population) and torch.equal(a.fitness, c.fitness)
    assert c.generation == a.generation == 9 and c.evaluations == 80
    with pytest.raises(ArchoptError, match="NP"):
        _de(np_=9, d=4, seed=5).load_state_dict(state)


def test_same_seed_same_run_other_seed_differs():
    assert torch.equal(_de(seed=1).ask(), _de(seed=1).ask())
    assert not torch.equal(_de(seed=1).ask(), _de(seed=2).ask())


def test_protocol_errors():
    de = _de()
    de.ask()
    with pytest.raises(ArchoptError, match="tell"):
        de.ask()
    with pytest.raises(ArchoptError, match="expected 6"):
        de.tell(torch.zeros(5))
    with pytest.raises(ArchoptError):
        _de().tell(torch.zeros(6))
    with pytest.raises(ArchoptError, match="NP"):
        _de(np_=3)
    with pytest.raises(ArchoptError, match="F"):
        _de(F=0.0)
    with pytest.raises(ArchoptError, match="CR"):
        _de(CR=1.5)
    with pytest.raises(ArchoptError, match="low <= high"):
        DifferentialEvolution(torch.ones(2), torch.zeros(2), population=4)
