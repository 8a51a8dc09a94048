"""How each simulator spells the few statements a kirchhoffnet deck uses: one class per simulator.

A parameterised deck (`kirchhoffnet.spice.deck`) is written once, statement by statement,
through a [`Dialect`][kirchhoffnet.spice.Dialect]; everything that differs between ngspice, Xyce, LTspice and Spectre
lives here and nowhere else. The manual sections each spelling was checked against are listed in
``docs/spice.md``; only ngspice's is verified by running it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from kirchhoffnet.errors import ConfigError, unknown_choice
from kirchhoffnet.spice.netlist import SpiceOptions


class Dialect:
    """The SPICE3 spelling that ngspice reads; the other simulators override what they spell differently.

    Attributes:
        name: the simulator, as ``--dialect`` names it.
        suffix: file suffix of the main deck.
        include_suffix: file suffix of the parameter and initial-condition files.
    """

    name: ClassVar[str] = "ngspice"
    suffix: ClassVar[str] = ".cir"
    include_suffix: ClassVar[str] = ".inc"

    def preamble(self) -> list[str]:
        """Lines that must open the deck, after its title."""
        return []

    def comment(self, text: str) -> str:
        return f"* {text}".replace("\n", " ")

    def include(self, file_name: str) -> str:
        return f".include {file_name}"

    def parameters(self, values: Sequence[tuple[str, float]]) -> str:
        """One parameter statement assigning each name its number, written to round-trip exactly."""
        return ".param " + " ".join(f"{name}={value!r}" for name, value in values)

    def derived(self, name: str, expression: str) -> str:
        """A subcircuit-local parameter computed from the subcircuit's own (bare names in ``expression``)."""
        return f".param {name}={{{expression}}}"

    def reference(self, name: str) -> str:
        """A parameter used as an element's or instance's value."""
        return f"{{{name}}}"

    def in_expression(self, name: str) -> str:
        """A parameter used inside a behavioural expression (parenthesised: its value may be negative)."""
        return f"({{{name}}})"

    def subckt(self, name: str, ports: Sequence[str], defaults: Sequence[str]) -> list[str]:
        """The opening lines of a subcircuit whose parameters ``defaults`` default to 0."""
        return [" ".join([".subckt", name, *ports, *(f"{p}=0" for p in defaults)])]

    def ends(self, name: str) -> str:
        return f".ends {name}"

    def current_source(self, name: str, src: str, dst: str, expression: str) -> str:
        """A behavioural current ``expression`` driven from ``src`` through the element into ``dst``."""
        return f"B{name} {src} {dst} I={expression}"

    def capacitor(self, name: str, node: str, value: str) -> str:
        return f"C{name} {node} 0 {value}"

    def instance(self, name: str, nodes: Sequence[str], subckt: str, values: Sequence[tuple[str, str]]) -> str:
        return " ".join([f"X{name}", *nodes, subckt, *(f"{p}={v}" for p, v in values)])

    def initial_condition(self, node: str, value: float) -> str:
        return f".ic v({node})={value!r}"

    def analysis(self, options: SpiceOptions, duration: float) -> list[str]:
        """Options and the transient analysis of ``duration`` seconds from the initial conditions."""
        return options.control_lines(duration)

    def end(self) -> list[str]:
        return [".end"]

    def piecewise_linear(self, name: str, node: str, points: Sequence[tuple[float, float]]) -> str:
        """A voltage source from ``node`` to ground through ``(time in s, voltage in V)`` corners."""
        corners = " ".join(f"{t!r} {v!r}" for t, v in points)
        return f"V{name} {node} 0 PWL({corners})"

    def measure(self, name: str, node: str, at: float) -> str:
        """A transient measurement ``name`` of ``node``'s voltage at time ``at`` s."""
        return f".meas tran {name} FIND v({node}) AT={at!r}"


class Xyce(Dialect):
    """Xyce: tolerances in the ``TIMEINT`` package, behavioural expressions in braces, ``PARAMS:`` on subcircuits."""

    name = "xyce"

    def derived(self, name: str, expression: str) -> str:
        return f".PARAM {name}={{{expression}}}"

    def in_expression(self, name: str) -> str:
        return f"({name})"  # the whole expression is in braces already

    def subckt(self, name: str, ports: Sequence[str], defaults: Sequence[str]) -> list[str]:
        return [" ".join([".SUBCKT", name, *ports, *_keyword("PARAMS:", [f"{p}=0" for p in defaults])])]

    def ends(self, name: str) -> str:
        return f".ENDS {name}"

    def current_source(self, name: str, src: str, dst: str, expression: str) -> str:
        return f"B{name} {src} {dst} I={{{expression}}}"

    def instance(self, name: str, nodes: Sequence[str], subckt: str, values: Sequence[tuple[str, str]]) -> str:
        return " ".join([f"X{name}", *nodes, subckt, *_keyword("PARAMS:", [f"{p}={v}" for p, v in values])])

    def initial_condition(self, node: str, value: float) -> str:
        return f".IC V({node})={value!r}"

    def analysis(self, options: SpiceOptions, duration: float) -> list[str]:
        step, max_step = options.steps(duration)
        # Xyce's TIMEINT ABSTOL bounds the error of the solution (node voltages): ngspice's vntol.
        return [
            f".OPTIONS TIMEINT RELTOL={options.reltol!r} ABSTOL={options.vntol!r} METHOD={options.method.upper()}",
            f".TRAN {step!r} {duration!r} 0 {max_step!r} UIC",
        ]

    def end(self) -> list[str]:
        return [".END"]

    def piecewise_linear(self, name: str, node: str, points: Sequence[tuple[float, float]]) -> str:
        raise ConfigError(_NO_NETWORK.format(self.name))


class LTspice(Dialect):
    """LTspice: SPICE3 spelling with ``params:`` on subcircuits; ``.tran ... uic`` skips the operating point."""

    name = "ltspice"

    def subckt(self, name: str, ports: Sequence[str], defaults: Sequence[str]) -> list[str]:
        return [" ".join([".subckt", name, *ports, *_keyword("params:", [f"{p}=0" for p in defaults])])]

    def instance(self, name: str, nodes: Sequence[str], subckt: str, values: Sequence[tuple[str, str]]) -> str:
        return " ".join([f"X{name}", *nodes, subckt, *_keyword("params:", [f"{p}={v}" for p, v in values])])

    def analysis(self, options: SpiceOptions, duration: float) -> list[str]:
        step, max_step = options.steps(duration)
        return [
            f".options reltol={options.reltol!r} abstol={options.abstol!r} vntol={options.vntol!r} "
            f"chgtol={options.chgtol!r} trtol={options.trtol!r} method={options.method}",
            f".tran {step!r} {duration!r} 0 {max_step!r} uic",
        ]


class Spectre(Dialect):
    """Spectre's native language: ``name (nodes) primitive param=value`` statements, no dots."""

    name = "spectre"
    suffix = ".scs"
    include_suffix = ".scs"

    def preamble(self) -> list[str]:
        return ["simulator lang=spectre"]

    def comment(self, text: str) -> str:
        return f"// {text}".replace("\n", " ")

    def include(self, file_name: str) -> str:
        return f'include "{file_name}"'

    def parameters(self, values: Sequence[tuple[str, float]]) -> str:
        return "parameters " + " ".join(f"{name}={value!r}" for name, value in values)

    def derived(self, name: str, expression: str) -> str:
        return f"parameters {name}={expression}"

    def reference(self, name: str) -> str:
        return name

    def in_expression(self, name: str) -> str:
        return f"({name})"

    def subckt(self, name: str, ports: Sequence[str], defaults: Sequence[str]) -> list[str]:
        opening = [" ".join(["subckt", name, *ports])]
        return opening + ([" ".join(["parameters", *(f"{p}=0" for p in defaults)])] if defaults else [])

    def ends(self, name: str) -> str:
        return f"ends {name}"

    def current_source(self, name: str, src: str, dst: str, expression: str) -> str:
        return f"B{name} ({src} {dst}) bsource i={expression}"

    def capacitor(self, name: str, node: str, value: str) -> str:
        return f"C{name} ({node} 0) capacitor c={value}"

    def instance(self, name: str, nodes: Sequence[str], subckt: str, values: Sequence[tuple[str, str]]) -> str:
        return " ".join([f"X{name}", f"({' '.join(nodes)})", subckt, *(f"{p}={v}" for p, v in values)])

    def initial_condition(self, node: str, value: float) -> str:
        return f"ic {node}={value!r}"

    def analysis(self, options: SpiceOptions, duration: float) -> list[str]:
        step, max_step = options.steps(duration)
        # traponly/gear2only: the method alone, never switched for another mid-run.
        method = {"trap": "traponly", "gear": "gear2only"}[options.method]
        return [
            f"kn_options options reltol={options.reltol!r} iabstol={options.abstol!r} vabstol={options.vntol!r}",
            f"kn_tran tran stop={duration!r} step={step!r} maxstep={max_step!r} method={method} skipdc=yes",
        ]

    def end(self) -> list[str]:
        return []

    def piecewise_linear(self, name: str, node: str, points: Sequence[tuple[float, float]]) -> str:
        raise ConfigError(_NO_NETWORK.format(self.name))


_NO_NETWORK = (
    "a whole-network deck (PWL slice gates and .meas readout) is written and checked for ngspice and LTspice only; "
    "export {} decks per slice (without --whole-network)"
)


def _keyword(keyword: str, assignments: list[str]) -> list[str]:
    """``keyword`` and the assignments it introduces, or nothing when there are none."""
    return [keyword, *assignments] if assignments else []


DIALECTS: dict[str, Dialect] = {d.name: d for d in (Dialect(), Xyce(), LTspice(), Spectre())}


def dialect(name: str | Dialect) -> Dialect:
    """The [`Dialect`][kirchhoffnet.spice.Dialect] named ``name`` (``ngspice``, ``xyce``, ``ltspice``, ``spectre``)."""
    if isinstance(name, Dialect):
        return name
    if isinstance(name, str) and name.lower() in DIALECTS:
        return DIALECTS[name.lower()]
    raise ConfigError(unknown_choice("SPICE dialect", name, DIALECTS))
