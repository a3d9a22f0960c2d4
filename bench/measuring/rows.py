"""What every row carries, whichever kind of work made it: the hash of the source it depends on, the time it
was made, and a status and reason when an exception stopped it; and the typed reply a worker sends back."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import importlib
import inspect
import pkgutil
import re
import sys
from types import ModuleType
from typing import NamedTuple

import torch

import mixers
from bench import models
from bench.measuring.points import Point, TrainingRun

TRAINING_MODULE = "bench.measuring.train"  # the training loop, part of what a quality row depends on


class Reply(NamedTuple):
    """A worker's answer for one item: the row's columns, the order statistics of its timed calls (what rounds
    are pooled from; empty where nothing was timed), whether this process's CUDA context is poisoned (it must
    exit), and the pid of the process that made it."""

    row: dict
    samples: list = []
    fatal: bool = False
    pid: int | None = None


def now() -> str:
    """The UTC time, to the second, as every row and env.json write it."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


# --- source hashes -----------------------------------------------------------------------------------

def _module_source(module: ModuleType) -> str:
    try:
        return inspect.getsource(module)
    except (OSError, TypeError):
        return module.__name__


@functools.lru_cache(maxsize=None)
def source_hash(cls: type) -> str:
    """Short hash of the source of a mixer's module and of the `mixers.*` modules it uses, directly or through
    another (the `_cost`/`_cache`/`_spectral` helpers, a base class's module)."""
    used: dict[str, ModuleType] = {}
    pending = [sys.modules[cls.__module__]]
    while pending:
        module = pending.pop()
        used[module.__name__] = module
        for value in vars(module).values():
            name = value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", None)
            if isinstance(name, str) and name.startswith("mixers.") and name in sys.modules and name not in used:
                pending.append(sys.modules[name])
    digest = hashlib.sha256()
    for name in sorted(used):
        digest.update(_module_source(used[name]).encode())
    return digest.hexdigest()[:12]


@functools.lru_cache(maxsize=None)
def package_hash(package: str) -> str:
    """Short hash of every module of a package (bench.models, bench.tasks, ...) or of one module, each imported
    first: which of them a process has loaded so far (bench.models loads lazily) must not change the hash."""
    top = importlib.import_module(package)
    for found in pkgutil.walk_packages(getattr(top, "__path__", ()), package + "."):  # none for a plain module
        importlib.import_module(found.name)
    digest = hashlib.sha256()
    for name in sorted(n for n in sys.modules if n == package or n.startswith(package + ".")):
        digest.update(_module_source(sys.modules[name]).encode())
    return digest.hexdigest()[:12]


def layout_hash(layout: str, *packages: str) -> str:
    """The source hash of a layout's mixers, plus the packages that build or feed the model around them."""
    parts = [source_hash(mixers.get(name)) for name in models.parse_layout(layout).names]
    parts += [package_hash(package) for package in packages]
    return parts[0] if len(parts) == 1 else hashlib.sha256("".join(parts).encode()).hexdigest()[:12]


def parses(layout: str) -> bool:
    """True where `layout` names registered mixers (a plugin mixer may be gone since the point was planned)."""
    try:
        models.parse_layout(layout)
        return True
    except models.LayoutError:
        return False


def point_hash(point: Point) -> str:
    """What a point's row depends on: its mixers' sources, and the model code above mixer scope ("" for a
    mixer that is not registered)."""
    if not parses(point.mixer):
        return ""
    return layout_hash(point.mixer, *(() if point.scope == "mixer" else ("bench.models",)))


def training_hash(run: TrainingRun) -> str:
    """What a quality row depends on: the layout's mixers, the model, the task generators and the training loop
    ("" for a mixer or task that is gone since planning)."""
    try:
        return layout_hash(run.layout, "bench.models", "bench.tasks", TRAINING_MODULE)
    except Exception:  # noqa: BLE001 - a mixer or task that is gone since planning
        return ""


# --- failures ----------------------------------------------------------------------------------------

# What a failed allocation says besides torch's OutOfMemoryError: the caching allocator and cudaMalloc ("out of
# memory"), the host ("can't allocate memory"), and the CUDA libraries, which allocate their own plans, handles
# and workspaces: cuFFT (CUFFT_ALLOC_FAILED), cuBLAS (CUBLAS_STATUS_ALLOC_FAILED, e.g. in cublasCreate), cuDNN
# (CUDNN_STATUS_ALLOC_FAILED, CUDNN_STATUS_NOT_ENOUGH_WORKSPACE), cuSOLVER/cuSPARSE (…_STATUS_ALLOC_FAILED).
OOM_MARKERS = ("out of memory", "can't allocate memory", "CUFFT_ALLOC_FAILED", "_STATUS_ALLOC_FAILED",
               "CUDNN_STATUS_NOT_ENOUGH_WORKSPACE", "NOT_ENOUGH_WORKSPACE")


def is_oom(exc: BaseException) -> bool:
    """Whether `exc` says memory ran out: the point's status is then `oom`, and its series is cut after it."""
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(marker in text for marker in OOM_MARKERS)


def is_fatal_cuda(exc: BaseException) -> bool:
    """A CUDA error after which this process's context cannot be trusted (an illegal memory access, a device-side
    assert, a launch failure: the error is sticky, every later call raises it again). A failed allocation is not
    one: the context is sound, and the worker carries on after it."""
    text = str(exc)
    return (isinstance(exc, RuntimeError) and ("CUDA error" in text or "CUDA kernel errors" in text)
            and not is_oom(exc))


# --- what ran ------------------------------------------------------------------------------------------

def kernel_of(module: torch.nn.Module) -> str:
    """The kernels a built point ran, as its mixers say (`TokenMixer.kernel_name`): each different non-empty
    answer once, in module order, joined by "+" ("" where every mixer has one path)."""
    names: list[str] = []
    for part in module.modules():
        if isinstance(part, mixers.TokenMixer):
            name = part.kernel_name()
            if name and name not in names:
                names.append(name)
    return "+".join(names)


_IDENTIFIER = re.compile(r"(class_name|actor_id|pid|name|namespace|ip):")  # Ray's lines naming its actor


def one_line(exc: BaseException, *, named: bool = True, limit: int = 500) -> str:
    """`exc`'s message in one line: its type name first where `named`, without the lines by which Ray names an
    actor, its generic "The actor died unexpectedly" opening and its list of common causes."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    lines = [line for line in lines if not _IDENTIFIER.match(line)]
    if len(lines) > 1 and lines[0].startswith("The actor died unexpectedly"):
        lines = lines[1:]  # the generic first line; the cause follows
    text = " ".join(" ".join(lines).split()).split(" Some common causes")[0]
    if named:
        return f"{type(exc).__name__}: {text}"[:limit]
    return text[:limit] or type(exc).__name__


def failure(row: dict, exc: BaseException) -> Reply:
    """The reply for an exception raised while measuring or training: `row` with its status and reason, fatal
    where the CUDA context cannot be trusted."""
    return Reply({**row, "status": "oom" if is_oom(exc) else "error", "error": one_line(exc)},
                 fatal=is_fatal_cuda(exc))
