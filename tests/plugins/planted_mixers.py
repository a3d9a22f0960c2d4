"""Mixers that fail on purpose, loaded through the `mixbench.mixers` entry point in tests only.

Each one plants one kind of fault the sweep runner must turn into a row: an exception, a hang, a
segfault, an out-of-memory error from a given length on. `planted-identity` is the healthy control, and
`planted-slow` a healthy mixer slow enough (10 ms a call) that a signal can land in the middle of a sweep.
"""

import ctypes
import time

import torch

import mixers


class _Planted(mixers.TokenMixer):
    constraints = "test fixture"


@mixers.register("planted-identity")
class Identity(_Planted):
    """Copies its input: the control that must be measured normally."""

    def forward(self, x):
        return x.clone()


@mixers.register("planted-slow")
class Slow(_Planted):
    """Copies its input after 10 ms: a sweep of it takes long enough to be interrupted on purpose."""

    def forward(self, x):
        time.sleep(0.01)
        return x.clone()


@mixers.register("planted-raise")
class Raise(_Planted):
    """Raises an exception."""

    def forward(self, x):
        raise ValueError("planted failure in forward")


@mixers.register("planted-hang")
class Hang(_Planted):
    """Never returns."""

    def forward(self, x):
        time.sleep(3600)


@mixers.register("planted-segfault")
class Segfault(_Planted):
    """Kills its process with SIGSEGV."""

    def forward(self, x):
        ctypes.string_at(0)


@mixers.register("planted-oom")
class OutOfMemory(_Planted):
    """Raises torch.cuda.OutOfMemoryError from seq_len 64 on, as a GPU running out of memory does."""

    def forward(self, x):
        if self.seq_len >= 64:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 64.00 GiB (planted)")
        return x.clone()
