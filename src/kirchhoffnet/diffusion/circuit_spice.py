"""The score circuit's generation transient as a SPICE deck, checked against our own integration.

The deck is the physical circuit of `score_circuit`, one replica per
sample (replicas share only ground), in normalised units (1 F, 1 A, 1 V, 1 s):

* data nodes: capacitors C_x = 1 / k (k the model's velocity gain, 1 = the exact probability-flow
  ODE) starting at the base sample x₀;
* hidden nodes: capacitors C_h with the leak resistor 1 / g to ground, starting at their settled
  equilibrium for s = 1;
* time nodes: behavioural voltage sources following e_k(s) = sin / cos(2π f_k s) with s = 1 − τ,
  where τ is SPICE's ``time``;
* class nodes (a conditional circuit): DC sources holding the replica's one-hot label;
* every device: a behavioural current source of the programmed parameters (hidden-terminal gains
  bounded as `programmed` bounds them),
  written by the same [`Behavioural`][kirchhoffnet.spice.Behavioural] realisation as every other
  model;
* classifier-free guidance w: two copies of everything but the data capacitors, the labelled one and one
  with every class source at 0 V, whose data terminals follow the data nodes through unity buffers; a
  behavioural source per data node injects (1 + w) × the labelled copy's current − w × the other's
  (the current mirrors of a chip), read from 0 V ammeters in the buffers.

The transient runs τ from 0 to 1 − s_min. The reference is the same circuit integrated by dopri5
at tight tolerance (`circuit_transient`); `verify_score_circuit` compares the two.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor
from torchdiffeq import odeint

from kirchhoffnet._finite import require_finite
from kirchhoffnet.circuit import Slice
from kirchhoffnet.diffusion.score_circuit.circuit import ScoreCircuit
from kirchhoffnet.diffusion.score_circuit.model import CircuitScoreModel, guided_copies, mix_copies
from kirchhoffnet.diffusion.score_circuit.sample import HIDDEN_CAPACITANCE
from kirchhoffnet.errors import ConfigError, ToolError
from kirchhoffnet.spice._runner import run_ngspice
from kirchhoffnet.spice.netlist import Behavioural, SpiceOptions, node_name


def _check(model: CircuitScoreModel, x0: Tensor, hidden_capacitance: float, labels: Tensor | None) -> None:
    if not isinstance(x0, Tensor) or x0.dim() != 2 or x0.shape[1] != model.dim or len(x0) == 0:
        raise ConfigError(f"base samples must be a (samples, {model.dim}) tensor, got {getattr(x0, 'shape', x0)!r}")
    if not bool(torch.isfinite(x0).all()):
        raise ConfigError("base samples hold NaN or infinite values")
    if not (math.isfinite(hidden_capacitance) and hidden_capacitance > 0):
        raise ConfigError(f"the hidden capacitance must be positive for a transient, got {hidden_capacitance}")
    model.circuit.drive(torch.tensor(1.0), labels)  # refuses missing, surplus or out-of-range labels
    if labels is not None and len(labels) != len(x0):
        raise ConfigError(f"got {len(labels)} labels for {len(x0)} base samples; give one per sample")


def circuit_transient(
    model: CircuitScoreModel,
    x0: Tensor,
    hidden_capacitance: float,
    times: Tensor,
    labels: Tensor | None = None,
    guidance: float = 0.0,
) -> Tensor:
    """Data and hidden voltages of the full transient at circuit times ``times`` (τ = 1 − s), by dopri5; a
    conditional circuit holds ``labels`` (K,) on its class sources, and ``guidance`` w ≠ 0 runs the guided pair
    of circuit copies (`guided_copies`).

    Shapes:
        x0: (K, dim). times: (T,) increasing from 0. Returns (T, K, dim + copies · hidden): the data nodes, then
        each copy's hidden nodes.
    """
    _check(model, x0, hidden_capacitance, labels)
    circuit, gain = _float64(model), model.velocity_gain
    copies, mixing = guided_copies(labels, guidance)
    x, k = x0.detach().to(torch.float64).t(), len(mixing)

    def rate(tau: Tensor, state: Tensor) -> Tensor:
        data, hidden = state[: circuit.dim], _stack_copies(state[circuit.dim :], k)
        into_data, into_hidden = circuit.currents(data.repeat(1, k), hidden, circuit.drive(1.0 - tau, copies))
        hidden_rate = (into_hidden - circuit.leak * hidden) / hidden_capacitance
        return torch.cat([gain * mix_copies(into_data, mixing), _unstack_copies(hidden_rate, k)])

    with torch.no_grad():
        start = torch.cat([x, _unstack_copies(_settled(circuit, x.repeat(1, k), copies), k)])
        waves = odeint(rate, start, times.to(torch.float64), rtol=1e-9, atol=1e-9, method="dopri5")
    return waves.transpose(1, 2)


def _stack_copies(hidden: Tensor, copies: int) -> Tensor:
    """(copies · hidden, K) state rows → (hidden, copies · K) circuit columns."""
    return hidden.unflatten(0, (copies, -1)).transpose(0, 1).flatten(1)


def _unstack_copies(hidden: Tensor, copies: int) -> Tensor:
    """(hidden, copies · K) circuit columns → (copies · hidden, K) state rows (inverse of `_stack_copies`)."""
    return hidden.unflatten(1, (copies, -1)).transpose(0, 1).flatten(0, 1)


def _float64(model: CircuitScoreModel) -> ScoreCircuit:
    """A float64 copy of the model's circuit: the comparison measures the deck and ngspice, not rounding."""
    return copy.deepcopy(model.circuit).double()


def _settled(circuit: ScoreCircuit, x: Tensor, labels: Tensor | None) -> Tensor:
    """The hidden equilibrium at s = 1, where generation starts (node-major (hidden, K))."""
    with torch.no_grad():
        return circuit.settle(x, circuit.drive(torch.tensor(1.0, dtype=x.dtype), labels))


def _copy_suffixes(sample: int, samples: int, copies: int) -> tuple[str, list[str]]:
    """Node-name suffixes of a replica's data capacitors and of its circuit copies (one copy: the same)."""
    base = f"_{sample}" if samples > 1 else ""
    return base, [base] if copies == 1 else [f"{base}_c{j}" for j in range(copies)]


def score_circuit_netlist(
    model: CircuitScoreModel,
    x0: Tensor,
    hidden_capacitance: float,
    options: SpiceOptions | None = None,
    labels: Tensor | None = None,
    guidance: float = 0.0,
) -> str:
    """The SPICE deck of the generation transient from base samples ``x0`` (K, dim), with ``labels`` (K,) on a
    conditional circuit's class sources and ``guidance`` w; see the module docstring."""
    _check(model, x0, hidden_capacitance, labels)
    options = options or SpiceOptions()
    circuit = model.circuit
    edges = circuit.edges
    programmed = Slice(edges.edge_index, edges.device_family, num_nodes=edges.num_nodes, params=circuit.programmed())
    element = Behavioural().elements(programmed)
    copies, mixing = guided_copies(labels, guidance)
    x = x0.detach().to(torch.float64)
    hidden = _settled(_float64(model), x.t().repeat(1, len(mixing)), copies).t()  # (copies · K, hidden)
    data_nodes = range(1, circuit.dim + 1)
    hidden_nodes = range(circuit.dim + 1, circuit.dim + circuit.hidden + 1)
    time_nodes = range(circuit.dim + circuit.hidden + 1, circuit.dim + circuit.hidden + circuit.time_nodes + 1)
    class_nodes = range(time_nodes.stop, circuit.num_nodes)
    freqs = circuit.embedding.frequencies.tolist()
    half = len(freqs)
    lines = [
        f"* KirchhoffNet score circuit: {circuit.num_nodes} nodes, {edges.num_edges} devices, {len(x)} samples, "
        f"{len(mixing)} circuit cop{'y' if len(mixing) == 1 else 'ies'} per sample"
    ]
    for k in range(len(x)):
        base, suffixes = _copy_suffixes(k, len(x), len(mixing))
        lines.append(f"* sample {k}")
        for i, n in enumerate(data_nodes):
            lines.append(f"Cx{n}{base} {node_name(n, base)} 0 {1.0 / model.velocity_gain!r} IC={float(x[k, i])!r}")
        for j, suffix in enumerate(suffixes):
            row = j * len(x) + k  # this copy's column in the stacked batch
            label = None if copies is None else int(copies[row])
            for i, n in enumerate(hidden_nodes):
                name = node_name(n, suffix)
                lines.append(f"Ch{n}{suffix} {name} 0 {hidden_capacitance!r} IC={float(hidden[row, i])!r}")
                lines.append(f"Rh{n}{suffix} {name} 0 {1.0 / circuit.leak!r}")
            for i, n in enumerate(time_nodes):
                wave = "sin" if i < half else "cos"
                phase = f"{2 * math.pi * freqs[i % half]!r}*(1-time)"
                lines.append(f"Bt{n}{suffix} {node_name(n, suffix)} 0 V={wave}({phase})")
            for i, n in enumerate(class_nodes):
                lines.append(f"Vc{n}{suffix} {node_name(n, suffix)} 0 DC {1.0 if label == i else 0.0!r}")
            lines.extend(element(e, suffix) for e in range(edges.num_edges))
        if len(mixing) > 1:
            lines.extend(_mixing_lines(data_nodes, base, suffixes, mixing.tolist()))
    lines += [*options.control_lines(1.0 - model.sde.s_min), ".end", ""]
    return "\n".join(lines)


def _mixing_lines(data_nodes: range, base: str, suffixes: list[str], gains: list[float]) -> list[str]:
    """Guidance in the deck: each copy's data terminal follows the shared data node through a unity buffer with a
    0 V ammeter, which carries the current the copy's devices draw; one source per data node injects the mixed
    current Σ_j gain_j × (current into copy j's terminal) = −Σ_j gain_j i(ammeter j)."""
    lines = []
    for n in data_nodes:
        shared = node_name(n, base)
        for suffix in suffixes:
            terminal = node_name(n, suffix)
            lines.append(f"Ef{n}{suffix} {terminal}_f 0 {shared} 0 1")
            lines.append(f"Vm{n}{suffix} {terminal}_f {terminal} 0")
        mixed = " + ".join(f"{gain!r}*i(Vm{n}{suffix})" for gain, suffix in zip(gains, suffixes, strict=True))
        lines.append(f"Bmix{n}{base} {shared} 0 I={mixed}")
    return lines


@dataclass(frozen=True)
class ScoreCircuitCheck:
    """ngspice against our transient of the score circuit.

    Attributes:
        samples: generation transients compared.
        max_abs_error_v: largest |Δv| of a data node over all samples and print times.
        final_abs_error_v: largest |Δv| of a data node at the end (the generated sample).
        max_hidden_error_v: largest |Δv| of a hidden node.
        voltage_range_v: the data nodes' largest |v| along the way, for scale.
        hidden_capacitance: C_h of the transient.
        guidance: classifier-free guidance w of the transient (two circuit copies when ≠ 0).
        ngspice_s: wall time of the ngspice run.
    """

    samples: int
    max_abs_error_v: float
    final_abs_error_v: float
    max_hidden_error_v: float
    voltage_range_v: float
    hidden_capacitance: float
    guidance: float
    ngspice_s: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def verify_score_circuit(
    model: CircuitScoreModel,
    samples: int = 4,
    hidden_capacitance: float = HIDDEN_CAPACITANCE,
    options: SpiceOptions | None = None,
    seed: int = 0,
    guidance: float = 0.0,
) -> tuple[ScoreCircuitCheck, str]:
    """Simulate ``samples`` generations from x₀ ~ N(0, I) in ngspice and with `circuit_transient`
    (a conditional circuit generates the classes in turn, sample k class k mod classes, with ``guidance`` w).

    Returns:
        The comparison and the deck that was simulated.

    Raises:
        ToolError: ngspice is missing or failed (its own words quoted).
    """
    if int(samples) < 1:
        raise ConfigError(f"samples must be at least 1, got {samples}")
    options = options or SpiceOptions()
    x0 = torch.randn(int(samples), model.dim, generator=torch.Generator().manual_seed(seed))
    labels = torch.arange(int(samples)) % model.num_classes if model.num_classes else None
    deck = score_circuit_netlist(model, x0, hidden_capacitance, options, labels, guidance)
    start = time.perf_counter()
    plot = run_ngspice(deck, timeout_s=options.timeout_s).plot("transient")
    seconds = time.perf_counter() - start
    grid = np.linspace(0.0, 1.0 - model.sde.s_min, int(options.points))
    ours = circuit_transient(model, x0, hidden_capacitance, torch.from_numpy(grid), labels, guidance).numpy()
    circuit = model.circuit
    copies = len(guided_copies(labels, guidance)[1])
    theirs = np.empty_like(ours)
    for k in range(int(samples)):
        base, suffixes = _copy_suffixes(k, int(samples), copies)
        names = [node_name(n, base) for n in range(1, circuit.dim + 1)]
        names += [
            node_name(n, suffix)
            for suffix in suffixes
            for n in range(circuit.dim + 1, circuit.dim + circuit.hidden + 1)
        ]
        for column, name in enumerate(names):
            theirs[:, k, column] = np.interp(grid, plot["time"], plot[f"v({name})"])
    require_finite(  # NaN > tolerance is false: a NaN must never pass as agreement
        "ngspice's node voltages",
        theirs,
        "the simulator diverged or its output is corrupt; check the deck",
        ToolError,
    )
    require_finite("kirchhoffnet's node voltages", ours, "the circuit blows up on these inputs")
    gap = np.abs(theirs - ours)
    check = ScoreCircuitCheck(
        samples=int(samples),
        max_abs_error_v=float(gap[:, :, : circuit.dim].max()),
        final_abs_error_v=float(gap[-1, :, : circuit.dim].max()),
        max_hidden_error_v=float(gap[:, :, circuit.dim :].max()),
        voltage_range_v=float(np.abs(ours[:, :, : circuit.dim]).max()),
        hidden_capacitance=float(hidden_capacitance),
        guidance=float(guidance),
        ngspice_s=seconds,
    )
    return check, deck
