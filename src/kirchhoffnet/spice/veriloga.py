"""Verilog-A models of the device families, for simulators that compile compact models (OSDI, ADMS).

Each family becomes one two-terminal module whose single contribution is the family's law,
``I(p,n) <+ post*σ(a*V(p)+b*V(n)+c)``, built by the same `affine_law`
from the same [`spice_coefficients`][kirchhoffnet.devices.AffineActivation.spice_coefficients] and
``spice_activation`` as the SPICE decks: one description of each family, so a module and a deck
cannot disagree. The expressions use only ``+ - * /``, ``max``, ``min`` and ``tanh``, which are
Verilog-A built-ins (the ReLU's ``max(u,0)`` is exact, not a smoothed stand-in). Current flows
from ``p`` through the device to ``n``, as from a deck's ``src`` to ``dst``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from kirchhoffnet.devices import Device
from kirchhoffnet.errors import DeviceError
from kirchhoffnet.io import write_text_atomic
from kirchhoffnet.spice.deck import local_coefficients
from kirchhoffnet.spice.netlist import affine_family, affine_law, as_circuit

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEYWORDS = {"module", "endmodule", "analog", "begin", "end", "inout", "electrical", "parameter", "real", "if"}


def module_name(device: Device) -> str:
    """The Verilog-A module name of a family: its name, which must be a plain identifier."""
    name = device.name
    if _IDENTIFIER.fullmatch(name) is None or name in _KEYWORDS:
        raise DeviceError(f"device family {name!r} is no Verilog-A identifier; rename the class to export it")
    return name


def veriloga_module(device: Device) -> str:
    """The Verilog-A source of one family: ports ``p`` (source) and ``n`` (destination), its parameters.

    Every parameter defaults to 0 (no current): an instance sets the learned values, as the decks'
    ``.params`` files do.
    """
    family = affine_family(device)
    name = module_name(family)
    for parameter in family.param_names:
        if _IDENTIFIER.fullmatch(parameter) is None or parameter in _KEYWORDS or parameter in ("p", "n"):
            raise DeviceError(f"parameter {parameter!r} of {name} is no Verilog-A identifier")
    names = family.param_names
    derived, used = local_coefficients(family)  # as the decks' subcircuits: locals for derived coefficients
    law = affine_law(family, used, "V(p)", "V(n)")
    extra = family.hyperparameters()
    settings = f" with {', '.join(f'{k}={v!r}' for k, v in sorted(extra.items()))}" if extra else ""
    lines = [
        f"// kirchhoffnet device family {name}{settings}: i = post*sigma(a*V(p) + b*V(n) + c) from p to n",
        '`include "disciplines.vams"',
        "",
        f"module {name}(p, n);",
        "  inout p, n;",
        "  electrical p, n;",
        *(f"  parameter real {parameter} = 0.0;" for parameter in names),
        *(f"  real {local};" for local, _ in derived),
        "  analog begin",
        *(f"    {local} = {expression};" for local, expression in derived),
        f"    I(p, n) <+ {law};",
        "  end",
        "endmodule",
    ]
    return "\n".join(lines) + "\n"


def export_veriloga(model: Any, folder: str | os.PathLike[str]) -> list[Path]:
    """Write ``<family>.va`` in ``folder`` for each device family of a Circuit, Flow or Network's slices.

    Returns:
        The files written, one per distinct family, in slice order.
    """
    circuit = as_circuit(model)
    sources: dict[str, str] = {}  # all checked before anything is written
    for k in range(circuit.num_slices):
        device = circuit.slice(k).device_family
        text = sources.setdefault(module_name(device), veriloga_module(device))
        if text != veriloga_module(device):
            raise DeviceError(
                f"slices use {device.name} with different settings ({device.hyperparameters()}); one Verilog-A "
                "module per family name cannot hold both"
            )
    return [write_text_atomic(Path(folder) / f"{name}.va", text) for name, text in sources.items()]
