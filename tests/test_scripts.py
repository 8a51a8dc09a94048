"""The scripts beside the library (experiments/, benchmarks/) import against it and parse ``--help``.

They are not run here (they are long), but a refactor of the library must not leave them broken.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p for folder in ("experiments", "benchmarks") for p in (ROOT / folder).glob("*.py"))
OPTIONAL = {"jax_peer.py": "diffrax"}
"""Helpers that need an optional extra (here `bench`) to import; their scripts run without it."""


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_script_imports_and_explains_itself(path, monkeypatch, capsys):
    if path.name in OPTIONAL:
        pytest.importorskip(OPTIONAL[path.name])
    monkeypatch.syspath_prepend(str(path.parent))  # the scripts import their folder's common.py
    for helper in ("common", "baseline"):  # the two folders each have their own common.py
        monkeypatch.delitem(sys.modules, helper, raising=False)
    spec = importlib.util.spec_from_file_location(f"script_{path.parent.name}_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if "__main__" not in path.read_text():
        return  # a helper module: importing it is the check
    monkeypatch.setattr(sys, "argv", [str(path), "--help"])
    with pytest.raises(SystemExit) as exit_info:
        module.main()
    assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out
