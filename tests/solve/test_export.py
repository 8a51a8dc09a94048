"""The traced fixed-step solve: torch.export and torch.compile of a kn.Network match the eager solve."""

from __future__ import annotations

import pytest
import torch

import kirchhoffnet as kn
from kirchhoffnet.circuit._kcl import DENSE_MAX_NODES
from kirchhoffnet.devices import Device, available
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.solve._traced import TABLEAUX, kcl_field, step_sizes
from kirchhoffnet.solve.solver import check_time_grid


class Square(Device):
    """A family that is not an affine activation: i = p·(v_src − v_dst)·|v_src − v_dst|."""

    param_names = ("gain",)

    def current(self, v_src: torch.Tensor, v_dst: torch.Tensor, p: object, scratch: bool = False) -> torch.Tensor:
        drop = v_src - v_dst
        return p[0] * drop * drop.abs()  # type: ignore[index]


del Device.registry[Square.__name__]  # defining it registered it: other tests iterate the registry


def _network(method: str = "rk4", step_size: float = 0.2, **circuit: object) -> kn.Network:
    """Two slices, five nodes then four (the node count changes), two device families."""
    torch.manual_seed(0)
    first = kn.Slice(kn.topology.fully_connect(num_nodes=5), "ShiftTanh2")
    second = kn.Slice(kn.topology.fully_connect(num_nodes=4), "ShiftRelu2")
    circuit_ = kn.Circuit([first, second], times=(0.0, 0.5, 1.0), **circuit)  # type: ignore[arg-type]
    return kn.Network(circuit_, solver={"method": method, "step_size": step_size})


@pytest.mark.parametrize("nodes", [4, DENSE_MAX_NODES + 4])  # dense products, then index_add
@pytest.mark.parametrize("family", [*available(), Square()], ids=str)
def test_traced_field_is_the_reference_kcl(family: str | Device, nodes: int) -> None:
    torch.manual_seed(1)
    capacitance = torch.rand(nodes - 1) + 0.5
    piece = kn.Slice(kn.topology.fully_connect(num_nodes=nodes), family, init="gauss", capacitance=capacitance)
    v = torch.randn(5, nodes - 1)
    torch.testing.assert_close(kcl_field(piece, v), piece.field(v.T.contiguous(), "gather").T, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("start", "end", "step"), [(0.0, 1.0, 0.3), (0.5, 1.0, 0.1), (0.0, 0.05, 0.1), (1.0, 3.0, 0.25)]
)
def test_steps_are_torchdiffeqs_grid(start: float, end: float, step: float) -> None:
    """The traced solve takes as many steps as the eager one (its stats count them), ending on the slice end."""
    piece = kn.Slice(kn.topology.fully_connect(num_nodes=3), "ShiftTanh2")
    circuit = kn.Circuit([piece], times=(start, end))
    _, stats = kn.simulate(circuit, torch.randn(2, 2), solver={"method": "euler", "step_size": step})
    steps = step_sizes(start, end, step, torch.float32)
    assert len(steps) == stats.nfe[0]
    assert sum(steps) == pytest.approx(end - start, rel=1e-6)


@pytest.mark.parametrize("method", list(TABLEAUX))
def test_exported_network_matches_eager(method: str) -> None:
    net = _network(method)
    x = torch.randn(6, 3)
    program = torch.export.export(net, (x,))
    with torch.no_grad():
        expected = net(x)
    assert net.stats is not None and net.stats.kernels[0] != ["traced"]  # the eager solve ran
    torch.testing.assert_close(program.module()(x), expected, rtol=0, atol=1e-6)


def test_export_keeps_residual_input_nodes_and_a_dynamic_batch() -> None:
    torch.manual_seed(2)
    pieces = [
        kn.Slice(kn.topology.fully_connect(num_nodes=4), family)
        for family in ("Conductance", "MosRelu", "ShiftLeakyRelu1")
    ]
    circuit = kn.Circuit(pieces, times=(0.0, 0.3, 0.6, 1.0), residual=(0, 2), input_nodes=(3, 1))
    net = kn.Network(circuit, readout="first1", solver={"method": "heun3", "step_size": 0.25})
    batch = torch.export.Dim("batch")
    program = torch.export.export(net, (torch.randn(4, 2),), dynamic_shapes={"x": {0: batch}})
    x = torch.randn(9, 2)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), net(x), rtol=0, atol=1e-6)


def test_export_in_float64() -> None:
    net = _network("midpoint", 0.3).double()
    x = torch.randn(3, 3, dtype=torch.float64)
    program = torch.export.export(net, (x,))
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), net(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("solver", "reason"),
    [
        ({"method": "dopri5"}, "adaptive method 'dopri5' chooses its step count"),
        ({"method": "implicit_adams", "step_size": 0.1}, "multistep method 'implicit_adams'"),
    ],
)
def test_untraceable_solvers_are_refused_by_export(solver: dict[str, object], reason: str) -> None:
    net = kn.Network(_network().circuit, solver=solver)
    with pytest.raises(ConfigError, match=reason):
        torch.export.export(net, (torch.randn(2, 3),))


def test_log_density_is_refused_by_export() -> None:
    class LogDensity(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.circuit = _network().circuit

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return kn.simulate_log_density(self.circuit, x, solver={"method": "euler", "step_size": 0.5})[1]

    with pytest.raises(ConfigError, match="only the forward solve"):
        torch.export.export(LogDensity(), (torch.randn(2, 3),))


def test_compile_traces_the_fixed_step_solve_whole() -> None:
    """fullgraph: no graph break anywhere in the fixed-step solve (the eager backend: dynamo's tracing only)."""
    net = _network("rk4", 0.25)
    compiled = torch.compile(net, backend="eager", fullgraph=True)
    x = torch.randn(5, 3)
    out = compiled(x)
    assert net.stats is not None and net.stats.kernels == [["traced"], ["traced"]]
    assert net.stats.nfe == [8, 8]  # two rk4 steps of four stages per slice
    out.sum().backward()  # backprop through the traced steps
    grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    net(x).sum().backward()
    torch.testing.assert_close(out, net(x), rtol=0, atol=1e-6)
    for traced, eager in zip(grads, (p.grad for p in net.parameters()), strict=True):
        torch.testing.assert_close(traced, eager, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("gradient", [kn.Adjoint(), kn.Backprop()])
def test_compile_falls_back_to_the_eager_solve(gradient: kn.Backprop | kn.Adjoint) -> None:
    """Adaptive solves and the adjoint run eagerly, outside the compiled graph, and give the eager numbers."""
    solver = {"method": "dopri5"} if isinstance(gradient, kn.Backprop) else {"method": "euler", "step_size": 0.5}
    net = kn.Network(_network().circuit, solver=solver, gradient=gradient)
    x = torch.randn(3, 3)
    out = torch.compile(net, backend="eager")(x)
    assert net.stats is not None and "traced" not in net.stats.kernels[0]
    torch.testing.assert_close(out, net(x))


@pytest.mark.slow
def test_inductor_compiled_network_matches_eager() -> None:
    net = _network("euler", 0.5)
    x = torch.randn(4, 3)
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(net)(x), net(x), rtol=0, atol=1e-6)


def test_onnx_export_runs_in_onnxruntime() -> None:
    ort = pytest.importorskip("onnxruntime", reason="ONNX needs the dev extra's onnx, onnxscript and onnxruntime")
    pytest.importorskip("onnxscript")
    net = _network("euler", 0.25)
    x = torch.randn(6, 3)
    program = torch.onnx.export(net, (x,), dynamo=True, verbose=False)
    assert program is not None
    session = ort.InferenceSession(program.model_proto.SerializeToString())
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(out), net(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_time_grid_check_rounds_in_dtypes_numpy_lacks_too(dtype: torch.dtype) -> None:
    solver = kn.Solver("euler", step_size=0.1)
    check_time_grid((0.0, 1.0), solver, dtype)
    with pytest.raises(ConfigError, match="zero length"):
        check_time_grid((1000.0, 1000.1), solver, dtype)
