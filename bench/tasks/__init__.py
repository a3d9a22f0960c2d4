"""Synthetic tasks that measure what a token mixer can learn, and the registry that finds them.

A task makes batches from a seed: `task.batch(size, seed) -> (inputs, targets, mask)`, with `inputs`
int64 `(size, seq_len)` token ids. A per-position task (`per_position = True`) gives `targets` int64
`(size, seq_len)` and `mask` bool `(size, seq_len)`, True where loss and accuracy count (targets
elsewhere are `IGNORE_INDEX`, PyTorch's `cross_entropy` default); a sequence task gives `targets`
int64 `(size,)` and `mask` None. The same (size, seed) gives the same batch on every machine: each
call seeds its own generator and never touches global RNG state.

    @tasks.register("my-task")
    class MyTask(tasks.Task):
        defaults = {"num_symbols": 8}
        def generate(self, size, seed): ...

Every module in this folder whose name does not start with `_` is imported when `bench.tasks` is,
so a new task is one new file; other packages register through the entry-point group
`mixbench.tasks`. The registry is a plain name -> class map: `available()`, `get()`, `build()`; it is
`mixbench_registry.Registry`, the one the mixers use too.

Train, validation and test never share a batch: the trainer draws batch i of split s from
`task.batch(size, split_seed(s, i, run_seed))`, and `split_seed` maps each (run, split) to its own
range of seeds. This package imports only torch, numpy, the standard library and the torch-free
`mixbench_registry` (never `mixers` or the rest of `bench`), as the generators of Zoology (HazyResearch/zoology, `zoology/data/`) stand
apart from its models and training loop.
"""

from __future__ import annotations

import math
import operator

import torch

from mixbench_registry import SUPPORTED, Registry, Support

__all__ = [
    "IGNORE_INDEX", "REGISTRY", "SPLITS", "Support", "Task", "TaskOptionError", "UnknownTaskError", "available",
    "build", "check_float", "check_int", "get", "register", "split_seed",
]

ENTRY_POINT_GROUP = "mixbench.tasks"
IGNORE_INDEX = -100  # targets outside the mask: what torch.nn.functional.cross_entropy ignores by default
SPLITS = ("train", "val", "test")
SPLIT_BITS = 32  # batch indices per (run, split): 2**32


class UnknownTaskError(ValueError):
    """A task name that is not registered."""


class TaskOptionError(ValueError):
    """A size or option a task refuses; the one-line message says what is wrong and what is allowed."""


def split_seed(split: str, index: int, run_seed: int = 0) -> int:
    """Seed of batch `index` of `split` in run `run_seed`: ((4·run_seed + 1 + s) << 32) + index.

    s is 0, 1, 2 for "train", "val", "test", so each (run_seed, split) owns the 2**32 seeds
    [(4·run_seed + 1 + s)·2**32, (4·run_seed + 2 + s)·2**32) and no two pairs overlap. Seeds whose
    high part is a multiple of 4, every seed below 2**32 among them, are never produced: ad hoc
    batches (`task.batch(8, seed=0)`) and reference samples (listops' baseline) use those.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} (allowed: {', '.join(SPLITS)})")
    index, run_seed = _as_int(index), _as_int(run_seed)
    if index is None or not 0 <= index < 2**SPLIT_BITS:
        raise ValueError(f"batch index must be an integer in [0, 2**{SPLIT_BITS}), got {index!r}")
    if run_seed is None or run_seed < 0:
        raise ValueError(f"run_seed must be a non-negative integer, got {run_seed!r}")
    return ((4 * run_seed + 1 + SPLITS.index(split)) << SPLIT_BITS) + index


def _as_int(value) -> int | None:
    """`value` as a Python int if it is an integer (bool excluded), else None."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def check_int(name: str, value, low: int, high: int | None = None) -> str:
    """Why `value` is not an integer in [low, high] ("" when it is); for tasks' `check()`."""
    number = _as_int(value)
    if number is None:
        return f"{name} must be an integer, got {value!r}"
    if number < low or (high is not None and number > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        return f"{name}={number} is out of range (allowed: {allowed})"
    return ""


def check_float(name: str, value, low: float, low_inclusive: bool = False) -> str:
    """Why `value` is not a finite real number above `low` ("" when it is)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return f"{name} must be a finite number, got {value!r}"
    if value < low or (value == low and not low_inclusive):
        return f"{name}={value} is out of range (allowed: {'>=' if low_inclusive else '>'} {low})"
    return ""


class Task:
    """Base class: options are checked once at construction; `batch(size, seed)` makes the data.

    A subclass sets `defaults` (option name -> default value), `per_position` and
    `default_seq_len`, may derive defaults from seq_len in `derive()`, states its limits in
    `check()`, and implements `generate(size, seed)`; in `__init__` (after calling the base's) it
    sets `vocab`, `num_classes` and `baseline`. The class methods never generate data.
    """

    name: str = ""  # set by @register
    per_position: bool = False
    causal: bool = False  # True: a next-token task that needs a causal model
    default_seq_len: int = 64
    defaults: dict = {}  # option -> default; None where derive() fills it in from seq_len

    vocab: list[str]
    num_classes: int
    baseline: float

    def __init__(self, seq_len: int | None = None, **options):
        self.seq_len, self.options = type(self).resolve(seq_len, **options)

    def __repr__(self) -> str:
        options = ", ".join(f"{key}={value!r}" for key, value in self.options.items())
        return f"{type(self).__name__}({self.name!r}, seq_len={self.seq_len}{', ' if options else ''}{options})"

    @classmethod
    def derive(cls, seq_len: int, options: dict) -> dict:
        """Fill in the defaults that depend on seq_len or on other options; the base has none."""
        return options

    @classmethod
    def check(cls, seq_len: int, options: dict) -> str:
        """Why this size and these resolved options are refused ("" when they are fine)."""
        return ""

    @classmethod
    def resolve(cls, seq_len: int | None = None, **options) -> tuple[int, dict]:
        """(seq_len, every option resolved to a value); raises TaskOptionError naming what is wrong."""
        if seq_len is None:
            seq_len = cls.default_seq_len
        reason = check_int("seq_len", seq_len, 1)
        unknown = sorted(set(options) - set(cls.defaults))
        if not reason and unknown:
            allowed = ", ".join(sorted(cls.defaults)) or "none"
            reason = f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} (allowed: {allowed})"
        if not reason:
            seq_len = operator.index(seq_len)
            resolved = cls.derive(seq_len, {**cls.defaults, **options})
            reason = cls.check(seq_len, resolved)
        if reason:
            raise TaskOptionError(f"{cls.name or cls.__name__}: {reason}")
        return seq_len, resolved

    @classmethod
    def supports(cls, seq_len: int | None = None, **options) -> Support:
        """Whether the task can be built with these; the reason is the error `build()` would raise."""
        try:
            cls.resolve(seq_len, **options)
        except TaskOptionError as error:
            return Support(False, str(error))
        return SUPPORTED

    def batch(self, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(inputs, targets, mask) for `size` examples drawn from `seed`; the same pair, the same batch."""
        reason = check_int("batch size", size, 1) or check_int("seed", seed, 0)
        if reason:
            raise TaskOptionError(f"{self.name}: {reason}")
        return self.generate(operator.index(size), operator.index(seed))

    def generate(self, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The batch itself; subclasses implement it with a generator seeded from `seed` only."""
        raise NotImplementedError(f"{type(self).__qualname__} does not implement generate()")

    def decode(self, ids) -> list[str]:
        """Token strings of one row of ids (a tensor, array or list)."""
        return [self.vocab[int(i)] for i in ids]


REGISTRY = Registry("task", Task, ENTRY_POINT_GROUP, UnknownTaskError)
register = REGISTRY.register
available = REGISTRY.available
get = REGISTRY.get


def build(name: str, seq_len: int | None = None, **options) -> Task:
    """Task `name` at `seq_len` (None: the task's default) with `options`; bad ones raise TaskOptionError."""
    return get(name)(seq_len, **options)


REGISTRY.import_all(__name__, __path__)
REGISTRY.load_entry_points()
