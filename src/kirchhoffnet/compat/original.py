"""Loading results of the original KirchhoffNet code (github.com/zhengqigao/kirchhoffnet).

A result directory holds ``config.yaml`` (the training config) and ``model.pth`` (a state dict
with one ``circuit.layer_list.<i>.model.param`` of shape (P, E) per time slice, edges in the
order the original topology generators emit them). Flow results (2-D sets, potentials, MNIST
generation) become a [`Flow`][kirchhoffnet.Flow]; classification and regression results a
[`Network`][kirchhoffnet.Network].
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from kirchhoffnet._schema import expect
from kirchhoffnet._yamlfile import read_yaml_mapping
from kirchhoffnet.circuit import Circuit, Slice
from kirchhoffnet.devices import Device, resolve
from kirchhoffnet.errors import CheckpointError, KirchhoffError, shown
from kirchhoffnet.models import Flow, Network
from kirchhoffnet.models.readout import Linear
from kirchhoffnet.solve import Adjoint, Backprop, GradientMethod, Solver
from kirchhoffnet.topology import fully_connect, mix_connect

# Test benches the original trains as flows (main_gen.py / main_den.py); the rest are networks.
FLOW_BENCHES = {"twomoon", "8gaussians", "pinwheel", "swissroll", "circle", "2spirals", "gauss", "genmnist"}

# The original allocates 3 parameter rows for these families although it uses fewer.
_STORED_ROWS = {"ShiftTanh1": 3, "Conductance": 3}


def _fully_connect(args: dict[str, Any]) -> Tensor:
    include_ground = bool(args.pop("include_gnd", True))
    num = int(args.pop("num_node"))
    # The original's num_node counts ground only when ground is included.
    return fully_connect(num if include_ground else num + 1, args.pop("repeat", (1, 1)), include_ground)


def _mix_connect(args: dict[str, Any]) -> Tensor:
    if int(args.pop("parallel", 1)) != 1:
        raise CheckpointError("_mix_connect with parallel != 1 is not supported")
    args.pop("sharing", None)  # renames parameter slots only; the edges are the same
    return mix_connect(
        channels=int(args.pop("num_channel")),
        height=int(args.pop("height")),
        width=int(args.pop("width")),
        kernel_size=int(args.pop("neighbor_size")),
        hidden_nodes=int(args.pop("fully_connect_node")),
        repeat=args.pop("repeat", (1, 0)),
        padding=bool(args.pop("padding", False)),
        kernel_repeat=int(args.pop("kernel_repeat", 1)),
    )


_GENERATORS = {"_fully_connect": _fully_connect, "_mix_connect": _mix_connect}


def _generate(entry: Any, k: int, limit: int) -> Tensor:
    """One slice's edge_index from an original ``net_struct`` entry, in the original edge order; no size
    in it may exceed ``limit``, the slice's stored parameter count (a larger one cannot match the weights,
    and would allocate its edges first)."""
    if not isinstance(entry, dict) or "name" not in entry:
        raise CheckpointError(f"network.net_struct[{k}] must be a mapping with 'name' and 'args', got {shown(entry)}")
    name, args = entry["name"], dict(expect(entry.get("args") or {}, dict, f"network.net_struct[{k}].args"))
    if name not in _GENERATORS:
        raise CheckpointError(
            f"network.net_struct[{k}] uses topology generator {shown(name)}, which kirchhoffnet cannot rebuild; "
            f"supported: {', '.join(_GENERATORS)}"
        )
    for key, value in args.items():
        for size in value if isinstance(value, list) else [value]:
            if isinstance(size, int) and size > limit:
                raise CheckpointError(
                    f"network.net_struct[{k}].args.{shown(key, 30)} is {size}, more than the {limit} parameters "
                    "model.pth holds for that slice"
                )
    try:
        edges = _GENERATORS[name](args)
    except KeyError as exc:
        raise CheckpointError(f"network.net_struct[{k}] ({name}) lacks argument {exc}") from None
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"network.net_struct[{k}] ({name}): {exc}") from None
    if args:
        raise CheckpointError(f"network.net_struct[{k}] ({name}) has unknown arguments {shown(sorted(args))}")
    return edges


def _section(config: dict[str, Any], *keys: str, kind: type | tuple[type, ...] = object) -> Any:
    """``config[keys[0]][keys[1]]...``, of type ``kind``."""
    node: Any = config
    for depth, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            raise CheckpointError(f"config.yaml lacks {'.'.join(keys[: depth + 1])}")
        node = node[key]
    return expect(node, kind, f"config.yaml {'.'.join(keys)}")


def _real(value: Any, where: str) -> float:
    """A finite number; YAML reads ``1e-4`` (no dot) as a string, which the original accepted too."""
    try:
        number = float(value) if isinstance(value, int | float | str) and not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None or not math.isfinite(number):
        raise CheckpointError(f"config.yaml {where} must be a finite number, got {shown(value)}")
    return number


def _solver(config: dict[str, Any], rtol: float | None, atol: float | None, method: str | None) -> Solver:
    sim = _section(config, "simulation", kind=dict)
    tol = _real(_section(config, "simulation", "tol"), "simulation.tol")
    chosen = method or expect(sim.get("method", "dopri5"), str, "config.yaml simulation.method")
    settings: dict[str, Any] = {
        "method": chosen,
        "rtol": tol if rtol is None else rtol,
        "atol": tol if atol is None else atol,
    }
    if chosen in ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun"):
        # The original passes first_step and min_step to every adaptive solve.
        if sim.get("first_step") is not None:
            settings["first_step"] = _real(sim["first_step"], "simulation.first_step")
        settings["min_step"] = _real(sim.get("min_step") or 0.0, "simulation.min_step")
    else:
        settings["step_size"] = _real(_section(config, "simulation", "step_size"), "simulation.step_size")
    try:
        return Solver(**settings)
    except KirchhoffError as exc:
        raise CheckpointError(f"simulation settings: {exc}") from None


def _device(config: dict[str, Any]) -> Device:
    model = _section(config, "network", "model", kind=dict)
    name = _section(config, "network", "model", "name", kind=str)
    if model.get("args"):
        raise CheckpointError(f"network.model.args {model['args']} is not supported for device {name}")
    try:
        return resolve(name)
    except KirchhoffError as exc:
        raise CheckpointError(f"network.model.name: {exc}") from None


def _load_state(path: Path) -> dict[str, Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only runs no code: any failure on corrupt bytes is a bad file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot read {path} as a weights-only PyTorch state dict: {first[:300]}") from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return state


def read_config(result_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed ``config.yaml`` of an original result directory."""
    return read_yaml_mapping(
        Path(result_dir) / "config.yaml",
        error=CheckpointError,
        label="result file",
        hint="; an original result directory holds config.yaml and model.pth",
    )


def is_original_result(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` looks like a result directory of the original code."""
    return (Path(path) / "config.yaml").is_file() and (Path(path) / "model.pth").is_file()


def load_original(
    result_dir: str | os.PathLike[str],
    rtol: float | None = None,
    atol: float | None = None,
    method: str | None = None,
) -> Flow | Network:
    """Import a trained model of the original KirchhoffNet code.

    Args:
        result_dir: directory with ``config.yaml`` and ``model.pth``.
        rtol: overrides the config's relative tolerance (its ``tol`` is both tolerances).
        atol: overrides the config's absolute tolerance.
        method: overrides the config's solver method.

    Returns:
        A [`Flow`][kirchhoffnet.Flow] (``log_prob``, ``sample``) for generative results, a
        [`Network`][kirchhoffnet.Network] (``forward(x)`` → logits or predictions) otherwise; parameters in float32,
        eval mode.

    Raises:
        CheckpointError: missing files, unsupported settings, unknown devices, or a state dict
            whose keys or shapes do not match the config.
    """
    result_dir = Path(result_dir)
    config = read_config(result_dir)
    weights = result_dir / "model.pth"
    if not weights.is_file():
        raise CheckpointError(f"{weights} not found; an original result directory holds config.yaml and model.pth")
    state = _load_state(weights)
    structure = _section(config, "network", "net_struct")
    if not isinstance(structure, list) or not structure:
        raise CheckpointError("network.net_struct must be a non-empty list, one topology per time slice")
    device = _device(config)
    times = [
        _real(t, f"simulation.t_end[{k}]") for k, t in enumerate(_section(config, "simulation", "t_end", kind=list))
    ]
    if len(times) != len(structure) + 1:
        raise CheckpointError(
            f"simulation.t_end has {len(times)} entries but net_struct has {len(structure)} slices (needs one more)"
        )
    bench = str(config.get("test_bench", ""))
    is_flow = bench in FLOW_BENCHES or bench.startswith("potential")
    network = _section(config, "network", kind=dict)
    if not is_flow and network.get("encoder"):
        raise CheckpointError("network.encoder is not supported (the circuit must take the raw input)")

    rows = _STORED_ROWS.get(device.name, device.num_params)
    slices, used = [], set()
    for k, entry in enumerate(structure):
        key = f"circuit.layer_list.{k}.model.param"
        if key not in state:
            raise CheckpointError(f"{weights} lacks {key} for time slice {k}")
        edges = _generate(entry, k, state[key].numel())
        stored = state[key]
        if tuple(stored.shape) != (rows, edges.shape[1]):
            raise CheckpointError(
                f"{key} has shape {tuple(stored.shape)} but {device.name} on slice {k}'s {edges.shape[1]} edges "
                f"needs ({rows}, {edges.shape[1]}); the config and the weights do not belong together"
            )
        used.add(key)
        try:
            slices.append(Slice(edges, device, params=stored[: device.num_params].float()))
        except KirchhoffError as exc:
            raise CheckpointError(f"{weights}: {key}: {exc}") from None

    solver = _solver(config, rtol, atol, method)
    adjoint = expect(network.get("adjoint", True), bool, "config.yaml network.adjoint")
    gradient: GradientMethod = Adjoint() if adjoint else Backprop()
    residual = expect(network.get("residual"), (list, type(None)), "config.yaml network.residual")
    for k, node in enumerate(residual or ()):
        expect(node, int, f"config.yaml network.residual[{k}]")
    model: Flow | Network
    try:
        if is_flow:
            model = Flow(Circuit(slices, times=times), solver, gradient)
        else:
            circuit = Circuit(slices, times=times, fill=_fill(network.get("fill")), residual=residual)
            readout, readout_state = _readout(network.get("projector"), state, circuit)
            used |= set(readout_state)
            model = Network(circuit, readout, solver, gradient)
            if readout_state:
                _load_readout(model.readout, readout_state, weights)  # type: ignore[arg-type]
    except CheckpointError:
        raise
    except KirchhoffError as exc:
        raise CheckpointError(f"{result_dir}: {exc}") from None
    unexpected = sorted(set(state) - used)
    if unexpected:
        raise CheckpointError(f"{weights} holds tensors the config does not explain: {unexpected[:5]}")
    return model.eval()


def _load_readout(readout: nn.Module, state: dict[str, Tensor], weights: Path) -> None:
    """The projector's tensors, of the readout's shapes and finite, into the readout."""
    renamed = {k.replace("projector.net.0.", "layer."): v for k, v in state.items()}
    expected = readout.state_dict()
    for name, value in renamed.items():
        if name not in expected or value.shape != expected[name].shape or not bool(torch.isfinite(value).all()):
            raise CheckpointError(
                f"{weights}: projector tensor {name} (shape {tuple(value.shape)}) does not fit the readout "
                f"{shown({k: tuple(v.shape) for k, v in expected.items()}, 120)} or is not finite"
            )
    readout.load_state_dict(renamed)


def _fill(fill: Any) -> str:
    if fill in (None, "zeros", "zero"):
        return "zeros"
    if fill == "repeat":
        return "repeat"
    raise CheckpointError(f"network.fill {shown(fill)} is not supported; use zeros or repeat")


def _readout(projector: Any, state: dict[str, Tensor], circuit: Circuit) -> tuple[Any, dict[str, Tensor]]:
    if projector is None or projector == "none":
        return None, {}
    if isinstance(projector, str) and projector.startswith("mlp_"):
        parts = projector.split("_")
        try:
            if len(parts) != 3:
                raise ValueError(projector)
            n_in, n_out = int(parts[1]), int(parts[2])
        except ValueError:
            raise CheckpointError(f"network.projector {shown(projector)} is not of the form mlp_<in>_<out>") from None
        if n_in != circuit.slice(circuit.num_slices - 1).num_state:
            raise CheckpointError(f"network.projector {projector}: the last slice has a different node count")
        if not 1 <= n_out <= sum(t.numel() for t in state.values()):  # before its weights are allocated
            raise CheckpointError(f"network.projector {projector}: {n_out} outputs are more than model.pth holds")
        readout = Linear(n_in, n_out)
        keys = {k: v for k, v in state.items() if k.startswith("projector.")}
        return readout, keys
    if isinstance(projector, str) and (projector.startswith("last") or projector.startswith("first")):
        return projector, {}
    raise CheckpointError(f"network.projector {shown(projector)} is not supported; use lastK, firstK, mlp_a_b or none")
