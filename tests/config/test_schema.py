"""Config validation: one line naming the key for every kind of mistake; overrides; shipped configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kirchhoffnet.config import SolverConfig, apply_overrides, load_config, parse_config, to_yaml, write_config
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.solve import GRADIENTS, Adjoint, Solver, gradient_method

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p for p in (REPO / "configs").rglob("*.yaml") if p.parent.name != "diffusion")  # own schema
TWOMOON = REPO / "configs" / "flow2d" / "twomoon.yaml"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO / "configs")))
def test_every_shipped_config_validates_and_round_trips(path):
    config = load_config(path)
    again = parse_config(yaml.safe_load(to_yaml(config)))
    assert again == config


def test_shipped_configs_cover_every_task():
    tasks = {load_config(p).task for p in CONFIGS}
    assert tasks == {"flow2d", "regression", "classify", "density", "mnist_gen"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.lr=-1"], r"^train\.lr: must be > 0\.0, got -1 \(in .*twomoon\.yaml\)$"),
        (["solver.rtol=-1.0e-3"], r"^solver\.rtol: must be > 0\.0, got -0\.001"),
        (["solver.atol=0"], r"^solver\.atol: must be > 0\.0, got 0"),
        (["circuit.times=[0, 1, 0.5]"], r"^circuit\.times: time slices must increase strictly, but times\[2\] = 0\.5"),
        (["circuit.slices=3"], r"^circuit\.times: 3 slices need 4 boundaries, got 3"),
        (["circuit.topology.num_nodes=4"], r"^circuit\.topology: a 2-D flow needs 2 state nodes in every slice"),
        (["train.lrr=1"], r"^train\.lrr: unknown key; valid keys here: epochs, batch_size, lr,"),
        (["bogus=1"], r"^bogus: unknown key; valid keys here: task, name, seed"),
        (["circuit.topology.name=star"], r"^circuit\.topology\[0\]: unknown or missing topology name; choose one of"),
        (["circuit.device=Tanh9"], r"^circuit\.device: unknown device family 'Tanh9'; choose one of: Conductance"),
        (["solver.method=rk5"], r"^solver\.method: must be one of dopri5, .*got 'rk5'"),
        (["circuit.init=glorot"], r"^circuit\.init: must be one of .*kaiming.*, got 'glorot'"),
        (["solver.method=rk4"], r"^solver\.step_size: fixed-step method 'rk4' needs a step size"),
        (["solver.gradient=magic"], r"^solver\.gradient: must be one of 'adjoint' or 'backprop', got 'magic'"),
        (["train.epochs=many"], r"^train\.epochs: input should be a valid integer.*got 'many'"),
        (["train.schedule.eta_min=1"], r"^train\.schedule\.eta_min: must not exceed lr \(0\.01\), got 1\.0"),
        (["train.schedule.name=linear"], r"^train\.schedule\.name: must be one of 'cosine', 'step' or 'none'"),
        (["data.name=moons"], r"^data\.name: must be one of twomoon, 8gaussians"),
        (["train.batch_size=0", "train.lr=0"], r"^train\.batch_size: must be >= 1, got 0 \(and 1 more problem\)"),
        (["task=poetry"], r"^task: must be one of flow2d, regression, .*mnist_gen, diffusion, got 'poetry'"),
        (["circuit.residual=[0, 1]"], r"^circuit\.residual: a flow must be invertible"),
        (["train.early_stopping.patience=0"], r"^train\.early_stopping\.patience: must be >= 1, got 0"),
    ],
)
def test_bad_values_give_one_line_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_config(TWOMOON, overrides)
    assert "\n" not in str(info.value)


def _regression(**changes):
    data = {
        "task": "regression",
        "data": {"name": "diabetes"},
        "circuit": {"topology": {"name": "fully_connect", "num_nodes": 12}},
        "train": {"epochs": 1, "batch_size": 8, "lr": 1e-3},
    }
    return apply_overrides(data, [f"{k}={v}" for k, v in changes.items()])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"circuit.topology.num_nodes": 6}, r"^circuit\.topology: diabetes has 10 features but the first slice has 5"),
        ({"readout": "last2"}, r"^readout: regression predicts 1 value, the readout gives 2"),
        ({"data.name": "housing"}, r"^data\.path: housing data is read from a CSV file; set data\.path"),
        ({"data.path": "x.csv"}, r"^data\.path: only housing is read from a file, diabetes is not"),
        ({"baseline.hidden": "[8]"}, r"^config: give exactly one of circuit \(a KirchhoffNet\) or baseline"),
        ({"data.test_fraction": 0.7}, r"^data\.test_fraction: must be < 0\.5, got 0\.7"),
    ],
)
def test_regression_cross_checks(changes, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(_regression(**changes))


def _classify(**changes):
    data = {
        "task": "classify",
        "data": {"name": "fashion_mnist", "downsample": 4},
        "circuit": {
            "topology": {
                "name": "mix_connect",
                "channels": 1,
                "height": 7,
                "width": 7,
                "kernel_size": 3,
                "hidden_nodes": 10,
            }
        },
        "train": {"epochs": 1, "batch_size": 8, "lr": 1e-3},
    }
    return apply_overrides(data, [f"{k}={v}" for k, v in changes.items()])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"data.downsample": 2},
            r"^circuit\.topology: slice 0 is mix_connect over \(1, 7, 7\) .* fashion_mnist images are \(1, 14, 14\)",
        ),
        ({"data.downsample": 3}, r"^data\.downsample: 3 does not divide fashion_mnist's 28x28 images"),
        ({"readout": "last5"}, r"^readout: fashion_mnist has 10 classes, the readout gives 5"),
        ({"data.name": "cifar10"}, r"mix_connect over \(1, 7, 7\) .* cifar10 images are \(3, 8, 8\)"),
    ],
)
def test_classification_cross_checks(changes, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(_classify(**changes))


def test_density_needs_steps_per_epoch():
    data = {
        "task": "density",
        "potential": "U1",
        "circuit": {"topology": {"name": "fully_connect", "num_nodes": 3}},
        "train": {"epochs": 1, "batch_size": 8, "lr": 1e-3},
    }
    with pytest.raises(ConfigError, match=r"^train\.steps_per_epoch: density matching has no data set"):
        parse_config(data)
    with pytest.raises(ConfigError, match=r"^potential: must be one of U1, U2, U3, U4, got 'U9'"):
        parse_config({**data, "potential": "U9", "train": {**data["train"], "steps_per_epoch": 2}})


def test_overrides_descend_into_sections_and_parse_yaml_values():
    config = load_config(TWOMOON, ["train.lr=1e-3", "circuit.times=[0, 2, 3]", "train.early_stopping.patience=4"])
    assert config.train.lr == 1e-3 and config.circuit.times == [0.0, 2.0, 3.0]
    assert config.train.early_stopping is not None and config.train.early_stopping.patience == 4
    assert load_config(TWOMOON, seed=7, device=None).seed == 7


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.lr", r"--set 'train\.lr': expected key=value, e\.g\. train\.lr=1e-3"),
        ("=3", r"expected key=value"),
        ("train.lr.x=1", r"--set 'train\.lr\.x=1': train\.lr is not a section"),
        ("train.lr=[1", r"the value is not valid YAML"),
    ],
)
def test_bad_overrides(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(TWOMOON, [override])


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match=r"config file .*missing\.yaml not found"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "broken.yaml").write_text("task: flow2d\ntrain: [1, 2\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml is not valid YAML at line 3"):
        load_config(tmp_path / "broken.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=r"list\.yaml must hold a mapping of settings, got list"):
        load_config(tmp_path / "list.yaml")


def test_the_resolved_config_holds_every_default(tmp_path):
    path = write_config(load_config(TWOMOON), tmp_path / "resolved.yaml")
    written = yaml.safe_load(path.read_text())
    assert written["train"]["on_nan"] == "skip" and written["solver"]["max_steps"] == 100_000
    assert load_config(path) == load_config(TWOMOON)


def test_solver_section_builds_the_solver_it_describes():
    settings = {"method": "rk4", "rtol": 1e-3, "atol": 1e-5, "step_size": 0.05, "first_step": 0.01}
    settings |= {"min_step": 1e-6, "max_steps": 77, "kernel": "gather"}
    section = SolverConfig(**settings, gradient="adjoint", adjoint_seminorm=True)
    assert section.build() == Solver(**settings)
    assert section.build_gradient() == Adjoint(seminorm=True)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO / "configs")))
def test_every_shipped_config_names_its_gradient_method(path):
    # Its results were measured with that method: a change of the default must not change it.
    solver = yaml.safe_load(path.read_text()).get("solver")
    assert solver is None or solver["gradient"] in GRADIENTS  # None: the MLP baseline solves nothing


@pytest.mark.parametrize(("name", "seminorm"), [("backprop", False), ("adjoint", False), ("adjoint", True)])
def test_gradient_names_round_trip_through_the_yaml(name, seminorm, tmp_path):
    config = load_config(TWOMOON, [f"solver.gradient={name}", f"solver.adjoint_seminorm={str(seminorm).lower()}"])
    path = write_config(config, tmp_path / "resolved.yaml")
    assert yaml.safe_load(path.read_text())["solver"]["gradient"] == name  # the file keeps the name
    again = load_config(path)
    assert again == config and again.solver.build_gradient() == gradient_method(name, seminorm)
