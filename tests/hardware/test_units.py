"""Physical units: parsing, formatting and the scalings of a design."""

from __future__ import annotations

import math

import pytest

from kirchhoffnet.errors import ConfigError
from kirchhoffnet.hardware import PhysicalDesign, format_quantity, parse_quantity, parse_supply
from kirchhoffnet.hardware.units import BOLTZMANN_J_PER_K


@pytest.mark.parametrize(
    ("text", "unit", "value"),
    [
        ("1pF", "F", 1e-12),
        ("10fF", "F", 1e-14),
        ("2.5 nF", "F", 2.5e-9),
        ("1uS", "S", 1e-6),
        ("1µS", "S", 1e-6),
        ("3mS", "S", 3e-3),
        ("0.8V", "V", 0.8),
        ("50mV", "V", 0.05),
        ("1e-12", "F", 1e-12),
        ("1e-3F", "F", 1e-3),
        (2e-15, "F", 2e-15),
    ],
)
def test_parse_quantity(text, unit, value):
    assert parse_quantity(text, unit) == pytest.approx(value, rel=1e-12)  # exact up to float rounding


def test_a_resistance_becomes_a_conductance():
    assert parse_quantity("1kOhm", "S", allow=("Ohm",)) == pytest.approx(1e-3, rel=1e-12)
    assert parse_quantity("2kΩ", "S", allow=("Ohm",)) == pytest.approx(5e-4, rel=1e-12)


@pytest.mark.parametrize(
    ("text", "unit", "message"),
    [
        ("1pS", "F", r"capacitance '1pS' is in 'S' but needs F \(e.g. 1pF\)"),
        ("1kOhm", "S", r"is in 'Ohm' but needs S"),
        ("1xF", "F", r"unknown SI prefix 'x'"),
        ("1p", "F", r"'1p' lacks its unit; write 1pF"),
        ("pF", "F", r"'pF' is not a number with a unit"),
        ("-1pF", "F", r"capacitance must be finite and positive, got '-1pF'"),
        ("0V", "V", r"voltage must be finite and positive"),
        (float("nan"), "F", r"must be finite and positive"),
    ],
)
def test_parse_quantity_errors(text, unit, message):
    with pytest.raises(ConfigError, match=message):
        parse_quantity(text, unit)


@pytest.mark.parametrize(
    ("text", "rails"),
    [("1V", (-1.0, 1.0)), ("-1V,1V", (-1.0, 1.0)), ("0,1.8V", (0.0, 1.8)), ("-500mV, 1V", (-0.5, 1.0))],
)
def test_parse_supply(text, rails):
    assert parse_supply(text) == pytest.approx(rails)


@pytest.mark.parametrize("text", ["1V,-1V", "1V,2V,3V", "a,b"])
def test_parse_supply_errors(text):
    with pytest.raises(ConfigError, match="supply"):
        parse_supply(text)


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [(1.5e-12, "F", "1.5 pF"), (2e-9, "s", "2 ns"), (3e-6, "A", "3 µA"), (0.25, "V", "250 mV")],
)
def test_format_quantity(value, unit, text):
    assert format_quantity(value, unit) == text


def test_design_scalings():
    design = PhysicalDesign(capacitance_f=2e-12, conductance_s=1e-3, voltage_v=0.5)
    assert design.tau_s == pytest.approx(2e-9)  # τ = C/G
    assert design.current_a == pytest.approx(5e-4)  # G·V
    assert design.power_w == pytest.approx(2.5e-4)  # G·V²
    assert design.energy_j == pytest.approx(design.power_w * design.tau_s)  # C·V² = G·V²·τ
    assert design.thermal_epsilon == pytest.approx(BOLTZMANN_J_PER_K * 300 / (2e-12 * 0.25))
    assert math.isclose(design.to_dict()["tau_s"], 2e-9)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"capacitance_f": 0.0}, "capacitance_f must be a finite positive number"),
        ({"conductance_s": -1e-3}, "conductance_s must be a finite positive number"),
        ({"voltage_v": float("inf")}, "voltage_v must be a finite positive number"),
        ({"supply_v": (1.0, -1.0)}, "lowest < highest"),
    ],
)
def test_design_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        PhysicalDesign(**kwargs)
