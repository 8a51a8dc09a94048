"""The sampler registry: one sampler per (equation, integrator), for any
[`ScoreField`][kirchhoffnet.diffusion.ScoreField].

Equations (`EQUATIONS`): ``reverse-sde`` and ``pf-ode`` (the probability-flow ODE). Integrators
(`INTEGRATORS`): ``euler`` (digital), ``transient`` (the score circuit's own dynamics) and
``analog`` (the simulated RRAM crossbar closed loop). A field lists the integrators it can be solved by; an
entry may hold a fast implementation for one backend before the generic one (the fused crossbar Euler loop
before `euler_scheme`), all with the same contract: ``n`` samples from x ~ N(0, I) drawn
with ``seed``, classifier-free guidance by [`Guided`][kirchhoffnet.diffusion.Guided]'s gains.

The command line's solver names are aliases ([`SOLVER_ALIASES`][kirchhoffnet.diffusion.samplers.SOLVER_ALIASES]);
``equation/integrator`` names any entry, e.g. ``pf-ode/euler``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor

from kirchhoffnet.diffusion._threads import single_thread
from kirchhoffnet.diffusion.analog import analog_sample, program_chip
from kirchhoffnet.diffusion.field import EQUATIONS, INTEGRATORS, Guided, ScoreField, check_labels
from kirchhoffnet.diffusion.sample import Weights, euler_loop, euler_scheme
from kirchhoffnet.diffusion.score import ScoreModel
from kirchhoffnet.diffusion.score_circuit.model import CircuitScoreModel
from kirchhoffnet.diffusion.score_circuit.sample import circuit_pf_ode
from kirchhoffnet.errors import ConfigError, unknown_choice
from kirchhoffnet.rram.chip import Chip
from kirchhoffnet.rram.device import RRAMDevice
from kirchhoffnet.rram.loop import LoopSettings

Method = tuple[str, str]
"""(equation, integrator)."""

SOLVER_ALIASES: dict[str, tuple[str, str | None]] = {
    "euler": ("reverse-sde", "euler"),
    "pf-ode": ("pf-ode", None),
    "analog": ("reverse-sde", "analog"),
    "analog-ode": ("pf-ode", "analog"),
}
"""The command line's solver names: ``euler`` the reverse SDE by digital Euler–Maruyama; ``pf-ode`` the
probability-flow ODE by the model's own integrator (None: digital Euler for the crossbar network, the
transient for the score circuit); ``analog``/``analog-ode`` the reverse SDE / probability-flow ODE on the
RRAM loop."""

DIGITAL_SOLVERS = ("euler", "pf-ode")
"""The aliases of the two equations solved without the analog loop."""


@dataclass(frozen=True)
class Draw:
    """What one sampling call asks of a sampler, whichever it is.

    Attributes:
        steps: integration steps from s = 1 to s_min (the analog loop's are ``loop.steps``).
        labels: (n,) long, checked (`check_labels`), or None.
        weights: the crossbar layers to integrate with instead of the network's (a programmed chip's
            effective weights).
        chip: the programmed chip the analog loop runs on (None: ideal devices).
        loop: the analog loop's settings (None: the defaults with ``steps``).
    """

    n: int
    steps: int
    seed: int = 0
    labels: Tensor | None = None
    guidance: float = 0.0
    weights: Weights | None = None
    chip: Chip | None = None
    loop: LoopSettings | None = None
    progress: bool = False


Sampled = tuple[Tensor, dict[str, Any]]
"""Samples (n, dim) and what the sampler measured."""


@dataclass(frozen=True)
class Implementation:
    """One registered sampler: ``run(field, draw)``; ``backend`` None runs any field, else only fields of that
    backend; ``takes``: what it uses of a programmed RRAM chip, ``weights`` (``Draw.weights``, its effective
    weights) or ``chip`` (``Draw.chip``, the chip itself), None for none."""

    run: Callable[[Any, Draw], Sampled]
    backend: str | None = None
    takes: str | None = None


def _initial(field: ScoreField, draw: Draw) -> tuple[Tensor, torch.Generator]:
    generator = torch.Generator().manual_seed(draw.seed)
    return torch.randn(draw.n, field.dim, generator=generator), generator


def _euler(stochastic: bool) -> Callable[[ScoreField, Draw], Sampled]:
    """Digital Euler on any field's guided score, each call's hint (warm start) passed to the next."""

    @torch.no_grad()
    def run(field: ScoreField, draw: Draw) -> Sampled:
        x, generator = _initial(field, draw)
        guided, hint = Guided(field, draw.guidance), None

        def score(z: Tensor, s: Tensor) -> Tensor:
            nonlocal hint
            value, hint = guided.tracked_score(z, s, draw.labels, hint)
            return value

        with single_thread():
            return euler_scheme(score, field.sde, x, stochastic, draw.steps, generator), {}

    return run


def _fused_euler(stochastic: bool) -> Callable[[ScoreModel, Draw], Sampled]:
    """The crossbar network's fused Euler loop (`euler_loop`)."""

    @torch.no_grad()
    def run(model: ScoreModel, draw: Draw) -> Sampled:
        x, generator = _initial(model, draw)
        samples = euler_loop(
            model, x, stochastic, draw.steps, generator, draw.labels, draw.guidance, draw.weights, draw.progress
        )
        return samples, {}

    return run


def _analog(mode: str) -> Callable[[ScoreModel, Draw], Sampled]:
    """The crossbar network on the simulated RRAM loop ([`analog_sample`][kirchhoffnet.diffusion.analog_sample])."""

    def run(model: ScoreModel, draw: Draw) -> Sampled:
        loop = draw.loop if draw.loop is not None else LoopSettings(steps=draw.steps)
        result = analog_sample(model, draw.n, draw.chip, loop, mode, draw.seed, draw.labels, draw.guidance)
        report = result.report
        return result.samples, {
            "crossbar_energy_j": report.crossbar_energy_j,
            "mean_crossbar_power_w": report.mean_crossbar_power_w,
            "peak_hidden_v": report.peak_hidden_v,
        }

    return run


@torch.no_grad()
def _transient(model: CircuitScoreModel, draw: Draw) -> Sampled:
    """The score circuit's own transient, hidden nodes at equilibrium (`circuit_pf_ode`)."""
    x, _ = _initial(model, draw)
    with single_thread():
        return circuit_pf_ode(model, x, draw.steps, 0.0, draw.progress, draw.labels, draw.guidance), {}


SAMPLERS: dict[Method, tuple[Implementation, ...]] = {
    ("reverse-sde", "euler"): (
        Implementation(_fused_euler(True), "crossbar", "weights"),
        Implementation(_euler(True)),
    ),
    ("pf-ode", "euler"): (
        Implementation(_fused_euler(False), "crossbar", "weights"),
        Implementation(_euler(False)),
    ),
    ("pf-ode", "transient"): (Implementation(_transient, "circuit"),),
    ("reverse-sde", "analog"): (Implementation(_analog("sde"), "crossbar", "chip"),),
    ("pf-ode", "analog"): (Implementation(_analog("ode"), "crossbar", "chip"),),
}
"""(equation, integrator) → its implementations, the first that fits a field runs it."""


def implementation(field: ScoreField, method: Method) -> Implementation | None:
    """The implementation that runs ``method`` for ``field``; None when the field does not support it."""
    if method[1] not in field.integrators:
        return None
    fitting = [i for i in SAMPLERS.get(method, ()) if i.backend in (None, field.backend)]
    return fitting[0] if fitting else None


def supported(field: ScoreField) -> list[Method]:
    """The (equation, integrator) pairs ``field`` samples with, its preferred integrator first."""
    return [(e, i) for i in field.integrators for e in EQUATIONS if implementation(field, (e, i)) is not None]


def solver_names(field: ScoreField) -> tuple[str, ...]:
    """The command line's solver names ([`SOLVER_ALIASES`][kirchhoffnet.diffusion.samplers.SOLVER_ALIASES]) that
    ``field`` supports, its preferred first."""
    methods = supported(field)
    return tuple(name for method in methods for name in SOLVER_ALIASES if _alias(field, name, methods) == method)


def _alias(field: ScoreField, name: str, methods: list[Method]) -> Method | None:
    equation, integrator = SOLVER_ALIASES[name]
    if integrator is None:  # the field's own integrator for the equation
        return next((m for m in methods if m[0] == equation), None)
    return (equation, integrator)


def resolve(field: ScoreField, solver: str) -> Method:
    """The (equation, integrator) of a solver name, an alias or ``equation/integrator``; a one-line
    [`ConfigError`][kirchhoffnet.errors.ConfigError] when it is unknown or ``field`` does not support it."""
    methods = supported(field)
    if solver in SOLVER_ALIASES:
        method = _alias(field, solver, methods)
    else:
        equation, _, integrator = solver.partition("/")
        method = (equation, integrator) if equation in EQUATIONS and integrator in INTEGRATORS else None
        if method is None:
            names = [*SOLVER_ALIASES, *(f"{e}/{i}" for e in EQUATIONS for i in INTEGRATORS)]
            raise ConfigError(unknown_choice("solver", solver, names))
    if method not in methods:
        wanted = solver if method is None else f"{solver!r} ({method[0]}/{method[1]})"
        raise ConfigError(f"the {field.backend} score model cannot sample with {wanted}; it supports: {_menu(field)}")
    assert method is not None
    return method


def _menu(field: ScoreField) -> str:
    named = {_alias(field, name, supported(field)): name for name in reversed(solver_names(field))}
    return ", ".join(f"{named[m]} ({m[0]}/{m[1]})" if m in named else f"{m[0]}/{m[1]}" for m in supported(field))


def draw(field: ScoreField, method: Method, request: Draw) -> Sampled:
    """Run the registered sampler of ``method`` for ``field`` (refused as
    [`resolve`][kirchhoffnet.diffusion.samplers.resolve] does)."""
    found = implementation(field, method)
    if found is None:
        raise ConfigError(
            f"the {field.backend} score model cannot sample with {method[0]}/{method[1]}; it supports: {_menu(field)}"
        )
    if found.takes is None and (request.weights is not None or request.chip is not None):
        raise ConfigError(f"{method[0]}/{method[1]} of the {field.backend} score model runs on no RRAM chip")
    return found.run(field, request)


def program(field: ScoreField, method: Method, device: RRAMDevice, seed: int = 0) -> dict[str, Any] | None:
    """The [`Draw`][kirchhoffnet.diffusion.samplers.Draw] arguments of ``method`` run on the chip ``seed`` programmed
    with ``device``: the chip, or its effective weights (None for ideal devices: the network's own); None when
    ``method`` runs on no chip."""
    found = implementation(field, method)
    if found is None or found.takes is None:
        return None
    chip = program_chip(cast(ScoreModel, field), device, seed=seed)  # only crossbar samplers take a chip
    if found.takes == "chip":
        return {"chip": chip}
    return {"weights": chip.effective() if device != type(device)() else None}


def sample(
    field: ScoreField,
    n: int,
    solver: str = "euler",
    steps: int = 10_000,
    seed: int = 0,
    labels: Tensor | None = None,
    guidance: float = 0.0,
    weights: Weights | None = None,
    progress: bool = False,
    chip: Chip | None = None,
    loop: LoopSettings | None = None,
) -> Tensor:
    """``n`` samples of a score model by ``solver`` (an alias of
    [`SOLVER_ALIASES`][kirchhoffnet.diffusion.samplers.SOLVER_ALIASES] or ``equation/integrator``).

    Args:
        steps: integration steps from s = 1 to s_min (the analog loop's: ``loop.steps``).
        seed: seeds the initial points and the SDE noise (the analog loop's read noise too).
        labels: class per sample (or one for all) for a conditional model; −1 = unconditional.
        guidance: classifier-free guidance strength w (score = (1 + w) s(x|c) − w s(x)).
        weights: replaces the crossbar network's layer weights (a programmed chip's effective weights).
        chip: the analog loop's programmed chip (None: ideal devices).
        loop: the analog loop's settings.

    Shapes:
        Returns (n, dim) float32 (the dtype of the model).
    """
    method = resolve(field, solver)
    if int(n) < 1:
        raise ConfigError(f"the number of samples must be positive, got {n}")
    checked = check_labels(field.num_classes, labels, int(n))
    request = Draw(int(n), steps, seed, checked, guidance, weights, chip, loop, progress)
    return draw(field, method, request)[0]


__all__ = [
    "DIGITAL_SOLVERS",
    "SAMPLERS",
    "SOLVER_ALIASES",
    "Draw",
    "Implementation",
    "draw",
    "implementation",
    "program",
    "resolve",
    "sample",
    "solver_names",
    "supported",
]
