"""Hypothesis strategies that break a valid YAML config in the ways people do by hand."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
Path_ = tuple[str | int, ...]

BAD_NUMBERS = [0, -1, -1e-9, 0.0, -0.0, math.nan, math.inf, -math.inf, 1e308, 10**18, -(10**18), 2**63]
BAD_SCALARS = st.one_of(
    st.sampled_from(BAD_NUMBERS),
    st.none(),
    st.booleans(),
    st.text(max_size=6),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.sampled_from(["a", "name", "x"]), st.integers(-2, 2), max_size=2),
)
# Values aimed at specific keys: non-increasing or non-finite slice times, node counts and indices
# out of range, empty topologies, readouts past the last node.
TARGETED: dict[str, list[Any]] = {
    "times": [[0.0, 0.0], [1.0, 0.5], [0.0, 1.0, 0.5], [0.0, math.nan], [0.0, math.inf], [], [0.0], ["a", 1]],
    "topology": [[], {}, [{}], {"name": "no_such"}, [{"name": "fully_connect", "num_nodes": 3}] * 5],
    "num_nodes": [0, 1, -3, 10**9],
    "residual": [[0, 0], [1, 0], [0, 99], [-1, 1], [0]],
    "readout": ["last0", "last999", "first-1", "bogus", {"name": "linear"}, 3],
    "repeat": [[-1, 1], [0, 0], [10**9, 1], [1]],
    "hidden_nodes": [-1, 10**9],
    "kernel_size": [0, 99],
    "slices": [0, -1, 10**9],
    "classes": [[], [1], [1, 1], [0, 99], [-1, 2]],
    "digits": [[], [10], [-1]],
    "prog_noise_levels": [[math.nan], [-0.1], [math.inf]],
    "guidance_sweep": [[math.nan], [math.inf]],
}
KINDS = ("delete", "unknown", "replace", "targeted", "retype_section")


def load(relative: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / "configs" / relative).read_text())


def paths(data: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every key path (dict keys and list positions) in nested data, sections included."""
    found: list[Path_] = []
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        found.append((*prefix, key))
        found.extend(paths(value, (*prefix, key)))
    return found


def _parent(data: Any, path: Path_) -> Any:
    for part in path[:-1]:
        data = data[part]
    return data


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, Path_]]]:
    """``base`` with one to three mutations; returns the config and what was done where."""
    data = copy.deepcopy(base)
    done: list[tuple[str, Path_]] = []
    for _ in range(draw(st.integers(1, 3))):
        candidates = paths(data)
        if not candidates:
            break
        kind = draw(st.sampled_from(KINDS))
        if kind == "targeted":
            here = [p for p in candidates if isinstance(p[-1], str) and p[-1] in TARGETED]
            if not here:
                kind = "replace"
            else:
                path = draw(st.sampled_from(here))
                _parent(data, path)[path[-1]] = copy.deepcopy(draw(st.sampled_from(TARGETED[str(path[-1])])))
                done.append((kind, path))
                continue
        if kind == "unknown":
            sections = [()] + [p for p in candidates if isinstance(_parent(data, p)[p[-1]], dict)]
            where = draw(st.sampled_from(sections))
            node = data
            for part in where:
                node = node[part]
            name = draw(st.sampled_from(["lr_rate", "epoch", "nodes", "devise", "Seed", "extra"]))
            node[name] = draw(BAD_SCALARS)
            done.append((kind, (*where, name)))
            continue
        path = draw(st.sampled_from(candidates))
        parent = _parent(data, path)
        if kind == "delete":
            del parent[path[-1]]
        elif kind == "retype_section":
            parent[path[-1]] = draw(st.sampled_from([None, "text", 3, [], [1, 2]]))
        else:
            parent[path[-1]] = draw(BAD_SCALARS)
        done.append((kind, path))
    return data, done


def finite_floats(value: Any) -> bool:
    """Whether every float in nested data is finite (an accepted config must never carry NaN or inf)."""
    if isinstance(value, dict):
        return all(finite_floats(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(finite_floats(v) for v in value)
    return not isinstance(value, float) or math.isfinite(value)
