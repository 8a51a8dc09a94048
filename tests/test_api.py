"""The package's front door: what ``import kirchhoffnet`` loads and what its names are."""

from __future__ import annotations

import subprocess
import sys


def test_kn_train_is_the_typed_trainer_loaded_on_first_use():
    """``import kirchhoffnet`` stays light (the trainer pulls in tasks, data and plotting); ``kn.train`` is
    the training function itself, with its real signature, not an untyped wrapper."""
    code = (
        "import sys, kirchhoffnet as kn; assert 'kirchhoffnet.training' not in sys.modules; "
        "from kirchhoffnet.training import train; assert kn.train is train; "
        "import inspect; print(inspect.signature(kn.train).return_annotation)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "RunResult"


def test_the_package_is_marked_typed_and_the_build_ships_the_marker():
    """PEP 561: without ``py.typed`` users' type checkers treat kirchhoffnet as untyped."""
    import tomllib
    from pathlib import Path

    import kirchhoffnet as kn

    assert (Path(kn.__file__).parent / "py.typed").is_file()
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["kirchhoffnet"]


PUBLIC = {
    "Adjoint", "Backprop", "Circuit", "Flow", "KirchhoffError", "Network", "Slice", "SolveStats", "Solver",
    "__version__", "load", "open", "save", "simulate", "simulate_log_density", "train", "trajectory",
}  # fmt: skip
SUBPACKAGES = {"compat", "devices", "diffusion", "hardware", "rram", "spice", "topology", "training"}


def test_the_front_door_holds_the_documented_names_and_every_one_resolves():
    import types

    import kirchhoffnet as kn

    assert set(kn.__all__) == PUBLIC | SUBPACKAGES
    for name in kn.__all__:
        value = getattr(kn, name)
        assert isinstance(value, types.ModuleType) == (name in SUBPACKAGES), name


def test_every_package_exports_only_names_it_has():
    import importlib
    import pkgutil

    import kirchhoffnet as kn

    for info in pkgutil.walk_packages(kn.__path__, "kirchhoffnet."):
        if info.ispkg:
            package = importlib.import_module(info.name)
            missing = [n for n in getattr(package, "__all__", []) if not hasattr(package, n)]
            assert not missing, f"{info.name}.__all__ names {missing}"


def test_user_facing_code_never_imports_a_private_module():
    """Docs, examples and README show the public surface only: ``_``-modules may change without notice."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    texts = [root / "README.md", *sorted((root / "docs").rglob("*.md")), *sorted((root / "examples").rglob("*.py"))]
    pattern = re.compile(
        r"(?:from|import)\s+kirchhoffnet(?:\.\w+)*\._\w+|from\s+kirchhoffnet(?:\.\w+)*\s+import\s+_\w+"
    )
    offenders = [f"{p.relative_to(root)}: {m.group(0)}" for p in texts for m in pattern.finditer(p.read_text())]
    assert not offenders, offenders
