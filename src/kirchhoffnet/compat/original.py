"""Loading results of the original KirchhoffNet code (github.com/zhengqigao/kirchhoffnet).

A result directory holds ``config.yaml`` (the training config) and ``model.pth`` (a state dict
with one ``circuit.layer_list.<i>.model.param`` of shape (P, E) per time slice, edges in the
order the original topology generators emit them). Flow results (2-D sets, potentials, MNIST
generation) become a :class:`~kirchhoffnet.models.Flow`; classification and regression results a
:class:`~kirchhoffnet.models.Network`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from kirchhoffnet.circuit import Circuit, Slice
from kirchhoffnet.devices import Device, resolve
from kirchhoffnet.errors import CheckpointError, KirchhoffError
from kirchhoffnet.models import Flow, Network
from kirchhoffnet.models.readout import Linear
from kirchhoffnet.solve import Solver
from kirchhoffnet.topology import fully_connect, mix_connect
from kirchhoffnet.yamlfile import read_yaml_mapping

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


def _generate(entry: Any, k: int) -> Tensor:
    """One slice's edge_index from an original ``net_struct`` entry, in the original edge order."""
    if not isinstance(entry, dict) or "name" not in entry:
        raise CheckpointError(f"network.net_struct[{k}] must be a mapping with 'name' and 'args', got {entry!r}")
    name, args = entry["name"], dict(entry.get("args") or {})
    if name not in _GENERATORS:
        raise CheckpointError(
            f"network.net_struct[{k}] uses topology generator {name!r}, which kirchhoffnet cannot rebuild; "
            f"supported: {', '.join(_GENERATORS)}"
        )
    try:
        edges = _GENERATORS[name](args)
    except KeyError as exc:
        raise CheckpointError(f"network.net_struct[{k}] ({name}) lacks argument {exc}") from None
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"network.net_struct[{k}] ({name}): {exc}") from None
    if args:
        raise CheckpointError(f"network.net_struct[{k}] ({name}) has unknown arguments {sorted(args)}")
    return edges


def _section(config: dict[str, Any], *keys: str) -> Any:
    node: Any = config
    for depth, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            raise CheckpointError(f"config.yaml lacks {'.'.join(keys[: depth + 1])}")
        node = node[key]
    return node


def _solver(config: dict[str, Any], rtol: float | None, atol: float | None, method: str | None) -> Solver:
    sim = _section(config, "simulation")
    tol = float(_section(config, "simulation", "tol"))
    chosen = method or str(sim.get("method", "dopri5"))
    settings: dict[str, Any] = {
        "method": chosen,
        "rtol": tol if rtol is None else rtol,
        "atol": tol if atol is None else atol,
    }
    if chosen in ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun"):
        # The original passes first_step and min_step to every adaptive solve.
        if sim.get("first_step") is not None:
            settings["first_step"] = float(sim["first_step"])
        settings["min_step"] = float(sim.get("min_step") or 0.0)
    else:
        settings["step_size"] = float(_section(config, "simulation", "step_size"))
    try:
        return Solver(**settings)
    except KirchhoffError as exc:
        raise CheckpointError(f"simulation settings: {exc}") from None


def _device(config: dict[str, Any]) -> Device:
    model = _section(config, "network", "model")
    name = _section(config, "network", "model", "name")
    if model.get("args"):
        raise CheckpointError(f"network.model.args {model['args']} is not supported for device {name}")
    try:
        return resolve(str(name))
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
        A :class:`Flow` (``log_prob``, ``sample``) for generative results, a :class:`Network`
        (``forward(x)`` → logits or predictions) otherwise; parameters in float32, eval mode.

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
    times = [float(t) for t in _section(config, "simulation", "t_end")]
    if len(times) != len(structure) + 1:
        raise CheckpointError(
            f"simulation.t_end has {len(times)} entries but net_struct has {len(structure)} slices (needs one more)"
        )
    bench = str(config.get("test_bench", ""))
    is_flow = bench in FLOW_BENCHES or bench.startswith("potential")
    network = config["network"]
    if not is_flow and network.get("encoder"):
        raise CheckpointError("network.encoder is not supported (the circuit must take the raw input)")

    rows = _STORED_ROWS.get(device.name, device.num_params)
    slices, used = [], set()
    for k, entry in enumerate(structure):
        edges = _generate(entry, k)
        key = f"circuit.layer_list.{k}.model.param"
        if key not in state:
            raise CheckpointError(f"{weights} lacks {key} for time slice {k}")
        stored = state[key]
        if tuple(stored.shape) != (rows, edges.shape[1]):
            raise CheckpointError(
                f"{key} has shape {tuple(stored.shape)} but {device.name} on slice {k}'s {edges.shape[1]} edges "
                f"needs ({rows}, {edges.shape[1]}); the config and the weights do not belong together"
            )
        used.add(key)
        slices.append(Slice(edges, device, params=stored[: device.num_params].float()))

    solver = _solver(config, rtol, atol, method)
    gradient = "adjoint" if network.get("adjoint", True) else "backprop"
    model: Flow | Network
    try:
        if is_flow:
            model = Flow(Circuit(slices, times=times), solver, gradient)
        else:
            circuit = Circuit(slices, times=times, fill=_fill(network.get("fill")), residual=network.get("residual"))
            readout, readout_state = _readout(network.get("projector"), state, circuit)
            used |= set(readout_state)
            model = Network(circuit, readout, solver, gradient)
            if readout_state:
                model.readout.load_state_dict(  # type: ignore[union-attr]
                    {k.replace("projector.net.0.", "layer."): v for k, v in readout_state.items()}
                )
    except CheckpointError:
        raise
    except KirchhoffError as exc:
        raise CheckpointError(f"{result_dir}: {exc}") from None
    unexpected = sorted(set(state) - used)
    if unexpected:
        raise CheckpointError(f"{weights} holds tensors the config does not explain: {unexpected[:5]}")
    return model.eval()


def _fill(fill: Any) -> str:
    if fill in (None, "zeros", "zero"):
        return "zeros"
    if fill == "repeat":
        return "repeat"
    raise CheckpointError(f"network.fill {fill!r} is not supported; use zeros or repeat")


def _readout(projector: Any, state: dict[str, Tensor], circuit: Circuit) -> tuple[Any, dict[str, Tensor]]:
    if projector is None or projector == "none":
        return None, {}
    if isinstance(projector, str) and projector.startswith("mlp_"):
        try:
            _, n_in, n_out = projector.split("_")
            readout = Linear(int(n_in), int(n_out))
        except ValueError:
            raise CheckpointError(f"network.projector {projector!r} is not of the form mlp_<in>_<out>") from None
        if int(n_in) != circuit.slice(circuit.num_slices - 1).num_state:
            raise CheckpointError(f"network.projector {projector}: the last slice has a different node count")
        keys = {k: v for k, v in state.items() if k.startswith("projector.")}
        return readout, keys
    if isinstance(projector, str) and (projector.startswith("last") or projector.startswith("first")):
        return projector, {}
    raise CheckpointError(f"network.projector {projector!r} is not supported; use lastK, firstK, mlp_a_b or none")
