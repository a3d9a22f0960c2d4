"""Analytic cost of a mixer, a block or an encoder, part by part, without building anything.

Each `Part` is one operation a model runs — a mixer, a feed-forward sublayer, a LayerNorm, a residual
add, the embeddings, the head, the loss, the optimizer step — with its FLOPs, its minimal bytes moved,
its parameters and the dtype it computes in. The harness sums them for the roofline, TFLOP/s and GFLOPs
per example (total forward FLOPs / batch).

FLOP conventions (those of mixers/_cost.py, extended to the layers around a mixer):
- a matrix product (m×k)·(k×n) costs 2·m·k·n; a bias add 1 per element;
- GELU 5 per element (x·½·(1 + erf(x/√2)), as mixers/mlp_mixer.py counts it);
- LayerNorm 7 per element (mean, subtract, square, mean, rsqrt, scale, shift); a residual add 1;
- embedding lookups, gathers and copies 0 (they are bytes, not FLOPs); a mean 1 per element averaged;
- softmax cross-entropy 5 per logit;
- AdamW 14 FLOPs per parameter and 7 tensor reads/writes per parameter (p, grad, m, v read; p, m, v
  written), in the model's dtype.
Bytes: a part reads its input and parameters and writes its output once (the minimal traffic when
parts are not fused with each other); a mixer part's bytes are the mixer's own `bytes_min`.
Train mode: every part but the optimizer follows `mixers.TokenMixer.cost`'s rule — FLOPs ×3 for a part
with parameters (input and weight gradients), ×2 without; bytes doubled plus parameter gradients
written — applied by `counted_cost`, not restated. Train adds the loss (when there is a head) and the
AdamW step over every parameter, at block scope too.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

import mixers
from bench.models.blocks import check_norm, ends_with_norm, options_for
from bench.models.encoder import DEFAULT_LAYERS, DEFAULT_VOCAB, check_config, default_ffn, mlm_count
from bench.models.layout import LayoutError, parse_layout
from bench.models.vocabulary import MODES, SCOPES

LAYER_NORM_FLOPS = 7
GELU_FLOPS = 5
CROSS_ENTROPY_FLOPS = 5
ADAMW_FLOPS = 14
ADAMW_ACCESSES = 7


class Part(NamedTuple):
    """One operation's analytic cost in a mode; `params` are the parameters it owns (tied ones once)."""

    name: str
    flops: int
    bytes_min: int
    params: int
    compute_dtype: torch.dtype


def counted_cost(flops: int, bytes_min: int, params: int, dtype: torch.dtype, mode: str) -> mixers.Cost:
    """Cost in `mode` of a part with these forward FLOPs, bytes and trained parameters, by TokenMixer.cost's rule."""
    return mixers.mode_cost(flops, bytes_min, params, _itemsize(dtype), mode)


def _itemsize(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


class _Builder:
    """Collects parts for one point (batch, dtype, mode, device)."""

    def __init__(self, batch: int, dtype: torch.dtype, mode: str, device):
        self.batch, self.dtype, self.mode, self.device = int(batch), dtype, mode, device
        self.item = _itemsize(dtype)
        self.parts: list[Part] = []

    def add(self, name: str, flops: int, elements: int, params: int, *, extra_bytes: int = 0,
            trained: int | None = None) -> None:
        """A part moving `elements` tensor elements (plus `extra_bytes`, e.g. int64 ids); `trained`
        parameters get gradients (default: its own; a tied decoder trains a weight it does not own)."""
        trained = params if trained is None else trained
        cost = counted_cost(int(flops), int(elements) * self.item + int(extra_bytes), trained, self.dtype, self.mode)
        self.parts.append(Part(name, cost.flops, cost.bytes_min, int(params), self.dtype))

    def mixer(self, name: str, prefix: str, seq_len: int, dim: int, options: dict) -> None:
        cls = mixers.get(name)
        cost = cls.cost(seq_len, dim, self.batch, self.dtype, self.mode, **options)
        compute = cls.compute_dtype(self.dtype, self.device, seq_len=seq_len, dim=dim, **options)
        self.parts.append(Part(f"{prefix}mixer:{name}", int(cost.flops), int(cost.bytes_min),
                               int(cls.param_count(seq_len, dim, **options)), compute))

    def layer_norm(self, name: str, rows: int, dim: int) -> None:
        self.add(name, LAYER_NORM_FLOPS * rows * dim, 2 * rows * dim + 2 * dim, 2 * dim)

    def residual(self, name: str, rows: int, dim: int) -> None:
        self.add(name, rows * dim, 3 * rows * dim, 0)

    def dense(self, name: str, rows: int, fan_in: int, fan_out: int, *, gelu: bool = False) -> None:
        """Linear fan_in → fan_out with bias over `rows` rows, optionally followed by GELU."""
        params = fan_in * fan_out + fan_out
        flops = rows * (2 * fan_in * fan_out + fan_out + (GELU_FLOPS * fan_out if gelu else 0))
        self.add(name, flops, rows * (fan_in + fan_out) + params, params)

    def block(self, prefix: str, name: str, seq_len: int, dim: int, ffn: int, norm: str, options: dict) -> None:
        rows = self.batch * seq_len
        ffn_params = 2 * dim * ffn + ffn + dim
        ffn_flops = rows * (2 * dim * ffn + ffn + GELU_FLOPS * ffn + 2 * ffn * dim + dim)
        if norm != "post":
            self.layer_norm(f"{prefix}norm1", rows, dim)
        self.mixer(name, prefix, seq_len, dim, options)
        if norm == "peri":
            self.layer_norm(f"{prefix}out_norm1", rows, dim)
        self.residual(f"{prefix}residual1", rows, dim)
        if norm == "post":
            self.layer_norm(f"{prefix}norm1", rows, dim)
        else:
            self.layer_norm(f"{prefix}norm2", rows, dim)
        self.add(f"{prefix}ffn", ffn_flops, 2 * rows * dim + ffn_params, ffn_params)
        if norm == "peri":
            self.layer_norm(f"{prefix}out_norm2", rows, dim)
        self.residual(f"{prefix}residual2", rows, dim)
        if norm == "post":
            self.layer_norm(f"{prefix}norm2", rows, dim)

    def optimizer(self) -> None:
        """AdamW over every parameter counted so far (train mode only; no train rule on top)."""
        params = sum(part.params for part in self.parts)
        self.parts.append(Part("adamw", ADAMW_FLOPS * params, ADAMW_ACCESSES * params * self.item, 0, self.dtype))


def _plain(layout, scope: str) -> str:
    layout = parse_layout(layout)
    if not layout.is_plain:
        raise LayoutError(f"scope {scope!r} has one mixer; layout {layout} mixes several (use scope 'encoder')")
    return layout.base


def parts(scope: str, layout, seq_len: int, dim: int, batch: int, dtype: torch.dtype, mode: str,
          device="cpu", *, layers: int | None = None, ffn: int | None = None, vocab: int | None = None,
          norm: str = "post", head: str = "mlm", num_classes: int | None = None, mlm_fraction: float = 0.15,
          shift: bool = False, mixer_options: dict | None = None) -> list[Part]:
    """The parts of a mixer, block or encoder at one point, in the order they run; see the module docstring."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r} (allowed: {', '.join(SCOPES)})")
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r} (allowed: {', '.join(MODES)})")
    check_norm(norm)
    layers = DEFAULT_LAYERS if layers is None else int(layers)
    ffn = default_ffn(dim) if ffn is None else int(ffn)
    vocab = DEFAULT_VOCAB if vocab is None else int(vocab)
    builder = _Builder(batch, dtype, mode, device)
    if scope == "mixer":
        name = _plain(layout, scope)
        builder.mixer(name, "", seq_len, dim, options_for(name, mixer_options))
        return builder.parts
    if scope == "block":
        name = _plain(layout, scope)
        builder.block("", name, seq_len, dim, ffn, norm, options_for(name, mixer_options))
        if mode == "train":
            builder.optimizer()
        return builder.parts

    check_config(seq_len, dim, layers, ffn, vocab, head=head, num_classes=num_classes, mlm_fraction=mlm_fraction)
    names = parse_layout(layout).per_layer(layers)
    batch = builder.batch
    rows = batch * seq_len
    if vocab:
        # lookup: 0 FLOPs, reads the ids and one row per token; the position add reads the position table
        builder.add("embeddings", rows * dim, 2 * rows * dim + seq_len * dim, vocab * dim + seq_len * dim,
                    extra_bytes=rows * _itemsize(torch.int64))
        builder.layer_norm("embeddings.norm", rows, dim)
    if shift:
        builder.add("shift", 2 * batch * (seq_len - 1) * dim * dim + rows * dim, 2 * rows * dim + dim * dim,
                    dim * dim)
    for index, name in enumerate(names):
        builder.block(f"layer{index}.", name, seq_len, dim, ffn, norm, options_for(name, mixer_options))
    if ends_with_norm(norm):
        builder.layer_norm("final_norm", rows, dim)
    if head == "mlm":
        picked = batch * mlm_count(seq_len, mlm_fraction)
        builder.dense("head.transform", picked, dim, dim, gelu=True)
        builder.layer_norm("head.norm", picked, dim)
        # tied: reads (and in train, trains) the token embedding, owns only the bias
        builder.add("head.decoder", picked * (2 * dim * vocab + vocab),
                    picked * (dim + vocab) + vocab * dim + vocab, vocab, trained=vocab * dim + vocab)
        targets, logits = picked, picked * vocab
    elif head == "tokens":
        builder.dense("head.classifier", rows, dim, num_classes)
        targets, logits = rows, rows * num_classes
    elif head == "sequence":
        builder.add("head.pool", rows * dim, rows * dim + batch * dim, 0)
        builder.dense("head.classifier", batch, dim, num_classes)
        targets, logits = batch, batch * num_classes
    if mode == "train":
        if head != "none":
            builder.add("loss", CROSS_ENTROPY_FLOPS * logits, logits + 1, 0,
                        extra_bytes=targets * _itemsize(torch.int64))
        builder.optimizer()
    return builder.parts


def total(parts_list: list[Part]) -> tuple[int, int, int]:
    """(flops, bytes_min, params) summed over parts."""
    return (sum(part.flops for part in parts_list), sum(part.bytes_min for part in parts_list),
            sum(part.params for part in parts_list))


def param_count(scope: str, layout, seq_len: int, dim: int, *, layers: int | None = None, ffn: int | None = None,
                vocab: int | None = None, **options) -> int:
    """Learned parameters of the mixer, block or encoder `parts` describes (a tied weight once)."""
    return total(parts(scope, layout, seq_len, dim, 1, torch.float32, "forward",
                       layers=layers, ffn=ffn, vocab=vocab, **options))[2]
