"""Encoder blocks and encoders built from any registered token mixer or layout, and their analytic cost.

- `layout`: `parse_layout("fft+attention:2")` → which mixer each layer uses (FNet-Hybrid).
- `blocks`: `Block` — mixer sublayer + feed-forward sublayer with residuals and LayerNorm (BERT, FNet).
- `encoder`: `Encoder` — embeddings, blocks, a masked-LM/classifier head; the named `SHAPES`.
- `cost`: `parts(scope, ...)` — FLOPs, bytes, parameters and compute dtype of each operation.
- `vocabulary`: `SCOPES`, `MODES`, `NORMS` (torch-free: the command line reads them without building a model).

This package imports only `mixers`, torch and the standard library — never the rest of `bench`.
"""

import importlib

from bench.models.vocabulary import MODES, NORMS, SCOPES

# Where each of the package's names lives. The modules import torch, so they load on first use of one of their
# names (PEP 562): `bench.models.vocabulary` stays importable by the torch-free command line.
_HOMES = {
    "blocks": ("Block", "options_for"),
    "cost": ("Part", "counted_cost", "param_count", "parts", "total"),
    "encoder": ("DEFAULT_LAYERS", "DEFAULT_VOCAB", "HEADS", "SHAPES", "Encoder", "Shape", "default_ffn", "mlm_count"),
    "layout": ("Layout", "LayoutError", "parse_layout", "validate_layout"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = ["MODES", "NORMS", "SCOPES", *sorted(_HOME_OF)]


def __getattr__(name: str):
    if name not in _HOME_OF:
        raise AttributeError(f"module 'bench.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"bench.models.{_HOME_OF[name]}"), name)
    globals()[name] = value  # once loaded, an ordinary attribute
    return value
