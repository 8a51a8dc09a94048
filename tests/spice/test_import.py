"""``import_deck``: an exported ngspice deck reads back into the very circuit, a hand edit reads back as
edited, and anything a circuit cannot be is refused with one line naming the file and line."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

import kirchhoffnet as kn
from kirchhoffnet.cli.main import app
from kirchhoffnet.devices import AffineActivation
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.spice import import_deck
from kirchhoffnet.spice.export import export_decks
from kirchhoffnet.spice.importer import MAX_DECK_BYTES
from tests.conftest import small_circuit

AFFINE = [name for name in kn.devices.available() if issubclass(kn.devices.Device.registry[name], AffineActivation)]
runner = CliRunner()


def _same(a: kn.Circuit, b: kn.Circuit) -> None:
    assert a.spec() == b.spec()
    for k in range(a.num_slices):
        for name in ("edge_index", "capacitance", "params"):
            mine, theirs = getattr(a.slice(k), name), getattr(b.slice(k), name)
            assert mine.dtype == theirs.dtype and torch.equal(mine, theirs), (k, name)  # bit for bit


def _deck(tmp_path, circuit=None):
    """A one-slice ShiftTanh2 circuit with uneven capacitances, its three files, and the texts."""
    if circuit is None:
        circuit = small_circuit("ShiftTanh2", num_nodes=3, slices=1).double()
        with torch.no_grad():
            circuit.slice(0).capacitance.copy_(torch.tensor([0.75, 1.0 / 3.0], dtype=torch.float64))
    files = export_decks(circuit, torch.zeros(1, 2), tmp_path / "net.cir", "ngspice")
    return circuit, files


@pytest.mark.parametrize("family", AFFINE)
def test_export_then_import_is_the_same_circuit(family, tmp_path):
    torch.manual_seed(3)
    circuit = small_circuit(family, num_nodes=4, slices=2, times=(0.0, 0.1, 0.3), fill="repeat", residual=(0, 1))
    circuit = circuit.double()
    files = export_decks(circuit, torch.randn(2, 3), tmp_path / "net.cir", "ngspice")
    _same(import_deck(files[::3]), circuit)


def test_hyperparameters_and_input_nodes_round_trip(tmp_path):
    piece = kn.Slice([[1, 2, 0], [2, 0, 1]], {"name": "ShiftLeakyRelu2", "negative_slope": 0.3}, init="gauss")
    circuit = kn.Circuit(piece.double(), times=(0.5, 1.75), input_nodes=[2])
    files = export_decks(circuit, torch.ones(1, 1), tmp_path / "one.cir")
    _same(import_deck(files[0]), circuit)


def test_edits_by_hand_read_back_as_edited(tmp_path):
    circuit, (main, params, _) = _deck(tmp_path)
    text = params.read_text().replace(
        f".param e1_shift={circuit.slice(0).params[2, 1].item()!r}", ".param e1_shift=-2.5"
    )
    text = text.replace(".param c2=0.3333333333333333", ".param c2=4e-3")
    params.write_text(text)
    lines = main.read_text().splitlines()
    lines = [line for line in lines if not line.startswith("X3 ")]  # remove one device
    lines = [line.replace(".tran 0.01 1.0 ", ".tran 0.01 2.5 ") for line in lines]
    main.write_text("\n".join(lines) + "\n")
    got = import_deck(main).slice(0)
    want = circuit.slice(0)
    keep = [e for e in range(want.num_edges) if e != 3]
    expected = want.params.detach()[:, keep].clone()
    expected[2, 1] = -2.5
    assert torch.equal(got.params.detach(), expected)
    assert torch.equal(got.edge_index, want.edge_index[:, keep])
    assert got.capacitance.tolist() == [0.75, 4e-3]
    assert import_deck(main).times == (0.0, 2.5)


def _edited(tmp_path, old: str, new: str, file: int = 0):
    _, files = _deck(tmp_path)
    text = files[file].read_text()
    assert old in text, old
    files[file].write_text(text.replace(old, new, 1))
    return files[0]


HOSTILE = [
    ("C1 n1 0 {c1}", "R1 n1 0 1k", 0, "holds only node capacitors"),
    ("X0 0 n1 ", "X0 0 n3 ", 0, "ports n1..n2"),
    ("X0 0 n1 ShiftTanh2", "X0 0 n1 MyDevice", 0, "holds only node capacitors"),
    ("Xs n1 n2 kn_slice", "Xs n1 n2 other", 0, "must be of kn_slice"),
    (
        ".subckt kn_slice n1 n2",
        ".subckt helper a b\n.ends helper\n.subckt kn_slice n1 n2",
        0,
        "exactly one device-family",
    ),
    (".param c1=0.75", ".param c1=1k", 1, "plain number"),
    (".param c1=0.75", ".param c1={2*c2}", 1, "plain number"),
    (".param c1=0.75", ".param c1", 1, "assignment is <name>=<number>"),
    (".param c1=0.75", ".param c1=-0.75", 1, "must be positive"),
    (".param c1=0.75", ".param c1=nan", 1, "plain number"),
    (".param c1=0.75", ".param c1=1e999", 1, "not a finite number"),
    (".param c1=0.75", ".param c1=0.75 c1=1", 1, "defined twice"),
    ("C2 n2 0 {c2}", "C2 n2 0 {c9}", 0, "not defined by any .param"),
    ("C2 n2 0 {c2}", "", 0, "node n2 has no capacitor"),
    ("gain_src={e0_gain_src}", "gain_src={e0_gain_src} gain_src={e0_gain_src}", 0, "once each"),
    (".include net.params.inc", ".include ../net.params.inc", 0, "letters, digits"),
    (".include net.params.inc", ".include missing.inc", 0, "not found"),
    (".tran 0.01 1.0", ".tran 0.01 -1.0", 0, "must be positive"),
    (".tran 0.01 1.0 0 0.002 uic", "", 0, "no .tran line"),
    ("I=tanh(", "I=2*tanh(", 0, "differs from the ShiftTanh2 law"),
    ('"name": "ShiftTanh2"', '"name": "Nope"', 0, "unknown device family"),
    ('{"name": "ShiftTanh2"}', "{nope", 0, "not valid JSON"),
    ('"fill": "zeros"', '"fill": 3', 0, "circuit comment must be a JSON object"),
    ('"residual": null', '"residual": [0, 5]', 0, "residual"),
    (".ends kn_slice", "", 0, "has no .ends"),
    (".options", ".control", 0, "'.control' is not a statement"),
    (".ic v(n1)=0.0", ".ic n1 0", 2, "initial condition is v(<node>)=<volts>"),
    (".ic v(n1)=0.0", ".subckt x", 2, "in an include file"),
    (".subckt kn_slice", ".subckt ShiftTanh2 a b\n.ends\n.subckt kn_slice", 0, "a name not used before"),
    (".subckt kn_slice n1 n2", ".subckt kn_slice n2 n1", 0, "ports must be n1 n2 ... nN"),
    (".subckt kn_slice n1 n2", ".subckt kn_other n1 n2", 0, "exactly one device-family"),
    (".tran 0.01 1.0 0 0.002 uic", ".tran 0.01", 0, "needs a step and a stop time"),
    (".include net.ic.inc", ".include net.ic.inc\n" * 8, 0, "at most 8 times"),
    ("C1 n1 0 {c1}", "C1 n2 0 {c1}", 0, "once per node"),
    ("X0 0 n1 ", "X0 n1 n1 ", 0, "self loop"),
]


@pytest.mark.parametrize(("old", "new", "file", "message"), HOSTILE)
def test_hostile_decks_are_refused_naming_file_and_line(tmp_path, old, new, file, message):
    main = _edited(tmp_path, old, new, file)
    with pytest.raises(ConfigError) as caught:
        import_deck(main)
    text = str(caught.value)
    assert message in text and "\n" not in text
    assert text.startswith(str(tmp_path / "net."))  # the file (and, where there is one, the line) leads


def test_continuation_lines_and_a_deck_without_edges(tmp_path):
    circuit, (main, _, _) = _deck(tmp_path)
    text = main.read_text()
    main.write_text(text.replace(" gain_dst={e0_gain_dst}", "\n+ gain_dst={e0_gain_dst}", 1))
    _same(import_deck(main), circuit)
    lines = [line for line in text.splitlines() if not line.startswith("X") or line.startswith("Xs")]
    main.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="no ShiftTanh2 instance"):
        import_deck(main)


def test_size_is_bounded_and_binary_is_refused(tmp_path):
    huge = tmp_path / "huge.cir"
    huge.write_bytes(b"* title\n" + b"*" * (MAX_DECK_BYTES + 1))
    with pytest.raises(ConfigError, match="larger than"):
        import_deck(huge)
    binary = tmp_path / "bin.cir"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not UTF-8"):
        import_deck(binary)
    with pytest.raises(ConfigError, match="at least one deck"):
        import_deck([])


def test_slices_must_follow_each_other(tmp_path):
    circuit = small_circuit("ShiftRelu1", num_nodes=3, slices=2).double()
    files = export_decks(circuit, torch.zeros(1, 2), tmp_path / "net.cir")
    with pytest.raises(ConfigError, match="does not follow"):
        import_deck([files[3], files[0]])


def test_cli_export_dialects_and_import(tmp_path):
    circuit, _ = _deck(tmp_path)
    model = tmp_path / "c.safetensors"
    kn.save(circuit, model)
    for simulator, suffix in (("xyce", "cir"), ("ltspice", "cir"), ("spectre", "scs")):
        out = tmp_path / simulator / f"deck.{suffix}"
        out.parent.mkdir()
        result = runner.invoke(app, ["spice", "export", str(model), "--out", str(out), "--dialect", simulator])
        assert result.exit_code == 0, result.output
        assert out.is_file() and (out.parent / f"deck.params.{'scs' if simulator == 'spectre' else 'inc'}").is_file()
    deck = tmp_path / "ng" / "deck.cir"
    deck.parent.mkdir()
    result = runner.invoke(app, ["spice", "export", str(model), "--out", str(deck), "--parameterised"])
    assert result.exit_code == 0 and "ngspice -b -r out.raw" in result.output, result.output
    back = tmp_path / "back.safetensors"
    result = runner.invoke(app, ["spice", "import", str(deck), "--out", str(back)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.splitlines()[0]) == {"slices": 1, "nodes": [2], "params": circuit.num_params}
    _same(kn.load(back), circuit)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dialect", "hspice"], "SPICE dialect"),
        (["--dialect", "xyce", "--transistors"], "--transistors writes single-file"),
    ],
)
def test_cli_export_refuses_bad_options(tmp_path, args, message):
    model = tmp_path / "c.safetensors"
    kn.save(small_circuit("MosRelu", num_nodes=3, slices=1), model)
    result = runner.invoke(app, ["spice", "export", str(model), "--out", str(tmp_path / "n.cir"), *args])
    assert result.exit_code != 0 and message in result.output, result.output


def test_cli_import_refuses_a_bad_deck_in_one_line(tmp_path):
    main = _edited(tmp_path, "C1 n1 0 {c1}", "L1 n1 0 1")
    result = runner.invoke(app, ["spice", "import", str(main), "--out", str(tmp_path / "x.safetensors")])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert f"{main}:" in result.output and "holds only node capacitors" in result.output
