"""YAML configuration of a diffusion run, validated by pydantic (unknown keys are errors)."""

from __future__ import annotations

import math
import os
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kirchhoffnet.config.budget import check_diffusion
from kirchhoffnet.data.images import IMAGE_SETS
from kirchhoffnet.diffusion.ring import POINT_SETS
from kirchhoffnet.diffusion.sde import VPSDE
from kirchhoffnet.diffusion.train import TrainSettings
from kirchhoffnet.errors import ConfigError, clip, unknown_choice
from kirchhoffnet.rram.device import RRAMDevice
from kirchhoffnet.rram.loop import LoopSettings
from kirchhoffnet.yamlfile import apply_overrides, read_yaml_mapping

MAX_INTEGRATED_BETA = math.log(float(np.finfo(np.float32).max))
"""Largest ∫₀¹β (with the samplers' β scale) whose exp() float32 still represents (≈ 88.7): the
marginals use exp(−∫β) and the samplers its inverse, so beyond it every sampler overflows."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SDEConfig(_Strict):
    beta_min: float = Field(default=0.01, gt=0, description="β at diffusion time s = 0.")
    beta_max: float = Field(
        default=8.0, gt=0, description="β at s = 1; ∫β ≈ β_max / 2 should reach ≳ 3 so x_1 ≈ N(0, I)."
    )
    s_min: float = Field(
        default=1e-3, gt=0, lt=1, description="Smallest diffusion time (training and end of sampling)."
    )

    @model_validator(mode="after")
    def _representable(self) -> SDEConfig:
        if self.beta_max < self.beta_min:
            raise ValueError(f"beta_max ({self.beta_max:g}) must not be below beta_min ({self.beta_min:g})")
        total = 0.5 * (self.beta_min + self.beta_max)
        if total > MAX_INTEGRATED_BETA:
            raise ValueError(
                f"∫β = (beta_min + beta_max)/2 = {total:.3g} overflows the samplers: exp(∫β) must stay below "
                f"float32's largest value, i.e. ∫β <= {MAX_INTEGRATED_BETA:.1f}; lower beta_max (∫β ≈ 4 already "
                "makes x_1 ≈ N(0, I))"
            )
        return self

    def build(self) -> VPSDE:
        return VPSDE(self.beta_min, self.beta_max, self.s_min)


class ModelConfig(_Strict):
    kind: Literal["crossbar", "kirchhoffnet"] = Field(
        default="crossbar",
        description="crossbar: the paper's ReLU score network on RRAM crossbars; kirchhoffnet: a KirchhoffNet "
        "circuit whose node dynamics are the probability-flow velocity (settings in the 'circuit' section).",
    )
    width: int = Field(
        default=14, ge=2, description="Hidden width (14 in the paper: 7 embedding frequencies, sin and cos)."
    )
    amplitude: float = Field(default=5.0, gt=0, description="Fixed output gain of the network (5 in the paper).")
    parametrization: Literal["score", "noise"] = Field(
        default="noise", description="score: the output is the score (the paper); noise: it predicts the added noise."
    )
    noise_floor: float = Field(
        default=0.04, ge=0, description="Noise parametrization: score = −output / √(σ² + floor²)."
    )
    bias: bool = Field(default=True, description="Layers with biases (one extra crossbar row each).")
    frequency_scale: float = Field(
        default=1.0, gt=0, description="Standard deviation of the time-embedding frequencies."
    )


class CircuitConfig(_Strict):
    """The KirchhoffNet score circuit (model.kind: kirchhoffnet); see kirchhoffnet.diffusion.score_circuit."""

    hidden: int = Field(default=32, ge=1, description="Hidden nodes (capacitors with a leak to ground).")
    time_nodes: int = Field(
        default=8, ge=2, description="Driven time nodes: voltage sources carrying sin/cos of the diffusion time."
    )
    repeat: int = Field(default=2, ge=1, description="Parallel devices per data–hidden node pair.")
    device: str = Field(default="ShiftTanh2", description="Device family of the learnable edges.")
    leak: float = Field(default=1.0, gt=0, description="Leak conductance g of every hidden node (normalised).")
    settle_steps: int = Field(
        default=5,
        ge=1,
        description="Relaxation steps h ← I_h/g from h = 0 that settle the hidden nodes (passive: at most, Newton).",
    )
    frequency_scale: float = Field(default=1.0, gt=0, description="Std of the time-embedding frequencies.")
    init_scale: float = Field(default=1.0, gt=0, description="Initial device parameters ~ N(0, init_scale²).")
    contraction: float | None = Field(
        default=0.5,
        gt=0,
        lt=1,
        description="Bound ρ on the hidden nodes' loop gain (unique equilibrium, settle error ≤ ρⁿ); null = none.",
    )
    passive: bool = Field(
        default=False,
        description=(
            "Hidden terminals as loads (gain ≤ 0): unique equilibrium at any gain, solved by Newton in at most "
            "settle_steps steps; needs contraction: null."
        ),
    )

    @model_validator(mode="after")
    def _consistent(self) -> CircuitConfig:
        if self.time_nodes % 2:
            raise ValueError(f"time_nodes must be even (sin and cos per frequency), got {self.time_nodes}")
        if self.passive and self.contraction is not None:
            raise ValueError("passive hidden terminals replace the contraction bound; set contraction: null")
        return self


class NoiseAwareConfig(_Strict):
    std: float = Field(
        default=0.1, gt=0, description="Std of the multiplicative weight noise during training (paper: 0.1)."
    )
    limit: float = Field(default=0.2, gt=0, description="The noise is clipped to ± this (paper: 0.2).")
    draws: int = Field(
        default=1, ge=1, description="Independent noise draws per step, each on its own share of the batch."
    )


class TrainConfig(_Strict):
    steps: int = Field(default=40_000, ge=1, description="Adam steps.")
    batch_size: int = Field(default=1024, ge=1, description="Points per step.")
    lr: float = Field(default=3e-3, gt=0, description="Initial learning rate (cosine decay).")
    lr_final_ratio: float = Field(default=0.01, gt=0, le=1, description="Final over initial learning rate.")
    weight_decay: float = Field(default=0.0, ge=0, description="Adam L2 penalty.")
    ema_decay: float = Field(default=0.999, ge=0, lt=1, description="EMA of the weights; the EMA is what is saved.")
    grad_clip: float = Field(default=1.0, gt=0, description="Largest gradient norm per step.")
    time_power: float = Field(default=1.0, gt=0, description="Training times s = s_min + (1 − s_min) u^p, u ~ U(0, 1).")
    noise_aware: NoiseAwareConfig | None = Field(
        default=None, description="Multiplicative weight noise during training; null = plain."
    )
    label_dropout: float = Field(
        default=0.1, ge=0, lt=1, description="Conditional task: probability of dropping a label (CFG)."
    )
    init_from: str | None = Field(
        default=None,
        description="Ring task: a run directory whose score model starts the training (fine-tuning); null = fresh.",
    )

    def settings(self) -> TrainSettings:
        noise = self.noise_aware
        return TrainSettings(
            **self.model_dump(exclude={"noise_aware", "init_from"}),
            noise_std=noise.std if noise else 0.0,
            noise_limit=noise.limit if noise else 0.2,
            noise_draws=noise.draws if noise else 1,
        )


class SampleConfig(_Strict):
    steps: int = Field(default=10_000, ge=1, description="Euler steps of the digital samplers (10,000 in the paper).")
    ode_beta_scale: float = Field(
        default=1.0,
        gt=0,
        description="Probability-flow solvers sample with β × this (paper: 2 uncond., 1.5 cond.); 1 = exact.",
    )
    sde_score_gain: float = Field(
        default=1.0, gt=0, description="Reverse-SDE solvers sample with the score × this (sharper for > 1); 1 = exact."
    )
    guidance: float = Field(default=0.0, description="Classifier-free guidance strength w used by `sample`.")


class EvaluateConfig(_Strict):
    num_samples: int = Field(default=10_000, ge=1, description="Samples per KL estimate.")
    reference_seed: int = Field(default=12345, description="Seed of the reference data the samples are compared with.")
    prog_noise_levels: list[float] = Field(
        default=[0.0, 0.05, 0.1, 0.2], description="Programming-noise σ of the robustness curve."
    )
    chips: int = Field(default=3, ge=1, description="Chips (seeds) averaged per noise level.")
    robustness_solver: Literal["euler", "pf-ode", "analog", "analog-ode"] = Field(
        default="analog", description="Solver of the KL-vs-programming-noise curve."
    )
    robustness_steps: int = Field(default=2_000, ge=1, description="Solver steps of the robustness curve's runs.")
    verify_tolerance: float | None = Field(
        default=None,
        gt=0,
        description="Also draw the curve with write-verified programming at this relative tolerance; null = skip.",
    )
    guidance_sweep: list[float] = Field(
        default=[0.0, 0.5, 1.0, 2.0, 4.0], description="Conditional task: guidance strengths."
    )


class LatentConfig(_Strict):
    dataset: Literal["fashion_mnist", "mnist", "emnist"] = Field(default="fashion_mnist", description="Image set.")
    data_dir: str | None = Field(
        default=None, description="Directory of the IDX files; null = the data set's default place."
    )
    classes: list[int] | None = Field(
        default=None, description="Class labels to generate (≥ 2); null = the data set's default three."
    )
    image_size: int = Field(default=12, ge=4, le=28, description="Images are resized to this many pixels per side.")
    latent_scale: float = Field(
        default=0.125, gt=0, description="Latents are multiplied by this before diffusion (paper: 1/8)."
    )
    prior_radius: float = Field(
        default=4.0, gt=0, description="Class prior centres lie on a circle of this radius (paper: 4)."
    )
    vae_epochs: int = Field(default=20, ge=1, description="Epochs of VAE training.")
    vae_kl_weight: float = Field(
        default=3.0, gt=0, description="Weight of the KL term towards the class prior (paper: 3)."
    )
    classifier_epochs: int = Field(default=5, ge=1, description="Epochs of the judging classifier's training.")
    max_train_images: int | None = Field(
        default=None, ge=1, description="Use at most this many training images (speed)."
    )


class DiffusionConfig(_Strict):
    """One diffusion experiment: the task, the model, its training, sampling and evaluation, and the hardware."""

    task: str = Field(
        default="ring",
        description=(
            "ring: the 2-D ring; a 2-D flow data set (twomoon, 8gaussians, pinwheel, ...): unconditional on its "
            "points; latent: class images."
        ),
    )
    seed: int = Field(default=0, description="Seeds the initial weights, training batches and evaluation.")
    sde: SDEConfig = SDEConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    sample: SampleConfig = SampleConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    rram: RRAMDevice = RRAMDevice()
    analog: LoopSettings = LoopSettings()
    latent: LatentConfig | None = None
    circuit: CircuitConfig | None = None

    @field_validator("task")
    @classmethod
    def _known_task(cls, task: str) -> str:
        if task != "latent" and task not in POINT_SETS:
            raise ValueError(unknown_choice("task", task, ("latent", *POINT_SETS)))
        return task

    @property
    def unconditional(self) -> bool:
        """A 2-D point task (the ring or a flow data set) rather than the conditional latent task."""
        return self.task != "latent"

    @model_validator(mode="after")
    def _circuit_settings(self) -> DiffusionConfig:
        if self.model.kind == "crossbar":
            if self.circuit is not None:
                raise ValueError("the 'circuit' section applies to model.kind: kirchhoffnet only")
            return self
        defaults = ModelConfig().model_dump()
        crossbar_keys = [k for k, v in self.model.model_dump().items() if k != "kind" and v != defaults[k]]
        if crossbar_keys:
            raise ValueError(f"model.{crossbar_keys[0]} applies to model.kind: crossbar; set it in 'circuit' instead")
        if self.train.noise_aware is not None:
            raise ValueError("train.noise_aware perturbs crossbar weights; remove it for model.kind: kirchhoffnet")
        if self.sample.sde_score_gain != 1.0:
            raise ValueError("sample.sde_score_gain must be 1 for model.kind: kirchhoffnet (use ode_beta_scale)")
        return self if self.circuit is not None else self.model_copy(update={"circuit": CircuitConfig()})

    @model_validator(mode="after")
    def _sampling_beta(self) -> DiffusionConfig:
        total = 0.5 * (self.sde.beta_min + self.sde.beta_max) * self.sample.ode_beta_scale
        if total > MAX_INTEGRATED_BETA:
            raise ValueError(
                f"sample.ode_beta_scale: {self.sample.ode_beta_scale:g} × ∫β = {total:.3g} overflows the "
                f"probability-flow samplers (the limit is {MAX_INTEGRATED_BETA:.1f}); lower it or sde.beta_max"
            )
        return self

    @model_validator(mode="after")
    def _latent_settings(self) -> DiffusionConfig:
        if self.unconditional:
            if self.latent is not None:
                raise ValueError(f"the {self.task} task takes no 'latent' section")
            return self
        if self.train.init_from is not None:
            raise ValueError("train.init_from is only supported by the 2-D tasks (the latent task retrains its VAE)")
        latent = self.latent if self.latent is not None else LatentConfig()
        if latent.classes is None:
            latent = latent.model_copy(update={"classes": list(IMAGE_SETS[latent.dataset].default_classes)})
        elif len(set(latent.classes)) < 2 or len(set(latent.classes)) != len(latent.classes):
            raise ValueError(f"latent.classes needs at least 2 distinct classes, got {latent.classes}")
        return self.model_copy(update={"latent": latent})

    @property
    def num_classes(self) -> int:
        """Classes of the conditional model (0 for the unconditional ring)."""
        return len(self.latent.classes) if self.latent is not None and self.latent.classes else 0


def _where(error: Any) -> str:
    return ".".join(str(part) for part in error["loc"]) or "(top level)"


def parse_config(data: Any, source: str = "config") -> DiffusionConfig:
    """Validate a config mapping; any problem becomes a one-line :class:`ConfigError` naming the key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of settings at the top level, got {type(data).__name__}")
    try:
        config = DiffusionConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{source}: {clip(_where(first), 120)}: {clip(first['msg'], 240)}{more}") from None
    try:
        check_diffusion(config)  # what the validated config will cost, before any command builds it
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return config


def load_config(path: str | os.PathLike[str], overrides: list[str] | tuple[str, ...] = ()) -> DiffusionConfig:
    """Read, override (the CLI's ``--set key.sub=value``) and validate a YAML config file."""
    data = apply_overrides(read_yaml_mapping(path, empty={}), overrides)
    return parse_config(data, f"{path} with --set" if overrides else str(path))
