"""What a sweep measures: presets, axes, and the list of points they expand to.

Everything here is plain data and validation; nothing touches a device.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import torch

import mixers

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}
DTYPE_ALIASES = {"fp32": "float32", "fp64": "float64", "bf16": "bfloat16", "fp16": "float16",
                 "half": "float16", "float": "float32", "double": "float64"}
MODES = ("forward", "train")
DEVICES = ("auto", "cpu", "cuda")


class PlanError(ValueError):
    """Bad sweep input; the message is one line naming what is wrong and what is allowed."""


@dataclass(frozen=True)
class Point:
    """One measurement: a mixer at one size, dtype, mode and device."""

    mixer: str
    seq_len: int
    dim: int
    batch: int
    batching: str  # how the series chose its batch: "batch=8" or "tokens=65536"
    dtype: str
    mode: str
    device: str

    @property
    def key(self) -> tuple:
        return (self.mixer, self.seq_len, self.dim, self.batch, self.batching, self.dtype, self.mode, self.device)

    @property
    def series(self) -> tuple:
        """The settings shared by the lengths of one line in a plot."""
        return (self.mixer, self.dim, self.batching, self.dtype, self.mode, self.device)

    def label(self) -> str:
        return f"{self.mixer} n={self.seq_len} d={self.dim} b={self.batch} {self.dtype} {self.mode}"

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Axes:
    """The axes of a sweep; their product (per batching) is the list of points."""

    mixers: tuple[str, ...] = ()  # empty: every registered mixer
    seq_lens: tuple[int, ...] = (256, 512, 1024, 2048, 4096)
    dims: tuple[int, ...] = (128,)
    batches: tuple[int, ...] = (1,)  # fixed batch sizes
    tokens: tuple[int, ...] = ()  # fixed tokens per batch: batch = max(1, tokens // seq_len)
    dtypes: tuple[str, ...] = ("float32",)
    modes: tuple[str, ...] = MODES
    timeout_s: float = 60.0
    budget_s: float = 0.5  # measured time per point before repetitions stop
    min_reps: int = 5
    mixer_filter: str = field(default="", compare=False)  # "nlogn": only mixers whose FLOPs grow as n log n


POWERS = tuple(2**k for k in range(7, 16))  # 128 ... 32768

PRESETS: dict[str, tuple[str, Axes]] = {
    "cpu": ("all mixers, d=128, batch 1, lengths 256-4096, float32, forward and train; ~2-3 min on 2 cores",
            Axes(seq_lens=(256, 512, 1024, 2048, 4096), dims=(128,), batches=(1,), dtypes=("float32",),
                 budget_s=0.25, min_reps=3, timeout_s=60.0)),
    "gpu": ("all mixers, d=768, lengths 128-32768 (powers of two and 384, 1000, 3072, 12288), batch 8 and "
            "65536 tokens per batch, bfloat16 and float32, forward and train",
            Axes(seq_lens=tuple(sorted(POWERS + (384, 1000, 3072, 12288))), dims=(768,), batches=(8,),
                 tokens=(65536,), dtypes=("bfloat16", "float32"), budget_s=0.2, min_reps=10, timeout_s=60.0)),
    "paper": ("the FNet paper's GPU setting: d=768, lengths 512-8192, batch 8, bfloat16 and float32, "
              "forward and train",
              Axes(seq_lens=(512, 1024, 2048, 4096, 8192), dims=(768,), batches=(8,),
                   dtypes=("bfloat16", "float32"), budget_s=0.3, min_reps=10, timeout_s=60.0)),
    "long": ("the mixers whose FLOPs grow as n log n, lengths 1024-131072, d=768, 131072 tokens per batch, "
             "bfloat16 and float32, forward",
             Axes(seq_lens=tuple(2**k for k in range(10, 18)), dims=(768,), batches=(), tokens=(131072,),
                  dtypes=("bfloat16", "float32"), modes=("forward",), budget_s=0.3, min_reps=10,
                  timeout_s=120.0, mixer_filter="nlogn")),
}


def default_preset(device: str) -> str:
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


def _items(values, what: str, allowed_text: str) -> list[str]:
    items = values.split(",") if isinstance(values, str) else [str(v) for v in values]
    items = [item.strip() for item in items]
    if not items or any(not item for item in items):
        raise PlanError(f"--{what} needs a comma-separated list, got {values!r} (allowed: {allowed_text})")
    return items


def parse_names(values, what: str, allowed, aliases: dict | None = None) -> tuple[str, ...]:
    """Names from a comma-separated string or a sequence, each one of `allowed` (or an alias of one)."""
    resolved: list[str] = []
    for name in _items(values, what, ", ".join(allowed)):
        name = (aliases or {}).get(name, name)
        if name not in allowed:
            raise PlanError(f"unknown {what.rstrip('s')} {name!r} in --{what} (allowed: {', '.join(allowed)})")
        if name not in resolved:
            resolved.append(name)
    return tuple(resolved)


def parse_ints(values, what: str) -> tuple[int, ...]:
    """Positive integers from a comma-separated string or a sequence (1k and 2K mean 1024 and 2048)."""
    parsed = []
    for item in _items(values, what, "positive integers such as 512,1024 or 1k,4k"):
        item = item.lower()
        scale = 1024 if item.endswith("k") else 1
        digits = item[:-1] if scale > 1 else item
        if not digits.isdigit() or int(digits) * scale < 1:
            raise PlanError(f"--{what} takes positive integers such as 512,1024 or 1k,4k; got {item!r} in {values!r}")
        parsed.append(int(digits) * scale)
    return tuple(sorted(set(parsed)))


def _grows_as_n_log_n(cls) -> bool:
    """True where the analytic FLOPs grow less than quadratically between the two longest lengths."""
    small, large = cls.flops(65536, 768), cls.flops(131072, 768)
    return small > 0 and large / small < 2.5


def mixer_names(axes: Axes) -> tuple[str, ...]:
    names = axes.mixers or tuple(mixers.available())
    if axes.mixer_filter == "nlogn":
        names = tuple(name for name in names if _grows_as_n_log_n(mixers.get(name)))
    return names


def expand(axes: Axes, device: str) -> list[Point]:
    """Every point of the axes, ordered so each series runs from the shortest length up."""
    series = [(f"batch={b}", lambda n, b=b: b) for b in axes.batches]
    series += [(f"tokens={t}", lambda n, t=t: max(1, t // n)) for t in axes.tokens]
    if not series:
        raise PlanError("a sweep needs at least one --batch or --tokens value")
    points = []
    for dtype in axes.dtypes:
        for mode in axes.modes:
            for dim in axes.dims:
                for batching, batch_of in series:
                    for mixer in mixer_names(axes):
                        for seq_len in sorted(axes.seq_lens):
                            points.append(Point(mixer, seq_len, dim, batch_of(seq_len), batching, dtype, mode, device))
    return points


def with_overrides(axes: Axes, **overrides) -> Axes:
    """The axes with every override that is not None applied."""
    return replace(axes, **{key: value for key, value in overrides.items() if value is not None})
