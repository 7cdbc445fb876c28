"""Typed configuration of one training run, and its validation (in one place).

Hydra composes YAML presets and command-line overrides onto these dataclasses; the loop only
ever sees the plain, validated objects returned by ``to_run_config``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from common.errors import ConfigError
from corpora.config import CorpusConfig


@dataclass
class ModelConfig:
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    # Grouped-query attention: 1 = multi-query, n_heads = multi-head.
    n_kv_heads: int = 2
    vocab_size: int = 4096
    # SwiGLU hidden width; None = 8/3 * d_model rounded up to ffn_multiple_of (Llama's rule).
    ffn_hidden: int | None = None
    ffn_multiple_of: int = 32
    rope_theta: float = 10000.0
    norm_eps: float = 1e-6
    tie_embeddings: bool = True
    init_std: float = 0.02
    # A target parameter count (e.g. 1e6). When set, lab.accounting.shape_for_params picks
    # d_model/n_layers/n_heads/n_kv_heads by one documented rule and overrides the fields above.
    params: float | None = None
    # The size picker's rule: d_model = aspect_ratio * n_layers, heads of head_dim.
    aspect_ratio: int = 32
    head_dim: int = 32
    kv_group: int = 2


DEFAULT_MESH = {"data": -1, "fsdp": 1}


@dataclass
class TrainConfig:
    # Token budget D: the run trains floor(tokens / (batch_size * seq_len)) optimizer steps.
    tokens: float = 2e6
    # Budget in words seen instead (BabyLM's unit); converted to tokens with the training
    # split's own tokens-per-word ratio. When set, `tokens` is ignored and snapshots count words.
    words: float | None = None
    # Sequences per optimizer step (global batch).
    batch_size: int = 16
    # Sequences per forward/backward; batch_size / micro_batch_size accumulation steps. "auto"
    # (torch on a GPU): the largest that fits the device, measured once per shape and cached
    # (lab/micro_batch.py); on a CPU the whole batch.
    micro_batch_size: int | str | None = None
    seq_len: int = 256
    # Peak learning rate, or "auto": from the rule `lr_rule` at the model's parameter count
    # (lab/lr_rule.py; the scale presets use auto). The resolved number is what the run records.
    lr: float | int | str = 3e-3
    # The rule of lr=auto: a shipped rule's name (lab/lr_rules/: smoke, cpu, gpu-prior) or the path
    # of a rule file that `grid=lr_sweep` wrote (<grid dir>/report/lr_rule.json).
    lr_rule: str = "cpu"
    # Where the learning rate came from, filled in when lr=auto is resolved (a measured rule or a
    # published prior, named); null when lr was given as a number.
    lr_from: str | None = None
    min_lr_ratio: float = 0.1
    # Warmup: a fraction of the steps when < 1, else a number of steps.
    warmup: float = 0.05
    # Warmup as a token count instead (rounded to whole steps; `warmup` is then ignored). It does
    # not depend on the run's length, so runs of one size but different budgets share their
    # first steps (the grids set it to N, one token per parameter, after Porian et al. 2024).
    warmup_tokens: float | None = None
    # "cosine", "wsd" (warmup-stable-decay) or "constant".
    schedule: str = "cosine"
    # WSD: the final fraction of the run's steps over which lr cools down to min_lr ...
    cooldown: float = 0.2
    # ... along this shape: "1-sqrt" (lr falls as 1 - sqrt(progress), which Hägele et al. 2024
    # find matches a cosine run of the same length) or "linear".
    decay_shape: str = "1-sqrt"
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    # "auto" (bf16 where the hardware runs it natively, else fp32), "bf16" or "fp32".
    precision: str = "auto"
    # "auto" (cuda if available, else cpu), "cpu", "cuda".
    device: str = "auto"
    # Intra-op threads for this run (0 = leave torch's default).
    threads: int = 0
    # metrics.jsonl gets a row every log_every steps, its loss the mean over those steps (the
    # last row's is final.json's final_train_loss).
    log_every: int = 10
    # Validation every N steps (0 = only at the end) on eval_tokens held-out tokens, recorded in
    # that step's metrics row (the first logged step past each multiple of N, when log_every does
    # not divide it). The scale presets set it.
    eval_every: int = 0
    eval_tokens: int = 65536
    # Checkpoint every N steps (0 = only the final state); keep the newest keep_checkpoints.
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    # Steps at which a checkpoint is also taken and never pruned: a trunk's branch points.
    keep_steps: list[int] = field(default_factory=list)
    # A cooldown branch: the trunk run directory whose checkpoint at branch_step this run starts
    # from (when it has no checkpoint of its own), instead of training those steps again. The
    # result is the same run's (see docs/grids-and-launchers.md), so neither enters the run id.
    branch_from: str | None = None
    branch_step: int = 0
    # Budgets above the unique training tokens repeat the data up to this many epochs;
    # beyond it the run is refused before training.
    max_epochs: float = 1.0
    # Progress bar: "auto" (a bar on a terminal, plain lines otherwise), "bar", "lines", "none".
    progress: str = "auto"
    # The framework that trains the run: "torch" (lab/torch_backend.py) or "jax" (lab/jax/, Flax NNX
    # under XLA; needs the jax extra). A JAX run's id differs from the torch run's; a torch run's
    # id is the one it had before this field existed.
    backend: str = "torch"
    # The JAX backend's device mesh, axis -> devices, over axes "data" and "fsdp" (parameters
    # sharded FSDP-style over fsdp, the batch over both); -1 = the remaining devices. The
    # default: all devices on data. How the work is spread, not what is computed: not in the run id.
    mesh: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_MESH))
    # torch.compile the training forward/backward. Fuses the elementwise ops between matmuls
    # (~15% faster on this CPU in bf16, more on a GPU) at the price of a one-off compilation
    # (~1 min on 2 CPU cores per model shape, cached on disk after that): worth it for long runs.
    compile: bool = False
    # Permanent weight snapshots, name -> tokens (or words) seen (e.g. BabyLM's chck_1M):
    # saved under <run>/snapshots/<name> at the first step that reaches the count, never pruned.
    snapshots: dict[str, float] = field(default_factory=dict)
    # Recompute each block's activations in the backward pass instead of keeping them
    # (torch.utils.checkpoint per block): ~1/3 more compute for far less activation memory.
    activation_checkpointing: bool = False
    # How the torch backend spreads a run over processes: "ddp" (every process holds the whole
    # model) or "fsdp" (parameters, gradients and optimizer state sharded, FSDP2's fully_shard),
    # for models that do not fit one device with DDP. With one process there is nothing to shard:
    # fsdp trains as ddp does. Neither enters the run id (the same result, to rounding).
    parallel: str = "ddp"


@dataclass
class RunConfig:
    out_dir: str = "runs"
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    # A label for progress lines only; the run's directory is always its id (lab.runs.run_id).
    name: str | None = None
    # Live dashboards that mirror metrics.jsonl, the config and final.json's numbers while the
    # run trains (lab/loggers.py): a list of "tensorboard" and "wandb"; empty = the files only.
    # How a run is watched, not what it computes: not in the run id.
    logger: list[str] = field(default_factory=list)


def _require(condition: bool, field_name: str, reason: str) -> None:
    if not condition:
        raise ConfigError(field_name, reason)


def validate_model(m: ModelConfig, prefix: str = "model") -> None:
    for name in ("d_model", "n_layers", "n_heads", "n_kv_heads", "vocab_size"):
        _require(getattr(m, name) >= 1, f"{prefix}.{name}", f"must be >= 1, got {getattr(m, name)}")
    _require(m.d_model % m.n_heads == 0, f"{prefix}.n_heads",
             f"d_model={m.d_model} is not divisible by n_heads={m.n_heads}")
    _require(m.n_heads % m.n_kv_heads == 0, f"{prefix}.n_kv_heads",
             f"n_heads={m.n_heads} is not a multiple of n_kv_heads={m.n_kv_heads}")
    head_dim = m.d_model // m.n_heads
    # Rotary embedding rotates pairs of dimensions, so each head needs an even width.
    _require(head_dim % 2 == 0, f"{prefix}.d_model",
             f"head dimension d_model/n_heads={head_dim} is odd; rotary embedding needs it even")
    _require(m.ffn_hidden is None or m.ffn_hidden >= 1, f"{prefix}.ffn_hidden", "must be >= 1")
    _require(m.rope_theta > 0, f"{prefix}.rope_theta", "must be > 0")
    _require(m.norm_eps > 0, f"{prefix}.norm_eps", "must be > 0")
    _require(m.init_std > 0, f"{prefix}.init_std", "must be > 0")
    _require(m.params is None or m.params > 0, f"{prefix}.params", "must be > 0")
    _require(m.head_dim % 2 == 0 and m.head_dim > 0, f"{prefix}.head_dim", "must be even and > 0")


def validate_train(t: TrainConfig, prefix: str = "train") -> None:
    _require(t.tokens > 0, f"{prefix}.tokens", f"must be > 0, got {t.tokens}")
    _require(t.words is None or t.words > 0, f"{prefix}.words", f"must be > 0, got {t.words}")
    _require(t.batch_size >= 1, f"{prefix}.batch_size", "must be >= 1")
    _require(t.seq_len >= 2, f"{prefix}.seq_len", "must be >= 2")
    micro = t.batch_size if t.micro_batch_size in (None, "auto") else t.micro_batch_size
    _require(isinstance(micro, int) and not isinstance(micro, bool), f"{prefix}.micro_batch_size",
             f"must be a number of sequences or auto, got {micro!r}")
    _require(micro >= 1 and t.batch_size % micro == 0, f"{prefix}.micro_batch_size",
             f"batch_size={t.batch_size} is not a multiple of micro_batch_size={micro}")
    _require(not (t.micro_batch_size == "auto" and t.backend == "jax"), f"{prefix}.micro_batch_size",
             "auto measures torch's memory; give the JAX backend a number")
    tokens_per_step = t.batch_size * t.seq_len
    _require(t.words is not None or t.tokens >= tokens_per_step, f"{prefix}.tokens",
             f"budget {t.tokens:.0f} is smaller than one batch "
             f"(batch_size*seq_len = {tokens_per_step})")
    number = isinstance(t.lr, (int, float)) and not isinstance(t.lr, bool)
    _require(t.lr == "auto" or (number and t.lr > 0), f"{prefix}.lr",
             f"must be a number > 0 or auto, got {t.lr!r}")
    _require(0 <= t.min_lr_ratio <= 1, f"{prefix}.min_lr_ratio", "must be in [0, 1]")
    _require(t.warmup >= 0, f"{prefix}.warmup", "must be >= 0")
    _require(t.warmup_tokens is None or t.warmup_tokens >= 0, f"{prefix}.warmup_tokens", "must be >= 0")
    _require(t.schedule in ("cosine", "wsd", "constant"), f"{prefix}.schedule",
             f"unknown schedule {t.schedule!r}; choose cosine, wsd or constant")
    _require(0 < t.cooldown <= 1, f"{prefix}.cooldown", "must be in (0, 1]")
    _require(t.decay_shape in ("linear", "1-sqrt"), f"{prefix}.decay_shape",
             f"unknown decay shape {t.decay_shape!r}; choose linear or 1-sqrt")
    _require(t.weight_decay >= 0, f"{prefix}.weight_decay", "must be >= 0")
    _require(0 <= t.beta1 < 1 and 0 <= t.beta2 < 1, f"{prefix}.beta1", "betas must be in [0, 1)")
    _require(t.grad_clip >= 0, f"{prefix}.grad_clip", "must be >= 0 (0 disables clipping)")
    _require(t.precision in ("auto", "bf16", "fp32"), f"{prefix}.precision",
             f"unknown precision {t.precision!r}; choose auto, bf16 or fp32")
    _require(t.device in ("auto", "cpu", "cuda"), f"{prefix}.device",
             f"unknown device {t.device!r}; choose auto, cpu or cuda")
    _require(t.threads >= 0, f"{prefix}.threads", "must be >= 0")
    _require(t.log_every >= 1, f"{prefix}.log_every", "must be >= 1")
    _require(t.eval_every >= 0, f"{prefix}.eval_every", "must be >= 0")
    _require(t.eval_tokens >= t.seq_len, f"{prefix}.eval_tokens", "must be at least one sequence")
    _require(t.checkpoint_every >= 0, f"{prefix}.checkpoint_every", "must be >= 0")
    _require(t.keep_checkpoints >= 1, f"{prefix}.keep_checkpoints", "must be >= 1")
    _require(all(step >= 1 for step in t.keep_steps), f"{prefix}.keep_steps", "steps must be >= 1")
    _require(t.branch_from is None or t.branch_step >= 1, f"{prefix}.branch_step",
             "a branch starts from a trunk checkpoint at a step >= 1")
    _require(t.max_epochs > 0, f"{prefix}.max_epochs", "must be > 0")
    for name, tokens in t.snapshots.items():
        _require(tokens > 0 and name.replace("_", "").isalnum(), f"{prefix}.snapshots.{name}",
                 "needs an alphanumeric name and a positive token count")
    _require(t.progress in ("auto", "bar", "lines", "none"), f"{prefix}.progress",
             f"unknown progress mode {t.progress!r}; choose auto, bar, lines or none")
    _require(t.parallel in ("ddp", "fsdp"), f"{prefix}.parallel", f"unknown mode {t.parallel!r}; choose ddp or fsdp")
    validate_backend(t, prefix)


# Settings that only one backend has: asking the other for them fails instead of being ignored.
_TORCH_ONLY = {"compile": (False, "torch.compile is the torch backend's; XLA always compiles the JAX step"),
               "threads": (0, "intra-op threads are torch's setting; XLA sizes its own thread pool"),
               "activation_checkpointing": (False, "torch.utils.checkpoint is the torch backend's"),
               "parallel": ("ddp", "the JAX backend shards by train.mesh")}


def validate_backend(t: TrainConfig, prefix: str = "train") -> None:
    _require(t.backend in ("torch", "jax"), f"{prefix}.backend",
             f"unknown backend {t.backend!r}; choose torch or jax")
    if t.backend == "jax":
        for name, (default, why) in _TORCH_ONLY.items():
            _require(getattr(t, name) == default, f"{prefix}.{name}",
                     f"not available with train.backend=jax ({why}); leave it at {default}")
        missing = [m for m in ("jax", "flax", "optax", "orbax.checkpoint") if not _importable(m)]
        _require(not missing, f"{prefix}.backend",
                 f"train.backend=jax needs {', '.join(missing)}: pip install -e '.[jax]' "
                 "(on a GPU or TPU, also the jax[cuda12] or jax[tpu] wheel)")
    else:
        _require(t.mesh == DEFAULT_MESH, f"{prefix}.mesh", "a device mesh is the JAX backend's (train.backend=jax); "
                                               "the torch backend spreads data over processes (launcher.procs_per_run)")
    for axis, size in t.mesh.items():
        _require(axis in ("data", "fsdp"), f"{prefix}.mesh", f"unknown axis {axis!r}; the axes are data and fsdp")
        _require(type(size) is int and (size >= 1 or size == -1), f"{prefix}.mesh",
                 f"{axis}={size!r}: a device count >= 1, or -1 for the remaining devices")
    _require(list(t.mesh.values()).count(-1) <= 1, f"{prefix}.mesh", "at most one axis may be -1")


def _importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ModuleNotFoundError, ValueError):  # a parent package missing; a module set to None in sys.modules
        return False


# The dashboards of `logger`, each with the module it needs (installed by the extra of its name).
LOGGERS = {"tensorboard": "tensorboard", "wandb": "wandb"}


def validate_logger(names: list[str]) -> None:
    for name in names:
        _require(name in LOGGERS, "logger", f"unknown logger {name!r}; choose from {', '.join(LOGGERS)} "
                                            "(a list: logger=[tensorboard,wandb])")
    _require(len(set(names)) == len(names), "logger", f"{names} names a logger twice")
    for name in names:
        _require(_importable(LOGGERS[name]), "logger",
                 f"logger={name} needs the {LOGGERS[name]} package: pip install -e '.[{name}]'")


def validate_run(cfg: RunConfig) -> None:
    """Every check that needs no data and no compute. Raises ConfigError on the first problem."""
    validate_model(cfg.model)
    validate_train(cfg.train)
    validate_logger(cfg.logger)
    _require(cfg.seed >= 0, "seed", "must be >= 0")
    _require(bool(cfg.out_dir), "out_dir", "must not be empty")
    _require(cfg.corpus.vocab_size == cfg.model.vocab_size, "corpus.vocab_size",
             f"{cfg.corpus.vocab_size} differs from model.vocab_size={cfg.model.vocab_size}")
    from corpora.validate import validate_corpus_config  # the corpus owns its own rules

    validate_corpus_config(cfg.corpus)


def run_config_from_dict(data: dict) -> RunConfig:
    """Rebuild a typed RunConfig from its dict form (config.json, spec.json), type-checked."""
    from omegaconf import OmegaConf

    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(RunConfig), data))
