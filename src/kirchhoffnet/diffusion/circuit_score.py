"""A diffusion model whose probability-flow velocity is a KirchhoffNet circuit (issue 9).

The circuit has four kinds of nodes, all on the core :class:`~kirchhoffnet.circuit.Slice` machinery
(one KCL kernel, the same device families and ``edge_index`` convention):

* ground (node 0);
* ``dim`` **data nodes** (1 … dim): integrating capacitors C_x carrying the sample x;
* ``hidden`` **hidden nodes**: small capacitors C_h with a leak conductance g to ground;
* ``time_nodes`` **time nodes**: voltage sources driven with a fixed embedding of the diffusion time,
  e_k(s) = sin / cos(2π f_k s) — sources, never integrated (their dv/dt is imposed, not computed);
* ``num_classes`` **class nodes** (conditional circuits): DC voltage sources holding the one-hot label,
  1 V on the wanted class's node and 0 V elsewhere; all at 0 V is the unconditional circuit that
  classifier-free guidance's label dropout trains.

The time and class nodes are the circuit's **driven nodes**. Nonlinear devices (one learnable column each)
join every data node and every driven node to every hidden node, and the data nodes to ground and to the
driven nodes. With I(·) the KCL currents of the devices,

    C_x dx/dτ = I_x(x, h, e(s)),        C_h dh/dτ = I_h(x, h, e(s)) − g h,        s = 1 − τ.

For C_h ≪ C_x the hidden nodes sit at their equilibrium h*(x, s) (``I_h = g h``; found by relaxation
h ← I_h/g, the hidden nodes' own settling with step C_h/g), and the data nodes move with the velocity

    u(x, s) = I_x(x, h*(x, s), e(s)) / C_x.

The model is trained so that u is the **probability-flow velocity** of the VP-SDE in reverse time,
u = ½ β(s) (x + ∇log p_s(x)); equivalently the score it represents is ∇log p_s = 2 u / β − x, which is
what denoising score matching trains. Generation by the probability-flow ODE is then the circuit's own
transient: release the data capacitors at x ~ N(0, I) while the time sources sweep s from 1 to s_min.
Sampling with β ×k (the sharpening knob of the crossbar model) is the capacitors C_x / k. The reverse
SDE additionally needs dx/dτ = 2u − ½ β x + √β ξ: a gain of 2 on the device currents, a time-varying
negative conductance and a noise current source (documented, simulated digitally by the samplers).
Classifier-free guidance with strength w is two copies of the circuit on the same data nodes, one with the
label's sources and one with all class sources at 0 V, whose currents into the data nodes are mixed
(1 + w) I_x(c) − w I_x(∅) (current-mirror gains): u = (1 + w) u(x, s | c) − w u(x, s).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from kirchhoffnet.circuit import Slice
from kirchhoffnet.devices import resolve
from kirchhoffnet.devices.base import AffineActivation, TerminalGains
from kirchhoffnet.diffusion.sample import check_labels, check_request, reference_euler, time_grid
from kirchhoffnet.diffusion.score import TimeEmbedding, check_class_labels
from kirchhoffnet.diffusion.sde import VPSDE
from kirchhoffnet.diffusion.threads import single_thread
from kirchhoffnet.errors import ConfigError, DataError
from kirchhoffnet.progress import bar

SETTLE_ULPS = 100
"""The passive circuit's Newton settle stops when |I_h − g h| < SETTLE_ULPS × the dtype's epsilon at every hidden
node (normalised current): 1e-5 in float32, 2e-14 in float64."""

CIRCUIT_SOLVERS = ("pf-ode", "euler")
"""The score circuit's samplers, its own transient first: the probability-flow ODE and the reverse SDE (the
:data:`~kirchhoffnet.diffusion.sample.DIGITAL_SOLVERS`, run on the circuit)."""

HIDDEN_CAPACITANCE = 0.01
"""C_h / C_x of the full transients (evaluation and SPICE check): the hidden nodes 100× faster than the data nodes."""


def score_topology(dim: int, hidden: int, driven: int, repeat: int = 1) -> Tensor:
    """``edge_index`` of the score circuit (see the module docstring for the node numbering): ground, data,
    hidden, then the ``driven`` source nodes (time nodes, then class nodes).

    Data–hidden pairs get ``repeat`` parallel devices; driven–hidden, data–ground and data–driven pairs one.

    Shapes:
        Returns (2, E) long, E = hidden (dim·repeat + driven) + dim (1 + driven).
    """
    data = torch.arange(1, dim + 1)
    hid = torch.arange(dim + 1, dim + hidden + 1)
    sources = torch.arange(dim + hidden + 1, dim + hidden + driven + 1)
    pairs = [
        torch.cartesian_prod(data, hid).repeat(repeat, 1),
        torch.cartesian_prod(sources, hid),
        torch.stack([data, torch.zeros_like(data)], dim=1),
        torch.cartesian_prod(data, sources),
    ]
    return torch.cat(pairs).t().contiguous()


class ScoreCircuit(nn.Module):
    """The circuit of the module docstring: data, hidden and driven time nodes, one device per edge.

    Args:
        dim: data dimension (data nodes).
        hidden: hidden nodes.
        time_nodes: driven time nodes (even: sin and cos per embedding frequency).
        num_classes: driven class nodes (0: an unconditional circuit).
        repeat: parallel devices per data–hidden pair.
        device: device family of the learnable edges (an affine-activation family, e.g. ``ShiftTanh2``).
        leak: conductance g from every hidden node to ground (normalised units; fixed, not trained).
        settle_steps: relaxation steps h ← I_h / g from h = 0 that find the hidden equilibrium.
        frequency_scale: std of the time-embedding frequencies.
        init_scale: initial device parameters ~ N(0, init_scale²): O(1) gains so that every device starts
            in its nonlinear range (the core's kaiming default, std √(2/E), leaves them nearly linear and tiny).
        contraction: ρ < 1 bounds the hidden nodes' loop gain, |∂I_h/∂h| ≤ ρ g: each data–hidden device's
            gain on its hidden terminal is programmed as ρ g tanh(θ) / (dim · repeat) and the time–hidden
            devices' as 0 (they inject a current set by their source alone). The hidden equilibrium is then
            unique, the physical settle converges to it, and relaxation reaches it with error ≤ ρⁿ.
            Needs a family with a ``gain_dst`` parameter; None = unconstrained (no equilibrium guarantee).
        passive: instead of bounding them, make every device's gain on its hidden terminal a load,
            −softplus(θ) ≤ 0: the current into a hidden node then falls as its voltage rises, so each hidden
            node's balance I_h(h) − g h is strictly decreasing and its equilibrium unique at any gain. The
            data nodes can then read the hidden nodes strongly (a bounded gain also bounds that read, which
            makes the velocity nearly additive in the coordinates). The equilibrium is solved by safeguarded
            Newton, at most ``settle_steps`` steps, and differentiated implicitly. Needs ``contraction: None``
            and a family of the form σ(p0·v_src + p1·v_dst + p2) with σ increasing (e.g. ``ShiftTanh2``).
    """

    def __init__(
        self,
        dim: int = 2,
        hidden: int = 32,
        time_nodes: int = 8,
        repeat: int = 2,
        device: str = "ShiftTanh2",
        leak: float = 1.0,
        settle_steps: int = 5,
        frequency_scale: float = 1.0,
        init_scale: float = 1.0,
        contraction: float | None = 0.5,
        passive: bool = False,
        num_classes: int = 0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if dim < 1 or hidden < 1 or repeat < 1 or settle_steps < 1 or num_classes < 0:
            raise ConfigError(
                f"the score circuit needs dim, hidden, repeat and settle_steps >= 1 and num_classes >= 0; "
                f"got {dim}, {hidden}, {repeat}, {settle_steps}, {num_classes}"
            )
        if not (math.isfinite(leak) and leak > 0):
            raise ConfigError(f"the hidden leak conductance must be positive, got {leak}")
        self.dim, self.hidden, self.repeat, self.leak = dim, hidden, repeat, float(leak)
        self.settle_steps, self.frequency_scale = settle_steps, frequency_scale
        self.embedding = TimeEmbedding(time_nodes, frequency_scale, generator)
        self.time_nodes, self.num_classes = time_nodes, num_classes
        edge_index = score_topology(dim, hidden, self.driven, repeat)
        family = resolve(device)
        if not isinstance(family, AffineActivation):
            raise ConfigError(f"the score circuit needs an affine-activation device family, got {family.name}")
        self._family = family
        params = torch.randn(family.num_params, edge_index.shape[1], generator=generator) * init_scale
        self.edges = Slice(edge_index, family, num_nodes=self.num_nodes, params=params)
        self.init_scale, self.contraction, self.passive = init_scale, contraction, bool(passive)
        # score_topology's first edges: data–hidden (hidden·dim·repeat), then driven–hidden (hidden·driven)
        self._data_to_hidden = hidden * dim * repeat
        self._into_hidden = self._data_to_hidden + hidden * self.driven
        if contraction is not None and passive:
            raise ConfigError("passive hidden terminals replace the contraction bound; set contraction: null")
        if contraction is not None and not 0 < contraction < 1:
            raise ConfigError(f"contraction must lie in (0, 1) or be null, got {contraction}")
        if (contraction is not None or passive) and not isinstance(family, TerminalGains):
            option = "passive" if passive else "contraction"
            raise ConfigError(
                f"{option} needs a device family with a gain_dst parameter (e.g. ShiftTanh2), got {family.name}; "
                f"set {'passive: false' if passive else 'contraction: null'}"
            )
        self._gain_row = 1  # TerminalGains: (gain_src, gain_dst, shift)
        self._gain_bound = (contraction or 0.0) * self.leak / (dim * repeat)

    def programmed(self) -> Tensor:
        """The device parameters as programmed, (P, E): the raw ones with the hidden-terminal gains bounded
        (contraction) or made loads (passive)."""
        raw = self.edges.params
        row, data, cut = self._gain_row, self._data_to_hidden, self._into_hidden
        if self.passive:
            gain = torch.cat([-nn.functional.softplus(raw[row, :cut]), raw[row, cut:]])
        elif self.contraction is not None:
            bounded = self._gain_bound * torch.tanh(raw[row, :data])
            gain = torch.cat([bounded, raw.new_zeros(cut - data), raw[row, cut:]])
        else:
            return raw
        return torch.cat([raw[:row], gain.unsqueeze(0), raw[row + 1 :]])

    @property
    def driven(self) -> int:
        """Driven source nodes: the time nodes, then the class nodes."""
        return self.time_nodes + self.num_classes

    @property
    def num_nodes(self) -> int:
        """Nodes including ground and the driven nodes."""
        return 1 + self.dim + self.hidden + self.driven

    def currents(self, x: Tensor, h: Tensor, drive: Tensor) -> tuple[Tensor, Tensor]:
        """Device currents into the data and hidden nodes (the leak excluded), node-major.

        Shapes:
            x: (dim, B); h: (hidden, B); drive: (driven, B) or (driven, 1). Returns (dim, B), (hidden, B).
        """
        state = torch.cat([x, h, drive.expand(-1, x.shape[1])])
        kernel = self.edges.kernel(state.dtype, state.device)  # C = 1 in the slice: the field is the KCL current
        net = kernel.evaluate(self.edges.device_family, self.programmed().to(state.dtype), state, False)[0]
        return net[: self.dim], net[self.dim : self.dim + self.hidden]

    def settle(self, x: Tensor, drive: Tensor, guess: Tensor | None = None) -> Tensor:
        """Hidden equilibrium I_h(x, h, e) = g h, node-major (hidden, B).

        Bounded or free gains: ``settle_steps`` relaxation steps h ← I_h/g from h = 0 (that truncation is
        part of the trained model). Passive gains: safeguarded Newton from ``guess`` (default 0; the previous
        time step's equilibrium is a good one) to the exact root, differentiated by the implicit function theorem.
        """
        if self.passive:
            return self._newton_settle(x, drive, guess)
        h = x.new_zeros(self.hidden, x.shape[1])
        for _ in range(self.settle_steps):
            h = self.currents(x, h, drive)[1] / self.leak
        return h

    def hidden_balance(self, x: Tensor, h: Tensor, drive: Tensor) -> tuple[Tensor, Tensor]:
        """F = I_h − g h at the hidden nodes and its diagonal dF/dh (no hidden node feeds another, so the
        hidden Jacobian is diagonal), both (hidden, B). The devices into the hidden nodes are laid out
        (inputs, hidden) by :func:`score_topology`, so this is dense arithmetic with no gather over edges.

        Shapes:
            x: (dim, B); h: (hidden, B); drive: (driven, B) or (driven, 1).
        """
        return self._balance(self._hidden_inputs(x, drive), h)

    def _hidden_inputs(self, x: Tensor, drive: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """The devices into the hidden nodes, (inputs, hidden, ·): the part of each argument that does not
        depend on h (a·v_src + c), the gain on h, and the output scale (None: 1). Fixed while h settles."""
        cut, batch = self._into_hidden, x.shape[1]
        a, b, c, post = self._family.coefficients(self.programmed()[:, :cut].to(x.dtype))
        layout = (-1, self.hidden, 1)  # (inputs, hidden, 1)
        a = x.new_ones(cut) if a is None else a
        gain = (-a if b is None else b).view(layout)  # the difference form a·(v_src − h) loads h by −a
        sources = torch.cat([x.repeat(self.repeat, 1), drive.expand(-1, batch)]).unsqueeze(1)  # edge order
        fixed = a.view(layout) * sources
        if c is not None:
            fixed = fixed + c.view(layout)
        return fixed, gain, None if post is None else post.view(layout)

    def _balance(self, inputs: tuple[Tensor, Tensor, Tensor | None], h: Tensor) -> tuple[Tensor, Tensor]:
        fixed, gain, post = inputs
        out = self._family.activation(fixed + gain * h, inplace=False)
        slope = gain * self._family.slope(out)
        if post is not None:
            out, slope = out * post, slope * post
        return out.sum(0) - self.leak * h, slope.sum(0) - self.leak

    def _newton_settle(self, x: Tensor, drive: Tensor, guess: Tensor | None) -> Tensor:
        with torch.no_grad():
            inputs = self._hidden_inputs(x.detach(), drive.detach())  # the same at every Newton step
            h = x.new_zeros(self.hidden, x.shape[1]) if guess is None else guess.detach().clone()
            balance, slope = self._balance(inputs, h)
            # dF/dh ≤ −g everywhere, so the root lies within |F(h)| / g of any h: a bracket to start from
            reach = balance.abs() / self.leak
            low, high = h - reach, h + reach
            previous = torch.full_like(h, math.inf)
            tolerance = SETTLE_ULPS * torch.finfo(h.dtype).eps
            for _ in range(self.settle_steps):
                size = balance.abs()
                done = size < tolerance
                if bool(done.all()):
                    break
                low = torch.where(balance > 0, h, low)  # F decreasing: the root is above h
                high = torch.where(balance <= 0, h, high)
                newton = h - balance / slope
                # Newton where it stays inside the bracket and halves |F|; bisection otherwise
                trusted = (newton >= low) & (newton <= high) & (size < 0.5 * previous)
                previous = size
                h = torch.where(done, h, torch.where(trusted, newton, 0.5 * (low + high)))
                balance, slope = self._balance(inputs, h)
        if not torch.is_grad_enabled():
            return h
        # one Newton step from the (detached) root: its value is h, its derivative −(∂F/∂θ)/(∂F/∂h), exactly
        # the implicit-function gradient
        return h - self.hidden_balance(x, h, drive)[0] / slope

    def drive(self, s: Tensor, labels: Tensor | None = None) -> Tensor:
        """Driven-node voltages, node-major: the time sources for diffusion times s (B,) or scalar, then (for a
        conditional circuit) the class sources holding the one-hot ``labels`` (−1: all at 0 V, unconditional).

        Shapes:
            s: (B,) or scalar; labels: (B,) long. Returns (driven, B), or (driven, 1) without labels.
        """
        times = self.embedding(s).t()
        if not self.num_classes:
            if labels is not None:
                raise DataError("this score circuit is unconditional but labels were given")
            return times
        if labels is None:
            raise DataError(f"this score circuit is conditional on {self.num_classes} classes: pass labels (-1 = none)")
        labels = check_class_labels(labels, self.num_classes)
        classes = times.new_zeros(self.num_classes, len(labels))
        known = labels >= 0
        classes[labels[known], known.nonzero().squeeze(1)] = 1.0
        return torch.cat([times.expand(-1, len(labels)), classes])

    def velocity(self, x: Tensor, s: Tensor, labels: Tensor | None = None) -> Tensor:
        """u(x, s) = I_x at the settled hidden nodes (C_x = 1).

        Shapes:
            x: (B, dim); s: (B,) or scalar; labels: (B,) long for a conditional circuit. Returns (B, dim).
        """
        return self.settled_velocity(x.t(), self.drive(s, labels))[0].t()

    def settled_velocity(self, x: Tensor, drive: Tensor, guess: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The data-node currents at the hidden equilibrium, and that equilibrium, node-major; ``guess`` starts
        a passive circuit's Newton (a sampler passes its previous step's equilibrium).

        Shapes:
            x: (dim, B); drive: (driven, B) or (driven, 1); guess: (hidden, B). Returns (dim, B), (hidden, B).
        """
        hidden = self.settle(x, drive, guess)
        return self.currents(x, hidden, drive)[0], hidden

    def residual(self, x: Tensor, s: Tensor, labels: Tensor | None = None) -> Tensor:
        """Relative equilibrium residual ‖I_h − g h‖ / ‖g h‖ after settling (0 at the exact equilibrium), (B,)."""
        xt, drive = x.t(), self.drive(s, labels)
        h = self.settle(xt, drive)
        gap = self.currents(xt, h, drive)[1] - self.leak * h
        return gap.norm(dim=0) / (self.leak * h).norm(dim=0).clamp_min(1e-12)

    def spec(self) -> dict[str, Any]:
        return {
            "dim": self.dim,
            "hidden": self.hidden,
            "time_nodes": self.time_nodes,
            "repeat": self.repeat,
            "device": self.edges.device_family.name,
            "leak": self.leak,
            "settle_steps": self.settle_steps,
            "frequency_scale": self.frequency_scale,
            "init_scale": self.init_scale,
            "contraction": self.contraction,
            "passive": self.passive,
            "num_classes": self.num_classes,
        }


def guided_copies(labels: Tensor | None, guidance: float) -> tuple[Tensor | None, Tensor]:
    """Classifier-free guidance as circuit copies: the labels of the copies stacked along the batch, and the gains
    mixing their currents into the data nodes (:func:`mix_copies`). One copy (gain 1) without guidance; with
    w ≠ 0 the labelled copy (1 + w) and an unconditional one, all class sources at 0 V (−w).

    Shapes:
        labels: (B,) long or None. Returns (k B,) or None, and (k,) with k = 1 or 2.
    """
    if labels is None or not guidance:
        return labels, torch.ones(1)
    return torch.cat([labels, torch.full_like(labels, -1)]), torch.tensor([1.0 + guidance, -guidance])


def mix_copies(values: Tensor, gains: Tensor) -> Tensor:
    """Σ_j gains_j × copy j of ``values`` whose last axis stacks the copies. Shapes: (…, k B) → (…, B)."""
    if len(gains) == 1:
        return values
    copies = values.unflatten(-1, (len(gains), -1))
    return (copies * gains.to(values.dtype).unsqueeze(1)).sum(-2)


class CircuitScoreModel(nn.Module):
    """A :class:`ScoreCircuit` with its VP-SDE: the score ∇log p_s = 2 u / β − x of the circuit velocity u.

    ``velocity_gain`` k (1 = exact) scales u, i.e. samples the probability-flow ODE with β ×k (C_x / k).
    """

    def __init__(self, circuit: ScoreCircuit, sde: VPSDE, velocity_gain: float = 1.0) -> None:
        super().__init__()
        self.circuit, self.sde, self.velocity_gain = circuit, sde, float(velocity_gain)

    @property
    def dim(self) -> int:
        return self.circuit.dim

    @property
    def num_classes(self) -> int:
        return self.circuit.num_classes

    def velocity(self, x: Tensor, s: Tensor, labels: Tensor | None = None, guidance: float = 0.0) -> Tensor:
        """Probability-flow velocity dx/dτ (reverse time) of the circuit, with classifier-free guidance
        (1 + w) u(x | c) − w u(x) for ``guidance`` w ≠ 0 (two circuit copies, :func:`guided_copies`).

        Shapes:
            x: (B, dim); s: (B,) or scalar; labels: (B,) long for a conditional circuit. Returns (B, dim).
        """
        velocity = self._guided_velocity(x, torch.as_tensor(s, dtype=x.dtype), labels, guidance, None)[0]
        return velocity * self.velocity_gain

    def score(self, x: Tensor, s: Tensor, labels: Tensor | None = None, guidance: float = 0.0) -> Tensor:
        """∇log p_s(x) = 2 u / β − x (the gain-free velocity). Shapes: x (B, dim); s (B,) or scalar → (B, dim)."""
        return self._tracked_score(x, torch.as_tensor(s, dtype=x.dtype), labels, guidance, None)[0]

    def _tracked_score(
        self, x: Tensor, s: Tensor, labels: Tensor | None, guidance: float, hidden: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """The score and the settled hidden nodes; a sampler passes the previous step's ``hidden`` back in, so a
        passive circuit's Newton settle starts next to its root (the same equilibrium, fewer iterations)."""
        velocity, hidden = self._guided_velocity(x, s, labels, guidance, hidden)
        return 2 * velocity / self.sde.beta(s).reshape(-1, 1) - x, hidden

    def _guided_velocity(
        self, x: Tensor, s: Tensor, labels: Tensor | None, guidance: float, hidden: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """The circuit's velocity without the sampling gain, the guided copies mixed, and the copies' settled
        hidden nodes (hidden, copies · B), Newton started from ``hidden`` (None: from 0)."""
        copies, gains = guided_copies(labels, guidance)
        stacked = x.t().repeat(1, len(gains))
        drive = self.circuit.drive(s.repeat(len(gains)) if s.dim() else s, copies)
        velocity, hidden = self.circuit.settled_velocity(stacked, drive, hidden)
        return mix_copies(velocity, gains).t(), hidden

    def sharpened(self, beta_scale: float = 1.0, score_gain: float = 1.0) -> CircuitScoreModel:
        """A view (sharing the circuit) that samples with β ×``beta_scale`` (PF-ODE: velocity ×k, the data
        capacitors C_x / k); a score gain is not a circuit element here and must be 1."""
        if not beta_scale > 0 or score_gain != 1.0:
            raise ConfigError(
                f"the score circuit samples sharpened only by beta_scale > 0 (got {beta_scale}) "
                f"with score_gain 1 (got {score_gain}); set sample.sde_score_gain: 1"
            )
        return CircuitScoreModel(self.circuit, self.sde, self.velocity_gain * beta_scale)  # shares the circuit

    def spec(self) -> dict[str, Any]:
        return {"kind": "score-circuit", "circuit": self.circuit.spec(), "sde": self.sde.to_dict()}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> CircuitScoreModel:
        return cls(ScoreCircuit(**spec["circuit"]), VPSDE(**spec["sde"]))


def circuit_pf_ode(
    model: CircuitScoreModel,
    x: Tensor,
    steps: int,
    hidden_capacitance: float = 0.0,
    progress: bool = False,
    labels: Tensor | None = None,
    guidance: float = 0.0,
) -> Tensor:
    """Generation as the circuit's own transient: Euler on the data (and hidden) nodes from s = 1 to s_min.

    With ``hidden_capacitance`` 0 the hidden nodes are at equilibrium at every step (the quasi-static
    limit, exactly the probability-flow ODE of the trained field). With C_h > 0 they are integrated too,
    C_h dh/dτ = I_h − g h (the leak taken implicitly, so any step is stable), starting settled at s = 1:
    the departure from the quasi-static run is O(C_h). A conditional circuit holds ``labels`` on its class
    sources; ``guidance`` w ≠ 0 runs the guided pair of copies (:func:`guided_copies`).

    Shapes:
        x: (B, dim) at s = 1; labels: (B,) long. Returns (B, dim).
    """
    if hidden_capacitance < 0 or not math.isfinite(hidden_capacitance):
        raise ConfigError(f"hidden_capacitance must be >= 0, got {hidden_capacitance}")
    grid = time_grid(model.sde, steps)
    circuit, gain = model.circuit, model.velocity_gain
    copies, mixing = guided_copies(labels, guidance)
    state = x.detach().t().clone()
    with torch.no_grad():
        stacked = state.repeat(1, len(mixing))  # each copy's data terminals follow the shared data nodes
        hidden = circuit.settle(stacked, circuit.drive(grid[0].to(x.dtype), copies))
        for k in bar(range(len(grid) - 1), desc="circuit", unit="step", enabled=progress, leave=False):
            s, dt = grid[k].to(x.dtype), float(grid[k] - grid[k + 1])
            drive = circuit.drive(s, copies)
            if hidden_capacitance:
                # linearly implicit Euler with the exact (diagonal) hidden Jacobian: stable at any step and load
                balance, slope = circuit.hidden_balance(stacked, hidden, drive)
                rate = dt / hidden_capacitance
                hidden = hidden + rate * balance / (1 - rate * slope)
            else:
                hidden = circuit.settle(stacked, drive, hidden)  # a passive circuit starts Newton from the last step
            current = mix_copies(circuit.currents(stacked, hidden, drive)[0], mixing)
            state = state + (gain * dt) * current
            stacked = state.repeat(1, len(mixing))
    return state.t().contiguous()


def circuit_log_likelihood(model: CircuitScoreModel, x: Tensor, steps: int = 500) -> Tensor:
    """log p(x) of the trained circuit's probability-flow density, nats per point, for the model's exact
    velocity (no sharpening): the data nodes run backwards from s_min to 1 (dx/ds = −u) by Heun steps while
    the log-density collects −∫ div u ds, and the end point is scored under the N(0, I) prior,

        log p_{s_min}(x) = log N(x(1); 0, I) − ∫_{s_min}^{1} ∇·u(x(s), s) ds.

    The divergence is exact (one autograd pass per dimension through the settled hidden nodes; a passive
    circuit's settle is differentiated implicitly). Comparable with a CNF's NLL on the same points.

    Shapes:
        x: (B, dim). Returns (B,) float64.
    """
    exact = CircuitScoreModel(model.circuit, model.sde)  # the density is the unsharpened model's
    grid = time_grid(model.sde, steps).flip(0)  # s_min → 1

    def rates(z: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            u = exact.velocity(z, s)
            div = sum(
                torch.autograd.grad(u[:, i].sum(), z, retain_graph=i + 1 < z.shape[1])[0][:, i]
                for i in range(z.shape[1])
            )
        return -u.detach(), torch.as_tensor(div).detach().to(torch.float64)

    z, integral = x.detach().clone(), torch.zeros(len(x), dtype=torch.float64)
    for k in range(steps):
        s0, s1 = grid[k].to(x.dtype), grid[k + 1].to(x.dtype)
        ds = float(s1 - s0)
        drift0, div0 = rates(z, s0)
        drift1, div1 = rates(z + ds * drift0, s1)
        z = z + 0.5 * ds * (drift0 + drift1)
        integral = integral + 0.5 * ds * (div0 + div1)
    prior = -0.5 * z.double().square().sum(1) - 0.5 * z.shape[1] * math.log(2 * math.pi)
    return prior - integral


def circuit_sample(
    model: CircuitScoreModel,
    n: int,
    solver: str = "pf-ode",
    steps: int = 1000,
    seed: int = 0,
    hidden_capacitance: float = 0.0,
    progress: bool = False,
    labels: Tensor | None = None,
    guidance: float = 0.0,
) -> Tensor:
    """``n`` samples: ``pf-ode`` by the circuit transient (:func:`circuit_pf_ode`), ``euler`` by Euler–Maruyama
    on the reverse SDE, x ← x + (2u − ½βx)Δ + √(βΔ) z (the circuit's currents ×2, a leak and a noise source).
    A conditional circuit takes ``labels`` (one, or one per sample; −1 = unconditional) and ``guidance`` w.

    Shapes:
        Returns (n, dim) float32.
    """
    check_request(solver, n, "score-circuit solver")
    labels = check_labels(model.num_classes, labels, int(n))
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(int(n), model.dim, generator=generator)
    with single_thread(), torch.no_grad():
        if solver == "pf-ode":
            return circuit_pf_ode(model, x, steps, hidden_capacitance, progress, labels, guidance)

        hidden: Tensor | None = None

        def score(z: Tensor, s: Tensor) -> Tensor:
            nonlocal hidden  # each step settles from the last one's equilibrium
            value, hidden = model._tracked_score(z, s, labels, guidance, hidden)
            return value

        return reference_euler(score, model.sde, x, True, steps, generator)
