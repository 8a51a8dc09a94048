"""Decks in each simulator's dialect: golden files reviewed against the manuals, and every line a statement
form the simulator defines (``tests/spice/grammar.py``), for every device family."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

import kirchhoffnet as kn
from kirchhoffnet.devices import AffineActivation
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.spice import SpiceOptions
from kirchhoffnet.spice.dialect import DIALECTS, dialect
from kirchhoffnet.spice.export import export_decks
from tests.conftest import small_circuit
from tests.spice.grammar import GrammarError, check_spectre, check_spice

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")
AFFINE = [name for name in kn.devices.available() if issubclass(kn.devices.Device.registry[name], AffineActivation)]


def tiny_circuit() -> kn.Circuit:
    """Three nodes (ground, n1, n2), three MosRelu edges, fixed numbers: the golden files' circuit."""
    params = torch.tensor([[0.5, -1.25, 2.0], [0.1, 0.0, -0.3]], dtype=torch.float64)
    piece = kn.Slice(
        [[1, 2, 0], [2, 0, 1]], "MosRelu", capacitance=torch.tensor([1.0, 0.5], dtype=torch.float64), params=params
    )
    return kn.Circuit(piece, times=(0.0, 0.5))


def tiny_inputs() -> torch.Tensor:
    return torch.tensor([[0.25, -0.5], [1.0, 0.75]], dtype=torch.float64)


def check(main, simulator):
    return check_spectre(main) if simulator == "spectre" else check_spice(main, simulator)


@pytest.mark.parametrize("simulator", sorted(DIALECTS))
def test_golden_decks(simulator, tmp_path):
    """Byte for byte the files reviewed line by line (docs/spice.md lists the manual sections)."""
    suffix = dialect(simulator).suffix
    written = export_decks(
        tiny_circuit(), tiny_inputs(), tmp_path / f"tiny{suffix}", simulator, SpiceOptions(points=11)
    )
    assert [p.name for p in written] == [
        f"tiny{suffix}",
        *(f"tiny.{part}{dialect(simulator).include_suffix}" for part in ("params", "ic")),
    ]
    for path in written:
        golden = os.path.join(GOLDEN, simulator, path.name)
        if os.environ.get("KN_WRITE_GOLDEN"):  # regenerate, then review the diff by hand
            os.makedirs(os.path.dirname(golden), exist_ok=True)
            shutil.copyfile(path, golden)
        with open(golden, encoding="utf-8") as stream:
            assert path.read_text() == stream.read(), f"{simulator}: {path.name} differs from its golden file"
    check(written[0], simulator)


@pytest.mark.parametrize("simulator", sorted(DIALECTS))
@pytest.mark.parametrize("family", AFFINE)
def test_every_family_writes_only_statements_the_manual_defines(simulator, family, tmp_path):
    torch.manual_seed(0)
    circuit = small_circuit(family, num_nodes=4, slices=2)
    written = export_decks(circuit, torch.randn(3, 3), tmp_path / "net", simulator)
    assert len(written) == 6  # two slices, three files each
    for main in written[::3]:
        kinds = check(main, simulator)
        assert {"bsource", "capacitor", "instance", "subckt", "ends", "tran", "options", "include"} <= set(kinds)
    for path in written:
        assert "^" not in path.read_text() and "**" not in path.read_text()  # XOR in LTspice; unknown elsewhere


@pytest.mark.parametrize(
    ("simulator", "line", "problem"),
    [
        ("ngspice", "Bdevice src dst I=max((kn_a)^2,0)", "unexpected character '^'"),
        ("ltspice", "Bdevice src dst I=pow(({kn_a}),2)", "not a parameter in scope"),
        ("xyce", "Bdevice src dst I=tanh((gain))", "in braces"),
        ("xyce", ".OPTIONS RELTOL=1e-3", "TIMEINT"),
        ("ltspice", ".tran 0.01 1.0 0 0.002", ".tran tstep"),
        ("ngspice", ".options reltol=1e-3 maxord=2 method=trap", "unknown options"),
        ("spectre", "C1 n1 0 {c1}", "not a Spectre statement"),
        ("spectre", "kn_tran tran stop=1.0 method=trap", "skipdc"),
    ],
)
def test_the_checker_rejects_what_the_manuals_do_not_define(simulator, line, problem, tmp_path):
    """The checker can fail: each edit below breaks one rule of one simulator's manual."""
    written = export_decks(tiny_circuit(), tiny_inputs(), tmp_path / f"tiny{dialect(simulator).suffix}", simulator)
    lines = written[0].read_text().splitlines()
    anchor = {"B": "Bdevice", ".": line.split()[0].lower(), "C": "C1", "k": line.split()[0]}[line[0]]
    at = next(k for k, old in enumerate(lines) if old.lower().startswith(anchor.lower()))
    lines[at] = line
    written[0].write_text("\n".join(lines) + "\n")
    with pytest.raises(GrammarError, match=problem.replace("(", r"\(").replace("^", r"\^").replace(".", r"\.")):
        check(written[0], simulator)


def test_unknown_dialect_is_refused():
    with pytest.raises(ConfigError, match=r"SPICE dialect.*ngspice"):
        dialect("hspice")
    assert dialect(DIALECTS["xyce"]) is DIALECTS["xyce"]


def test_include_names_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="letters, digits"):
        export_decks(tiny_circuit(), tiny_inputs(), tmp_path / "my deck.cir", "ngspice")
