"""One registry for mixbench's extension points (token mixers and tasks): a plain name -> class map.

    MIXERS = Registry("mixer", TokenMixer, "mixbench.mixers", UnknownMixerError)

    @MIXERS.register("my-mixer")
    class MyMixer(TokenMixer): ...

`register(name)` refuses, at import and naming the name, a class that does not subclass the base
and a name another class holds; `available()` lists the names; `get(name)` returns the class, and
an unknown name raises the registry's error listing the available ones. `import_all()` imports
every module of a package whose name does not start with `_` (a new file is a new entry), and
`load_entry_points()` imports the modules other installed packages name in the entry-point group
(a broken plugin is a warning, not a crash).

This module is top-level, beside the `mixers` and `bench` packages rather than inside either, because
both use it and neither may import the other's side: `mixers` never imports `bench`, and `bench.tasks`
imports only torch, numpy, the standard library, itself and this module. It imports only the
standard library (no torch). The `mixbench_` prefix keeps its name clear of unrelated distributions
on PyPI that install a top-level `registry` module.
"""

from __future__ import annotations

import importlib
import pkgutil
import warnings
from importlib import metadata
from typing import NamedTuple

__all__ = ["Registry", "SUPPORTED", "Support"]


class Support(NamedTuple):
    """Whether a registered class can run (or be built) with some sizes and options, and if not, why.

    Truthy when it can; `reason` is one line saying what is refused and what is allowed.
    """

    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


SUPPORTED = Support(True)


class Registry:
    """Name -> subclass of `base` for one `kind` of entry ("mixer", "task"); plugins come from `entry_point_group`.

    `error` is the exception class `get()` raises for an unknown name (a ValueError subclass by default).
    """

    def __init__(self, kind: str, base: type, entry_point_group: str, error: type[Exception] = ValueError):
        self.kind = kind
        self.base = base
        self.entry_point_group = entry_point_group
        self.error = error
        self.classes: dict[str, type] = {}

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self.classes)} registered)"

    def register(self, name: str):
        """Class decorator: register a subclass of the base under `name`; refuses mistakes at import."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"register() takes a non-empty {self.kind} name, got {name!r}")

        def decorate(cls):
            base = f"{self.base.__module__}.{self.base.__qualname__}"
            if not (isinstance(cls, type) and issubclass(cls, self.base)):
                raise TypeError(f"cannot register {cls!r} as {self.kind} {name!r}: it does not subclass {base}")
            taken = self.classes.get(name)
            if taken is not None and taken is not cls:
                raise ValueError(f"{self.kind} name {name!r} is taken by {taken.__module__}.{taken.__qualname__}; "
                                 f"cannot register {cls.__module__}.{cls.__qualname__} under it")
            cls.name = name
            self.classes[name] = cls
            return cls

        return decorate

    def available(self) -> list[str]:
        """Sorted names of every registered class."""
        return sorted(self.classes)

    def get(self, name: str) -> type:
        """The class registered under `name`; an unknown name's error lists the available ones."""
        try:
            return self.classes[name]
        except (KeyError, TypeError):  # TypeError: an unhashable name
            raise self.error(f"unknown {self.kind} {name!r} (available: {', '.join(self.available())})") from None

    def import_all(self, package: str, path) -> None:
        """Import every module of `package` (its `__path__` is `path`) whose name does not start with `_`."""
        for info in pkgutil.iter_modules(path):
            if not info.name.startswith("_"):
                importlib.import_module(f"{package}.{info.name}")

    def load_entry_points(self) -> None:
        """Import every module named in the entry-point group; a plugin that fails to import is a warning."""
        for entry_point in metadata.entry_points(group=self.entry_point_group):
            try:
                entry_point.load()
            except Exception as exc:  # another package's bug must not take the harness down
                warnings.warn(f"mixbench: could not load {self.kind} plugin {entry_point.name!r} "
                              f"({entry_point.value}): {type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=2)
