"""Encoder blocks and encoders built from any registered token mixer or layout, and their analytic cost.

- `layout`: `parse_layout("fft+attention:2")` → which mixer each layer uses (FNet-Hybrid).
- `blocks`: `Block` — mixer sublayer + feed-forward sublayer with residuals and LayerNorm (BERT, FNet).
- `encoder`: `Encoder` — embeddings, blocks, a masked-LM/classifier head; the named `SHAPES`.
- `cost`: `parts(scope, ...)` — FLOPs, bytes, parameters and compute dtype of each operation.

This package imports only `mixers`, torch and the standard library — never the rest of `bench`.
"""

from bench.models.blocks import NORMS, Block, options_for
from bench.models.cost import SCOPES, Part, counted_cost, param_count, parts, total
from bench.models.encoder import (DEFAULT_LAYERS, DEFAULT_VOCAB, HEADS, SHAPES, Encoder, Shape, default_ffn,
                                  mlm_count)
from bench.models.layout import Layout, LayoutError, parse_layout, validate_layout

__all__ = [
    "DEFAULT_LAYERS", "DEFAULT_VOCAB", "HEADS", "NORMS", "SCOPES", "SHAPES", "Block", "Encoder", "Layout",
    "LayoutError", "Part", "Shape", "counted_cost", "default_ffn", "mlm_count", "options_for", "param_count",
    "parts", "parse_layout", "total", "validate_layout",
]
