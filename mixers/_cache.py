"""Constants that mixers build once and keep between calls (transform matrices, twiddles, gather
indices), cached per (sizes, dtype, device), with a view of what is held.

Every cached tensor is memory a mixer holds between calls, like its parameters: `cached_tensors()`
lists them so that the harness counts them in a point's resident memory, and `clear_caches()` frees
them between points.
"""

from __future__ import annotations

import functools
from collections import OrderedDict

import torch

# Transform matrices for the largest sizes are big (dft-matrix at seq_len 16384 in float32: 2 GiB),
# so each cache is bounded: a sweep keeps only the sizes it has used most recently.
CACHE_ENTRIES = 16
RELEASE_AFTER_BYTES = 64 * 2**20  # a CUDA table at least this large returns its build's temporaries to the device
_CACHES: list[TensorCache] = []


class TensorCache:
    """`build(*sizes) -> tensor` (float64, complex128 or int64), cast and kept per (sizes, dtype, device).

    `build` runs under `torch.device(device)`, so its factory calls (arange, full, linspace, ...) make the
    table on the device that uses it: in float64 there, for float64 accuracy, then cast to `dtype` in place
    of a host-side build and a host-to-device copy (on the host after all where the GPU has no room for the
    build's temporaries). Least recently used entries beyond CACHE_ENTRIES are dropped.
    """

    def __init__(self, build):
        functools.update_wrapper(self, build)
        self.entries: OrderedDict[tuple, torch.Tensor] = OrderedDict()

    def __call__(self, *sizes, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        key = (sizes, dtype, device)
        tensor = self.entries.get(key)
        if tensor is None:
            # Built outside inference mode: a cached inference tensor could not be saved for backward later.
            with torch.inference_mode(False), torch.no_grad():
                tensor = self._build(sizes, dtype, torch.device(device))
            self.entries[key] = tensor
            while len(self.entries) > CACHE_ENTRIES:
                self.entries.popitem(last=False)
        else:
            self.entries.move_to_end(key)
        return tensor

    def _build(self, sizes: tuple, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        if device.type != "cuda":
            with device:
                return self.__wrapped__(*sizes).to(device=device, dtype=dtype).contiguous()
        tensor = None
        try:
            with device:
                tensor = self.__wrapped__(*sizes).to(dtype=dtype).contiguous()
        except torch.cuda.OutOfMemoryError:
            pass  # the float64 temporaries (a few times the table) did not fit; built on the host below
        if tensor is None:  # (out of the handler: its traceback no longer holds the temporaries)
            torch.cuda.empty_cache()
            return self.__wrapped__(*sizes).to(dtype=dtype).to(device).contiguous()
        if tensor.nbytes >= RELEASE_AFTER_BYTES:
            torch.cuda.empty_cache()  # hand the build's float64 temporaries back rather than keep them reserved
        return tensor

    def clear(self) -> None:
        self.entries.clear()


def tensor_cache(build) -> TensorCache:
    """Decorate `build(*sizes) -> tensor` to build it on the device, cast, and cache it per (sizes, dtype, device)."""
    cache = TensorCache(build)
    _CACHES.append(cache)
    return cache


def clear_caches() -> None:
    """Drop every cached matrix and index (frees their memory; the next call rebuilds them)."""
    for cache in _CACHES:
        cache.clear()


def cached_tensors() -> list[torch.Tensor]:
    """Every tensor the caches hold now, on every device."""
    return [tensor for cache in _CACHES for tensor in cache.entries.values()]
