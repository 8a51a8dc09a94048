"""How a solve is differentiated: the gradient methods, as objects (in the style of diffrax's adjoints).

Every entry point ([`simulate`][kirchhoffnet.solve.simulate.simulate],
[`simulate_log_density`][kirchhoffnet.solve.simulate_log_density], [`Flow`][kirchhoffnet.Flow],
[`Network`][kirchhoffnet.Network], the YAML ``solver.gradient``) takes one of them and defaults to
[`DEFAULT_GRADIENT`][kirchhoffnet.solve.DEFAULT_GRADIENT], [`Backprop`][kirchhoffnet.solve.Backprop]:

* it is exact: the gradient of the numbers the solve computed, where the adjoint is the gradient
  of the continuous ODE up to the tolerance of a second solve (on the twomoon checkpoint at tol
  1e-4 the two differ by 5.8 %, at 1e-6 by 1e-4; benchmarks/README.md);
* it is measured faster where the shipped models train: one CNF training step on the twomoon
  checkpoint takes 134–175 ms against 167–246 ms with the adjoint (benchmarks/README.md), and it is
  what 17 of the 23 shipped circuit configs use;
* its cost is memory: autograd keeps every stage of every step, O(steps × batch × edges). Where
  that binds (the large classifiers, the 784-d MNIST generator) the shipped configs choose
  [`Adjoint`][kirchhoffnet.solve.Adjoint], whose memory does not grow with the number of steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from kirchhoffnet.errors import ConfigError, unknown_choice
from kirchhoffnet.solve.solver import Solver


@dataclass(frozen=True)
class Backprop:
    """Differentiate through the solver's operations: autograd records every stage of every step.

    Exact for the discrete solve; memory grows with the number of steps (times batch and edges).
    """

    name: ClassVar[Literal["backprop"]] = "backprop"


@dataclass(frozen=True)
class Adjoint:
    """Solve the adjoint ODE backwards in time (Chen et al., 2018) with the forward solve's method and
    tolerances: memory independent of the number of steps, a second solve in the backward pass.
    Slices on the fused dense kernel use the closed-form adjoint (`kirchhoffnet.solve._adjoint`),
    the others torchdiffeq's ``odeint_adjoint``; both take the same steps.

    Attributes:
        seminorm: let the adjoint's step control ignore the parameter adjoints (Kidger et al., "Hey,
            that's not an ODE", 2021): the backward pass takes fewer steps and the gradients keep the
            tolerance of the state adjoint. Off by default, as in the original code.
    """

    seminorm: bool = False
    name: ClassVar[Literal["adjoint"]] = "adjoint"

    def options(self, solver: Solver) -> dict[str, Any]:
        """``adjoint_options`` for torchdiffeq's ``odeint_adjoint`` under ``solver``."""
        opts = solver.options()
        if solver.adaptive and self.seminorm:
            opts["norm"] = "seminorm"
        return opts


GradientMethod = Backprop | Adjoint
GRADIENTS = (Backprop.name, Adjoint.name)
DEFAULT_GRADIENT: GradientMethod = Backprop()
"""The one default of every entry point; see the module's docstring for why."""


def check_gradient(gradient: object) -> GradientMethod:
    """``gradient`` if it is a gradient-method object; a [`ConfigError`][kirchhoffnet.errors.ConfigError] otherwise (a
    string too: the Python API takes objects, the YAML and checkpoint specs the names)."""
    if isinstance(gradient, Backprop | Adjoint):
        return gradient
    raise ConfigError(f"gradient must be kn.Backprop() or kn.Adjoint(), got {gradient!r}")


def gradient_method(name: str, seminorm: bool = False) -> GradientMethod:
    """The method a config or checkpoint spec names: ``backprop`` or ``adjoint`` (with its
    ``adjoint_seminorm`` setting, which ``backprop`` ignores)."""
    if name == Backprop.name:
        return Backprop()
    if name == Adjoint.name:
        return Adjoint(seminorm=seminorm)
    raise ConfigError(unknown_choice("gradient method", name, GRADIENTS))


def gradient_spec(solver: Solver, gradient: GradientMethod) -> dict[str, Any]:
    """The ``solver`` and ``gradient`` entries of a model spec, in the form files have always had (that
    of the YAML ``solver`` section): the solver's settings with ``adjoint_seminorm`` among them, and
    the method's name. [`gradient_method`][kirchhoffnet.solve.gradient_method] reads them back."""
    seminorm = isinstance(gradient, Adjoint) and gradient.seminorm
    return {"solver": {**solver.to_dict(), "adjoint_seminorm": seminorm}, "gradient": gradient.name}
