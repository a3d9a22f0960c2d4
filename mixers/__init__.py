"""Token mixers behind one interface, and the registry that finds them.

A token mixer maps `(batch, seq_len, dim)` to the same shape, dtype and device, mixing information
across the sequence. Every mixer subclasses `TokenMixer` and registers itself by name:

    @mixers.register("my-mixer")
    class MyMixer(mixers.TokenMixer):
        def forward(self, x):
            return x

Causal mixing (`build(name, seq_len, dim, causal=True)`: the output at position t depends on no input
after t) is refused unless a class declares a causal form: `causal_form = True`, and its constructor
takes `causal=` (False by default). A class without one may say why in `no_causal_form`.

Every module in this folder whose name does not start with `_` is imported when `mixers` is, so a new
mixer is one new file. Mixers in other installed packages register through the entry-point group
`mixbench.mixers`. The registry is a plain name -> class map: `available()`, `get()`, `build()`; it is
`mixbench_registry.Registry`, the one the tasks (`bench.tasks`) use too.

This package never imports `bench`: the data path runs one way (mixers -> bench).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from mixbench_registry import SUPPORTED, Registry, Support
from mixers import _cache

__all__ = [
    "CPU_DTYPES", "CUDA_DTYPES", "Cost", "HALF_DTYPES", "REGISTRY", "Support", "TokenMixer", "UnknownMixerError",
    "UnsupportedError", "available", "build", "cached_tensors", "clear_caches", "get", "held_bytes",
    "held_tensors", "mode_cost", "register",
]

CPU_DTYPES = (torch.float32, torch.float64)
CUDA_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
HALF_DTYPES = (torch.bfloat16, torch.float16)  # what FFT-based mixers and scans upcast to float32
ENTRY_POINT_GROUP = "mixbench.mixers"


class Cost(NamedTuple):
    """Analytic cost of one call: floating-point operations and the fewest bytes it must move."""

    flops: int
    bytes_min: int


class UnknownMixerError(ValueError):
    """A mixer name that is not registered."""


class UnsupportedError(ValueError):
    """A point (seq_len, dim, dtype, device) that a mixer refuses; the message is the reason."""


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


class TokenMixer(nn.Module):
    """Base class: `forward(x)` maps (batch, seq_len, dim) to the same shape, dtype and device.

    A subclass needs only `__init__(self, seq_len, dim, **options)` calling
    `super().__init__(seq_len, dim)`, and `forward`. The class methods below have defaults that a
    subclass overrides to state its constraints and its analytic cost; they never build anything.
    """

    name: str = ""  # set by @register
    constraints: str = ""  # one line for `mixbench list`, e.g. "seq_len and dim powers of two"
    # True: `causal=True` builds a form whose output at t depends on no input after t (the constructor
    # takes `causal=`); False (the default, so a new mixer is never assumed causal): causal=True is refused
    causal_form: bool = False
    no_causal_form: str = ""  # why there is no causal form, one line; "" gives a generic reason

    def __init__(self, seq_len: int, dim: int):
        super().__init__()
        self.seq_len = int(seq_len)
        self.dim = int(dim)
        self.causal = False  # a causal form sets True

    def extra_repr(self) -> str:
        return f"seq_len={self.seq_len}, dim={self.dim}"

    def kernel_name(self) -> str:
        """Which of its implementations this module runs (or ran last), for the `kernel` column: "" for a mixer
        with one path; attention names its SDPA backend, mamba its scan."""
        return ""

    @classmethod
    def supports(cls, seq_len: int, dim: int, dtype: torch.dtype = torch.float32,
                 device: str | torch.device = "cpu", **options) -> Support:
        """Whether this mixer can run the point: positive sizes, a dtype the device runs, a causal form
        where `causal=True` is asked for, then `check()`.

        Subclasses state their own constraints in `check()` and leave this method alone.
        """
        if int(seq_len) < 1 or int(dim) < 1:
            return Support(False, f"seq_len and dim must be positive, got seq_len={seq_len}, dim={dim}")
        device = torch.device(device)
        allowed = CPU_DTYPES if device.type == "cpu" else CUDA_DTYPES
        if dtype not in allowed:
            names = ", ".join(_dtype_name(d) for d in allowed)
            return Support(False, f"{_dtype_name(dtype)} is not supported on {device.type} (allowed: {names})")
        # `causal` reaches check() only where the class has a causal form (and may constrain it)
        if not cls.causal_form and options.pop("causal", False):
            return Support(False, cls.causal_refusal())
        reason = cls.check(seq_len, dim, dtype, device, **options)
        return Support(False, reason) if reason else SUPPORTED

    @classmethod
    def causal_refusal(cls) -> str | None:
        """Why `causal=True` is refused (one line), or None where the class declares a causal form."""
        if cls.causal_form:
            return None
        return cls.no_causal_form or (f"{cls.name or cls.__name__} declares no causal form "
                                      f"(causal=True needs causal_form = True and a `causal` constructor option)")

    @classmethod
    def check(cls, seq_len: int, dim: int, dtype: torch.dtype, device: torch.device, **options) -> str | None:
        """Why this mixer cannot run the point (one line: what is refused and what is allowed), or None.

        Called by `supports()` after its generic checks (positive sizes, a dtype the device runs), so a
        subclass states only its own constraints here; the base has none.
        """
        return None

    @classmethod
    def compute_dtype(cls, dtype: torch.dtype, device: str | torch.device = "cpu", *,
                      seq_len: int | None = None, dim: int | None = None, **options) -> torch.dtype:
        """The dtype that actually computes for an input of `dtype` (differs where a mixer upcasts).

        Pass the point's sizes and options where known: some upcasts depend on them (cuFFT runs
        float16 only for powers of two); without them a mixer states the upcast that may happen.
        """
        return dtype

    @classmethod
    def param_count(cls, seq_len: int, dim: int, **options) -> int:
        """Number of learned parameters (0 for the parameter-free transforms)."""
        return 0

    @classmethod
    def flops(cls, seq_len: int, dim: int, batch: int = 1, **options) -> int:
        """Analytic forward FLOPs (a multiply-add counts as two); 0 means unknown."""
        return 0

    @classmethod
    def bytes_min(cls, seq_len: int, dim: int, batch: int = 1, dtype: torch.dtype = torch.float32,
                  **options) -> int:
        """Fewest bytes a forward call must move: read the input and parameters, write the output."""
        itemsize = torch.empty((), dtype=dtype).element_size()
        return (2 * batch * seq_len * dim + cls.param_count(seq_len, dim, **options)) * itemsize

    @classmethod
    def cost(cls, seq_len: int, dim: int, batch: int = 1, dtype: torch.dtype = torch.float32,
             mode: str = "forward", **options) -> Cost:
        """Analytic FLOPs and minimal bytes of one call in `mode` ("forward" or "train").

        Train is forward plus backward: the input gradient costs one more forward, and where there
        are parameters their gradient costs another; bytes double, plus writing parameter gradients.
        """
        flops = cls.flops(seq_len, dim, batch, **options)
        nbytes = cls.bytes_min(seq_len, dim, batch, dtype, **options)
        itemsize = torch.empty((), dtype=dtype).element_size()
        return mode_cost(flops, nbytes, cls.param_count(seq_len, dim, **options), itemsize, mode)


def mode_cost(flops: int, bytes_min: int, params: int, itemsize: int, mode: str) -> Cost:
    """Cost in `mode` of a call with these forward FLOPs and bytes and `params` trained parameters.

    TokenMixer.cost's rule, with one home for every caller (bench.models' parts use it too).
    """
    if mode == "forward":
        return Cost(flops, bytes_min)
    if mode != "train":
        raise ValueError(f"unknown mode {mode!r} (allowed: forward, train)")
    return Cost(flops * (3 if params else 2), 2 * bytes_min + params * itemsize)


REGISTRY = Registry("mixer", TokenMixer, ENTRY_POINT_GROUP, UnknownMixerError)
register = REGISTRY.register
available = REGISTRY.available
get = REGISTRY.get


def build(name: str, seq_len: int, dim: int, *, dtype: torch.dtype | None = None,
          device: str | torch.device | None = None, causal: bool = False, **options) -> TokenMixer:
    """Build mixer `name` for (seq_len, dim), on `device` in `dtype` when given; its causal form if `causal`.

    A point the mixer refuses (causal=True where it has no causal form among them) raises
    `UnsupportedError` whose message is `supports()`'s reason.
    """
    cls = get(name)
    support = cls.supports(seq_len, dim, dtype or torch.float32, device or "cpu", causal=causal, **options)
    if not support:
        raise UnsupportedError(support.reason)
    if cls.causal_form:
        options["causal"] = bool(causal)
    module = cls(seq_len, dim, **options)
    if device is not None or dtype is not None:
        module = module.to(device=device, dtype=dtype)
    return module


def clear_caches() -> None:
    """Free the constants mixers cache across calls (transform matrices, twiddles, gather indices).

    A sweep calls this between points, so one mixer's cached matrices (dft-matrix at 32k tokens
    holds gigabytes) neither count against the next point's memory nor push it out of memory.
    """
    _cache.clear_caches()


def cached_tensors() -> list[torch.Tensor]:
    """Every tensor the mixers' caches hold now (tables built on a first call and kept for the next).

    The caches are shared by all mixers and keyed by size, dtype and device; after `clear_caches()`
    and one mixer's calls, they hold exactly what that mixer built.
    """
    return _cache.cached_tensors()


def held_tensors(*modules: nn.Module) -> list[torch.Tensor]:
    """Every tensor kept between calls: the modules' parameters and buffers, and every cached tensor.

    One tensor per storage (a view and its base, or a parameter shared by two modules, count once).
    """
    tensors = [t for module in modules for t in (*module.parameters(), *module.buffers())]
    unique = {}
    for tensor in [*tensors, *cached_tensors()]:
        storage = tensor.untyped_storage()
        unique.setdefault((tensor.device, storage.data_ptr(), storage.nbytes()), tensor)
    return list(unique.values())


def held_bytes(*modules: nn.Module) -> int:
    """Bytes of `held_tensors(*modules)`: whole storages, each counted once."""
    return sum(tensor.untyped_storage().nbytes() for tensor in held_tensors(*modules))


REGISTRY.import_all(__name__, __path__)
REGISTRY.load_entry_points()
