"""What every diffusion sampler sees of a score model: a score field, classifier-free guidance and the labels.

Both score models implement [`ScoreField`][kirchhoffnet.diffusion.ScoreField]: the RRAM crossbar network
([`ScoreModel`][kirchhoffnet.diffusion.ScoreModel]) and the KirchhoffNet score circuit
(`CircuitScoreModel`). A field has an *output* that the
score is affine in (the network's output; the circuit's velocity), so classifier-free guidance, which is
linear in the score, mixes outputs: [`Guided`][kirchhoffnet.diffusion.Guided] is its one implementation, used by every
sampler, and the hardware samplers realise the same gains ([`Guided.gains`][kirchhoffnet.diffusion.Guided.gains]) as
crossbar branches or circuit copies.

A field declares the integrators it can be solved by (`INTEGRATORS`, its preferred one first) and its
``backend``, which picks a sampler's fast implementation in
[`kirchhoffnet.diffusion.samplers`][kirchhoffnet.diffusion.samplers].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor

from kirchhoffnet.diffusion.sde import VPSDE
from kirchhoffnet.errors import DataError

EQUATIONS = ("reverse-sde", "pf-ode")
"""The equations a sampler solves from s = 1 down to s_min: the reverse-time SDE and the probability-flow ODE."""

INTEGRATORS = ("euler", "transient", "analog")
"""``euler``: digital Euler(–Maruyama) steps of the score; ``transient``: the score circuit's own node dynamics;
``analog``: the simulated RRAM crossbar closed loop."""


class ScoreField(Protocol):
    """A learned score ∇log p_s(x) with the VP-SDE it belongs to, as samplers and training use it.

    ``output`` is what the score is affine in (``score_of``) and classifier-free guidance mixes; ``hint``
    carries solver state from one call to the next (the circuit's settled hidden nodes, a warm start that
    leaves the equilibrium unchanged; None for a network).

    Shapes:
        x: (B, dim); s: (B,) or scalar diffusion time; labels: (B,) long in [−1, num_classes) or None.
    """

    backend: ClassVar[str]
    integrators: ClassVar[tuple[str, ...]]
    sde: VPSDE

    @property
    def dim(self) -> int: ...

    @property
    def num_classes(self) -> int: ...

    def output(self, x: Tensor, s: Tensor, labels: Tensor | None = None, hint: Any = None) -> tuple[Tensor, Any]: ...

    def score_of(self, output: Tensor, x: Tensor, s: Tensor) -> Tensor: ...

    def velocity_of(self, output: Tensor, x: Tensor, s: Tensor) -> Tensor: ...

    def score(self, x: Tensor, s: Tensor, labels: Tensor | None = None) -> Tensor: ...

    def velocity(self, x: Tensor, s: Tensor, labels: Tensor | None = None) -> Tensor: ...

    def sharpened(self, beta_scale: float = 1.0, score_gain: float = 1.0) -> ScoreField: ...


def guided_copies(labels: Tensor | None, guidance: float) -> tuple[Tensor | None, Tensor]:
    """Classifier-free guidance as copies of the model: the copies' labels stacked along the batch, and the
    gains mixing their outputs (`mix_copies`). One copy (gain 1) without guidance; with w ≠ 0 the
    labelled copy (1 + w) and an unconditional one, label −1 (−w).

    Shapes:
        labels: (B,) long or None. Returns (k B,) or None, and (k,) with k = 1 or 2.
    """
    gains = guidance_gains(labels, guidance)
    if len(gains) == 1:
        return labels, torch.ones(1)
    assert labels is not None
    return torch.cat([labels, torch.full_like(labels, -1)]), torch.tensor(gains)


def guidance_gains(labels: Tensor | None, guidance: float) -> tuple[float, ...]:
    """The gains of `guided_copies`: (1,), or (1 + w, −w) for labels and w ≠ 0."""
    if labels is None or not guidance:
        return (1.0,)
    return (1.0 + guidance, -guidance)


def mix_copies(values: Tensor, gains: Tensor, axis: int = -1) -> Tensor:
    """Σ_j gains_j × copy j of ``values`` whose ``axis`` stacks the copies. Shapes: (…, k B, …) → (…, B, …)."""
    if len(gains) == 1:
        return values
    axis = axis % values.dim()
    copies = values.unflatten(axis, (len(gains), -1))
    shape = [len(gains)] + [1] * (values.dim() - axis)
    return (copies * gains.to(values.dtype).reshape(shape)).sum(axis)


@dataclass(frozen=True)
class Guided:
    """A field with classifier-free guidance of strength ``weight`` w: score (1 + w) s(x | c) − w s(x).

    The copies run as one batch (the unconditional one with label −1) and their outputs are mixed, which is
    the same as mixing their scores since the score is affine in the output. Without labels or with w = 0 it
    is the field itself.
    """

    field: ScoreField
    weight: float = 0.0

    def gains(self, labels: Tensor | None) -> tuple[float, ...]:
        """The mixing gains of the copies, (1,) or (1 + w, −w): what crossbar branches and circuit copies use."""
        return guidance_gains(labels, self.weight)

    def output(self, x: Tensor, s: Tensor, labels: Tensor | None = None, hint: Any = None) -> tuple[Tensor, Any]:
        """The mixed output of the copies and the field's ``hint`` for the next call. Shapes: (B, dim)."""
        copies, gains = guided_copies(labels, self.weight)
        k = len(gains)
        stacked = x.repeat(k, 1) if k > 1 else x
        out, hint = self.field.output(stacked, s.repeat(k) if s.dim() else s, copies, hint)
        return mix_copies(out, gains, axis=0), hint

    def tracked_score(self, x: Tensor, s: Tensor, labels: Tensor | None, hint: Any) -> tuple[Tensor, Any]:
        """The guided score and the hint to pass to the next call (a sampler's warm start)."""
        s = _time(s, x)
        out, hint = self.output(x, s, labels, hint)
        return self.field.score_of(out, x, s), hint

    def score(self, x: Tensor, s: Tensor, labels: Tensor | None = None) -> Tensor:
        """The guided score ∇log p_s. Shapes: x (B, dim) → (B, dim)."""
        return self.tracked_score(x, s, labels, None)[0]

    def velocity(self, x: Tensor, s: Tensor, labels: Tensor | None = None) -> Tensor:
        """The guided probability-flow velocity dx/dτ (reverse time). Shapes: x (B, dim) → (B, dim)."""
        s = _time(s, x)
        return self.field.velocity_of(self.output(x, s, labels)[0], x, s)


def _time(s: Tensor | float, x: Tensor) -> Tensor:
    return s if isinstance(s, Tensor) else torch.as_tensor(s, dtype=x.dtype)


def check_labels(num_classes: int, labels: Tensor | None, n: int | None = None) -> Tensor | None:
    """The one label check: labels only for a conditional model (``num_classes`` > 0), which needs them; with
    ``n`` they become a (n,) long tensor (one label is repeated), and their values must lie in
    [−1, num_classes) (−1 = unconditional)."""
    if labels is None:
        if num_classes:
            raise DataError(f"this model is conditional on {num_classes} classes: pass labels (-1 = unconditional)")
        return None
    if not num_classes:
        raise DataError("this model is unconditional but labels were given")
    if n is not None:
        labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
        if labels.numel() == 1:
            labels = labels.expand(n)
        if labels.numel() != n:
            raise DataError(f"got {labels.numel()} labels for {n} samples; give one label or one per sample")
        labels = labels.contiguous()
    return check_class_labels(labels, num_classes)


def check_class_labels(labels: Tensor, num_classes: int) -> Tensor:
    """``labels`` if they are a 1-D integer tensor in [−1, num_classes) (−1 = unconditional)."""
    if labels.dtype not in (torch.int32, torch.int64) or labels.ndim != 1:
        raise DataError(f"labels must be a 1-D integer tensor, got {labels.dtype} of shape {tuple(labels.shape)}")
    if bool(((labels < -1) | (labels >= num_classes)).any()):
        raise DataError(
            f"labels must lie in [-1, {num_classes}) (-1 = unconditional), "
            f"found {int(labels.min())}..{int(labels.max())}"
        )
    return labels
