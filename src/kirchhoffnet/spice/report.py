"""The result of a SPICE verification: error figures, timings, and the waveforms behind them."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from kirchhoffnet.errors import ConfigError
from kirchhoffnet.io.figures import new_figure


@dataclass
class VerifyReport:
    """How far ngspice and kirchhoffnet disagree on the same circuit and inputs.

    Errors are absolute node-voltage differences in V on the common time grid (``points`` per
    slice, slice boundaries included), taken over every sample, node and time point.

    Attributes:
        max_abs_error_v: largest difference anywhere along the waveforms.
        mean_abs_error_v: mean difference along the waveforms.
        boundary_max_abs_error_v: largest difference at the slice boundaries (the state handed on).
        peak_abs_voltage_v: largest node voltage magnitude, the scale the errors compare with.
        nodes: state nodes of the widest slice (ground excluded).
        edges: edges (devices) over all slices.
        samples: input samples simulated.
        slices: time slices.
        ngspice_s: wall-clock time of all ngspice runs.
        kirchhoffnet_s: wall-clock time of kirchhoffnet's trajectory on the same inputs.
        ngspice_runs: ngspice processes started.
        devices: device family of each slice.
        spice_options: the ngspice settings used.
        solver: the kirchhoffnet solver settings used.
        slice_max_abs_error_v: per slice, the largest difference.
        slice_swing_v: per slice, the range (max − min) of kirchhoffnet's node voltages over nodes, samples and
            times: the scale a slice's error is a fraction of.
        slice_spice_min_v: per slice, the lowest node voltage at any of ngspice's own time points.
        slice_spice_max_v: per slice, the highest one (with the minimum: whether nodes stay within supply rails).
        supply_energy_j: mean energy per input drawn from the realisation's supply sources over the whole run
            (``SupplyMetered`` realisations such as transistors; ``None`` for behavioural sources).
        supply_peak_power_w: the largest total supply power of any input at any time, or ``None`` likewise.
        times: per slice, the common times (T,) in s.
        ours: per slice, kirchhoffnet's voltages (T, K, N_k) in V.
        spice: per slice, ngspice's voltages interpolated onto ``times``, (T, K, N_k) in V.
        spice_final: (K, N) ngspice's output state, every slice started from ngspice's own end of the one before
            (the residual added as the circuit adds it), in V: ``circuit.encoding.decode`` gives the model's data.

    Every voltage here is a node voltage: an encoded circuit's (see [`Encoding`][kirchhoffnet.circuit.Encoding])
    are compared in volts, as ngspice runs them.
    """

    max_abs_error_v: float
    mean_abs_error_v: float
    boundary_max_abs_error_v: float
    peak_abs_voltage_v: float
    nodes: int
    edges: int
    samples: int
    slices: int
    ngspice_s: float
    kirchhoffnet_s: float
    ngspice_runs: int
    devices: list[str]
    spice_options: dict[str, Any]
    solver: dict[str, Any]
    slice_max_abs_error_v: list[float]
    slice_swing_v: list[float]
    slice_spice_min_v: list[float]
    slice_spice_max_v: list[float]
    supply_energy_j: float | None
    supply_peak_power_w: float | None
    times: list[np.ndarray] = field(repr=False)
    ours: list[np.ndarray] = field(repr=False)
    spice: list[np.ndarray] = field(repr=False)
    spice_final: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Every figure of the report (the waveforms excluded), JSON-serialisable."""
        skip = {"times", "ours", "spice", "spice_final"}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}

    def figure(self, sample: int = 0, max_nodes: int = 6) -> Figure:
        """Overlay ngspice and kirchhoffnet waveforms of one sample, with their difference below.

        Args:
            sample: which sample to show.
            max_nodes: at most this many nodes are drawn (the first ones).
        """
        if not 0 <= sample < self.samples:
            raise ConfigError(f"sample {sample} is out of range: the report holds {self.samples} samples")
        fig, (top, bottom) = new_figure((8, 6), 2, 1, sharex=True, height_ratios=(3, 2))
        colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
        for k, (t, ours, spice) in enumerate(zip(self.times, self.ours, self.spice, strict=True)):
            shown = min(max_nodes, ours.shape[2])
            for n in range(shown):
                colour = colours[n % len(colours)]
                label = (k == 0) or None
                top.plot(t, ours[:, sample, n], color=colour, lw=1.5, label=label and f"node {n + 1} kirchhoffnet")
                top.plot(
                    t,
                    spice[:, sample, n],
                    color=colour,
                    ls="none",
                    marker=".",
                    ms=3,
                    label=label and f"node {n + 1} ngspice",
                )
            error = np.abs(ours[:, sample, :shown] - spice[:, sample, :shown]).max(axis=1)
            bottom.semilogy(t, np.maximum(error, 1e-16), color="k", lw=1)
            if k:
                for ax in (top, bottom):
                    ax.axvline(t[0], color="0.7", lw=0.8, ls="--")
        top.set_ylabel("node voltage (V)")
        top.legend(fontsize=7, ncol=2)
        top.set_title(
            f"ngspice vs kirchhoffnet, sample {sample}: max |Δv| = {self.max_abs_error_v:.2e} V over all samples"
        )
        bottom.set_ylabel("max |Δv| over shown nodes (V)")
        bottom.set_xlabel("time (s)")
        fig.tight_layout()
        return fig
