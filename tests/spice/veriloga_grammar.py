"""A checker of the Verilog-A subset kirchhoffnet's device modules use, written from the Verilog-AMS LRM 2.4.

Accepted, in this order: ``//`` comments, the ``disciplines.vams`` include, ``module NAME(p, n);``,
``inout p, n;``, ``electrical p, n;``, ``parameter real NAME = NUMBER;`` lines, ``real NAME;`` lines,
``analog begin``, assignments ``NAME = EXPR;`` to declared reals, exactly one contribution
``I(p, n) <+ EXPR;``, ``end``, ``endmodule``. Expressions go through the SPICE checker's
recursive-descent parser (``+ - * /``, numbers, ``max min abs tanh``, which the LRM lists as
built-ins, ``V(p)``/``V(n)`` and declared names), so an unknown function, ``^`` or an undeclared
name fails.
"""

from __future__ import annotations

import re

from tests.spice.grammar import NAME, NUMBER, Expression, GrammarError

KEYWORDS = {"module", "endmodule", "analog", "begin", "end", "inout", "electrical", "parameter", "real", "if", "else"}


def _name(text: str) -> str:
    if re.fullmatch(NAME, text) is None or text in KEYWORDS:
        raise GrammarError(f"{text!r} is not a Verilog-A identifier")
    return text


def check_veriloga(source: str) -> tuple[str, list[str], str]:
    """The module's name, its parameters and its contribution's expression; GrammarError on any other line."""
    try:
        return _check(source)
    except StopIteration:
        raise GrammarError("the module ends early") from None


def _check(source: str) -> tuple[str, list[str], str]:
    lines = [line.strip() for line in source.splitlines() if line.strip() and not line.strip().startswith("//")]
    expected = iter(lines)
    if next(expected) != '`include "disciplines.vams"':
        raise GrammarError("the module must include disciplines.vams for 'electrical'")
    header = re.fullmatch(r"module (\S+)\(p, n\);", next(expected))
    if header is None:
        raise GrammarError("expected 'module NAME(p, n);'")
    module = _name(header[1])
    if (next(expected), next(expected)) != ("inout p, n;", "electrical p, n;"):
        raise GrammarError("expected the port directions and disciplines of p and n")
    params: list[str] = []
    reals: set[str] = set()
    line = next(expected)
    while (match := re.fullmatch(rf"parameter real (\S+) = ({NUMBER});", line)) is not None:
        params.append(_name(match[1]))
        line = next(expected)
    while (match := re.fullmatch(r"real (\S+);", line)) is not None:
        reals.add(_name(match[1]))
        line = next(expected)
    if line != "analog begin":
        raise GrammarError(f"expected 'analog begin', got {line!r}")
    names = set(params)
    contribution = None
    for line in expected:
        if line == "end":
            break
        assigned = re.fullmatch(r"(\S+) = (.+);", line)
        contributed = re.fullmatch(r"I\(p, n\) <\+ (.+);", line)
        if contributed is not None and contribution is None:
            Expression(contributed[1], names, {"p", "n"}, braces=False)
            contribution = contributed[1]
        elif assigned is not None and assigned[1] in reals and contribution is None:
            Expression(assigned[2], names, {"p", "n"}, braces=False)
            names.add(assigned[1])  # usable once assigned
        else:
            raise GrammarError(f"not an assignment to a declared real or the one contribution: {line!r}")
    if contribution is None or list(expected) != ["endmodule"]:
        raise GrammarError("expected one contribution, then 'end' and 'endmodule'")
    return module, params, contribution
