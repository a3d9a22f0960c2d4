"""The vocabulary of one unit of work: a timing `Point`, a `TrainingRun`, and the names and option strings
they are made of.

Plain data and parsing only; nothing here imports torch, so the command line builds its parser (and
starts its workers' forkserver) before torch is imported. A point has a *scope*: `mixer` (the token mixer
alone), `block` (one encoder layer) or `encoder` (embeddings, N layers and a masked-LM head).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from bench.models.vocabulary import MODES, NORMS, SCOPES  # noqa: F401 - re-exported: the vocabulary of a point

DTYPE_NAMES = ("float32", "float64", "bfloat16", "float16")
DTYPE_ALIASES = {"fp32": "float32", "fp64": "float64", "bf16": "bfloat16", "fp16": "float16",
                 "half": "float16", "float": "float32", "double": "float64"}
DEVICES = ("auto", "cpu", "cuda")
DEFAULT_WEIGHT_DECAY = 0.1  # AdamW's weight decay in quality runs unless a preset or --weight-decays says otherwise


class PlanError(ValueError):
    """Bad sweep input; the message is one line naming what is wrong and what is allowed."""


class _Item:
    """What a timing point and a training run share: a key of their fields, a dict, a label, a CSV round trip."""

    FIELDS: tuple[str, ...] = ()

    @property
    def key(self) -> tuple:
        return tuple(getattr(self, name) for name in self.FIELDS)

    def as_dict(self) -> dict:
        return asdict(self)

    def label(self) -> str:
        raise NotImplementedError

    @classmethod
    def from_row(cls, row: dict):
        """The item a row of its table (strings, as read back from the CSV) describes."""
        return from_strings(cls, row)


@dataclass(frozen=True)
class Point(_Item):
    """One timing measurement: a mixer (or layout) at one scope, size, dtype, mode and device.

    `layers`, `ffn` and `norm` describe a block or an encoder and `vocab` an encoder; they are None
    where the scope has no such part (a mixer alone has none of them). `causal`: every mixer in its causal
    form (`mixers.build(..., causal=True)`); rows written before it existed read back as False.
    """

    mixer: str
    scope: str
    seq_len: int
    dim: int
    layers: int | None
    ffn: int | None
    vocab: int | None
    norm: str | None
    batch: int
    batching: str  # how the series chose its batch: "batch=8" or "tokens=65536"
    dtype: str
    mode: str
    device: str
    causal: bool = False

    @property
    def series(self) -> tuple:
        """The settings shared by the lengths of one line in a plot."""
        return tuple(getattr(self, name) for name in self.FIELDS if name not in ("seq_len", "batch"))

    def label(self) -> str:
        scope = "" if self.scope == "mixer" else f" [{self.scope}]"
        causal = " causal" if self.causal else ""
        return f"{self.mixer}{scope} n={self.seq_len} d={self.dim} b={self.batch} {self.dtype} {self.mode}{causal}"

    @classmethod
    def from_row(cls, row: dict) -> "Point":
        """The point a results row (strings, as read back from results.csv) was measured at."""
        return from_strings(cls, {"scope": "mixer", **{k: v for k, v in row.items() if v not in (None, "")}})


@dataclass(frozen=True)
class TrainingRun(_Item):
    """One training run: a layout on a task at one size, rate, step budget and seed."""

    task: str
    task_options: str  # the generator's options, "name=value,..." ("" for its defaults)
    layout: str
    seq_len: int
    dim: int
    layers: int
    ffn: int
    norm: str
    shift: bool
    batch: int
    steps: int
    lr: float
    seed: int
    dtype: str
    device: str
    weight_decay: float = DEFAULT_WEIGHT_DECAY  # AdamW's; last, so runs built by position keep today's 0.1

    def label(self) -> str:
        return (f"{self.task}: {self.layout} n={self.seq_len} d={self.dim} lr={self.lr:g} wd={self.weight_decay:g} "
                f"seed={self.seed}")

    @property
    def options(self) -> dict:
        """The task generator's options, parsed."""
        return parse_options(self.task_options)


POINT_FIELDS = Point.FIELDS = tuple(item.name for item in fields(Point))
TRAINING_FIELDS = TrainingRun.FIELDS = tuple(item.name for item in fields(TrainingRun))


def from_strings(cls, row: dict):
    """A dataclass from a CSV row's strings, each field converted by its annotation (int, float, bool, str,
    or None for an empty cell where the annotation allows it)."""
    values = {}
    for item in fields(cls):
        text = row.get(item.name)
        text = "" if text is None else str(text)
        kind = str(item.type)
        if text == "" and "None" in kind:
            values[item.name] = None
        elif kind.startswith("int"):
            values[item.name] = int(float(text))
        elif kind.startswith("float"):
            values[item.name] = float(text)
        elif kind.startswith("bool"):
            values[item.name] = text.lower() in ("true", "1")
        else:
            values[item.name] = text
    return cls(**values)


def mixer_point(mixer: str, seq_len: int, dim: int, batch: int, dtype: str, mode: str, device: str) -> Point:
    """A point of a mixer alone, with a fixed batch."""
    return Point(mixer, "mixer", seq_len, dim, None, None, None, None, batch, f"batch={batch}", dtype, mode, device)


# --- option strings -----------------------------------------------------------------------------------

def items(values, what: str, allowed_text: str) -> list[str]:
    """The stripped items of a comma-separated string or a sequence; an empty item is refused."""
    found = values.split(",") if isinstance(values, str) else [str(v) for v in values]
    found = [item.strip() for item in found]
    if not found or any(not item for item in found):
        raise PlanError(f"--{what} needs a comma-separated list, got {values!r} (allowed: {allowed_text})")
    return found


def parse_names(values, what: str, allowed, aliases: dict | None = None) -> tuple[str, ...]:
    """Names from a comma-separated string or a sequence, each one of `allowed` (or an alias of one)."""
    resolved: list[str] = []
    for name in items(values, what, ", ".join(allowed)):
        name = (aliases or {}).get(name, name)
        if name not in allowed:
            raise PlanError(f"unknown {what.rstrip('s')} {name!r} in --{what} (allowed: {', '.join(allowed)})")
        if name not in resolved:
            resolved.append(name)
    return tuple(resolved)


def parse_ints(values, what: str, *, allow_zero: bool = False) -> tuple[int, ...]:
    """Positive integers from a comma-separated string or a sequence (1k and 2K mean 1024 and 2048)."""
    parsed = []
    kind = "non-negative" if allow_zero else "positive"
    for item in items(values, what, f"{kind} integers such as 512,1024 or 1k,4k"):
        item = item.lower()
        scale = 1024 if item.endswith("k") else 1
        digits = item[:-1] if scale > 1 else item
        if not digits.isdigit() or int(digits) * scale < (0 if allow_zero else 1):
            raise PlanError(f"--{what} takes {kind} integers such as 512,1024 or 1k,4k; got {item!r} in {values!r}")
        parsed.append(int(digits) * scale)
    return tuple(sorted(set(parsed)))


def parse_int(value, what: str, *, allow_zero: bool = False) -> int:
    """One positive (or non-negative) integer, with the k suffix."""
    values = parse_ints(str(value), what, allow_zero=allow_zero)
    if len(values) != 1:
        raise PlanError(f"--{what} takes one integer, got {value!r}")
    return values[0]


def parse_floats(values, what: str) -> tuple[float, ...]:
    """Positive numbers from a comma-separated string or a sequence (3e-3,1e-3)."""
    parsed = []
    for item in items(values, what, "positive numbers such as 1e-3,3e-3"):
        try:
            value = float(item)
        except ValueError:
            value = math.nan
        if not value > 0 or math.isinf(value):
            raise PlanError(f"--{what} takes positive numbers such as 1e-3,3e-3; got {item!r} in {values!r}")
        parsed.append(value)
    return tuple(sorted(set(parsed)))


def parse_options(text: str) -> dict:
    """'vocab_size=64,power_a=0.01' -> {'vocab_size': 64, 'power_a': 0.01} (numbers where they parse)."""
    options = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise PlanError(f"task options are name=value pairs separated by commas, got {item!r} in {text!r}")
        for kind in (int, float):
            try:
                options[name.strip()] = kind(value)
                break
            except ValueError:
                continue
        else:
            options[name.strip()] = value.strip()
    return options
