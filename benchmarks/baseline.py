"""The straightforward implementation every benchmark compares against.

It is the structure of the original KirchhoffNet code, written here from its description: batch-
first voltages, fancy indexing ``v[:, src]`` for the terminals, ``scatter_add_`` for Kirchhoff's
current law, and the CNF trace as one reverse-mode sweep per state node. It uses kirchhoffnet's own
device formulas, so the two implementations compute the same model and only the structure differs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchdiffeq import odeint, odeint_adjoint

import kirchhoffnet as kn


class NaiveField(nn.Module):
    """One slice's dv/dt by indexing and scatter-add; optionally with the autograd-loop trace."""

    def __init__(self, piece: kn.Slice, divergence: bool) -> None:
        super().__init__()
        self.params = nn.Parameter(piece.params.detach().clone())
        self.register_buffer("src", piece.edge_index[0].clone())
        self.register_buffer("dst", piece.edge_index[1].clone())
        self.device_family = piece.device_family
        self.divergence = divergence
        self.nfe = 0

    def rhs(self, v: Tensor) -> Tensor:
        aux = torch.cat([torch.zeros_like(v[:, :1]), v], dim=1)
        current = self.device_family.current(aux[:, self.src], aux[:, self.dst], self.params[:, None, :])
        result = torch.zeros_like(aux)
        result.scatter_add_(1, self.src.expand_as(current), -current)
        result.scatter_add_(1, self.dst.expand_as(current), current)
        return result[:, 1:]

    def forward(self, t: Tensor, state):
        self.nfe += 1
        if not self.divergence:
            return self.rhs(state)
        v, _ = state
        with torch.enable_grad():
            v = v.requires_grad_(True)
            dv = self.rhs(v)
            trace = autograd_trace(dv, v)
        return dv, -trace


def autograd_trace(f: Tensor, v: Tensor, create_graph: bool = True) -> Tensor:
    """tr(∂f/∂v) by one reverse-mode sweep per dimension (the FFJORD-style exact trace).

    ``create_graph`` keeps the trace differentiable, as training needs; without it the sweeps are
    cheaper and use less memory.
    """
    total = torch.zeros_like(v[:, 0])
    for i in range(v.shape[1]):
        grad = torch.autograd.grad(f[:, i].sum(), v, create_graph=create_graph, retain_graph=True)[0]
        total = total + grad[:, i]
    return total


class NaiveModel(nn.Module):
    """A kirchhoffnet Flow or Network re-expressed with :class:`NaiveField` slices."""

    def __init__(self, model: kn.Flow | kn.Network) -> None:
        super().__init__()
        self.circuit = model.circuit
        self.solver = model.solver
        self.adjoint = isinstance(model.gradient, kn.Adjoint)
        flow = isinstance(model, kn.Flow)
        self.fields = nn.ModuleList(NaiveField(model.circuit.slice(k), flow) for k in range(model.circuit.num_slices))
        self.readout = None if flow else model.readout

    def _solve(self, field: NaiveField, y0, span) -> object:
        t = torch.tensor(span, dtype=torch.float32)
        kwargs = dict(
            rtol=self.solver.rtol, atol=self.solver.atol, method=self.solver.method, options=self.solver.options()
        )
        if self.adjoint:
            return odeint_adjoint(field, y0, t, adjoint_params=tuple(field.parameters()), **kwargs)
        return odeint(field, y0, t, **kwargs)

    def log_prob(self, x: Tensor) -> Tensor:
        state = (x, torch.zeros(x.shape[0], dtype=x.dtype))
        for k in reversed(range(len(self.fields))):
            out = self._solve(self.fields[k], state, (self.circuit.times[k + 1], self.circuit.times[k]))
            state = (out[0][-1], out[1][-1])
        z, delta = state
        return kn.models.standard_normal_log_prob(z) - delta

    def forward(self, x: Tensor) -> Tensor:
        v = x
        for k, field in enumerate(self.fields):
            v = self.circuit.resize(v.T, self.circuit.slice(k).num_state).T
            v = self._solve(field, v.contiguous(), (self.circuit.times[k], self.circuit.times[k + 1]))[-1]
        return v if self.readout is None else self.readout(v)
