"""Training one encoder on one task: the quality axis of a mixer (what its speed costs in what it learns).

The model is `bench.models.Encoder` for any layout, with a per-position head for per-position tasks
(MQAR) and a mean-pooled head for sequence tasks (ListOps); AdamW with a linear warm-up and cosine
decay, gradient clipping at 1, a budget in steps. Batch i of the training data comes from the task's
training seeds for this run's seed; validation and test sets are fixed (the same for every run, drawn
from the task's disjoint validation and test seeds), so runs differing in layout, rate or seed are
scored on the same examples.
"""

from __future__ import annotations

import math
import statistics
import time

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
                          mixer_options={"head_dim": head_dim(run.dim)})


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


def evaluate(model, task, split: str, batches: int, device: str) -> tuple[float, float]:
    """(accuracy, mean loss) over `batches` fixed batches of a split."""
    model.eval()
    correct = counted = 0
    losses = []
    with torch.inference_mode():
        for index in range(batches):
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
    started = time.perf_counter()
    model.train()
    for step in range(run.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, run.steps, run.lr)
        inputs, targets, mask = _on(run.device, task.batch(run.batch, tasks.split_seed("train", step, run.seed)))
        tick = time.perf_counter()
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
    train_s = time.perf_counter() - started
    with autocast:
        val_accuracy, _ = evaluate(model, task, "val", VAL_BATCHES, run.device)
        accuracy, _ = evaluate(model, task, "test", TEST_BATCHES, run.device)
    median_ms = statistics.median(step_ms)
    return {"accuracy": accuracy, "val_accuracy": val_accuracy, "train_accuracy": sum(recent) / len(recent),
            "loss": sum(recent_loss) / len(recent_loss), "baseline": task.baseline,
            "params": sum(p.numel() for p in model.parameters()), "train_s": train_s, "step_ms": median_ms,
            "tokens_per_s": run.batch * run.seq_len / (median_ms / 1e3), "threads": torch.get_num_threads()}


def refusal(run: TrainingRun) -> str | None:
    """Why the run cannot happen (a task or mixer that refuses its sizes), or None."""
    support = tasks.get(run.task).supports(run.seq_len, **run.options)
    if not support:
        return support.reason
    for name in models.parse_layout(run.layout).names:
        options = models.options_for(name, {"head_dim": head_dim(run.dim)})
        support = mixers.get(name).supports(run.seq_len, run.dim, torch.float32, run.device, **options)
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
