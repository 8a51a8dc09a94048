"""Project-wide naming conventions that a reader of our JSON files relies on."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [p for d in ("src", "benchmarks", "experiments", "examples") for p in sorted((ROOT / d).rglob("*.py"))]

# A quantity's unit is a lower-case SI suffix: _v, _a, _s, _j, _w, _f, _ohm, _k, _m, _hz (and _a_per_v2 ...).
# Spelled-out or upper-case units break `jq '.. | .latency_s'`-style tooling that expects one spelling.
_FORBIDDEN = re.compile(
    r"""(?:["']|^\s+)([a-z][a-z0-9_]*_(?:seconds|secs?|ms|us|ns|ps|volts?|joules?|watts?|amps?|pj|nj|uj|mw|[VAJWFS]))"""
    r"""(?:["']\s*:|\s*:\s*(?:float|int|list|Tensor))""",
    re.MULTILINE,
)


def test_every_json_key_and_report_field_spells_its_unit_as_a_lower_case_si_suffix() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {match.group(1)}"
        for path in SOURCES
        for match in _FORBIDDEN.finditer(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, "unit suffixes must be _s, _v, _j, _w, ...: " + ", ".join(offenders)


def test_the_convention_check_catches_the_spellings_it_forbids() -> None:
    samples = ['{"latency_ms": 1}', "    ngspice_seconds: float", "    max_abs_error_V: float", '"energy_pj": 2']
    assert all(_FORBIDDEN.search(s) for s in samples)
    assert not any(_FORBIDDEN.search(s) for s in ['{"latency_s": 1}', "    max_abs_error_v: float", '"nodes": 3'])
