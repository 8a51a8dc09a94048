"""Run configs: one model per task, with the training settings they share.

A YAML file names its ``task``; the matching class validates the rest. Cross-field checks
(topology against data dimension, readout against classes) live here, so that a bad config
fails before any data is read or any parameter is built.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from kirchhoffnet.config.circuit import (
    SEED_MAX,
    CircuitConfig,
    MixConnect,
    NeighborConnect,
    Section,
    SolverConfig,
    one_of,
    readout_outputs,
)
from kirchhoffnet.config.data import ClassifyData, ImageData, RegressionData
from kirchhoffnet.data.images import IMAGE_SETS
from kirchhoffnet.data.potentials import POTENTIALS
from kirchhoffnet.data.toy2d import TOY_SETS
from kirchhoffnet.hardware.aware import HardwareAwareConfig
from kirchhoffnet.io.paths import check_run_name
from kirchhoffnet.runtime import MAX_THREADS


class ScheduleConfig(Section):
    """Learning-rate schedule, stepped after every optimiser step."""

    name: Literal["cosine", "step", "none"] = Field("cosine", description="cosine annealing, step decay or constant.")
    eta_min: float = Field(0.0, ge=0, description="cosine: the final learning rate.")
    step_epochs: int = Field(10, ge=1, description="step: epochs between decays.")
    gamma: float = Field(0.5, gt=0, le=1, description="step: factor applied at each decay.")


class EarlyStoppingConfig(Section):
    """Stop when the validation loss has not improved for a while."""

    patience: int = Field(ge=1, description="Validations without improvement before stopping.")
    min_delta: float = Field(0.0, ge=0, description="Improvement smaller than this does not count.")
    restore_best: bool = Field(True, description="Keep the parameters of the best validation, not the last.")


class RailsConfig(Section):
    """Supply rails as a training penalty: a circuit built from transistors cannot take its nodes past
    its supply, so excursions are penalised where the solve reports voltages: at ``points`` evenly spaced times
    per slice, so that a node which leaves the rails mid-slice and returns by its end is penalised too."""

    low: float = Field(description="Lower rail in V.")
    high: float = Field(description="Upper rail in V.")
    weight: float = Field(1.0, gt=0, description="Weight of the penalty against the task's loss (per V²).")
    points: int = Field(
        9,
        ge=2,
        description="Times per slice, evenly spaced, ends included, at which node voltages are checked; 2: the ends "
        "only. Adaptive solvers interpolate the interior ones from their accepted steps (no extra field evaluation).",
    )

    @model_validator(mode="after")
    def _ordered(self) -> RailsConfig:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ValueError(f"rails: low must be below high, both finite, got low {self.low}, high {self.high}")
        return self


class TrainConfig(Section):
    """Optimisation: AdamW, schedule, clipping, validation, checkpoints, NaN policy."""

    epochs: int = Field(ge=1, description="Passes over the training set (or steps_per_epoch steps).")
    batch_size: int = Field(ge=1, description="Samples per optimiser step (per process under DDP).")
    lr: float = Field(gt=0, le=1e6, description="Peak learning rate of AdamW (above 1e6 no step is finite).")
    weight_decay: float = Field(0.0, ge=0, description="AdamW decoupled weight decay.")
    schedule: ScheduleConfig = Field(default_factory=lambda: ScheduleConfig(), description="Learning-rate schedule.")
    grad_clip: float | None = Field(None, gt=0, description="Clip the gradient's global norm to this; null: off.")
    steps_per_epoch: int | None = Field(
        None, ge=1, description="Steps per epoch; default one pass over the data (required without a data set)."
    )
    validate_every: int = Field(1, ge=1, description="Epochs between validations.")
    early_stopping: EarlyStoppingConfig | None = Field(None, description="Early stopping on validation; null: off.")
    checkpoint_every: int = Field(1, ge=1, description="Epochs between resumable checkpoints.")
    checkpoint_every_steps: int | None = Field(
        None, ge=1, description="Also checkpoint every this many steps inside an epoch (long epochs)."
    )
    on_nan: Literal["skip", "stop"] = Field("skip", description="A non-finite loss or gradient: skip the step or stop.")
    max_nan_skips: int = Field(20, ge=0, description="Consecutive skipped steps after which the run stops anyway.")
    eval_batch_size: int = Field(2000, ge=1, description="Samples per solver call in validation and evaluation.")
    init_from: str | None = Field(
        None,
        min_length=1,
        description="Start from the parameters of a trained model of the same structure: a run directory or its "
        "model.safetensors (fine-tuning, e.g. a classifier trained on a fixed step, under dopri5); everything else, "
        "the solver included, is this config's. A relative path is taken from the current directory.",
    )
    reference_solver: dict[str, Any] | None = Field(
        None,
        description="Also validate under the run's solver section with these keys changed, e.g. {method: dopri5} "
        "when training on a fixed step: each validation then reports reference_loss (and the task's other figures "
        "as reference_*) beside the trained solve's, so a network that learns to use the step's error shows it "
        "epoch by epoch; null: off.",
    )
    ema_decay: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="Keep an exponential moving average of the parameters with this decay; validation, the best "
        "model and the saved model use the average (diffusion: 0.999); null: off.",
    )

    rails: RailsConfig | None = Field(
        None,
        description="Keep node voltages within supply rails: the loss adds weight × the squared excursion below "
        "low or above high, summed over nodes and rails.points times per slice, averaged over the batch; null: off.",
    )

    @model_validator(mode="after")
    def _schedule_below_lr(self) -> TrainConfig:
        if self.schedule.name == "cosine" and self.schedule.eta_min > self.lr:
            raise ValueError(f"schedule.eta_min: must not exceed lr ({self.lr}), got {self.schedule.eta_min}")
        return self


class RunConfig(Section):
    """Settings every task shares."""

    task: str = Field(description="What the run trains.")
    name: str | None = Field(None, description="A label for reports (e.g. kirchhoffnet-small); default the task.")
    seed: int = Field(0, ge=0, le=SEED_MAX, description="Seed of initialisation, shuffling and sampling.")
    device: Literal["cpu", "cuda"] = Field("cpu", description="Where to train.")
    dtype: Literal["float32", "float64"] = Field("float32", description="Floating-point precision.")
    threads: int | None = Field(
        None,
        ge=1,
        le=MAX_THREADS,
        description="CPU threads of the run: the numba kernels' (torch stays on one: "
        "kirchhoffnet.runtime.use_threads); unset, the command's --threads applies.",
    )
    train: TrainConfig = Field(description="Optimisation settings.")
    hardware_aware: HardwareAwareConfig | None = Field(
        None,
        description=(
            "Hardware-aware training: every step runs on a fresh random die (mismatch, quantization); "
            "null: train the nominal circuit."
        ),
    )

    @model_validator(mode="after")
    def _reference_solvable(self) -> RunConfig:
        if self.train.reference_solver is not None:
            reference_solver(self)
        return self

    @field_validator("name")
    @classmethod
    def _one_path_component(cls, name: str | None) -> str | None:
        """The name is the default run directory ``runs/<name>``: it must stay one component inside ``runs/``."""
        return None if name is None else check_run_name(name)

    @property
    def label(self) -> str:
        return self.name or self.task


def reference_solver(config: RunConfig) -> SolverConfig:
    """The solver section with ``train.reference_solver``'s keys changed."""
    return changed_solver(config, config.train.reference_solver or {}, "train.reference_solver")


def changed_solver(config: RunConfig, changes: dict[str, Any], where: str) -> SolverConfig:
    """The run's solver section with ``changes`` applied and validated, errors keyed by ``where`` (the setting
    that asked for them); a model without an ODE solve has no solver to change."""
    solver, baseline = getattr(config, "solver", None), getattr(config, "baseline", None)
    if not isinstance(solver, SolverConfig) or isinstance(baseline, MlpConfig):
        raise ValueError(f"{where}: this run's model has no ODE solve to change")
    try:
        section = SolverConfig.model_validate({**solver.model_dump(), **changes})
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"])
        raise ValueError(f"{where}{'.' + key if key else ''}: {error['msg'].removeprefix('Value error, ')}") from None
    if isinstance(baseline, OdeNetConfig):
        _solver_for_baseline(section, where)
    return section


def _check_flow(circuit: CircuitConfig, dim: int, what: str) -> None:
    widths = set(circuit.widths)
    if widths != {dim}:
        raise ValueError(
            f"circuit.topology: {what} needs {dim} state nodes in every slice (num_nodes {dim + 1} with ground), "
            f"the topology gives {sorted(widths)}"
        )
    if circuit.residual is not None:
        raise ValueError("circuit.residual: a flow must be invertible and cannot have a residual")


class Toy2dData(Section):
    """Samples of a 2-D toy distribution."""

    name: Annotated[str, one_of(TOY_SETS)] = Field(description=f"One of {', '.join(TOY_SETS)}.")
    train_size: int = Field(4096, ge=1, description="Training points (drawn once).")
    val_size: int = Field(2000, ge=1, description="Validation points.")
    test_size: int = Field(10_000, ge=1, description="Held-out points for the final NLL.")
    seed: int = Field(0, ge=0, le=SEED_MAX, description="Seed of the data draws (separate from the run's seed).")


class Flow2dConfig(RunConfig):
    """Continuous normalizing flow on a 2-D toy distribution, trained by maximum likelihood."""

    task: Literal["flow2d"] = Field(description="2-D generation with a CNF.")
    data: Toy2dData = Field(description="The distribution and sample counts.")
    circuit: CircuitConfig = Field(description="The circuit (2 state nodes per slice).")
    solver: SolverConfig = Field(default_factory=lambda: SolverConfig(), description="Solver settings.")
    grid: int = Field(150, ge=10, description="Points per axis of the density map.")

    @model_validator(mode="after")
    def _two_dimensional(self) -> Flow2dConfig:
        _check_flow(self.circuit, 2, "a 2-D flow")
        return self


class DensityConfig(RunConfig):
    """A flow matched to an unnormalised 2-D density exp(−U) by reverse KL."""

    task: Literal["density"] = Field(description="Density matching.")
    potential: Annotated[str, one_of(POTENTIALS)] = Field(description=f"Target energy: {', '.join(POTENTIALS)}.")
    val_samples: int = Field(4096, ge=1, description="Base samples of the validation KL estimate.")
    test_samples: int = Field(20_000, ge=1, description="Base samples of the final KL estimate.")
    extent: float = Field(4.0, gt=0, description="Heat maps cover [-extent, extent]^2.")
    grid: int = Field(150, ge=10, description="Points per axis of the heat maps.")
    circuit: CircuitConfig = Field(description="The circuit (2 state nodes per slice).")
    solver: SolverConfig = Field(default_factory=lambda: SolverConfig(), description="Solver settings.")

    @model_validator(mode="after")
    def _two_dimensional(self) -> DensityConfig:
        _check_flow(self.circuit, 2, "density matching in 2-D")
        if self.train.steps_per_epoch is None:
            raise ValueError("train.steps_per_epoch: density matching has no data set; give the steps per epoch")
        return self


class MlpConfig(Section):
    """A multilayer perceptron baseline."""

    hidden: list[int] = Field(min_length=1, description="Hidden layer widths.")
    activation: Literal["relu", "tanh"] = Field("relu", description="Hidden activation.")

    @field_validator("hidden")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if min(value) < 1:
            raise ValueError(f"layer widths must be positive, got {value}")
        return value


def check_features(name: str, features: int, circuit: CircuitConfig) -> None:
    """The inputs must fit on the first slice's state nodes (the housing CSV is checked once read)."""
    if features > circuit.widths[0]:
        raise ValueError(
            f"circuit.topology: {name} has {features} features but the first slice has {circuit.widths[0]} state nodes"
        )


class RegressionConfig(RunConfig):
    """Tabular regression: a KirchhoffNet (circuit + readout) or an MLP baseline, MSE loss."""

    task: Literal["regression"] = Field(description="Regression.")
    data: RegressionData = Field(description="The data set.")
    circuit: CircuitConfig | None = Field(None, description="The KirchhoffNet; inputs on the first nodes.")
    readout: Any = Field("last1", description="Output node(s): lastK / firstK / {name: linear, ...}.")
    solver: SolverConfig = Field(default_factory=lambda: SolverConfig(), description="Solver settings.")
    baseline: MlpConfig | None = Field(None, description="Train this MLP instead of a circuit.")

    @model_validator(mode="after")
    def _one_model(self) -> RegressionConfig:
        if (self.circuit is None) == (self.baseline is None):
            raise ValueError("give exactly one of circuit (a KirchhoffNet) or baseline (an MLP)")
        if self.baseline is not None and self.hardware_aware is not None:
            raise ValueError("hardware_aware: an MLP baseline has no devices to vary; remove the section")
        if self.circuit is not None:
            outputs = readout_outputs(self.readout)
            if outputs != 1:
                raise ValueError(f"readout: regression predicts 1 value, the readout gives {outputs or 'all nodes'}")
            if self.data.num_features is not None:
                check_features(self.data.label, self.data.num_features, self.circuit)
        return self


def check_image_topology(circuit: CircuitConfig, shape: tuple[int, int, int], what: str, downsample: int) -> None:
    """Image topologies must be over the images' (channels, height, width), and the pixels fit the first slice."""
    for k, topology in enumerate(circuit.slice_topologies()):
        if isinstance(topology, MixConnect | NeighborConnect) and topology.image_shape != shape:
            raise ValueError(
                f"circuit.topology: slice {k} is {topology.name} over {topology.image_shape} (channels, height, width) "
                f"but {what} images are {shape} after downsample {downsample}"
            )
    pixels = shape[0] * shape[1] * shape[2]
    if pixels > circuit.widths[0]:
        raise ValueError(
            f"circuit.topology: {what} images have {pixels} pixels but the first slice has only "
            f"{circuit.widths[0]} state nodes"
        )


def _check_image_topology(circuit: CircuitConfig, data: ImageData) -> None:
    check_image_topology(circuit, data.shape, str(data.name), data.downsample)


class OdeNetConfig(Section):
    """An ODE-Net baseline (Chen et al., 2018): a convolutional stem, one ODE block solved with the run's ``solver``
    settings, average pooling and a linear layer to the classes."""

    channels: int = Field(64, ge=1, description="Feature maps of the stem and the ODE block (the width).")
    downsamplings: int = Field(
        2, ge=0, le=8, description="Stride-2 convolutions of the stem (Chen et al.: 2, 28x28 to 7x7)."
    )
    t_end: float = Field(1.0, gt=0, le=1e3, description="The ODE block integrates t from 0 to t_end.")


def _solver_for_baseline(solver: SolverConfig, key: str = "solver") -> None:
    """The KCL kernel and the fused integrator are circuit machinery: a baseline's field has neither."""
    if solver.kernel != "auto" or solver.integrator == "fused":
        raise ValueError(
            f"{key}: kernel and integrator 'fused' apply to circuits; the ODE-Net baseline is solved by "
            "torchdiffeq (remove them)"
        )


class ClassifyConfig(RunConfig):
    """Image classification with a circuit (pixels as initial voltages, logits read off hidden nodes) or an
    ODE-Net baseline."""

    task: Literal["classify"] = Field(description="Image classification.")
    data: ClassifyData = Field(description="The data set.")
    circuit: CircuitConfig | None = Field(None, description="The circuit, typically mix_connect.")
    readout: Any = Field("last10", description="Logit nodes: lastK / firstK / {name: linear, ...}.")
    solver: SolverConfig = Field(default_factory=lambda: SolverConfig(), description="Solver settings.")
    baseline: OdeNetConfig | None = Field(None, description="Train this ODE-Net instead of a circuit.")

    @model_validator(mode="after")
    def _shapes(self) -> ClassifyConfig:
        if (self.circuit is None) == (self.baseline is None):
            raise ValueError("give exactly one of circuit (a KirchhoffNet) or baseline (an ODE-Net)")
        if self.baseline is not None:
            return self._check_baseline(self.baseline)
        assert self.circuit is not None  # exactly one of the two
        outputs = readout_outputs(self.readout)
        if self.data.name is None:  # the images' shape and labels are checked once read
            if outputs is None:
                raise ValueError("readout: give the number of classes, e.g. last3 (a file's labels are 0..K-1)")
            return self
        _check_image_topology(self.circuit, self.data)
        classes = IMAGE_SETS[self.data.name].num_classes
        if outputs != classes:
            raise ValueError(f"readout: {self.data.name} has {classes} classes, the readout gives {outputs or 'all'}")
        return self

    def _check_baseline(self, baseline: OdeNetConfig) -> ClassifyConfig:
        if self.hardware_aware is not None:
            raise ValueError("hardware_aware: an ODE-Net baseline has no devices to vary; remove the section")
        if self.data.name is None:
            raise ValueError("baseline: the ODE-Net trains on a named image set (data.name), not the user's own files")
        _solver_for_baseline(self.solver)
        _, h, w = self.data.shape
        if min(h, w) < 2**baseline.downsamplings:
            raise ValueError(
                f"baseline.downsamplings: {baseline.downsamplings} stride-2 convolutions need images of at least "
                f"{2**baseline.downsamplings} pixels a side; {self.data.name} after downsample "
                f"{self.data.downsample} is {h}x{w}"
            )
        return self


class GenImageData(ImageData):
    """Images for a generative flow: optionally one split only, selected digits, dequantised."""

    name: Literal["mnist", "fashion_mnist"] = Field(description="Data set.")
    split: Literal["train", "test"] = Field(
        "train", description="Split to learn from; 'test' holds out test_fraction of it (offline MNIST has only test)."
    )
    digits: list[int] | None = Field(None, description="Keep only these classes (the original used [2]).")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="split=test: share held out for evaluation.")
    val_size: int = Field(256, ge=1, description="Training images held out for validation.")

    @field_validator("digits")
    @classmethod
    def _digits(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or not all(0 <= d <= 9 for d in value)):
            raise ValueError(f"digits must be classes 0..9, got {value}")
        return value


class MnistGenConfig(RunConfig):
    """A flow over whole images (784-d for MNIST), trained by maximum likelihood; reports bits/dim."""

    task: Literal["mnist_gen"] = Field(description="Image generation.")
    data: GenImageData = Field(description="The data set.")
    circuit: CircuitConfig = Field(description="The circuit: one state node per pixel in every slice.")
    solver: SolverConfig = Field(default_factory=lambda: SolverConfig(), description="Solver settings.")
    grid: int = Field(8, ge=1, description="The sample grid is grid x grid images.")

    @model_validator(mode="after")
    def _pixels(self) -> MnistGenConfig:
        _check_image_topology(self.circuit, self.data)
        c, h, w = self.data.shape
        _check_flow(self.circuit, c * h * w, f"a flow over {c}x{h}x{w} images")
        return self
