"""The score circuit itself: its programmed devices, their KCL currents, the driven nodes and the velocity.

`ScoreCircuit` is the module whose parameters are trained and saved: one core
[`Slice`][kirchhoffnet.Slice] of devices on the node layout of
`topology`, the time embedding that drives the time nodes, and
the hidden-terminal gains as programmed (bounded or passive). The physics is the package docstring's.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from kirchhoffnet.circuit import Slice
from kirchhoffnet.devices import resolve
from kirchhoffnet.devices.base import AffineActivation, TerminalGains
from kirchhoffnet.diffusion.field import check_labels
from kirchhoffnet.diffusion.score import TimeEmbedding
from kirchhoffnet.diffusion.score_circuit.settle import HiddenBalance, newton_settle
from kirchhoffnet.diffusion.score_circuit.topology import score_topology
from kirchhoffnet.errors import ConfigError


class ScoreCircuit(nn.Module):
    """The circuit of the package docstring: data, hidden and driven time nodes, one device per edge.

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
        time step's equilibrium is a good one) to the exact root, differentiated by the implicit function theorem
        (`newton_settle`).
        """
        if self.passive:
            return newton_settle(self._hidden_balance, x, drive, guess, self.settle_steps)
        h = x.new_zeros(self.hidden, x.shape[1])
        for _ in range(self.settle_steps):
            h = self.currents(x, h, drive)[1] / self.leak
        return h

    def hidden_balance(self, x: Tensor, h: Tensor, drive: Tensor) -> tuple[Tensor, Tensor]:
        """F = I_h − g h at the hidden nodes and its diagonal dF/dh (no hidden node feeds another, so the
        hidden Jacobian is diagonal), both (hidden, B). The devices into the hidden nodes are laid out
        (inputs, hidden) by `score_topology`, so this is
        dense arithmetic with no gather over edges.

        Shapes:
            x: (dim, B); h: (hidden, B); drive: (driven, B) or (driven, 1).
        """
        return self._hidden_balance(x, drive)(h)

    def _hidden_balance(self, x: Tensor, drive: Tensor) -> HiddenBalance:
        """The hidden balance as a function of h, for these data and driven nodes."""
        sources = torch.cat([x.repeat(self.repeat, 1), drive.expand(-1, x.shape[1])])  # edge order
        return HiddenBalance(self._family, self.programmed()[:, : self._into_hidden].to(x.dtype), self.leak, sources)

    def drive(self, s: Tensor, labels: Tensor | None = None) -> Tensor:
        """Driven-node voltages, node-major: the time sources for diffusion times s (B,) or scalar, then (for a
        conditional circuit) the class sources holding the one-hot ``labels`` (−1: all at 0 V, unconditional).

        Shapes:
            s: (B,) or scalar; labels: (B,) long. Returns (driven, B), or (driven, 1) without labels.
        """
        times = self.embedding(s).t()
        labels = check_labels(self.num_classes, labels)
        if labels is None:
            return times
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
