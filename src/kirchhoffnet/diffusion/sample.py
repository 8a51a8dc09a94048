"""The digital integrator: Euler–Maruyama on the reverse-time SDE and Euler on the probability-flow ODE.

`euler_scheme` is the one Euler implementation, for any score function; `euler_loop` is the same
contract fused for the crossbar score network, registered as its fast implementation in
[`kirchhoffnet.diffusion.samplers`][kirchhoffnet.diffusion.samplers] (tests hold it to `euler_scheme` to rounding). Both
integrate diffusion time from s = 1 down to s_min on a uniform grid of ``steps`` steps, starting from x ~ N(0, I).
Reverse SDE step (Δ = s_k − s_{k+1} > 0):

    x ← x + [½ β x + β ∇log p] Δ + √(β Δ) z,       probability-flow ODE:  x ← x + ½ β [x + ∇log p] Δ.

The last SDE step adds no noise (it returns the step's mean, the usual final denoising step).

The loop is the hot path of sampling (10⁴ steps × 10⁴ trajectories), so everything that does not depend
on the state is computed once for the whole grid: the embedding drive of each step, the per-step drift
coefficients folded into the output layer, and the noise in chunks. What remains per step is three fused
matrix products, two in-place ReLUs and two in-place additions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from kirchhoffnet._progress import bar
from kirchhoffnet.diffusion._threads import single_thread
from kirchhoffnet.diffusion.field import guidance_gains
from kirchhoffnet.diffusion.score import ScoreModel
from kirchhoffnet.diffusion.sde import VPSDE
from kirchhoffnet.errors import ConfigError

Weights = Sequence[tuple[Tensor, Tensor | None]]
"""Per-layer (weight (out, in), bias (out,) or None), e.g. the effective weights of a programmed chip."""

_NOISE_CHUNK = 64  # steps of noise drawn at once: fewer RNG calls, bounded memory (64 × B × dim)


def time_grid(sde: VPSDE, steps: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """The ``steps + 1`` diffusion times from 1 down to ``sde.s_min``."""
    if int(steps) < 1:
        raise ConfigError(f"the number of sampling steps must be positive, got {steps}")
    return torch.linspace(1.0, sde.s_min, int(steps) + 1, dtype=dtype)


def euler_scheme(
    score: Callable[[Tensor, Tensor], Tensor],
    sde: VPSDE,
    x: Tensor,
    stochastic: bool,
    steps: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Euler–Maruyama on the reverse SDE (``stochastic``) or Euler on the probability-flow ODE, for any score
    function ``score(x, s)``; the score may carry solver state from one call to the next (the score circuit's
    warm start). It draws the noise exactly like `euler_loop`, so the two agree to rounding.

    Shapes:
        x: (B, dim). Returns (B, dim).
    """
    with single_thread():
        return _euler_scheme(score, sde, x, stochastic, int(steps), generator)


def _euler_scheme(
    score: Callable[[Tensor, Tensor], Tensor],
    sde: VPSDE,
    x: Tensor,
    stochastic: bool,
    steps: int,
    generator: torch.Generator | None,
) -> Tensor:
    grid = torch.linspace(1.0, sde.s_min, steps + 1, dtype=torch.float64)
    x = x.clone()
    noise = torch.empty(_NOISE_CHUNK, x.shape[1], len(x), dtype=x.dtype)
    for k in range(steps):
        s, dt = grid[k], float(grid[k] - grid[k + 1])
        beta = float(sde.beta(s))
        if stochastic and k % _NOISE_CHUNK == 0:
            noise.normal_(generator=generator)
        drift = 0.5 * beta * x + (beta if stochastic else 0.5 * beta) * score(x, s.to(x.dtype).expand(len(x)))
        x = x + drift * dt
        if stochastic and k < steps - 1:
            x = x + (beta * dt) ** 0.5 * noise[k % _NOISE_CHUNK].t()
    return x


def euler_loop(
    model: ScoreModel,
    x: Tensor,
    stochastic: bool,
    steps: int,
    generator: torch.Generator | None = None,
    labels: Tensor | None = None,
    guidance: float = 0.0,
    weights: Weights | None = None,
    progress: bool = False,
) -> Tensor:
    """Integrate from ``x`` at s = 1 down to s_min (see the module docstring); ``x`` is not modified.

    Shapes:
        x: (B, dim) float32. Returns (B, dim).
    """
    with single_thread():
        return _euler_loop(model, x, stochastic, steps, generator, labels, guidance, weights, progress)


def _euler_loop(
    model: ScoreModel,
    x: Tensor,
    stochastic: bool,
    steps: int,
    generator: torch.Generator | None,
    labels: Tensor | None,
    guidance: float,
    weights: Weights | None,
    progress: bool,
) -> Tensor:
    net, sde = model.net, model.sde
    grid = time_grid(sde, steps)
    s, dt = grid[:-1], grid[:-1] - grid[1:]
    beta = sde.beta(s)
    # Per-step scalars: x ← (1 + a) x + c · (net output) + g z
    a = 0.5 * beta * dt
    c = (beta if stochastic else 0.5 * beta) * dt * net.amplitude * model.output_gain(s)
    g = torch.sqrt(beta * dt) if stochastic else torch.zeros_like(beta)
    if stochastic:
        g[-1] = 0.0
    layers = weights if weights is not None else net.layer_weights()
    (w1, b1), (w2, b2), (w3, b3) = [(w.detach().float(), None if b is None else b.detach().float()) for w, b in layers]
    # Feature-major layout (features, trajectories): the products are (14 × K) @ (K × B), which run
    # several times faster than (B × K) @ (K × 14) for these shapes.
    embed = net.embedding(s.float()).unsqueeze(2)  # (T, width, 1): the time sources, one per step
    drive1 = embed + (b1.unsqueeze(1) if b1 is not None else 0)
    drive2 = embed + (b2.unsqueeze(1) if b2 is not None else 0)
    bias3 = c.float().reshape(-1, 1, 1) * (b3.unsqueeze(1) if b3 is not None else torch.zeros(net.dim, 1))
    a1, cf = (1.0 + a).tolist(), c.tolist()
    n = len(x)
    state, out = x.detach().float().t().contiguous(), torch.empty(net.dim, n)
    branches: list[Tensor | None] = [None]
    class_drive = net.class_drive(labels)
    mix = guidance_gains(labels if class_drive is not None else None, guidance)  # the guided copies' gains
    if class_drive is not None:
        branches = [class_drive.detach().t().contiguous()]
        if len(mix) > 1:
            branches.append(torch.zeros(net.width, n))  # the unconditional copy: class sources at 0
    h1, h2 = torch.empty(net.width, n), torch.empty(net.width, n)
    # Each step ends with x += c_k b3 + g_k z_k; both terms are formed for a chunk of steps at once.
    g_steps = g.float().reshape(-1, 1, 1)
    kick = torch.empty(_NOISE_CHUNK, net.dim, n) if stochastic else bias3
    for k in bar(range(len(s)), desc="euler", unit="step", enabled=progress, leave=False):
        j = k % _NOISE_CHUNK
        if stochastic and j == 0:
            chunk = slice(k, k + _NOISE_CHUNK)
            kick.normal_(generator=generator)
            kick[: len(g_steps[chunk])].mul_(g_steps[chunk]).add_(bias3[chunk])
        for i, branch in enumerate(branches):
            if branch is None:
                torch.addmm(drive1[k], w1, state, out=h1)
            else:
                torch.add(branch, drive1[k], out=h1).addmm_(w1, state)
            h1.relu_()
            if branch is None:
                torch.addmm(drive2[k], w2, h1, out=h2)
            else:
                torch.add(branch, drive2[k], out=h2).addmm_(w2, h1)
            h2.relu_()
            if i == 0:
                torch.addmm(state, w3, h2, beta=a1[k], alpha=cf[k] * mix[0], out=out)
            else:
                out.addmm_(w3, h2, alpha=cf[k] * mix[i])
        out.add_(kick[j] if stochastic else kick[k])
        state, out = out, state
    return state.t().contiguous()
