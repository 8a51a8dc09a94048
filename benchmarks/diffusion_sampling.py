"""Sampling speed: our fused Euler loop against the original RRAM-diffusion sampling loop, side by side.

The baseline is a re-implementation, written for this benchmark, of the loop of the original code
(github.com/yangjc97/memristor-sde-diffusion, ``unconditional/my_sde.py``: ``SDE.sample``): every step
builds the time tensor, evaluates the sin/cos time encoding and the MLP batch-first with the embedding
added in place, forms the VP-SDE drift and diffusion, and takes an Euler(–Maruyama) step with a fresh
``randn_like`` (drawn even for the ODE, whose diffusion is 0). It uses the original's grid
``linspace(1, 1e-4, steps)`` and step ``(1 − 1e-4) / steps``. For a model trained with the noise
parametrization it also multiplies the output by −1/√(σ² + floor²) each step, so that both loops sample
the same distribution. With ``--original PATH/my_sde.py`` the original module itself is timed as well
(its ``device`` is switched to the CPU; it treats the output as the score, so its samples agree with the
others only for a score-parametrized model).

Both loops run the same weights; the script checks that their samples agree in distribution, then
times them interleaved and keeps the minimum of ``--repeats`` runs (the machine is shared).

    PYTHONPATH=src python benchmarks/diffusion_sampling.py                       # 10,000 × 10,000
    PYTHONPATH=src python benchmarks/diffusion_sampling.py --run runs/ring --original /path/to/my_sde.py
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import time
import types
from pathlib import Path

import torch

from kirchhoffnet.diffusion.metrics import kl_pooled
from kirchhoffnet.diffusion.run import load_run
from kirchhoffnet.diffusion.sample import euler_loop
from kirchhoffnet.diffusion.score import ScoreModel, ScoreNet
from kirchhoffnet.diffusion.sde import VPSDE
from kirchhoffnet.runtime import keep_freed_memory

keep_freed_memory()  # measure the library as the `kirchhoffnet` command runs it (see kirchhoffnet.runtime)


class BaselineNet(torch.nn.Module):
    """The original's score MLP structure: Linear → (+ embedding) → ReLU, twice, then Linear, × amplitude."""

    def __init__(self, model: ScoreModel) -> None:
        super().__init__()
        net = model.net
        self.model = model  # for the noise parametrization's output gain, applied per step
        self.frequencies = net.embedding.frequencies.clone()
        self.linears = torch.nn.ModuleList([torch.nn.Linear(m.in_features, m.out_features) for m in net.layers])
        self.linears.load_state_dict(net.layers.state_dict())
        self.amplitude = net.amplitude

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        phase = t[:, None] * self.frequencies[None, :] * 2 * math.pi
        embedding = torch.cat([torch.sin(phase), torch.cos(phase)], dim=-1)
        for layer in self.linears[:2]:
            x = layer(x)
            x += embedding
            x = torch.relu(x)
        out = self.linears[2](x) * self.amplitude
        if self.model.net.parametrization == "noise":  # not in the original, which predicts the score itself
            out = out * self.model.output_gain(t.double()).float()
        return out


@torch.no_grad()
def baseline_loop(net: BaselineNet, sde: VPSDE, x: torch.Tensor, steps: int, stochastic: bool) -> torch.Tensor:
    eps = 1e-4
    delta_t = (1.0 - eps) / steps
    grid = torch.linspace(1.0, eps, steps)
    for n in range(steps):
        t = grid[n].unsqueeze(-1)
        beta = sde.beta_min + t * (sde.beta_max - sde.beta_min)
        drift, diffusion = -0.5 * beta[:, None] * x, torch.sqrt(beta)[:, None]
        score = net(x, t)
        drift = drift - diffusion**2 * score * (1.0 if stochastic else 0.5)
        diffusion = diffusion if stochastic else 0.0 * diffusion
        mean_x = x - drift * delta_t
        x = mean_x + math.sqrt(delta_t) * diffusion * torch.randn_like(x)
    return mean_x


def original_sampler(path: Path, model: ScoreModel):  # type: ignore[no-untyped-def]
    """The original module's ``VPSDE.sample`` with our weights, on the CPU."""
    if importlib.util.find_spec("pandas") is None:  # imported there but unused by sampling
        sys.modules["pandas"] = types.ModuleType("pandas")
    spec = importlib.util.spec_from_file_location("original_my_sde", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    module.device = torch.device("cpu")  # the original selects CUDA unconditionally
    net = module.MLP(n_node=model.net.width, amp=model.net.amplitude)
    net.embed.W.data.copy_(model.net.embedding.frequencies)
    for mine, theirs in zip(model.net.layers, (net.linears[0], net.linears[2], net.linears[4]), strict=True):
        theirs.load_state_dict(mine.state_dict())
    sde = module.VPSDE(net, beta_min=model.sde.beta_min, beta_max=model.sde.beta_max)
    return lambda n, steps, stochastic: sde.sample(n, steps, type="euler" if stochastic else "euler_ode")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a trained run directory (default: a random 2-14-14-2 network)")
    parser.add_argument("-n", type=int, default=10_000, help="trajectories")
    parser.add_argument("--steps", type=int, default=10_000, help="Euler steps")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--solver", choices=("euler", "pf-ode"), default="euler")
    parser.add_argument("--baseline-threads", type=int, default=0, help="torch threads of the baseline (0: default)")
    parser.add_argument("--original", type=Path, help="path to the original unconditional/my_sde.py to time as well")
    args = parser.parse_args()

    if args.run is not None:
        model = load_run(args.run).model
    else:
        model = ScoreModel(ScoreNet(generator=torch.Generator().manual_seed(0)), VPSDE(0.01, 8.0))
        with torch.no_grad():  # an untrained network with bounded dynamics, so the samples can be compared
            for p in model.net.parameters():
                p.mul_(0.3)
    if args.baseline_threads:
        torch.set_num_threads(args.baseline_threads)
    stochastic = args.solver == "euler"
    baseline_net = BaselineNet(model)
    candidates = {
        "baseline (original loop, re-implemented)": lambda: baseline_loop(
            baseline_net, model.sde, torch.randn(args.n, 2), args.steps, stochastic
        ),
        "kirchhoffnet fused euler_loop": lambda: euler_loop(model, torch.randn(args.n, 2), stochastic, args.steps),
    }
    if args.original is not None:
        run_original = original_sampler(args.original, model)
        candidates["original my_sde.py"] = lambda: run_original(args.n, args.steps, stochastic)

    print(f"{args.n} trajectories × {args.steps} steps, solver {args.solver}, torch threads {torch.get_num_threads()}")
    samples = {}
    best = {name: math.inf for name in candidates}
    for repeat in range(args.repeats):
        for name, run in candidates.items():
            torch.manual_seed(repeat)
            start = time.perf_counter()
            samples[name] = run().detach().reshape(args.n, 2)  # the original returns (1, n, 2)
            best[name] = min(best[name], time.perf_counter() - start)
    reference = next(iter(samples.values()))
    for name, seconds in best.items():
        agreement = kl_pooled(samples[name], reference)
        print(f"{name:42s} {seconds:8.2f} s   KL to baseline samples {agreement:.4f}")
    base = best["baseline (original loop, re-implemented)"]
    for name, seconds in best.items():
        print(f"speed-up of {name}: {base / seconds:.1f}×")


if __name__ == "__main__":
    main()
