"""What a sweep measures: presets, axes, and the list of points they expand to.

Everything here is plain data and validation; nothing touches a device.

A point has a *scope*: `mixer` (the token mixer alone), `block` (one encoder layer: the mixer and a
feed-forward sublayer, residuals and LayerNorms) or `encoder` (embeddings, N layers and a masked-LM
head). Where a mixer name goes, a layout `BASE+TOP:K` may go too (TOP in an encoder's last K layers);
see `bench.models`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch

import mixers
from bench import models
from bench.measuring.points import DEVICES, MODES, SCOPES, PlanError, Point, TrainingRun, items
from bench.measuring.points import DEFAULT_WEIGHT_DECAY


@dataclass(frozen=True)
class Axes:
    """The axes of a sweep; their product (per batching and scope) is the list of points."""

    mixers: tuple[str, ...] = ()  # mixer names or layouts; empty: every registered mixer
    seq_lens: tuple[int, ...] = (256, 512, 1024, 2048, 4096)
    dims: tuple[int, ...] = (128,)
    batches: tuple[int, ...] = (1,)  # fixed batch sizes
    tokens: tuple[int, ...] = ()  # fixed tokens per batch: batch = max(1, tokens // seq_len)
    dtypes: tuple[str, ...] = ("float32",)
    modes: tuple[str, ...] = MODES
    scopes: tuple[str, ...] = ("mixer",)
    layers: int = models.DEFAULT_LAYERS  # encoder layers (a block is one)
    ffn: int | None = None  # feed-forward width; None: 4 x dim
    vocab: int = models.DEFAULT_VOCAB  # encoder vocabulary; 0: vectors in, no embedding and no head
    norm: str = "post"
    causal: bool = False  # every mixer in its causal form; one without is an `unsupported` row
    model: str | None = None  # a named shape (bench.models.SHAPES): sets dims, layers and ffn
    rounds: int = 2  # worker processes each point is measured in, interleaved across the sweep
    timeout_s: float = 60.0
    budget_s: float = 0.5  # measured time per point before repetitions stop
    min_reps: int = 5
    mixer_filter: str = field(default="", compare=False)  # "nlogn": only mixers whose FLOPs grow as n log n


POWERS = tuple(2**k for k in range(7, 16))  # 128 ... 32768
FNET_LAYOUTS = ("attention", "attention-naive", "fft", "dft-matrix", "linear", "fft+attention:2")

# GPU widths: 1024, a power of two, so every built-in mixer runs (hadamard needs power-of-two widths and lengths;
# at the non-power-of-two lengths of gpu-full it is `unsupported`, as it says). `paper` and `fnet-paper` keep
# BERT-Base's d=768: those rows are the FNet paper's claims, and hadamard is not one of the paper's mixers.
GPU_DIM = 1024

PRESETS: dict[str, tuple[str, Axes]] = {
    "cpu": ("all mixers, d=128, batch 1, lengths 128-2048, float32, forward and train, 2 rounds; 160 points, "
            "about 2 minutes on 2 cores",
            Axes(seq_lens=(128, 256, 512, 1024, 2048), dims=(128,), batches=(1,), dtypes=("float32",),
                 budget_s=0.1, min_reps=3, timeout_s=60.0)),
    "gpu": ("what `make bench` sweeps on a GPU, sized with the `gpu` quality preset to finish within 15 minutes on "
            "one H100: all mixers, d=1024, lengths 512, 2048, 4096, 8192 and 16384, 65536 tokens per batch, "
            "bfloat16 and float32, forward and train, 1 round; 320 points",
            Axes(seq_lens=(512, 2048, 4096, 8192, 16384), dims=(GPU_DIM,), batches=(), tokens=(65536,),
                 dtypes=("bfloat16", "float32"), rounds=1, budget_s=0.1, min_reps=5, timeout_s=60.0)),
    "gpu-full": ("all mixers, d=1024, lengths 128-32768 (powers of two and 384, 1000, 3072, 12288, where hadamard "
                 "is unsupported), batch 8 and 65536 tokens per batch, bfloat16 and float32, forward and train, "
                 "2 rounds; 1664 points, about an hour on one H100",
                 Axes(seq_lens=tuple(sorted(POWERS + (384, 1000, 3072, 12288))), dims=(GPU_DIM,), batches=(8,),
                      tokens=(65536,), dtypes=("bfloat16", "float32"), budget_s=0.2, min_reps=10, timeout_s=60.0)),
    "paper": ("the FNet paper's GPU setting: d=768 (BERT-Base; hadamard, not one of the paper's mixers, is "
              "unsupported there), lengths 512-8192, batch 8, bfloat16 and float32, forward and train; 320 points",
              Axes(seq_lens=(512, 1024, 2048, 4096, 8192), dims=(768,), batches=(8,),
                   dtypes=("bfloat16", "float32"), budget_s=0.3, min_reps=10, timeout_s=60.0)),
    "long": ("the mixers whose FLOPs grow as n log n, lengths 1024-131072, d=1024, 131072 tokens per batch, "
             "bfloat16 and float32, forward; 144 points",
             Axes(seq_lens=tuple(2**k for k in range(10, 18)), dims=(GPU_DIM,), batches=(), tokens=(131072,),
                  dtypes=("bfloat16", "float32"), modes=("forward",), budget_s=0.3, min_reps=10,
                  timeout_s=120.0, mixer_filter="nlogn")),
    "encoder": ("the mixer's share of a model on CPU: attention, fft, linear, dft-matrix, mlp-mixer and "
                "fft+attention:2 at mixer, block and encoder scope; a small shape (4 layers, d=128, ffn 512, so "
                "the hybrid has fft in 2 layers and attention in 2), vocabulary 8192, lengths 128-2048, batch 2, "
                "float32, forward and train; 180 points",
                Axes(mixers=("attention", "fft", "linear", "dft-matrix", "mlp-mixer", "fft+attention:2"),
                     seq_lens=(128, 256, 512, 1024, 2048), dims=(128,), batches=(2,), dtypes=("float32",),
                     layers=4, ffn=512, vocab=8192, scopes=SCOPES, budget_s=0.1, min_reps=3, timeout_s=120.0)),
    "fnet-paper": ("the FNet paper's speed table: BERT-Base shape (12 layers, d=768, ffn 3072), vocabulary 32000, "
                   "8 sequences per batch, 512 tokens and the LRA lengths up to 8192, bfloat16 and float32, "
                   "forward and train, the paper's layouts at all three scopes; 360 points",
                   Axes(mixers=FNET_LAYOUTS, seq_lens=(512, 1024, 2048, 4096, 8192), batches=(8,),
                        dtypes=("bfloat16", "float32"), scopes=SCOPES, model="base", budget_s=0.3,
                        min_reps=10, timeout_s=180.0)),
}


def default_preset(device: str) -> str:
    """The preset (sweep and quality alike) that `mixbench sweep`, `mixbench quality` and `make bench` run."""
    return "gpu" if device == "cuda" else "cpu"


def resolve_device(device: str) -> str:
    """'auto' becomes cuda where a GPU is visible, else cpu; cuda without a GPU is an error."""
    if device not in DEVICES:
        raise PlanError(f"unknown device {device!r} (allowed: {', '.join(DEVICES)})")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise PlanError("--device cuda was asked for, but no CUDA GPU is visible to torch (allowed here: cpu, auto)")
    return device


def parse_layouts(values, what: str = "mixers") -> tuple[str, ...]:
    """Mixer names and layouts (BASE+TOP:K), each validated and written canonically, in the order given."""
    resolved: list[str] = []
    for text in items(values, what, "mixer names or layouts BASE+TOP:K; see `mixbench list`"):
        if "+" not in text and text not in mixers.available():
            raise PlanError(f"unknown mixer {text!r} in --{what} (allowed: {', '.join(mixers.available())}, "
                            f"or a layout BASE+TOP:K)")
        try:
            name = str(models.parse_layout(text))
        except models.LayoutError as exc:
            raise PlanError(f"{exc} (in --{what})") from None
        if name not in resolved:
            resolved.append(name)
    return tuple(resolved)


def _grows_as_n_log_n(cls) -> bool:
    """True where the analytic FLOPs grow less than quadratically between the two longest lengths."""
    small, large = cls.flops(65536, 768), cls.flops(131072, 768)
    return small > 0 and large / small < 2.5


def mixer_names(axes: Axes) -> tuple[str, ...]:
    names = axes.mixers or tuple(mixers.available())
    if axes.mixer_filter == "nlogn":
        names = tuple(name for name in names if name in mixers.available() and _grows_as_n_log_n(mixers.get(name)))
    return names


def shape_of(axes: Axes, scope: str, dim: int) -> dict:
    """layers, ffn, vocab and norm of a point at `scope` (None where the scope has no such part)."""
    if scope == "mixer":
        return dict(layers=None, ffn=None, vocab=None, norm=None)
    ffn = axes.ffn or models.default_ffn(dim)
    if scope == "block":
        return dict(layers=1, ffn=ffn, vocab=None, norm=axes.norm)
    return dict(layers=axes.layers, ffn=ffn, vocab=axes.vocab, norm=axes.norm)


def expand(axes: Axes, device: str) -> list[Point]:
    """Every point of the axes, ordered so each series runs from the shortest length up."""
    series = [(f"batch={b}", lambda n, b=b: b) for b in axes.batches]
    # a tokens series shorter than a length has no whole sequence to measure there: batch 0, refused by the worker
    series += [(f"tokens={t}", lambda n, t=t: t // n) for t in axes.tokens]
    if not series:
        raise PlanError("a sweep needs at least one --batch or --tokens value")
    points = []
    for scope in axes.scopes:
        for dtype in axes.dtypes:
            for mode in axes.modes:
                for dim in axes.dims:
                    shape = shape_of(axes, scope, dim)
                    for batching, batch_of in series:
                        for mixer in mixer_names(axes):
                            for seq_len in sorted(axes.seq_lens):
                                points.append(Point(mixer, scope, seq_len, dim, batch=batch_of(seq_len),
                                                    batching=batching, dtype=dtype, mode=mode, device=device,
                                                    causal=axes.causal, **shape))
    return points


def with_overrides(axes: Axes, **overrides) -> Axes:
    """The axes with every override that is not None applied."""
    return replace(axes, **{key: value for key, value in overrides.items() if value is not None})


def apply_model(axes: Axes) -> Axes:
    """The axes with a named shape's width, layers and feed-forward width filled in."""
    if axes.model is None:
        return axes
    if axes.model not in models.SHAPES:
        raise PlanError(f"unknown model {axes.model!r} in --model (allowed: {', '.join(models.SHAPES)})")
    shape = models.SHAPES[axes.model]
    return replace(axes, dims=(shape.dim,), layers=shape.layers, ffn=shape.ffn)


def check_layouts(axes: Axes) -> None:
    """Refuse a layout whose top K layers exceed the encoder's layer count."""
    if "encoder" not in axes.scopes:
        return
    for text in mixer_names(axes):
        layout = models.parse_layout(text)
        if layout.top_layers > axes.layers:
            raise PlanError(f"layout {text} puts {layout.top} in the last {layout.top_layers} layers, but the "
                            f"encoder has {axes.layers} (--layers); K must be at most the layer count")


# --- quality: training runs -----------------------------------------------------------------------------

@dataclass(frozen=True)
class TaskSetting:
    """How one task is trained in a preset: its lengths, widths, step budget and generator options."""

    seq_lens: tuple[int, ...]
    dims: tuple[int, ...] = (64,)
    steps: int = 500
    options: str = ""  # the task generator's options, "name=value,..." (e.g. "vocab_size=64")
    batch: int | None = None  # None: the axes' batch


@dataclass(frozen=True)
class QualityAxes:
    """The axes of a quality run; their product is the list of training runs.

    `settings` may name a task more than once: each entry is one setting of it (MAD scores a task as the mean
    over its settings). `seq_lens`, `dims` and `steps`, where given, apply to every task and replace the task
    settings'.
    """

    tasks: tuple[str, ...] = ("mqar",)
    settings: tuple[tuple[str, TaskSetting], ...] = ()  # per task
    mixers: tuple[str, ...] = ()  # mixer names or layouts; empty: every registered mixer and FNet-Hybrid
    seq_lens: tuple[int, ...] = ()
    dims: tuple[int, ...] = ()
    steps: int | None = None
    batch: int | None = None  # None: each task setting's batch, else 32
    layers: int = 2
    ffn_ratio: int = 4  # feed-forward width = ffn_ratio x dim
    norm: str = "peri"  # LayerNorm on each sublayer's input and output (bench.models.blocks), every layout alike
    shift: bool = True  # the previous-token shift (bench.models.Encoder), for every layout alike
    lrs: tuple[float, ...] = (3e-3,)
    weight_decays: tuple[float, ...] = (DEFAULT_WEIGHT_DECAY,)  # AdamW's (decoupled) weight decay; a grid like lrs
    seeds: tuple[int, ...] = (0, 1)
    dtype: str = "float32"
    timeout_s: float = 900.0
    workers: int | None = None  # None: 2 on a CPU (one thread each), 1 per GPU

    def setting(self, task: str) -> TaskSetting:
        """The task's (first) setting with the axes given for every task applied."""
        return self.task_settings(task)[0]

    def task_settings(self, task: str) -> list[TaskSetting]:
        """Every setting of the task in this preset, in order, with the axes given for every task applied."""
        found = [setting for name, setting in self.settings if name == task]
        if not found and not self.seq_lens:
            raise PlanError(f"no length for task {task!r} in this preset; give --seq-lens")
        return [replace(setting, seq_lens=self.seq_lens or setting.seq_lens, dims=self.dims or setting.dims,
                        steps=self.steps or setting.steps, batch=self.batch or setting.batch or 32)
                for setting in found or [TaskSetting(self.seq_lens)]]


HYBRID = "fft+attention:1"  # FNet-Hybrid's attention-on-top, in a 2-layer model: the last layer
# The built-in mixers with a causal form (bench.models builds causal models for causal tasks; the others refuse).
CAUSAL_MIXERS = ("attention", "linear-attention", "mamba", "hyena", "pool", "linear", "mlp-mixer", "gmlp")
MAD_TASKS = ("in-context-recall", "fuzzy-recall", "noisy-recall", "selective-copying", "compression", "memorization")
MAD_LRS = (1e-4, 5e-4, 1e-3)  # MAD's grid (athms/mad-lab `make_benchmark_mad_configs`): lr x weight decay
MAD_WEIGHT_DECAYS = (0.0, 0.1)


def _mad_settings(steps: int, memorization_steps: int) -> tuple[tuple[str, TaskSetting], ...]:
    """MAD's benchmark settings (athms/mad-lab `configs/tasks/*.yml`): each task's baseline, then each change to it
    (vocabulary, length, noise, tokens to copy) one at a time. MAD's changes of num_train_examples are left out:
    our generators draw fresh examples every step. Our compression is twice MAD's length (its causal form)."""
    def each(task, seq_len, base, changes=(), lengths=()):
        found = [(task, TaskSetting((seq_len,), (128,), steps, ",".join(f"{k}={v}" for k, v in base.items())))]
        for name, value in changes:
            options = {**base, name: value}
            found.append((task, TaskSetting((seq_len,), (128,), steps, ",".join(f"{k}={v}" for k, v in options.items()))))
        found += [(task, TaskSetting((n,), (128,), steps, ",".join(f"{k}={v}" for k, v in base.items()))) for n in lengths]
        return found

    vocabularies = [("vocab_size", v) for v in (32, 64, 128)]
    return tuple(
        each("in-context-recall", 128, {"vocab_size": 16}, vocabularies, (256, 512, 1024))
        + each("fuzzy-recall", 128, {"vocab_size": 16}, vocabularies, (256, 512, 1024))
        + each("noisy-recall", 128, {"vocab_size": 32, "noise_vocab_size": 16, "frac_noise": 0.2},
               [("vocab_size", v) for v in (48, 80, 144)] + [("frac_noise", f) for f in (0.4, 0.6, 0.8)],
               (256, 512, 1024))
        + each("selective-copying", 256, {"vocab_size": 16, "num_tokens_to_copy": 16},
               vocabularies + [("num_tokens_to_copy", k) for k in (32, 64, 96)], (512, 1024))
        + each("compression", 64, {"vocab_size": 16}, vocabularies, (128, 256, 512))
        + [(task, replace(setting, steps=memorization_steps))
           for task, setting in each("memorization", 32, {"vocab_size": 256},
                                     [("vocab_size", v) for v in (512, 1024, 2048, 4096, 8192)])])


def _zoology(lengths, widths, steps, vocab_size):
    """Zoology Figure 2's panels (length, key-value pairs) of causal MQAR at the given widths."""
    pairs = {64: 4, 128: 8, 256: 16, 512: 64}
    return tuple(("mqar-causal", TaskSetting((n,), widths, steps, f"vocab_size={vocab_size},num_kv_pairs={pairs[n]}"))
                 for n in lengths)


QUALITY_PRESETS: dict[str, tuple[str, QualityAxes]] = {
    "cpu": ("every mixer and FNet-Hybrid on MQAR (64 tokens, vocabulary 256, 8 pairs; 800 steps) and majority "
            "(64 tokens; 300 steps) at widths 32 and 64: 2 layers, peri-norm with the previous-token shift, batch 32, "
            "lr 1e-3 and 3e-3, seed 0; 136 runs, about an hour on 2 cores for all mixers, minutes for a few",
            QualityAxes(tasks=("mqar", "majority"), lrs=(1e-3, 3e-3), seeds=(0,),
                        settings=(("mqar", TaskSetting((64,), (32, 64), 800)),
                                  ("majority", TaskSetting((64,), (32, 64), 300)),
                                  ("listops", TaskSetting((128,), (64,), 1500))))),
    "quick": ("what `make bench` trains, sized to finish in minutes on 2 cores: every mixer and FNet-Hybrid on "
              "MQAR (32 tokens, vocabulary 64, 8 pairs, widths 32 and 64, 400 steps of batch 16) and majority "
              "(32 tokens, widths 16 and 32, 150 steps of batch 32): 2 layers, peri-norm with the previous-token "
              "shift, lr 3e-3, seed 0; 68 runs",
              QualityAxes(tasks=("mqar", "majority"), seeds=(0,),
                          settings=(("mqar", TaskSetting((32,), (32, 64), 400, "vocab_size=64", batch=16)),
                                    ("majority", TaskSetting((32,), (16, 32), 150))))),
    "gpu": ("what `make bench` trains on a GPU, sized with the `gpu` sweep to finish within 15 minutes on one H100: "
            "every mixer and FNet-Hybrid on MQAR (256 tokens, widths 64, 128 and 256, 600 steps of batch 64), "
            "lr 1e-3, seed 0, bfloat16; 51 runs",
            QualityAxes(tasks=("mqar",), settings=(("mqar", TaskSetting((256,), (64, 128, 256), 600)),),
                        batch=64, lrs=(1e-3,), seeds=(0,), dtype="bfloat16", timeout_s=300.0)),
    "gpu-full": ("every mixer and FNet-Hybrid on MQAR at Zoology's sizes and ListOps at LRA's length 2000: 2 layers, "
                 "widths 64-256, learning-rate grid, 3 seeds; 918 runs, hours on one GPU",
                 QualityAxes(tasks=("mqar", "listops", "majority"),
                             settings=(("mqar", TaskSetting((256,), (64, 128, 256), 4000)),
                                       ("listops", TaskSetting((2000,), (64, 128, 256), 4000)),
                                       ("majority", TaskSetting((512,), (64, 128, 256), 2000))),
                             batch=64, lrs=(1e-3, 3e-3), seeds=(0, 1, 2), dtype="bfloat16", timeout_s=1800.0)),
    "gpu-campaign": ("the GPU preset cut to a 30-minute lease: MQAR at 256 tokens and ListOps at 1000, d=128, "
                     "1500 steps of batch 64, lr 1e-3, seeds 0 and 1; 68 runs",
                     QualityAxes(tasks=("mqar", "listops"),
                                 settings=(("mqar", TaskSetting((256,), (128,), 1500)),
                                           ("listops", TaskSetting((1000,), (128,), 1500))),
                                 batch=64, lrs=(1e-3,), seeds=(0, 1), dtype="bfloat16", timeout_s=900.0)),
    "mad-cpu": ("MAD's six tasks at their baseline settings (vocabulary 16, 128 tokens; noisy recall 32 with 16 noise "
                "ids; selective copying 256 tokens; compression 2 x 32 tokens; memorization vocabulary 256, 32 "
                "tokens) for every causal mixer, sized to finish within 30 minutes on 2 cores (20.4 on a 2-core "
                "AMD EPYC): width 64, 2 layers, batch 32, "
                "500 steps (selective copying 300, compression and memorization 600) instead of MAD's 200 epochs, "
                "MAD's grid cut to lr 1e-3 and weight decay 0, seed 0; 48 runs",
                QualityAxes(tasks=MAD_TASKS, mixers=CAUSAL_MIXERS, batch=32, lrs=(1e-3,),
                            weight_decays=(0.0,), seeds=(0,), timeout_s=1200.0,
                            settings=(("in-context-recall", TaskSetting((128,), (64,), 500, "vocab_size=16")),
                                      ("fuzzy-recall", TaskSetting((128,), (64,), 500, "vocab_size=16")),
                                      ("noisy-recall", TaskSetting(
                                          (128,), (64,), 500, "vocab_size=32,noise_vocab_size=16,frac_noise=0.2")),
                                      ("selective-copying", TaskSetting(
                                          (256,), (64,), 300, "vocab_size=16,num_tokens_to_copy=16")),
                                      ("compression", TaskSetting((64,), (64,), 600, "vocab_size=16")),
                                      ("memorization", TaskSetting((32,), (64,), 600, "vocab_size=256"))))),
    "mad": ("MAD's benchmark at its own sizes, for a GPU: its six tasks at each baseline and each change of vocabulary, "
            "length, noise and tokens to copy (46 settings; MAD's smaller training sets are left out: our generators "
            "draw fresh examples), every causal mixer, width 128, 2 layers, batch 128, 20,000 steps (MAD's 200 epochs "
            "of 12,800 examples; memorization 400: 200 epochs of 256), lr 1e-4, 5e-4, 1e-3 x weight decay 0 and 0.1, "
            "seed 0, bfloat16; 2208 runs, days on one GPU",
            QualityAxes(tasks=MAD_TASKS, mixers=CAUSAL_MIXERS, settings=_mad_settings(20000, 400), batch=128,
                        lrs=MAD_LRS, weight_decays=MAD_WEIGHT_DECAYS, seeds=(0,), dtype="bfloat16",
                        timeout_s=7200.0)),
    "zoology": ("Zoology's Figure 2 for a GPU: causal MQAR (mqar-causal) at (tokens, pairs) (64, 4), (128, 8), "
                "(256, 16) and (512, 64), vocabulary 8192, widths 64, 128, 256 and 512, every causal mixer, 2 layers, "
                "5000 steps of batch 256 (Zoology: up to ~12.5k), lr 1e-4, 5e-4, 2e-3 and 1e-2, weight decay 0.1, "
                "seed 0, bfloat16; 512 runs, hours on one GPU",
                QualityAxes(tasks=("mqar-causal",), mixers=CAUSAL_MIXERS,
                            settings=_zoology((64, 128, 256, 512), (64, 128, 256, 512), 5000, 8192), batch=256,
                            lrs=(1e-4, 5e-4, 2e-3, 1e-2), seeds=(0,), dtype="bfloat16", timeout_s=3600.0)),
    "zoology-cpu": ("Zoology's Figure 2 in kind on 2 cores: causal MQAR at (tokens, pairs) (64, 4) and (128, 8), "
                    "vocabulary 256 (Zoology's 8192 would spend most of a CPU step in the output layer), widths 32, "
                    "64 and 128, attention, linear-attention, hyena, pool and gmlp (mamba's sequential scan costs "
                    "10x on a CPU; the GPU preset has it), 2 layers, 800 steps of batch 32, lr 3e-3 (the rate `quick` "
                    "trains MQAR with; Zoology sweeps four), weight decay 0.1, seed 0; 30 runs, 14 minutes on a "
                    "2-core AMD EPYC",
                    QualityAxes(tasks=("mqar-causal",),
                                mixers=("attention", "linear-attention", "hyena", "pool", "gmlp"),
                                settings=_zoology((64, 128), (32, 64, 128), 800, 256), batch=32, lrs=(3e-3,),
                                seeds=(0,), timeout_s=1800.0)),
}


def default_layouts() -> tuple[str, ...]:
    """Every registered mixer, then FNet-Hybrid."""
    return (*mixers.available(), HYBRID)


def parse_weight_decays(values) -> tuple[float, ...]:
    """Non-negative numbers from a comma-separated string or a sequence (0,0.1): AdamW's weight decays."""
    parsed = []
    for item in items(values, "weight-decays", "non-negative numbers such as 0,0.1"):
        try:
            value = float(item)
        except ValueError:
            value = math.nan
        if not value >= 0 or math.isinf(value):
            raise PlanError(f"--weight-decays takes non-negative numbers such as 0,0.1; got {item!r} in {values!r}")
        parsed.append(value)
    return tuple(sorted(set(parsed)))


def expand_quality(axes: QualityAxes, device: str) -> list[TrainingRun]:
    """Every training run of the axes: per task setting, length, seed, layout, width, rate and weight decay.

    Runs that train on the same data (task, length and seed; `train.training_batches`) come one after another, so
    a worker generates that data once and its next runs take it from its cache.
    """
    runs = []
    for task in axes.tasks:
        for setting in axes.task_settings(task):
            for seq_len in setting.seq_lens:
                for seed in axes.seeds:
                    for layout in axes.mixers or default_layouts():
                        for dim in setting.dims:
                            for lr in axes.lrs:
                                for weight_decay in axes.weight_decays:
                                    runs.append(TrainingRun(
                                        task, setting.options, layout, seq_len, dim, axes.layers,
                                        axes.ffn_ratio * dim, axes.norm, axes.shift, setting.batch, setting.steps,
                                        lr, seed, axes.dtype, device, weight_decay=weight_decay))
    return runs
