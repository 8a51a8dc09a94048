"""SPICE export of circuits and their verification against ngspice.

``verify(model, x)`` simulates the same inputs in ngspice and in kirchhoffnet and reports how far
the node voltages differ; ``export_netlists`` writes a model's netlists, ``export_decks`` its
parameterised decks in any [`Dialect`][kirchhoffnet.spice.Dialect] (ngspice, Xyce, LTspice, Spectre),
``export_network_deck`` a whole multi-slice network as one deck, and ``import_deck``
reads an ngspice one back into a circuit; ``spice_trajectory`` runs
a whole circuit slice by slice in ngspice; ``run_ngspice``, ``read_raw`` and ``write_raw`` are the
small tool layer underneath. ``write_waveforms`` and ``write_trajectory`` save simulated voltages as
SPICE3 raw or CSV files, and ``export_veriloga`` writes each device family as a Verilog-A module.
``TransistorRelu`` builds MosRelu edges from transistors and ``iv_departure``
measures how far they are from the ideal ReLU; ``tabulate`` fits a
[`TransistorTable`][kirchhoffnet.devices.TransistorTable] to a model card's own drain current (``load_card``,
``shipped_cards``: the cards shipped as package data, NMOS and PMOS) and ``TableTransistors`` builds its edges
from that card's transistors; ``device_parasitics`` measures those transistors' terminal capacitances and
``with_parasitics`` adds them to the node capacitances. Only the ``ngspice`` executable is needed.
"""

from kirchhoffnet.spice._raw import RawPlot, read_raw, write_raw
from kirchhoffnet.spice._runner import INSTALL_HINT, RunResult, find_ngspice, has_ngspice, run_ngspice
from kirchhoffnet.spice.dialect import DIALECTS, Dialect
from kirchhoffnet.spice.export import export_decks, export_netlists, export_network_deck
from kirchhoffnet.spice.importer import import_deck
from kirchhoffnet.spice.model_cards import ModelCard, load_card, shipped_cards
from kirchhoffnet.spice.mos import (
    MosTechnology,
    TableTransistors,
    TransistorRelu,
    iv_departure,
    level1_card,
    model_iv_departure,
    table_transistors,
)
from kirchhoffnet.spice.netlist import Behavioural, SpiceOptions, slice_netlist
from kirchhoffnet.spice.parasitics import (
    Parasitics,
    device_parasitics,
    load_parasitics,
    parasitic_shift,
    with_parasitics,
)
from kirchhoffnet.spice.report import VerifyReport
from kirchhoffnet.spice.tabulation import Tabulation, tabulate
from kirchhoffnet.spice.transient import SpiceTrajectory, spice_trajectory
from kirchhoffnet.spice.verify import REFERENCE_SOLVER, random_inputs, verify
from kirchhoffnet.spice.veriloga import export_veriloga, veriloga_module
from kirchhoffnet.spice.waveforms import write_trajectory, write_waveforms

__all__ = [
    "DIALECTS",
    "INSTALL_HINT",
    "REFERENCE_SOLVER",
    "Behavioural",
    "Dialect",
    "ModelCard",
    "MosTechnology",
    "Parasitics",
    "RawPlot",
    "RunResult",
    "SpiceOptions",
    "SpiceTrajectory",
    "TableTransistors",
    "Tabulation",
    "TransistorRelu",
    "VerifyReport",
    "device_parasitics",
    "export_decks",
    "export_netlists",
    "export_network_deck",
    "export_veriloga",
    "find_ngspice",
    "has_ngspice",
    "import_deck",
    "iv_departure",
    "level1_card",
    "load_card",
    "load_parasitics",
    "model_iv_departure",
    "parasitic_shift",
    "random_inputs",
    "read_raw",
    "run_ngspice",
    "shipped_cards",
    "slice_netlist",
    "spice_trajectory",
    "table_transistors",
    "tabulate",
    "verify",
    "veriloga_module",
    "with_parasitics",
    "write_raw",
    "write_trajectory",
    "write_waveforms",
]
