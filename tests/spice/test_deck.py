"""Parameterised decks: the family subcircuit is the device's own law, and ngspice runs the deck to
the same voltages as kirchhoffnet (the 1e-3 V agreement of the verify tests)."""

from __future__ import annotations

import math
import re
import subprocess

import numpy as np
import pytest
import torch

import kirchhoffnet as kn
from kirchhoffnet.devices import AffineActivation
from kirchhoffnet.errors import DeviceError
from kirchhoffnet.solve import trajectory
from kirchhoffnet.spice import find_ngspice, read_raw
from kirchhoffnet.spice.deck import family_subckt
from kirchhoffnet.spice.dialect import Dialect
from kirchhoffnet.spice.export import export_decks
from kirchhoffnet.spice.netlist import node_columns
from kirchhoffnet.spice.verify import REFERENCE_SOLVER
from tests.conftest import small_circuit

AFFINE = [name for name in kn.devices.available() if issubclass(kn.devices.Device.registry[name], AffineActivation)]
AGREEMENT_V = 1e-3  # as tests/spice/test_verify.py
FUNCTIONS = {"tanh": math.tanh, "max": max, "min": min, "abs": abs}


def _evaluate(expression: str, names: dict[str, float]) -> float:
    """A numparam-substituted ngspice expression in Python, whose syntax it shares once ``{x}`` is ``x``."""
    return eval(re.sub(r"\{(\w+)\}", r"\1", expression), {"__builtins__": {}}, {**FUNCTIONS, **names})


def _subckt_current(device, values, v_src, v_dst) -> float:
    """The current the family subcircuit drives for parameter ``values`` at terminal voltages ``v_src``, ``v_dst``."""
    lines = family_subckt(device, Dialect())
    names = dict(zip(device.param_names, values, strict=True))
    for line in lines[1:-2]:  # the derived parameters between the header and the source
        name, expression = re.fullmatch(r"\.param (\w+)=\{(.+)\}", line).groups()
        names[name] = _evaluate(expression, names)
    law = lines[-2].split("I=", 1)[1]
    return _evaluate(law, {**names, "v": lambda node: {"src": v_src, "dst": v_dst}[node], "src": "src", "dst": "dst"})


@pytest.mark.parametrize("family", AFFINE)
def test_subcircuit_is_the_device_law(family):
    torch.manual_seed(1)
    device = kn.devices.resolve(family)
    params = torch.randn(device.num_params, 64, dtype=torch.float64) * 1.5
    params[:, 0] = 0.0  # a zero gain: MosRelu's floor on |gain|
    v_src, v_dst = torch.randn(64, dtype=torch.float64) * 2, torch.randn(64, dtype=torch.float64) * 2
    expected = device.current(v_src, v_dst, params)
    for e in range(64):
        got = _subckt_current(device, params[:, e].tolist(), float(v_src[e]), float(v_dst[e]))
        assert got == pytest.approx(float(expected[e]), rel=1e-12, abs=1e-12), (family, e)


def test_a_family_without_an_affine_form_is_refused():
    class Odd(kn.devices.Device):
        param_names = ("k",)

        def current(self, v_src, v_dst, p, scratch=False):
            return p[0] * v_src

    try:
        with pytest.raises(DeviceError, match="no behavioural-source form"):
            family_subckt(Odd(), Dialect())
    finally:
        kn.devices.Device.registry.pop("Odd")


@pytest.mark.needs_ngspice
@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("family", ["MosRelu", "ShiftLeakyRelu1", "ShiftTanh2"])
def test_ngspice_runs_the_parameterised_deck_to_kirchhoffnets_voltages(family, tmp_path):
    torch.manual_seed(2)
    circuit = small_circuit(family, num_nodes=4, slices=2).double()
    x = torch.randn(2, 3, dtype=torch.float64)
    written = export_decks(circuit, x, tmp_path / "net.cir", "ngspice")
    with torch.no_grad():
        waves, _ = trajectory(circuit, x, solver=REFERENCE_SOLVER, points_per_slice=2)
    for k, deck in enumerate(written[::3]):
        run = subprocess.run(
            [find_ngspice(), "-b", "-r", f"out{k}.raw", deck.name],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0 and "rror" not in run.stdout + run.stderr, run.stdout + run.stderr
        plot = read_raw(tmp_path / f"out{k}.raw")[0]
        piece = circuit.slice(k)
        for sample in range(2):
            columns = [plot.variables.index(name) for name in node_columns(piece, 2, sample)]
            final = plot.data[-1, columns]
            np.testing.assert_allclose(final, waves[k][1][-1, sample].numpy(), rtol=0, atol=AGREEMENT_V)
            # and the voltages moved: the agreement is not that of a flat signal
            assert np.abs(final - waves[k][1][0, sample].numpy()).max() > 10 * AGREEMENT_V


def test_a_family_without_symbolic_coefficients_says_what_to_add():
    class Plain(AffineActivation):
        param_names = ("k",)

        def activation(self, u, inplace):
            return u

        def slope(self, out):
            return torch.ones_like(out)

        def coefficients(self, p):
            return p[0], None, None, None

        def spice_activation(self, u):
            return f"({u})"

    try:
        with pytest.raises(DeviceError, match="defines no spice_coefficients"):
            family_subckt(Plain(), Dialect())
    finally:
        kn.devices.Device.registry.pop("Plain")
