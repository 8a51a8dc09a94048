"""Hostile state read back from disk: every road that loads a model or a training state refuses it.

One valid flow run is trained (one step) and one model saved; hypothesis then rewrites tensors in
them (node indices out of range, non-finite or non-positive capacitances, NaN parameters, wrong
shapes and dtypes), the JSON spec (wrong types, missing keys, nested junk) and the fields of
``checkpoint.pt`` (``history={}``, ``step=-5``, strings where numbers are). Each road — ``kn.load``,
``Task.load_model`` behind ``kirchhoffnet eval/sample``, ``hw report``, ``spice export``,
``train --resume`` — must end in a :class:`KirchhoffError` or one ``error:`` line with exit code 2.
The cases that used to crash natively (an ``edge_index`` of −1 reached a sparse tensor built
without invariant checks: "double free or corruption", rc 134) run in a subprocess, so that a
crash fails the test instead of killing pytest.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save_file
from typer.testing import CliRunner

import kirchhoffnet as kn
from kirchhoffnet.checkpoint import RUN_MODEL
from kirchhoffnet.cli.main import app
from kirchhoffnet.config.diffusion import DiffusionConfig
from kirchhoffnet.errors import CheckpointError, KirchhoffError
from kirchhoffnet.tasks import make_task
from kirchhoffnet.training import CHECKPOINT, train
from kirchhoffnet.training._state import load_checkpoint, save_checkpoint

from ..conftest import small_circuit
from ..training.helpers import tiny_flow
from .crash import environment

EXAMPLES = int(os.environ.get("KIRCHHOFFNET_FUZZ_EXAMPLES", "100"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # a shared machine: timing varies tenfold
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,  # the same files on every run: a failure reproduces
    database=None,
)
CLI = settings(FUZZ, max_examples=max(8, EXAMPLES // 8))
Tensors = dict[str, torch.Tensor]


# ---- the valid files the attacks start from ------------------------------------------------------


@pytest.fixture(scope="module")
def config() -> Any:
    return tiny_flow("train.epochs=1", "train.steps_per_epoch=1")


@pytest.fixture(scope="module")
def run_dir(config, tmp_path_factory) -> Path:
    """A finished one-step flow2d run: config.yaml, model.safetensors, checkpoint.pt."""
    return train(config, tmp_path_factory.mktemp("state") / "run", progress=False).run_dir


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    flow = kn.Flow(small_circuit("ShiftTanh2", num_nodes=3), kn.Solver(rtol=1e-4, atol=1e-4), kn.Backprop())
    return kn.save(flow, tmp_path_factory.mktemp("model") / "flow.safetensors")


def read_file(path: Path) -> tuple[Tensors, dict[str, str]]:
    with safe_open(str(path), framework="pt") as handle:
        return {k: handle.get_tensor(k) for k in handle.keys()}, dict(handle.metadata())  # noqa: SIM118


def rewrite(source: Path, target: Path, edit: Callable[[Tensors, dict[str, str]], None]) -> Path:
    """A copy of the checkpoint ``source`` with tensors or header changed by ``edit``."""
    tensors, header = read_file(source)
    edit(tensors, header)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(target), metadata=header)
    return target


# ---- hostile tensors -----------------------------------------------------------------------------

BAD_VALUES = [math.nan, math.inf, -math.inf, -1.0, 0.0, -0.0, -1e-30]


@st.composite
def hostile_tensor(draw: st.DrawFn, tensors: Tensors) -> tuple[str, torch.Tensor]:
    """One slice tensor replaced by a value no circuit can run: (name, new tensor)."""
    name = draw(st.sampled_from(sorted(k for k in tensors if k.rsplit(".", 1)[-1] in _ATTACKS)))
    value = tensors[name].clone()
    return name, draw(_ATTACKS[name.rsplit(".", 1)[-1]](value))


def _edges(value: torch.Tensor) -> st.SearchStrategy[torch.Tensor]:
    num_nodes = int(value.max()) + 1  # the tiny circuits use every node

    def put(node: int, row: int, col: int) -> torch.Tensor:
        edited = value.clone()
        edited[row, col % value.shape[1]] = node
        return edited

    def loop(col: int) -> torch.Tensor:
        edited = value.clone()
        edited[1, col % value.shape[1]] = edited[0, col % value.shape[1]]
        return edited

    node = st.one_of(st.integers(-(2**62), -1), st.integers(num_nodes, 2**62), st.sampled_from([-1, 99]))
    return st.one_of(
        st.builds(put, node, st.integers(0, 1), st.integers(0, 10**6)),
        st.builds(loop, st.integers(0, 10**6)),
        st.sampled_from([value.float(), value.double(), value.bool(), value[:, :-1], value[:1], value.reshape(-1)]),
    )


def _floats(value: torch.Tensor, positive: bool) -> st.SearchStrategy[torch.Tensor]:
    def put(bad: float, index: int) -> torch.Tensor:
        edited = value.clone()
        edited.view(-1)[index % value.numel()] = bad
        return edited

    bad = st.sampled_from(BAD_VALUES if positive else [math.nan, math.inf, -math.inf])
    if positive:
        bad = st.one_of(bad, st.floats(max_value=0.0, allow_nan=False, width=32))
    shapes = [value.long(), value[..., :-1], value.unsqueeze(0), value.reshape(-1)[:-1]]
    return st.one_of(st.builds(put, bad, st.integers(0, 10**6)), st.sampled_from(shapes))


_ATTACKS: dict[str, Callable[[torch.Tensor], st.SearchStrategy[torch.Tensor]]] = {
    "edge_index": _edges,
    "capacitance": lambda v: _floats(v, positive=True),
    "params": lambda v: _floats(v, positive=False),
}


def test_every_hostile_model_tensor_is_refused_by_kn_load(model_file, tmp_path):
    tensors, _ = read_file(model_file)

    @FUZZ
    @given(case=hostile_tensor(tensors))
    def check(case: tuple[str, torch.Tensor]) -> None:
        name, value = case
        bad = rewrite(model_file, tmp_path / "bad.safetensors", lambda t, h: t.__setitem__(name, value))
        with pytest.raises(CheckpointError, match=rf"bad.safetensors: .*{name.split('.', 1)[1]}|bad.safetensors: "):
            kn.load(bad)

    check()


def test_every_hostile_model_tensor_is_refused_by_the_runs_task(config, run_dir, tmp_path):
    """``Task.load_model`` loads onto the config-built model: the road that had no checks."""
    task = make_task(config, "cpu", torch.float32)
    tensors, _ = read_file(run_dir / RUN_MODEL)

    @FUZZ
    @given(case=hostile_tensor(tensors))
    def check(case: tuple[str, torch.Tensor]) -> None:
        name, value = case
        bad = rewrite(run_dir / RUN_MODEL, tmp_path / "model.safetensors", lambda t, h: t.__setitem__(name, value))
        with pytest.raises(CheckpointError, match=rf"model.safetensors.*{name}"):
            task.load_model(bad)

    check()


ROADS = {
    "eval": ["eval", "{run}", "--out", "{out}"],
    "sample": ["sample", "{run}", "-n", "8", "--out", "{out}"],
    "hw report": ["hw", "report", "{run}", "--samples", "2", "--out", "{out}"],
    "spice export": ["spice", "export", "{run}", "--out", "{out}/net.cir"],
}


def one_error_line(result: Any) -> str:
    assert result.exit_code in (1, 2), (result.output, result.exception)  # by the error's class, docs/cli.md
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    return lines[0]


def invoke(road: str, run: Path, out: Path) -> Any:
    args = [a.format(run=run, out=out) for a in ROADS[road]]
    return CliRunner().invoke(app, args)


def copy_run(run_dir: Path, target: Path) -> Path:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(run_dir, target)
    return target


def test_every_road_of_the_cli_refuses_a_hostile_model(run_dir, tmp_path):
    tensors, _ = read_file(run_dir / RUN_MODEL)

    @CLI
    @given(case=hostile_tensor(tensors), road=st.sampled_from(sorted(ROADS)))
    def check(case: tuple[str, torch.Tensor], road: str) -> None:
        name, value = case
        run = copy_run(run_dir, tmp_path / "run")
        rewrite(run_dir / RUN_MODEL, run / RUN_MODEL, lambda t, h: t.__setitem__(name, value))
        line = one_error_line(invoke(road, run, tmp_path / "out"))
        assert "model.safetensors" in line and name.split(".", 1)[1] in line

    check()


# ---- hostile spec JSON ---------------------------------------------------------------------------

JUNK = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(),
        st.text(max_size=8),
        st.sampled_from(["flow", "network", "circuit", "ShiftTanh2", "score-model", "zeros"]),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for k, value in enumerate(node):
            found += _paths(value, (*prefix, k))
    return found


@st.composite
def hostile_spec(draw: st.DrawFn, spec: dict[str, Any]) -> Any:
    """The spec with one node replaced by junk, deleted, or the whole document replaced."""
    path = draw(st.sampled_from(_paths(spec)))
    if not path:
        return draw(JUNK)
    edited = json.loads(json.dumps(spec))
    parent = edited
    for key in path[:-1]:
        parent = parent[key]
    if isinstance(parent, dict) and draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(JUNK)
    return edited


def test_a_hostile_spec_is_refused_or_loads_a_valid_model(model_file, tmp_path):
    """Junk anywhere in the spec: kn.load raises CheckpointError, or (when the junk happens to be a
    valid setting) returns a model; never AttributeError, KeyError or TypeError."""
    _, header = read_file(model_file)
    spec = json.loads(header["spec"])

    @FUZZ
    @given(edited=hostile_spec(spec))
    def check(edited: Any) -> None:
        bad = rewrite(model_file, tmp_path / "bad.safetensors", lambda t, h: h.__setitem__("spec", json.dumps(edited)))
        try:
            model = kn.load(bad)
        except CheckpointError as exc:
            assert str(exc).startswith(str(bad)) and len(str(exc)) < 1000
        else:
            assert isinstance(model, kn.Flow | kn.Network | kn.Circuit)

    check()


def test_a_spec_of_the_wrong_shape_names_what_is_wrong(model_file, tmp_path):
    for spec, message in [
        ([], r"the header's spec must be a mapping, got list"),
        ({"kind": "flow", "circuit": []}, r"spec.circuit must be a mapping, got list"),
        ({"kind": "flow"}, r"spec lacks 'circuit'"),
        ({"kind": 3}, r"spec.kind must be a string, got int"),
    ]:
        bad = rewrite(
            model_file, tmp_path / "bad.safetensors", lambda t, h, s=spec: h.__setitem__("spec", json.dumps(s))
        )
        with pytest.raises(CheckpointError, match=message):
            kn.load(bad)
    edited = json.loads(read_file(model_file)[1]["spec"])
    edited["circuit"]["slices"][0]["num_nodes"] = "three"
    bad = rewrite(model_file, tmp_path / "bad.safetensors", lambda t, h: h.__setitem__("spec", json.dumps(edited)))
    with pytest.raises(CheckpointError, match=r"circuit spec.slices\[0\].num_nodes must be an integer, got str"):
        kn.load(bad)


# ---- the examples of issue 20 --------------------------------------------------------------------


def _edge_edit(node: int) -> Callable[[Tensors, dict[str, str]], None]:
    def edit(tensors: Tensors, header: dict[str, str]) -> None:
        name = next(k for k in tensors if k.endswith("edge_index"))
        tensors[name][0, 0] = node

    return edit


@pytest.mark.parametrize("road", sorted(ROADS))
def test_an_edge_index_of_minus_one_is_one_line_not_a_native_crash(road, run_dir, tmp_path):
    """Issue 20: this crashed with "double free or corruption" (rc 134). A subprocess, so that a
    regression fails this test instead of killing pytest."""
    run = copy_run(run_dir, tmp_path / "run")
    rewrite(run_dir / RUN_MODEL, run / RUN_MODEL, _edge_edit(-1))
    args = [a.format(run=run, out=tmp_path / "out") for a in ROADS[road]]
    done = subprocess.run(
        [sys.executable, "-m", "kirchhoffnet", *args], env=environment(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])  # a broken file: a runtime failure
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "edge_index" in lines[0] and "negative index" in lines[0] and "model.safetensors" in lines[0]


def test_node_99_in_a_three_node_circuit_is_named(model_file, tmp_path):
    bad = rewrite(model_file, tmp_path / "bad.safetensors", _edge_edit(99))
    with pytest.raises(CheckpointError, match=r"bad.safetensors: .*edge_index.*node 99 but the circuit has 3 nodes"):
        kn.load(bad)


def test_a_negative_capacitance_is_refused_not_evaluated(config, run_dir, tmp_path):
    """Issue 20: capacitance −1 loaded silently and gave a different NLL."""

    def negative(tensors: Tensors, header: dict[str, str]) -> None:
        tensors[next(k for k in tensors if k.endswith("capacitance"))][0] = -1.0

    bad = rewrite(run_dir / RUN_MODEL, tmp_path / "model.safetensors", negative)
    task = make_task(config, "cpu", torch.float32)
    with pytest.raises(CheckpointError, match=r"capacitance of node 1 is -1; capacitance must be finite and positive"):
        task.load_model(bad)
    with pytest.raises(CheckpointError, match=r"capacitance"):
        kn.load(bad)


def test_a_failed_load_leaves_the_model_as_it_was(model_file):
    """The checks run before any tensor is copied: a refused state does not half-load."""
    model = kn.load(model_file)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hostile = {k: v.clone() for k, v in before.items()}
    hostile[next(k for k in hostile if k.endswith("params"))][0, 0] = math.nan
    with pytest.raises(CheckpointError, match=r"params: ShiftTanh2 parameter \[0, 0\] is nan"):
        model.load_state_dict(hostile)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_the_kernel_refuses_an_edge_index_changed_in_place(model_file):
    """The last line of defence: whatever wrote into the buffer, no out-of-range index reaches the
    sparse operators built without invariant checks."""
    flow = kn.load(model_file)
    flow.circuit.slice(0).edge_index[0, 0] = -1
    with pytest.raises(KirchhoffError, match=r"edge_index holds node -1"):
        flow.log_prob(torch.zeros(2, 2))


# ---- checkpoint.pt -------------------------------------------------------------------------------

HOSTILE_FIELDS: dict[str, list[Any]] = {
    "history": [{}, [], None, "x", {"epoch": [0]}],
    "step": [-5, "3", 2.5, None, True],
    "epoch": [-1, "0", None],
    "batch_in_epoch": [-1, 1.5],
    "consecutive_nan": [-2, "0"],
    "elapsed_s": [-1.0, math.nan, "0"],
    "cpu_time_s": [math.inf, None],
    "status": [3, None],
    "best": [
        {},
        {"loss": "low", "epoch": None, "bad_validations": 0},
        {"loss": math.nan, "epoch": 0, "bad_validations": 0},
    ],
    "partial": [{}, {"loss": "x"}],
    "optimizer": [{}, [], {"state": {}, "param_groups": "x"}],
    "scheduler": ["cosine", 3],
    "rng": [{}, {"torch": torch.zeros(3, dtype=torch.uint8)}, None],
    "model": [{}, None, {"circuit.slices.0.params": "x"}],
    "best_model": [{"circuit.slices.0.params": 3}, "x"],
}


def _history_edits(history: dict[str, list[Any]]) -> list[Any]:
    first = next(iter(history))
    return [
        {**history, first: history[first] + [0.0]},  # ragged columns
        {**history, "train_loss": ["low"] * len(history["train_loss"])},
        {**history, "validation": [[1.0]] * len(history["validation"])},
        {k: v for k, v in history.items() if k != "lr"},
    ]


def test_hostile_training_state_fields_are_refused_before_use(run_dir, tmp_path):
    state = load_checkpoint(run_dir / CHECKPOINT)
    cases = [(k, v) for k, values in HOSTILE_FIELDS.items() for v in values]
    cases += [("history", h) for h in _history_edits(state["history"])]
    numpy_state = state["rng"]["numpy"]
    cases += [
        ("rng", {**state["rng"], "numpy": ["MT19937", numpy_state[1][:10], 0, 0, 0.0]}),
        ("rng", {**state["rng"], "python": [3, [1] * 10, None]}),
        ("rng", {**state["rng"], "torch": state["rng"]["torch"].float()}),
    ]

    @FUZZ
    @given(case=st.sampled_from(cases))
    def check(case: tuple[str, Any]) -> None:
        key, value = case
        path = tmp_path / CHECKPOINT
        torch.save({**state, key: value}, path)  # save_checkpoint itself refuses some of these
        with pytest.raises(CheckpointError, match=rf"{CHECKPOINT}: checkpoint.*; it cannot be resumed"):
            load_checkpoint(path)

    check()


def test_junk_in_any_training_state_field_is_refused_or_restores(config, run_dir, tmp_path):
    """Junk in any field (or inside the history, best or RNG records): either the schema refuses it, or
    the state restores into a trainer without error; never a KeyError/TypeError/ValueError."""
    from kirchhoffnet.training._distributed import Cluster
    from kirchhoffnet.training._loop import Trainer

    state = load_checkpoint(run_dir / CHECKPOINT)
    trainer = Trainer(config, Cluster(0, 1, torch.device("cpu")), tmp_path)
    plain = {k: v for k, v in state.items() if k not in ("model", "best_model", "optimizer", "rng")}
    paths = [p for p in _paths(plain) if p] + [("rng", "numpy", k) for k in range(5)] + [("rng", "python", 0)]

    @FUZZ
    @given(path=st.sampled_from(paths), junk=JUNK, delete=st.booleans())
    def check(path: tuple[Any, ...], junk: Any, delete: bool) -> None:
        edited = {**state, "rng": {**state["rng"], "numpy": list(state["rng"]["numpy"])}}
        edited.update(json.loads(json.dumps(plain)))
        parent: Any = edited
        for key in path[:-1]:
            parent = parent[key]
        if delete and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = junk
        torch.save(edited, tmp_path / CHECKPOINT)
        try:
            checked = load_checkpoint(tmp_path / CHECKPOINT)
        except CheckpointError as exc:
            assert CHECKPOINT in str(exc) and len(str(exc)) < 1000
            return
        trainer.restore(checked, str(tmp_path / CHECKPOINT))

    check()


@pytest.mark.parametrize(
    ("key", "value"), [("history", {}), ("step", -5), ("epoch", "one"), ("partial", {"loss": None})]
)
def test_resume_from_a_hostile_checkpoint_is_one_line(key, value, run_dir, tmp_path):
    """Issue 20: these were KeyError/ValueError/TypeError tracebacks."""
    run = copy_run(run_dir, tmp_path / "run")
    state = load_checkpoint(run / CHECKPOINT)
    torch.save({**state, key: value}, run / CHECKPOINT)
    result = CliRunner().invoke(app, ["train", str(run), "--resume"])
    line = one_error_line(result)
    assert f"checkpoint.{key}" in line and CHECKPOINT in line


@pytest.mark.parametrize("target", ["model", "best_model", "optimizer moment", "negative lr", "group"])
def test_resume_refuses_hostile_tensors_inside_the_checkpoint(target, config, run_dir, tmp_path):
    run = copy_run(run_dir, tmp_path / "run")
    state = load_checkpoint(run / CHECKPOINT)
    model = {k: v.clone() for k, v in state["model"].items()}
    edges = next(k for k in model if k.endswith("edge_index"))
    model[edges][0, 0] = -1
    if target == "model":
        state["model"] = model
    elif target == "best_model":
        state["best_model"] = model
    elif target == "optimizer moment":
        moments = state["optimizer"]["state"]
        moments[next(iter(moments))]["exp_avg"] = torch.zeros(7, 7)
    elif target == "negative lr":
        state["optimizer"]["param_groups"][0]["lr"] = -0.1  # would train uphill, silently
    else:
        state["optimizer"]["param_groups"][0] = [1, 2]
    save_checkpoint(run / CHECKPOINT, state)
    with pytest.raises(CheckpointError, match=rf"{CHECKPOINT}.*(edge_index|exp_avg|lr must not be negative|mapping)"):
        train(config, run, resume=True, progress=False)


# ---- original results ----------------------------------------------------------------------------

ORIGINAL_EDITS: list[tuple[tuple[str, ...], Any]] = [
    (("simulation", "tol"), "abc"),
    (("simulation", "tol"), [1]),
    (("simulation", "t_end"), 5),
    (("simulation", "t_end"), ["a", 1]),
    (("simulation", "first_step"), {"x": 1}),
    (("simulation", "method"), 3),
    (("network", "model"), "ShiftTanh2"),
    (("network", "model", "name"), 7),
    (("network", "net_struct", 0, "args"), [1, 2]),
    (("network", "net_struct", 0, "args", "num_node"), "three"),
    (("network", "net_struct", 0, "args", "repeat"), "x"),
    (("network", "net_struct", 0, "args", "num_node"), 10**9),  # would allocate 10^18 edges first
    (("network", "net_struct", 0, "args", "repeat"), [10**9, 1]),
    (("network", "adjoint"), "yes"),
    (("network",), []),
    (("simulation",), "fast"),
]


@pytest.fixture
def original_copy(original_dir, tmp_path):
    target = tmp_path / "twomoon"
    shutil.copytree(original_dir("twomoon"), target)
    for path in target.iterdir():
        path.chmod(0o644)
    return target


@pytest.mark.parametrize(("where", "value"), ORIGINAL_EDITS, ids=[".".join(map(str, w)) for w, _ in ORIGINAL_EDITS])
def test_malformed_original_config_values_are_named(where, value, original_copy):
    config = yaml.safe_load((original_copy / "config.yaml").read_text())
    node = config
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    (original_copy / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(CheckpointError):
        kn.compat.load_original(original_copy)


def test_nan_original_weights_are_refused(original_copy):
    state = torch.load(original_copy / "model.pth", map_location="cpu", weights_only=True)
    name = next(iter(state))
    state[name][0, 0] = math.nan
    torch.save(state, original_copy / "model.pth")
    with pytest.raises(CheckpointError, match=rf"model.pth: {name}: .*parameter \[0, 0\] is nan"):
        kn.compat.load_original(original_copy)


# ---- diffusion checkpoints given to the model commands -------------------------------------------


@pytest.fixture(scope="module")
def score_file(tmp_path_factory) -> Path:
    from kirchhoffnet.diffusion.checkpoint import save_module
    from kirchhoffnet.diffusion.score import ScoreModel, ScoreNet
    from kirchhoffnet.diffusion.sde import VPSDE

    model = ScoreModel(ScoreNet(dim=2, width=4), VPSDE())
    folder = tmp_path_factory.mktemp("score")
    return save_module(model, model.spec(), folder / RUN_MODEL)


@pytest.mark.parametrize("road", ["hw report", "spice export"])
@pytest.mark.parametrize("given_as", ["file", "directory"])
def test_a_diffusion_checkpoint_says_which_command_reads_it(road, given_as, score_file, tmp_path):
    """Issue 20: a KeyError before."""
    target = score_file if given_as == "file" else score_file.parent
    line = one_error_line(invoke(road, target, tmp_path / "out"))
    assert "diffusion score-model" in line and "kirchhoffnet diffusion" in line


TINY_RING = """
task: diffusion
data: ring
seed: 3
threads: 1
model: {kind: crossbar, width: 8}
train: {epochs: 1, steps_per_epoch: 150, batch_size: 128, lr: 0.003, grad_clip: 1.0}
score_matching: {val_size: 128}
sample: {steps: 20}
analog: {steps: 5}
evaluate: {num_samples: 200}
"""


@pytest.fixture(scope="module")
def diffusion_run(tmp_path_factory) -> Path:
    """A diffusion run of `kirchhoffnet train`: the trainer's files, a score model in model.safetensors."""
    root = tmp_path_factory.mktemp("ring")
    (root / "tiny.yaml").write_text(TINY_RING)
    result = CliRunner().invoke(app, ["train", str(root / "tiny.yaml"), "--out", str(root / "run"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert (root / "run" / CHECKPOINT).is_file()
    return root / "run"


@pytest.mark.parametrize("road", ["sample", "spice export"])
def test_a_diffusion_run_given_to_the_model_commands_is_one_line(road, diffusion_run, tmp_path):
    line = one_error_line(invoke(road, diffusion_run, tmp_path / "out"))
    assert "kirchhoffnet diffusion" in line and "diffusion train" not in line  # no command that does not exist
    assert not (tmp_path / "out").exists()


def test_eval_rescores_a_diffusion_run_like_any_run(diffusion_run, tmp_path):
    result = invoke("eval", diffusion_run, tmp_path / "out")
    assert result.exit_code == 0, result.output
    again = json.loads((tmp_path / "out" / "metrics.json").read_text())
    trained = json.loads((diffusion_run / "metrics.json").read_text())
    assert again["kl_pooled"] == trained["test"]["kl_pooled"]  # the same samples: the run's seed


@pytest.mark.parametrize("edit", ["history", "step", "partial", "model shape", "model nan", "negative lr"])
def test_a_hostile_diffusion_checkpoint_is_refused_on_resume(edit, diffusion_run, tmp_path):
    """A diffusion run resumes through the trainer: its checkpoint.pt gets the same checks as every task's,
    in one line naming the file, and the model it holds stays as it was."""
    run = copy_run(diffusion_run, tmp_path / "run")
    state = load_checkpoint(run / CHECKPOINT)
    name = next(iter(state["model"]))
    if edit == "history":
        state["history"] = {}
    elif edit == "step":
        state["step"] = -5
    elif edit == "partial":
        state["partial"] = {"loss": None}
    elif edit == "model shape":
        state["model"] = {**state["model"], name: torch.zeros(7, 7)}
    elif edit == "model nan":
        state["model"] = {**state["model"], name: torch.full_like(state["model"][name], math.nan)}
    else:
        state["optimizer"]["param_groups"][0]["lr"] = -0.1  # would train uphill, silently
    torch.save(state, run / CHECKPOINT)  # save_checkpoint itself refuses some of these
    before = (run / RUN_MODEL).read_bytes()
    line = one_error_line(CliRunner().invoke(app, ["train", str(run), "--resume", "--no-progress"]))
    assert CHECKPOINT in line, line
    assert (run / RUN_MODEL).read_bytes() == before


@pytest.mark.parametrize("command", [["sample", "-n", "4"], ["evaluate"], ["spice"]])
def test_a_training_run_given_to_the_diffusion_commands_is_one_line(command, run_dir, tmp_path):
    result = CliRunner().invoke(app, ["diffusion", command[0], str(run_dir), *command[1:]])
    line = one_error_line(result)
    assert "(its model is a flow), not of a diffusion config" in line and "kirchhoffnet eval" in line


def test_a_run_model_given_to_diffusion_loading_names_its_kind(model_file):
    from kirchhoffnet.diffusion.checkpoint import read_spec

    with pytest.raises(
        CheckpointError, match=r"holds a 'flow', not a 'score-model'; it is a model of `kirchhoffnet train`"
    ):
        read_spec(model_file, "score-model")


SCORE_EDITS: list[tuple[str, str, Any, str]] = [
    ("net", "width", 10**12, r"spec.net.width is 1000000000000, more than"),
    ("net", "width", "wide", r"spec.net.width must be an integer, got str"),
    ("net", "bogus", 1, r"spec.net has unknown setting 'bogus'"),
    ("sde", "beta_min", "low", r"spec.sde.beta_min must be a number, got str"),
    ("sde", "beta_min", -1.0, r"VPSDE beta_min must be a positive number"),
    ("net", "amplitude", math.nan, r"spec.net.amplitude is nan; settings are finite"),
]


def score_run(score_file: Path, run: Path, edit: Callable[[Tensors, dict[str, str]], None]) -> Path:
    """A diffusion run directory (ring task) holding ``score_file`` changed by ``edit``."""
    run.mkdir(exist_ok=True)
    full = DiffusionConfig.model_validate(yaml.safe_load(TINY_RING)).model_dump(mode="json")  # as train writes it
    (run / "config.yaml").write_text(yaml.safe_dump(full))
    rewrite(score_file, run / RUN_MODEL, edit)
    return run


def test_a_hostile_score_spec_is_refused_or_loads(score_file, tmp_path):
    """Junk anywhere in a score model's spec: load_run raises CheckpointError or loads a model."""
    from kirchhoffnet.diffusion.run import load_run

    spec = json.loads(read_file(score_file)[1]["spec"])

    @FUZZ
    @given(edited=hostile_spec(spec))
    def check(edited: Any) -> None:
        run = score_run(score_file, tmp_path / "run", lambda t, h: h.__setitem__("spec", json.dumps(edited)))
        try:
            load_run(run)
        except CheckpointError as exc:  # constructor range errors too, named with the file
            assert str(exc).startswith(str(run)) and len(str(exc)) < 1000

    check()


@pytest.mark.parametrize(("section", "key", "value", "message"), SCORE_EDITS)
def test_a_hostile_score_spec_is_refused_before_the_model_is_built(section, key, value, message, score_file, tmp_path):
    from kirchhoffnet.diffusion.run import load_run

    def edit(tensors: Tensors, header: dict[str, str]) -> None:
        spec = json.loads(header["spec"])
        spec[section][key] = value
        header["spec"] = json.dumps(spec)

    run = score_run(score_file, tmp_path / "run", edit)
    with pytest.raises(CheckpointError, match=message):
        load_run(run)


@pytest.mark.parametrize("node", [-1, 10**6])
def test_a_score_circuit_inherits_the_slice_checks(node, tmp_path):
    """The score circuit's devices are a core Slice: a hostile topology in its checkpoint is refused
    by the same check, with no code of its own."""
    from kirchhoffnet.diffusion.checkpoint import load_state, save_module
    from kirchhoffnet.diffusion.score_circuit.circuit import ScoreCircuit
    from kirchhoffnet.diffusion.score_circuit.model import CircuitScoreModel
    from kirchhoffnet.diffusion.sde import VPSDE

    model = CircuitScoreModel(ScoreCircuit(dim=2, hidden=3, time_nodes=2, repeat=1), VPSDE())
    path = save_module(model, model.spec(), tmp_path / "score.safetensors")
    bad = rewrite(path, tmp_path / "bad.safetensors", _edge_edit(node))
    fresh = CircuitScoreModel(ScoreCircuit(dim=2, hidden=3, time_nodes=2, repeat=1), VPSDE())
    with pytest.raises(
        CheckpointError, match=r"bad.safetensors: tensor circuit.edges.edge_index: edge 0 starts at node"
    ):
        load_state(fresh, bad, "score-circuit")


# ---- the digital MLP baseline ----------------------------------------------------------------------

MLP_EDITS: list[tuple[str, Any, str]] = [
    ("hidden", [10**12], r"spec.hidden\[0\] is 1000000000000, more than"),
    ("hidden", "wide", r"spec.hidden must be a list, got str"),
    ("hidden", [4.5], r"spec.hidden\[0\] must be an integer, got float"),
    ("in_features", None, r"spec.in_features must be an integer, got NoneType"),
    ("bogus", 1, r"spec has unknown setting 'bogus'"),
    ("in_features", 3, r"its header describes an MLP of 21 parameters but its tensors hold 17"),
    ("activation", "sigmoid", r"activation must be relu or tanh, got 'sigmoid'"),
]


@pytest.mark.parametrize(("key", "value", "message"), MLP_EDITS)
def test_a_hostile_mlp_baseline_header_is_refused(key, value, message, tmp_path):
    from kirchhoffnet.models.baselines import MLP, load_baseline, save_baseline

    path = save_baseline(MLP(2, [4]), tmp_path / "mlp.safetensors", {})

    def edit(tensors: Tensors, header: dict[str, str]) -> None:
        header["spec"] = json.dumps({**json.loads(header["spec"]), key: value})

    bad = rewrite(path, tmp_path / "bad.safetensors", edit)
    with pytest.raises(CheckpointError, match=rf"bad.safetensors.*{message}"):
        load_baseline(bad, MLP)


ODENET_EDITS: list[tuple[str, Any, str]] = [
    ("channels", 10**12, r"spec.channels is 1000000000000, more than the file's 723 tensor values"),
    ("channels", 5, r"its header describes an ODE-Net of 1,073 parameters but its tensors hold 723"),
    ("classes", 0, r"classes must be at least 1, got 0"),
    ("downsamplings", 5, r"downsamplings: 5 stride-2 convolutions need images of at least 32 pixels a side"),
    ("t_end", "long", r"spec.t_end must be a number, got str"),
    ("solver", "dopri5", r"spec has unknown setting 'solver'"),
]


@pytest.mark.parametrize(("key", "value", "message"), ODENET_EDITS)
def test_a_hostile_odenet_baseline_header_is_refused(key, value, message, tmp_path):
    """Every setting is checked, and the parameter count it implies compared with the file's, before the model is
    built: a width of 10^12 would otherwise allocate 10^25 weights."""
    from kirchhoffnet.models.baselines import ODENet, load_baseline, save_baseline

    path = save_baseline(ODENet(1, 8, 8, 3, channels=4, downsamplings=1), tmp_path / "odenet.safetensors", {})

    def edit(tensors: Tensors, header: dict[str, str]) -> None:
        header["spec"] = json.dumps({**json.loads(header["spec"]), key: value})

    bad = rewrite(path, tmp_path / "bad.safetensors", edit)
    with pytest.raises(CheckpointError, match=rf"bad.safetensors.*{message}") as caught:
        load_baseline(bad, ODENet)
    assert "\n" not in str(caught.value)


def test_an_odenet_checkpoint_is_not_an_mlp_checkpoint(tmp_path):
    from kirchhoffnet.models.baselines import MLP, ODENet, load_baseline, save_baseline

    path = save_baseline(ODENet(1, 8, 8, 3, channels=4, downsamplings=1), tmp_path / "odenet.safetensors", {})
    with pytest.raises(CheckpointError, match=r"is a safetensors file but not an MLP baseline checkpoint"):
        load_baseline(path, MLP)


def test_nan_mlp_baseline_weights_are_refused(tmp_path):
    from kirchhoffnet.models.baselines import MLP, load_baseline, save_baseline

    path = save_baseline(MLP(2, [4]), tmp_path / "mlp.safetensors", {})
    bad = rewrite(path, tmp_path / "bad.safetensors", lambda t, h: t[next(iter(t))].view(-1).__setitem__(0, math.nan))
    with pytest.raises(CheckpointError, match=r"bad.safetensors: tensor .* holds NaN or infinite values"):
        load_baseline(bad, MLP)


@pytest.mark.parametrize("case", ["missing", "nan"])
def test_a_hostile_latent_data_file_is_refused(case, tmp_path):
    """The conditional run's latents.safetensors: a missing split was a KeyError, NaN latents a silent NaN."""
    from kirchhoffnet.diffusion.checkpoint import load_tensors, save_tensors
    from kirchhoffnet.diffusion.conditional import LATENT_TENSORS

    tensors = {
        name: torch.zeros(4, 2) if "labels" not in name else torch.zeros(4, dtype=torch.long) for name in LATENT_TENSORS
    }
    if case == "missing":
        del tensors["test"]
    else:
        tensors["train"][0, 0] = math.nan
    path = save_tensors(tensors, tmp_path / "latents.safetensors", "latents")
    with pytest.raises(CheckpointError, match=r"latents.safetensors(: tensor train holds NaN| holds tensors)"):
        load_tensors(path, "latents", LATENT_TENSORS)


def test_a_checkpoint_whose_pickle_protocol_torch_warns_about_is_one_line(tmp_path):
    """torch warns ("Detected pickle protocol 35") before it refuses such a file: the warning made the
    error three lines long. Any warning inside is turned into an error, which fails the match."""
    path = tmp_path / CHECKPOINT
    path.write_bytes(b"\x80\x23" + bytes(range(64)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(CheckpointError, match=r"^cannot read training checkpoint .* \(truncated\?\)"):
            load_checkpoint(path)
