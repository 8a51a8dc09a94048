"""A small checker of the statements kirchhoffnet's decks use, per simulator, written from the manuals.

Each line must be one statement form the simulator's manual defines (sections listed in docs/spice.md);
behavioural expressions are parsed by a recursive-descent parser that knows only + - * /, parentheses,
numbers, the functions every dialect documents (max, min, abs, tanh), ``v(node)`` and the parameters in
scope, so a ``^`` (XOR in LTspice), an unknown function or an undeclared name fails.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

UNSIGNED = r"(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?"
NUMBER = rf"[+-]?{UNSIGNED}"
NAME = r"[A-Za-z_][A-Za-z0-9_]*"
TOP_NODE = r"(n\d+(s\d+)?|g\d+)(_\d+)?"  # a state node (s<k>: brought back in slice k), a slice gate; _<sample>
FUNCTIONS = {"max": 2, "min": 2, "abs": 1, "tanh": 1}
OPTIONS = {  # option keywords of each simulator's options statement that the decks may set
    "ngspice": {"reltol", "abstol", "vntol", "chgtol", "trtol", "method"},
    "ltspice": {"reltol", "abstol", "vntol", "chgtol", "trtol", "method"},
    "xyce": {"RELTOL", "ABSTOL", "METHOD"},
    "spectre": {"reltol", "iabstol", "vabstol"},
}
METHODS = {"ngspice": {"trap", "gear"}, "ltspice": {"trap", "gear"}, "xyce": {"TRAP", "GEAR"}}
SPECTRE_TRAN = {"stop", "step", "maxstep", "method", "skipdc"}
SPECTRE_METHODS = {"traponly", "gear2only", "trap", "gear2", "euler", "trapgear2"}


class GrammarError(AssertionError):
    pass


@dataclass
class Scope:
    """What is declared where a line stands: global parameters, subcircuits and their ports, locals."""

    params: set[str] = field(default_factory=set)
    subckts: dict[str, int] = field(default_factory=dict)
    local: set[str] | None = None  # parameters of the subcircuit being defined
    ports: set[str] | None = None


def _tokens(text: str) -> list[str]:
    pattern = re.compile(rf"\s*({UNSIGNED}|\{{{NAME}\}}|{NAME}|[-+*/(),])")
    tokens, at = [], 0
    while at < len(text):
        match = pattern.match(text, at)
        if match is None:
            raise GrammarError(f"unexpected character {text[at]!r} in expression {text!r}")
        tokens.append(match[1])
        at = match.end()
    return tokens


class Expression:
    """expr := term (('+'|'-') term)*; term := unary (('*'|'/') unary)*; unary := '-' unary | primary;
    primary := number | '(' expr ')' | function '(' expr {',' expr} ')' | 'v' '(' node ')' | parameter."""

    def __init__(self, text: str, names: set[str], nodes: set[str], braces: bool) -> None:
        self.tokens, self.at = _tokens(text), 0
        self.names, self.nodes, self.braces = names, nodes, braces
        self.expr()
        if self.at != len(self.tokens):
            raise GrammarError(f"trailing {self.tokens[self.at :]} in {text!r}")

    def peek(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise GrammarError(f"expected {expected or 'a token'}, got {token!r}")
        self.at += 1
        return token

    def expr(self) -> None:
        self.term()
        while self.peek() in ("+", "-"):
            self.take()
            self.term()

    def term(self) -> None:
        self.unary()
        while self.peek() in ("*", "/"):
            self.take()
            self.unary()

    def unary(self) -> None:
        if self.peek() == "-":
            self.take()
        self.primary()

    def primary(self) -> None:
        token = self.take()
        if re.fullmatch(NUMBER, token):
            return
        if token == "(":
            self.expr()
            self.take(")")
        elif token.lower() == "v" and self.peek() == "(":
            self.take("(")
            node = self.take()
            if node not in self.nodes:
                raise GrammarError(f"v({node}): not a node in scope")
            self.take(")")
        elif token in FUNCTIONS:
            self.take("(")
            for k in range(FUNCTIONS[token]):
                if k:
                    self.take(",")
                self.expr()
            self.take(")")
        else:
            name = token[1:-1] if self.braces and token.startswith("{") else token
            if (token.startswith("{") != self.braces) or name not in self.names:
                raise GrammarError(f"{token!r} is not a parameter in scope (braces {self.braces})")


def _assignments(words: list[str], pattern: str) -> dict[str, str]:
    out = {}
    for word in words:
        match = re.fullmatch(rf"({NAME})=({pattern})", word)
        if match is None:
            raise GrammarError(f"{word!r} is not an assignment of the form name={pattern}")
        out[match[1]] = match[2]
    return out


def check_spice(deck: Path, simulator: str) -> list[str]:
    """Check every line of a SPICE-family deck (ngspice, xyce, ltspice) and its include files; return the kinds."""
    upper = simulator == "xyce"
    scope, kinds = Scope(), []
    lines = deck.read_text().splitlines()
    if not lines[0].startswith("*"):
        raise GrammarError("the first line is the title")
    for number, line in enumerate(lines[1:], start=2):
        try:
            kinds.append(_spice_line(line, deck, scope, simulator, upper))
        except GrammarError as exc:
            raise GrammarError(f"{deck.name}:{number}: {line!r}: {exc}") from None
    if kinds[-1] != "end":
        raise GrammarError("the deck must end with .end")
    return kinds


def _spice_line(line: str, deck: Path, scope: Scope, simulator: str, upper: bool) -> str:
    words = line.split()
    head = keyword = words[0]  # Xyce's deck is written upper case, the others lower case
    dot = {w: (w.upper() if upper else w) for w in (".subckt", ".ends", ".param", ".ic", ".tran", ".options", ".end")}
    braces = simulator != "xyce"
    if head.startswith("*"):
        return "comment"
    if head == ".include":
        if len(words) != 2 or not (deck.parent / words[1]).is_file():
            raise GrammarError(".include names one file beside the deck")
        for k, included in enumerate((deck.parent / words[1]).read_text().splitlines()):
            inner = included.split()
            if k == 0 and inner[0] == "*":
                continue
            if inner[0] == ".param":
                scope.params |= set(_assignments(inner[1:], NUMBER))
            elif inner[0] == dot[".ic"]:
                v = "V" if upper else "v"
                if len(inner) != 2 or not re.fullmatch(rf"{v}\({TOP_NODE}\)={NUMBER}", inner[1]):
                    raise GrammarError(f"initial condition {included!r}")
            else:
                raise GrammarError(f"include line {included!r}")
        return "include"
    if keyword == dot[".subckt"]:
        if scope.local is not None:
            raise GrammarError("nested subcircuit definition")
        name, rest = words[1], words[2:]
        ports = [w for w in rest if "=" not in w and w.lower() != "params:"]
        defaults = [w for w in rest if "=" in w]
        keyword_ok = {"ngspice": None, "ltspice": "params:", "xyce": "PARAMS:"}[simulator]
        if defaults and keyword_ok is not None and rest[len(ports)] != keyword_ok:
            raise GrammarError(f"{simulator} introduces subcircuit parameters with {keyword_ok}")
        if defaults and keyword_ok is None and len(rest) != len(ports) + len(defaults):
            raise GrammarError("ngspice subcircuit parameters follow the ports directly")
        scope.local, scope.ports = set(_assignments(defaults, NUMBER)), set(ports)
        scope.subckts[name] = len(ports)
        return "subckt"
    if keyword == dot[".ends"]:
        if scope.local is None or len(words) != 2 or words[1] not in scope.subckts:
            raise GrammarError(".ends closes the open subcircuit by name")
        scope.local = scope.ports = None
        return "ends"
    if keyword == dot[".param"]:
        if scope.local is None or len(words) != 2:
            raise GrammarError("a derived parameter lives inside a subcircuit, one per line")
        name, value = words[1].split("=", 1)
        if not (value.startswith("{") and value.endswith("}")):
            raise GrammarError("a derived parameter's expression is in braces")
        Expression(value[1:-1], scope.local | scope.params, set(), braces=False)
        scope.local.add(name)
        return "param"
    nodes = (scope.ports or set()) | {"0"}
    if head[0] in "Bb":
        source = re.fullmatch(r"B\w+ (\S+) (\S+) I=(.+)", line)
        if source is None or not {source[1], source[2]} <= nodes:
            raise GrammarError("a behavioural current source is B<name> n+ n- I=<expression>")
        expression = source[3]
        if simulator == "xyce":
            if not (expression.startswith("{") and expression.endswith("}")):
                raise GrammarError("Xyce wants the behavioural expression in braces")
            expression = expression[1:-1]
        Expression(expression, scope.local or set(), nodes, braces=braces)
        return "bsource"
    if head[0] in "Cc":
        if len(words) != 4 or words[2] != "0" or words[1] not in nodes or not re.fullmatch(r"\{\w+\}", words[3]):
            raise GrammarError("a capacitor is C<name> n 0 {param}")
        if words[3][1:-1] not in scope.params:
            raise GrammarError(f"{words[3]} is not a global parameter")
        return "capacitor"
    if head[0] in "Xx":
        called = [k for k, w in enumerate(words) if w in scope.subckts]
        if not called:
            raise GrammarError("an instance of an undefined subcircuit")
        k = called[-1]
        instance_nodes, rest = words[1:k], words[k + 1 :]
        inside = scope.ports is not None
        if len(instance_nodes) != scope.subckts[words[k]] or not all(
            (w in nodes) if inside else re.fullmatch(TOP_NODE, w) for w in instance_nodes
        ):
            raise GrammarError("instance nodes do not match the subcircuit's ports")
        keyword_ok = {"ngspice": None, "ltspice": "params:", "xyce": "PARAMS:"}[simulator]
        if rest and keyword_ok is not None:
            if rest[0] != keyword_ok:
                raise GrammarError(f"{simulator} passes instance parameters after {keyword_ok}")
            rest = rest[1:]
        for value in _assignments(rest, r"\{\w+\}").values():
            if value[1:-1] not in scope.params:
                raise GrammarError(f"{value} is not a global parameter")
        return "instance"
    if keyword == dot[".options"]:
        rest = words[1:]
        if simulator == "xyce":
            if rest[0] != "TIMEINT":
                raise GrammarError("Xyce's integrator options belong to the TIMEINT package")
            rest = rest[1:]
        given = _assignments(rest, r"\S+")
        if not set(given) <= OPTIONS[simulator]:
            raise GrammarError(f"unknown options {set(given) - OPTIONS[simulator]}")
        if given.get("METHOD" if upper else "method") not in METHODS[simulator]:
            raise GrammarError("integration method")
        return "options"
    if head[0] in "Vv" and not upper:  # a whole-network deck's slice gates: times strictly increasing
        pwl = re.fullmatch(rf"V\w+ (g\d+) 0 PWL\(((?:{NUMBER} {NUMBER} ?)+)\)", line)
        times = [float(w) for w in pwl[2].split()[::2]] if pwl else []
        if pwl is None or any(b <= a for a, b in pairwise(times)):
            raise GrammarError("a gate is V<name> g<k> 0 PWL(t v t v ...) with increasing times")
        return "pwl"
    if keyword == ".meas" and not upper:
        if not re.fullmatch(rf"\.meas tran {NAME} FIND v\({TOP_NODE}\) AT={NUMBER}", line):
            raise GrammarError(".meas tran <name> FIND v(<node>) AT=<time>")
        return "meas"
    if keyword == dot[".tran"]:
        uic = "UIC" if upper else "uic"
        if len(words) != 6 or words[5] != uic or not all(re.fullmatch(NUMBER, w) for w in words[1:5]):
            raise GrammarError(f".tran tstep tstop tstart tmax {uic}")
        return "tran"
    if keyword == dot[".end"] and len(words) == 1:
        return "end"
    raise GrammarError("not a statement this dialect's manual defines")


def check_spectre(deck: Path, scope: Scope | None = None) -> list[str]:
    """Check every line of a Spectre-language deck, and of each file it includes where it includes it."""
    scope, kinds = scope or Scope(), []
    for number, line in enumerate(deck.read_text().splitlines(), start=1):
        try:
            kinds.append(_spectre_line(line, scope))
        except GrammarError as exc:
            raise GrammarError(f"{deck.name}:{number}: {line!r}: {exc}") from None
        if kinds[-1] == "include":
            kinds += check_spectre(deck.parent / line.split('"')[1], scope)
    return kinds


def _spectre_line(line: str, scope: Scope) -> str:
    words = line.split()
    if line.startswith("//"):
        return "comment"
    if line == "simulator lang=spectre":
        return "language"
    if re.fullmatch(r'include "[\w.+-]+"', line):
        return "include"
    if words[0] == "parameters":
        for name, value in _assignments(words[1:], r"\S+").items():
            Expression(value, (scope.local or set()) | scope.params, set(), braces=False)
            (scope.local if scope.local is not None else scope.params).add(name)
        return "parameters"
    if words[0] == "subckt":
        if scope.local is not None or len(words) < 3:
            raise GrammarError("subckt <name> <ports>, not nested")
        scope.subckts[words[1]] = len(words) - 2
        scope.local, scope.ports = set(), set(words[2:])
        return "subckt"
    if words[0] == "ends":
        if scope.local is None or len(words) != 2 or words[1] not in scope.subckts:
            raise GrammarError("ends <name> closes the open subcircuit")
        scope.local = scope.ports = None
        return "ends"
    if words[0] == "ic":
        if scope.local is not None or not all(re.fullmatch(rf"n\d+(_\d+)?={NUMBER}", w) for w in words[1:]):
            raise GrammarError("ic node=value ...")
        return "ic"
    instance = re.fullmatch(rf"({NAME}) \(([^()]*)\) ({NAME})(.*)", line)
    if instance is not None:
        name, nodes, primitive, rest = instance.groups()
        nodes_in_scope = (scope.ports or set()) | {"0"}
        given = _assignments(rest.split(), r"\S+")
        if scope.ports is not None and not set(nodes.split()) <= nodes_in_scope:
            raise GrammarError("nodes not in scope")
        names = (scope.local or set()) | scope.params
        if primitive == "capacitor" and set(given) == {"c"}:
            Expression(given["c"], names, set(), braces=False)
            return "capacitor"
        if primitive == "bsource" and set(given) == {"i"}:
            Expression(given["i"], names, nodes_in_scope, braces=False)
            return "bsource"
        if primitive in scope.subckts and len(nodes.split()) == scope.subckts[primitive]:
            for value in given.values():
                Expression(value, names, set(), braces=False)
            return "instance"
        raise GrammarError(f"{primitive} with {sorted(given)}")
    analysis = re.fullmatch(rf"({NAME}) (options|tran)((?: \S+)*)", line)
    if analysis is not None:
        given = _assignments(analysis[3].split(), r"\S+")
        allowed = OPTIONS["spectre"] if analysis[2] == "options" else SPECTRE_TRAN
        if not set(given) <= allowed:
            raise GrammarError(f"unknown {analysis[2]} parameters {set(given) - allowed}")
        if analysis[2] == "tran" and (given.get("method") not in SPECTRE_METHODS or given.get("skipdc") != "yes"):
            raise GrammarError("tran method and skipdc=yes (start from the ic statements)")
        return analysis[2]
    raise GrammarError("not a Spectre statement")
