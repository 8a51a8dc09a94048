"""Verilog-A modules of the device families: syntax by the subset checker, the law by evaluating it."""

from __future__ import annotations

import math
import re
from types import SimpleNamespace

import pytest
import torch

import kirchhoffnet as kn
from kirchhoffnet.devices import available, resolve
from kirchhoffnet.errors import DeviceError
from kirchhoffnet.spice import export_veriloga, veriloga_module
from kirchhoffnet.spice.veriloga import module_name
from tests.conftest import small_circuit
from tests.spice.grammar import GrammarError
from tests.spice.veriloga_grammar import check_veriloga

FAMILIES = sorted(available())


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_is_a_well_formed_module(family):
    device = resolve(family)
    module, params, _ = check_veriloga(veriloga_module(device))
    assert module == family and params == list(device.param_names)


def _evaluate(source: str, params: dict[str, float], v_src: float, v_dst: float) -> float:
    """The module's current, computed by running its assignments and contribution as Python arithmetic."""
    scope: dict[str, float] = dict(params)
    functions = {"max": max, "min": min, "abs": abs, "tanh": math.tanh}
    for line in source.splitlines():
        line = line.strip().replace("V(p)", "vp").replace("V(n)", "vn")
        body = re.fullmatch(r"(?:(kn_\w+) = |I\(p, n\) <\+ )(.+);", line)
        if body is None:
            continue
        value = eval(body[2], {"__builtins__": {}}, {**functions, **scope, "vp": v_src, "vn": v_dst})
        if body[1] is None:
            return float(value)
        scope[body[1]] = value
    raise AssertionError("no contribution")


@pytest.mark.parametrize("family", FAMILIES)
def test_the_module_computes_the_family_law(family):
    """Random parameters and voltages through the module's text and through the device: same current."""
    device = resolve({"name": family, "negative_slope": 0.2} if "Leaky" in family else family)
    source = veriloga_module(device)
    generator = torch.Generator().manual_seed(1)
    p = torch.randn(device.num_params, 64, generator=generator, dtype=torch.float64)
    v_src, v_dst = torch.randn(2, 64, generator=generator, dtype=torch.float64) * 2
    expected = device.current(v_src, v_dst, p)
    for e in range(64):
        params = dict(zip(device.param_names, p[:, e].tolist(), strict=True))
        got = _evaluate(source, params, float(v_src[e]), float(v_dst[e]))
        assert got == pytest.approx(float(expected[e]), rel=1e-12, abs=1e-15)


def test_checker_rejects_what_verilog_a_does_not_allow():
    good = veriloga_module(resolve("ShiftRelu1"))
    for bad in (
        good.replace("max(", "relu("),
        good.replace("gain*", "gain^"),
        good.replace("gain*", "gainz*"),
        good.replace("endmodule", ""),
        good.replace("electrical p, n;", ""),
    ):
        with pytest.raises(GrammarError):
            check_veriloga(bad)


def test_export_writes_one_file_per_family(tmp_path):
    flow = kn.Flow(small_circuit("ShiftTanh2", num_nodes=3, slices=2))
    (written,) = export_veriloga(flow, tmp_path / "va")
    assert written == tmp_path / "va" / "ShiftTanh2.va"
    assert written.read_text() == veriloga_module(resolve("ShiftTanh2"))


def test_export_refuses_one_name_with_two_laws(tmp_path):
    circuit = small_circuit("ShiftLeakyRelu1", num_nodes=3, slices=2)
    circuit.slice(1).device_family = resolve({"name": "ShiftLeakyRelu1", "negative_slope": 0.3})
    with pytest.raises(DeviceError, match="different settings"):
        export_veriloga(circuit, tmp_path)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["end", "2fast", "a-b"])
def test_family_names_that_are_no_identifiers_are_refused(name):
    with pytest.raises(DeviceError, match="no Verilog-A identifier"):
        module_name(SimpleNamespace(name=name))
