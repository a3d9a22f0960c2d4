"""Training one encoder on one task: the quality axis of a mixer (what its speed costs in what it learns).

The model is `bench.models.Encoder` for any layout, with a per-position head for per-position tasks
(MQAR) and a mean-pooled head for sequence tasks (ListOps), causal (every mixer in its causal form) for a
task whose `causal` is set (MAD's tasks, mqar-causal: the task's targets and mask already name the
next-token positions that count); AdamW with a linear warm-up and cosine
decay, gradient clipping at 1, a budget in steps. Batch i of the training data comes from the task's
training seeds for this run's seed; validation and test sets are fixed (the same for every run, drawn
from the task's disjoint validation and test seeds), so runs differing in layout, rate or seed are
scored on the same examples.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import OrderedDict

import torch
import torch.nn.functional as F

import mixers
from bench import models, tasks
from bench.measuring import measure
from bench.measuring.points import DEFAULT_WEIGHT_DECAY, TrainingRun
from bench.measuring.rows import Reply, failure, now, training_hash

EVAL_BATCH = 64
VAL_BATCHES = 8  # 512 validation examples
TEST_BATCHES = 16  # 1024 test examples
WEIGHT_DECAY = DEFAULT_WEIGHT_DECAY  # 0.1, as Zoology's MQAR runs; a run's own weight_decay is what it trains with
BETAS = (0.9, 0.98)
CLIP_NORM = 1.0
TRAIN_ACCURACY_STEPS = 20  # train_accuracy: the mean over the last this many steps
TIMED_AFTER = 5  # step_ms: the median step time after this many warm-up steps
# A worker keeps the batch streams it generated, up to this many bytes (stored in the narrowest integer dtype), so
# the layouts trained on one task, length, batch, step budget and seed draw their data once (a ListOps batch of
# 64 x 1000 tokens takes ~60 ms to generate on one core; its 1500-step stream is ~100 MB as int8).
BATCH_CACHE_BYTES = 512 * 2**20


def describe() -> str:
    """The training recipe, for env.json."""
    return (f"AdamW (betas {BETAS[0]}/{BETAS[1]}, weight decay {WEIGHT_DECAY} unless the run sets its own), linear "
            f"warm-up then cosine decay, "
            f"gradient norm clipped at {CLIP_NORM:g}; the best rate is chosen on validation accuracy and reported on "
            f"the test set")


def build_task(run: TrainingRun):
    return tasks.build(run.task, seq_len=run.seq_len, **run.options)


def head_dim(dim: int) -> int:
    """Attention-like mixers' head size in quality models: 64, or the whole width below it."""
    return min(64, dim)


def build(run: TrainingRun, task) -> torch.nn.Module:
    head = "tokens" if task.per_position else "sequence"
    return models.Encoder(run.layout, run.seq_len, run.dim, run.layers, run.ffn, len(task.vocab),
                          norm=run.norm, head=head, num_classes=task.num_classes, shift=run.shift,
                          mixer_options={"head_dim": head_dim(run.dim)}, causal=task.causal)


def learning_rate(step: int, steps: int, peak: float) -> float:
    """Linear warm-up over the first min(100, steps/10) steps, then cosine decay to zero."""
    warmup = max(1, min(100, steps // 10))
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def loss_and_correct(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None):
    """Cross-entropy where the task scores, and (correct, counted) predictions there."""
    if mask is not None:
        logits, targets = logits[mask], targets[mask]
    loss = F.cross_entropy(logits.float(), targets)
    correct = (logits.argmax(-1) == targets).sum().item()
    return loss, correct, targets.numel()


def _on(device, batch):
    inputs, targets, mask = batch
    return inputs.to(device), targets.to(device), None if mask is None else mask.to(device)


def _narrow(tensor: torch.Tensor | None):
    """(tensor in the narrowest integer dtype holding its values, the dtype to restore) for an int64 tensor."""
    if tensor is None or tensor.dtype != torch.int64 or tensor.numel() == 0:
        return tensor, None
    low, high = int(tensor.min()), int(tensor.max())
    for dtype in (torch.int8, torch.int16, torch.int32):
        if torch.iinfo(dtype).min <= low and high <= torch.iinfo(dtype).max:
            return tensor.to(dtype), torch.int64
    return tensor, None


def _nbytes(batch) -> int:
    return sum(item.numel() * item.element_size() for item, _ in batch if item is not None)


class BatchStream:
    """Batch i of a run's data, `task.batch(size, seeds[i])`: generated once and kept narrowed, or (`keep=False`)
    generated on each request."""

    def __init__(self, task, size: int, seeds: list[int], keep: bool = True):
        self.task, self.size, self.seeds = task, size, seeds
        self.batches = [tuple(map(_narrow, task.batch(size, seed))) for seed in seeds] if keep else None
        self.nbytes = sum(map(_nbytes, self.batches)) if keep else 0

    def __len__(self) -> int:
        return len(self.seeds)

    def __getitem__(self, index: int):
        return self.on("cpu", index)

    def on(self, device, index: int):
        """Batch `index` on `device` (moved while narrow, then widened there: less to copy to a GPU)."""
        if self.batches is None:
            return _on(device, self.task.batch(self.size, self.seeds[index]))
        return tuple(None if item is None else item.to(device) if dtype is None else item.to(device).to(dtype)
                     for item, dtype in self.batches[index])


_STREAMS: OrderedDict[tuple, BatchStream] = OrderedDict()


def batch_stream(task, key: tuple, size: int, seeds: list[int], cap_bytes: int | None = None) -> BatchStream:
    """The stream of batches `task.batch(size, seed)` for `seeds`, from this worker's cache when `key` is in it.

    `key` names the stream (task, options, length, size and seeds); streams are kept least-recently-used first out
    while their bytes exceed `cap_bytes` (BATCH_CACHE_BYTES); one that alone would exceed it is not kept but
    generated batch by batch.
    """
    cap = BATCH_CACHE_BYTES if cap_bytes is None else cap_bytes
    stream = _STREAMS.get(key)
    if stream is not None:
        _STREAMS.move_to_end(key)
        return stream
    first = tuple(map(_narrow, task.batch(size, seeds[0]))) if seeds else ()
    if _nbytes(first) * len(seeds) > cap:
        return BatchStream(task, size, seeds, keep=False)
    stream = _STREAMS[key] = BatchStream(task, size, seeds)
    while sum(kept.nbytes for kept in _STREAMS.values()) > cap:
        _STREAMS.popitem(last=False)
    return stream


def clear_batch_streams() -> None:
    _STREAMS.clear()


def training_batches(run: TrainingRun, task) -> BatchStream:
    """Batch `step` of `run`'s training data: `task.batch(run.batch, split_seed("train", step, run.seed))`."""
    key = ("train", type(task), run.task, run.task_options, run.seq_len, run.batch, run.steps, run.seed)
    return batch_stream(task, key, run.batch, [tasks.split_seed("train", step, run.seed) for step in range(run.steps)])


def evaluation_batches(run: TrainingRun, task, split: str, batches: int) -> BatchStream:
    """The fixed batches a split is scored on (the same for every run of the task, length and options)."""
    key = (split, type(task), run.task, run.task_options, run.seq_len, EVAL_BATCH, batches)
    return batch_stream(task, key, EVAL_BATCH, [tasks.split_seed(split, index) for index in range(batches)])


def evaluate(model, task, split: str, batches: int, device: str, stream=None) -> tuple[float, float]:
    """(accuracy, mean loss) over `batches` fixed batches of a split (from `stream` where given)."""
    model.eval()
    correct = counted = 0
    losses = []
    with torch.inference_mode():
        for index in range(batches):
            if stream is not None:
                inputs, targets, mask = stream.on(device, index)
            else:
                inputs, targets, mask = _on(device, task.batch(EVAL_BATCH, tasks.split_seed(split, index)))
            loss, right, total = loss_and_correct(model(inputs), targets, mask)
            correct, counted = correct + right, counted + total
            losses.append(loss.item())
    model.train()
    return correct / max(counted, 1), sum(losses) / len(losses)


def train(run: TrainingRun) -> dict:
    """Train `run`'s model and score it; returns the measured columns of its quality row (raises on failure)."""
    torch.manual_seed(run.seed)
    task = build_task(run)
    with torch.device(run.device):
        model = build(run, task)
    optimizer = torch.optim.AdamW(model.parameters(), lr=run.lr, betas=BETAS, weight_decay=run.weight_decay)
    autocast = torch.autocast(run.device, dtype=torch.bfloat16, enabled=run.dtype == "bfloat16")
    step_ms, recent, recent_loss = [], [], []
    stream = training_batches(run, task)  # generated before training, or taken from an earlier run's
    started, data_s = time.perf_counter(), 0.0
    model.train()
    for step in range(run.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, run.steps, run.lr)
        fetched = time.perf_counter()
        inputs, targets, mask = stream.on(run.device, step)
        tick = time.perf_counter()
        data_s += tick - fetched
        with autocast:
            loss, correct, counted = loss_and_correct(model(inputs), targets, mask)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        measure.synchronize(run.device)
        if step >= min(TIMED_AFTER, run.steps - 1):
            step_ms.append((time.perf_counter() - tick) * 1e3)
        recent = (recent + [correct / max(counted, 1)])[-TRAIN_ACCURACY_STEPS:]
        recent_loss = (recent_loss + [loss.item()])[-TRAIN_ACCURACY_STEPS:]
        if not math.isfinite(recent_loss[-1]):
            raise FloatingPointError(f"the training loss became {recent_loss[-1]} at step {step}")
    train_s = time.perf_counter() - started - data_s  # the steps alone, whether or not the data was cached
    with autocast:
        val_accuracy, _ = evaluate(model, task, "val", VAL_BATCHES, run.device,
                                   stream=evaluation_batches(run, task, "val", VAL_BATCHES))
        accuracy, _ = evaluate(model, task, "test", TEST_BATCHES, run.device,
                               stream=evaluation_batches(run, task, "test", TEST_BATCHES))
    median_ms = statistics.median(step_ms)
    return {"accuracy": accuracy, "val_accuracy": val_accuracy, "train_accuracy": sum(recent) / len(recent),
            "loss": sum(recent_loss) / len(recent_loss), "baseline": task.baseline,
            "params": sum(p.numel() for p in model.parameters()), "train_s": train_s, "step_ms": median_ms,
            "tokens_per_s": run.batch * run.seq_len / (median_ms / 1e3), "threads": torch.get_num_threads()}


def refusal(run: TrainingRun) -> str | None:
    """Why the run cannot happen (a task or mixer that refuses its sizes, or a causal task's mixer without a
    causal form), or None."""
    task = tasks.get(run.task)
    support = task.supports(run.seq_len, **run.options)
    if not support:
        return support.reason
    for name in models.parse_layout(run.layout).names:
        options = models.options_for(name, {"head_dim": head_dim(run.dim)})
        support = mixers.get(name).supports(run.seq_len, run.dim, torch.float32, run.device, causal=task.causal,
                                            **options)
        if not support:
            return support.reason
    return None


def base_row(run: TrainingRun, device_name: str) -> dict:
    """The columns every quality row has, whatever its status."""
    return {**run.as_dict(), "device_name": device_name, "source_hash": training_hash(run), "measured_at": now()}


def train_run(run: TrainingRun, device_name: str) -> Reply:
    """Train one run in this process; never raises: a failure is a row with its status and reason."""
    row = base_row(run, device_name)
    try:
        refused = refusal(run)
        if refused:
            return Reply({**row, "status": "unsupported", "error": refused})
        row["baseline"] = build_task(run).baseline
        return Reply({**row, "status": "ok", **train(run), "error": ""})
    except BaseException as exc:  # noqa: BLE001 - a run's failure is data
        if isinstance(exc, KeyboardInterrupt):
            raise
        return failure(row, exc)
