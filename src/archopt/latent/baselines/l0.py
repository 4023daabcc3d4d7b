"""L0 regularisation with hard-concrete gates (Louizos, Welling, Kingma, "Learning Sparse Neural
Networks through L0 Regularization", ICLR 2018), steered to a requested weight count.

Every weight ``theta`` gets a gate ``z`` in [0, 1] (section 3, eq. 10-13): ``u ~ U(0, 1)``,
``s = sigmoid((log u - log(1 - u) + log_alpha) / beta)``, ``z = clamp(s (zeta - gamma) + gamma,
0, 1)`` with ``beta = 2/3, gamma = -0.1, zeta = 1.1``; the network uses ``theta * z``. The
expected number of non-zero gates is ``E[L0] = sum sigmoid(log_alpha - beta log(-gamma / zeta))``
(eq. 12). ``log_alpha`` starts at ``log((1 - p) / p)`` with ``p = 0.5`` (+ N(0, 0.01) noise), as
in the authors' code.

Steering to a count (ours, as the paper sets a fixed penalty weight ``lambda``): the loss of
each restart is ``MSE / var(y) + lambda * E[L0] / N`` (``N`` = all weights) and ``lambda`` follows
dual ascent on the constraint ``E[L0] <= nonzero``: ``lambda <- max(0, lambda + eta (E[L0] -
nonzero) / N)`` after every step (the constrained formulation of Gallego-Posada et al.,
"Controlled Sparsity via Constrained Optimization", NeurIPS 2022). After
``(1 - finetune_fraction) * steps`` steps the test-time gates ``z_hat = clamp(sigmoid(log_alpha)
(zeta - gamma) + gamma, 0, 1)`` (eq. 13) are applied, exactly the ``nonzero`` weights with the
largest ``log_alpha`` are kept (a kept weight whose ``z_hat`` is 0 keeps ``theta``), and the rest
of the steps fine-tune them with the mask fixed, so every method ends at the same count.
"""

from __future__ import annotations

import math

import torch

from archopt.latent.baselines.common import Fit, adam_full_batch, forward, init_weights, topk_mask

__all__ = ["BETA", "GAMMA", "ZETA", "expected_l0", "l0_hard_concrete"]

BETA, GAMMA, ZETA = 2.0 / 3.0, -0.1, 1.1


def expected_l0(log_alpha: torch.Tensor) -> torch.Tensor:
    """``P(z != 0)`` of every gate (eq. 12), same shape as ``log_alpha``."""
    return torch.sigmoid(log_alpha - BETA * math.log(-GAMMA / ZETA))


def _gate(log_alpha: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    u = torch.rand(log_alpha.shape, generator=generator).clamp(1e-6, 1 - 1e-6)
    s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + log_alpha) / BETA)
    return (s * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0)


def _test_gate(log_alpha: torch.Tensor) -> torch.Tensor:
    return (torch.sigmoid(log_alpha) * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0)


def l0_hard_concrete(x: torch.Tensor, y: torch.Tensor, *, depth: int, width: int, nonzero: int,
                     activation: str, negative_slope: float = 0.1, steps: int = 1000,
                     lr: float = 0.01, restarts: int = 1, generator: torch.Generator,
                     finetune_fraction: float = 0.2, anneal_fraction: float = 0.5,
                     penalty: float = 10.0, droprate_init: float = 0.5) -> Fit:
    """L0 training steered to ``nonzero`` weights, then top-``nonzero`` gates fine-tuned (see the
    module docstring). ``info``: ``expected_l0`` (per restart, at the end of the L0 phase),
    ``open_gates`` (test-time gates > 0 then), ``l0_steps``."""
    theta = init_weights(x.shape[1], [width] * depth, restarts, generator)
    mean = math.log(1 - droprate_init) - math.log(droprate_init)
    log_alpha = [mean + 0.01 * torch.randn(t.shape, generator=generator) for t in theta]
    R = restarts
    total = sum(t[0].numel() for t in theta)
    var = float(y.var()) or 1.0
    l0_steps = steps - round(finetune_fraction * steps)
    anneal = max(1, round(anneal_fraction * l0_steps))
    step = [0]

    def gated_loss() -> torch.Tensor:
        ws = [t * _gate(a, generator) for t, a in zip(theta, log_alpha, strict=True)]
        mse = ((forward(ws, x, activation, negative_slope) - y) ** 2).mean(1) / var
        el0 = sum(expected_l0(a).reshape(R, -1).sum(1) for a in log_alpha)
        budget = total + (min(nonzero, total) - total) * min(1.0, step[0] / anneal)
        return (mse + penalty * torch.relu(el0 - budget) / total).sum()

    def count(_: int) -> None:
        step[0] += 1

    adam_full_batch([*theta, *log_alpha], gated_loss, steps=l0_steps, lr=lr, after_step=count)
    with torch.no_grad():
        el0 = sum(expected_l0(a).reshape(R, -1).sum(1) for a in log_alpha)
        gates = [_test_gate(a) for a in log_alpha]
        open_gates = sum((g > 0).reshape(R, -1).sum(1) for g in gates)
        masks = topk_mask(log_alpha, nonzero)
        ws = [torch.where(m > 0, t * torch.where(g > 0, g, torch.ones_like(g)),
                          torch.zeros_like(t))
              for t, g, m in zip(theta, gates, masks, strict=True)]

    def loss() -> torch.Tensor:
        return ((forward(ws, x, activation, negative_slope) - y) ** 2).mean(1).sum()

    adam_full_batch(ws, loss, steps=steps - l0_steps, lr=lr, masks=masks)
    return Fit(ws, {"l0_steps": l0_steps},
               {"expected_l0": el0.tolist(), "open_gates": open_gates.tolist()})
