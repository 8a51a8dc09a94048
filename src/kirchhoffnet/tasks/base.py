"""What a training run is for: the interface every task implements, and helpers they share.

A task owns its data, builds its model, defines the loss the trainer minimises, validates and
finally evaluates (metrics and plots). The trainer ([`kirchhoffnet.training`][kirchhoffnet.training]) owns everything
else: optimiser, schedule, checkpoints, resume, distribution.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

import kirchhoffnet.io as kio
from kirchhoffnet import checkpoint
from kirchhoffnet._progress import bar
from kirchhoffnet.config import RunConfig
from kirchhoffnet.data.supplied import WHOLE, Pair, fingerprint
from kirchhoffnet.errors import CheckpointError, ConfigError, shown
from kirchhoffnet.io.paths import prepare_out_dir
from kirchhoffnet.models import Flow, Network
from kirchhoffnet.models.baselines import MLP, Baseline, ODENet, load_baseline, save_baseline

CONFIG_FILE = "the run's config.yaml"
"""What a saved model is cross-checked against, as errors name it."""


def batched(fn: Callable[[Tensor], Tensor], x: Tensor, batch: int, label: str = "", progress: bool = False) -> Tensor:
    """``fn`` applied batch by batch (bounded memory), outputs concatenated."""
    starts = bar(range(0, len(x), batch), desc=label, unit="batch", enabled=progress, leave=False)
    return torch.cat([fn(x[s : s + batch]) for s in starts])


def solve_nfe(model: nn.Module) -> tuple[int, int]:
    """(forward, backward) right-hand-side evaluations of the model's last solve, summed over slices;
    (0, 0) for a model that solves no ODE (an MLP baseline) or has not solved yet."""
    if not isinstance(model, Flow | Network | ODENet) or model.stats is None:
        return 0, 0
    return sum(model.stats.nfe), sum(model.stats.nfe_backward)


class Task(ABC):
    """One kind of training run. Subclasses set `primary` and implement the abstract methods
    ([`build_model`][kirchhoffnet.tasks.Task.build_model], [`loss`][kirchhoffnet.tasks.Task.loss],
    [`validate`][kirchhoffnet.tasks.Task.validate], [`evaluate`][kirchhoffnet.tasks.Task.evaluate]), so that a task
    missing one fails when it is constructed rather than midway through a run.

    Attributes:
        primary: the key of [`evaluate`][kirchhoffnet.tasks.Task.evaluate]'s result that reports compare (lower or
            higher is better per `higher_is_better`).
        train_data: the fixed training tensors that [`prepare`][kirchhoffnet.tasks.Task.prepare] loads, indexed together
            (inputs, or inputs and targets); empty for tasks that draw fresh samples every step.
    """

    primary: ClassVar[str]
    higher_is_better: ClassVar[bool] = False

    def __init__(
        self,
        config: Any,
        device: torch.device,
        dtype: torch.dtype,
        run_dir: Path | None = None,
        progress: bool = False,
        supplied: dict[str, Pair] | None = None,
    ) -> None:
        self.config = config
        self.device = device
        self.dtype = dtype
        self.run_dir = run_dir  # where a task keeps what it prepares once per run (a diffusion run's VAE)
        self.progress = progress
        self.supplied = supplied  # kn.train(config, data=...)'s arrays (data.source memory)
        self.train_data: tuple[Tensor, ...] = ()
        self.data_fingerprint: dict[str, Any] | None = None  # of a user's own data, once prepared

    @classmethod
    def variant(cls, config: Any) -> type[Task]:
        """The class that runs ``config``: a task whose configs select a specialised variant says so here."""
        return cls

    @property
    def run_config(self) -> RunConfig:
        return self.config

    def prepare(self) -> None:  # noqa: B027  (an optional hook: a task with no data to load keeps it)
        """Load or draw the data (once per process)."""

    def own_data(self, read: Callable[[], dict[str, Pair]], check: Callable[[Any, Any, str], Pair]) -> dict[str, Pair]:
        """The user's data of a ``file`` or ``memory`` source, checked by ``check`` and fingerprinted.

        Args:
            read: reads the file (``{"all": (x, y)}``).
            check: the task's checks of a supplied pair of arrays, naming where they came from.
        """
        source, path = self.config.data.source, self.config.data.path
        if source == "file":
            parts = read()
        elif self.supplied is None:
            raise ConfigError(
                "data.source is memory: the data live in Python; train or resume with kn.train(config, data=...)"
            )
        else:
            parts = {k: check(x, y, "data" if k == WHOLE else f"data[{k!r}]") for k, (x, y) in self.supplied.items()}
        self.data_fingerprint = {"source": source, "path": path, "arrays": fingerprint(parts)}
        return parts

    @property
    def train_size(self) -> int | None:
        """Training examples, or ``None`` for tasks that draw fresh samples every step."""
        return len(self.train_data[0]) if self.train_data else None

    def batch(self, indices: Tensor | None, generator: torch.Generator) -> Any:
        """Rows ``indices`` of `train_data`: one tensor, or a tuple such as (x, y); None for data-free tasks."""
        if not self.train_data:
            return None
        rows = tuple(t[indices] for t in self.train_data)
        return rows[0] if len(rows) == 1 else rows

    @abstractmethod
    def build_model(self) -> nn.Module:
        """A fresh, untrained model as the run's config describes it."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: Any, generator: torch.Generator) -> Tensor:
        """Scalar loss of one training batch; ``generator`` drives any sampling it needs."""

    @abstractmethod
    def validate(self, model: nn.Module) -> dict[str, float]:
        """Validation metrics without gradients; ``loss`` drives early stopping (lower is better)."""

    @abstractmethod
    def evaluate(self, model: nn.Module, out_dir: Path, progress: bool = False) -> dict[str, Any]:
        """Final metrics on held-out data; writes the task's plots into ``out_dir``."""

    def test_data(self) -> tuple[Tensor, Tensor | None]:
        """The held-out inputs that [`evaluate`][kirchhoffnet.tasks.Task.evaluate] scores, and their targets (``None``
        for a flow's points), in the run's dtype; studies of the trained model (hardware) score the same data."""
        raise ConfigError(f"task {self.run_config.task!r} has no held-out test set to score a model on")

    def sampling_refusal(self) -> ConfigError | None:
        """Why ``kirchhoffnet sample`` cannot draw from this task's models (None: it can), asked before
        anything is written."""
        return ConfigError(
            f"task {self.run_config.task!r} is not generative; sampling needs a flow2d, density or mnist_gen run"
        )

    def sample(self, model: nn.Module, n: int, generator: torch.Generator, out_dir: Path) -> dict[str, Any]:
        """Draw ``n`` samples, write them (``samples.npy`` and a plot) to ``out_dir``."""
        raise self.sampling_refusal() or ConfigError(f"task {self.run_config.task!r} does not implement sampling")

    def save_model(self, model: nn.Module, path: Path, metadata: dict[str, Any]) -> Path:
        return checkpoint.save(model, path, metadata)  # type: ignore[arg-type]

    def load_model(self, path: Path) -> nn.Module:
        """The model saved by `save_model`, rebuilt from the file's own spec
        ([`kirchhoffnet.checkpoint.build`][kirchhoffnet.checkpoint.build], every tensor checked by the module it enters)
        in the run's dtype. The run's config is only cross-checked: the file's tensor names and shapes first
        (so the error names the tensor that differs), then the rebuilt model
        ([`check_saved`][kirchhoffnet.tasks.Task.check_saved])."""
        spec, tensors, _ = kio.read_tensors(path)
        try:
            checkpoint.check_kind(spec)
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
        expected = self.build_model()
        kio.check_names_and_shapes(expected.state_dict(), tensors, str(path), CONFIG_FILE)
        model = checkpoint.rebuild(spec, tensors, path)
        self.check_saved(model, expected, path)
        return model.to(self.dtype)

    def check_saved(self, model: nn.Module, expected: nn.Module, path: Path) -> None:
        """Refuse a saved ``model`` that is not the one the run's config describes (``expected``, from
        [`build_model`][kirchhoffnet.tasks.Task.build_model]): another structure (kind, devices, readout, solver, times:
        the specs differ) or another topology or capacitance (the buffers differ). Raises
        [`CheckpointError`][kirchhoffnet.errors.CheckpointError] naming the first difference."""
        different = first_difference(_spec(model), _spec(expected))
        if different is not None:
            key, saved, configured = different
            raise CheckpointError(
                f"{path} does not match {CONFIG_FILE}: spec.{key} is {shown(saved, 80)} in the checkpoint "
                f"but {shown(configured, 80)} in the config"
            )
        state = model.state_dict()
        kio.check_names_and_shapes(expected.state_dict(), state, str(path), CONFIG_FILE)
        buffer = kio.differing_buffer(expected, state)
        if buffer is not None:
            raise CheckpointError(f"{path} does not match {CONFIG_FILE}: its {buffer} differs from the config's")

    def tensor(self, array: np.ndarray | Tensor) -> Tensor:
        """Data in the run's dtype on the run's device."""
        return torch.as_tensor(array).to(device=self.device, dtype=self.dtype)

    @property
    def eval_batch(self) -> int:
        return int(self.run_config.train.eval_batch_size)


class FlowTask(Task):
    """Tasks whose model is a [`Flow`][kirchhoffnet.Flow] built from the config's circuit and solver."""

    def build_model(self) -> nn.Module:
        solver = self.config.solver
        return Flow(self.config.circuit.build(), solver.build(), solver.build_gradient())

    def draw_batches(self, model: nn.Module, n: int, generator: torch.Generator) -> Iterator[Tensor]:
        """``n`` model samples as CPU tensors of up to ``eval_batch_size`` rows, drawn one batch at a
        time so that memory never holds more than one batch (the draws depend on the batch size)."""
        flow: Flow = model  # type: ignore[assignment]
        for start in range(0, n, self.eval_batch):
            z = torch.randn(min(self.eval_batch, n - start), flow.dim, generator=generator, dtype=self.dtype)
            with torch.no_grad():
                yield flow.sample(z.to(self.device)).cpu()

    def draw(self, model: nn.Module, n: int, generator: torch.Generator) -> Tensor:
        """``n`` model samples as one CPU tensor: for small ``n`` (plots); ``sample`` streams."""
        return torch.cat(list(self.draw_batches(model, n, generator)))

    def write_samples(
        self,
        model: nn.Module,
        n: int,
        generator: torch.Generator,
        out_dir: Path,
        keep: int,
        transform: Callable[[Tensor], Tensor] = lambda x: x,
    ) -> tuple[Path, np.ndarray]:
        """Stream ``n`` samples (each batch through ``transform``) into ``out_dir/samples.npy``.

        Returns:
            The file, and its first ``keep`` rows (for a plot), read back from disk.
        """
        flow: Flow = model  # type: ignore[assignment]
        drawn = bar(self.draw_batches(model, n, generator), desc="sample", unit="batch", total=-(-n // self.eval_batch))
        batches = (transform(batch).numpy() for batch in drawn)
        path = kio.save_npy_batches_atomic(out_dir / "samples.npy", (n, flow.dim), batches)
        return path, np.array(np.load(path, mmap_mode="r")[:keep])


class NetworkTask(Task):
    """Tasks whose model is a [`Network`][kirchhoffnet.Network] (circuit, readout, solver), or the digital baseline
    of the config's ``baseline`` section, saved by `save_baseline` and cross-checked against the config on load."""

    def build_model(self) -> nn.Module:
        if self.config.baseline is not None:
            return self.build_baseline()
        solver = self.config.solver
        return Network(self.config.circuit.build(), self.config.readout, solver.build(), solver.build_gradient())

    def build_baseline(self) -> Baseline:
        """A fresh baseline as the config's ``baseline`` section describes it."""
        raise ConfigError(f"task {self.run_config.task!r} has no digital baseline")

    def baseline_settings(self) -> tuple[type[Baseline], dict[str, Any]]:
        """The baseline's family and the settings of its checkpoint that the config fixes."""
        raise ConfigError(f"task {self.run_config.task!r} has no digital baseline")

    def save_model(self, model: nn.Module, path: Path, metadata: dict[str, Any]) -> Path:
        if isinstance(model, MLP | ODENet):
            return save_baseline(model, path, metadata)
        return super().save_model(model, path, metadata)

    def load_model(self, path: Path) -> nn.Module:
        """A baseline is rebuilt from its header's settings, which must be the config's; a circuit as every task's."""
        if self.config.baseline is None:
            return super().load_model(path)
        kind, configured = self.baseline_settings()
        model = load_baseline(path, kind)
        for key, value in configured.items():
            if model.settings[key] != value:
                raise CheckpointError(
                    f"{path} does not match {CONFIG_FILE}: its {kind.family} has {key} "
                    f"{model.settings[key]}, the config {value}"
                )
        if isinstance(model, ODENet):  # the solve is the run's, not the checkpoint's
            model.solver, model.gradient = self.config.solver.build(), self.config.solver.build_gradient()
        return model.to(self.dtype)

    def predict(self, model: nn.Module, x: Tensor) -> Tensor:
        """Model outputs for every row of ``x``, batch by batch, without gradients."""
        with torch.no_grad():
            return batched(model, x, self.eval_batch)


def _spec(model: nn.Module) -> Any:
    """A model's structure as its checkpoint stores it, through JSON (tuples become lists)."""
    spec = model.spec()  # type: ignore[operator]
    return json.loads(json.dumps(spec if "kind" in spec else {"kind": "circuit", "circuit": spec}))


def first_difference(a: Any, b: Any, prefix: str = "") -> tuple[str, Any, Any] | None:
    """The first dotted key (in key order) where two JSON documents differ, with both values; None if equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            found = first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
            if found is not None:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for k, (x, y) in enumerate(zip(a, b, strict=True)):
            found = first_difference(x, y, f"{prefix}{k}.")
            if found is not None:
                return found
        return None
    return None if a == b else (prefix.rstrip(".") or "(root)", a, b)


def out_path(out_dir: str | os.PathLike[str], name: str) -> Path:
    return prepare_out_dir(out_dir) / name
