"""Training one encoder on one task: the quality axis of a mixer (what its speed costs in what it learns).

The model is `bench.models.Encoder` for any layout, with a per-position head for per-position tasks
(MQAR) and a mean-pooled head for sequence tasks (ListOps); AdamW with a linear warm-up and cosine
decay, gradient clipping at 1, a budget in steps. Batch i of the training data comes from the task's
training seeds for this run's seed; validation and test sets are fixed (the same for every run, drawn
from the task's disjoint validation and test seeds), so runs differing in layout, rate or seed are
scored on the same examples.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
import time
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F

from bench import models, tasks
from bench.measuring import measure

EVAL_BATCH = 64
VAL_BATCHES = 8  # 512 validation examples
TEST_BATCHES = 16  # 1024 test examples
WEIGHT_DECAY = 0.1  # as Zoology's MQAR runs
BETAS = (0.9, 0.98)
CLIP_NORM = 1.0
TRAIN_ACCURACY_STEPS = 20  # train_accuracy: the mean over the last this many steps
TIMED_AFTER = 5  # step_ms: the median step time after this many warm-up steps


@dataclass(frozen=True)
class TrainPoint:
    """One training run: a layout on a task at one size, rate, step budget and seed."""

    task: str
    task_options: str  # the generator's options, "name=value,..." ("" for its defaults)
    layout: str
    seq_len: int
    dim: int
    layers: int
    ffn: int
    norm: str
    shift: bool
    batch: int
    steps: int
    lr: float
    seed: int
    dtype: str
    device: str

    @property
    def key(self) -> tuple:
        return tuple(getattr(self, name) for name in TRAIN_FIELDS)

    def as_dict(self) -> dict:
        return asdict(self)

    def label(self) -> str:
        return f"{self.task}: {self.layout} n={self.seq_len} d={self.dim} lr={self.lr:g} seed={self.seed}"

    def build_task(self):
        from bench.measuring.plan import parse_options

        return tasks.build(self.task, seq_len=self.seq_len, **parse_options(self.task_options))

    @classmethod
    def from_row(cls, row: dict) -> "TrainPoint":
        """The run a quality.csv row (strings) describes."""
        from bench.measuring.plan import from_strings

        return from_strings(cls, row)


TRAIN_FIELDS = tuple(item.name for item in fields(TrainPoint))


def head_dim(dim: int) -> int:
    """Attention-like mixers' head size in quality models: 64, or the whole width below it."""
    return min(64, dim)


def build(point: TrainPoint, task) -> torch.nn.Module:
    head = "tokens" if task.per_position else "sequence"
    return models.Encoder(point.layout, point.seq_len, point.dim, point.layers, point.ffn, len(task.vocab),
                          norm=point.norm, head=head, num_classes=task.num_classes, shift=point.shift,
                          mixer_options={"head_dim": head_dim(point.dim)})


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


def train(point: TrainPoint) -> dict:
    """Train `point`'s model and score it; returns the measured columns of its quality row (raises on failure)."""
    torch.manual_seed(point.seed)
    task = point.build_task()
    with torch.device(point.device):
        model = build(point, task)
    optimizer = torch.optim.AdamW(model.parameters(), lr=point.lr, betas=BETAS, weight_decay=WEIGHT_DECAY)
    autocast = torch.autocast(point.device, dtype=torch.bfloat16, enabled=point.dtype == "bfloat16")
    step_ms, recent, recent_loss = [], [], []
    started = time.perf_counter()
    model.train()
    for step in range(point.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, point.steps, point.lr)
        inputs, targets, mask = _on(point.device, task.batch(point.batch, tasks.split_seed("train", step, point.seed)))
        tick = time.perf_counter()
        with autocast:
            loss, correct, counted = loss_and_correct(model(inputs), targets, mask)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        measure.synchronize(point.device)
        if step >= min(TIMED_AFTER, point.steps - 1):
            step_ms.append((time.perf_counter() - tick) * 1e3)
        recent = (recent + [correct / max(counted, 1)])[-TRAIN_ACCURACY_STEPS:]
        recent_loss = (recent_loss + [loss.item()])[-TRAIN_ACCURACY_STEPS:]
        if not math.isfinite(recent_loss[-1]):
            raise FloatingPointError(f"the training loss became {recent_loss[-1]} at step {step}")
    train_s = time.perf_counter() - started
    with autocast:
        val_accuracy, _ = evaluate(model, task, "val", VAL_BATCHES, point.device)
        accuracy, _ = evaluate(model, task, "test", TEST_BATCHES, point.device)
    median_ms = statistics.median(step_ms)
    return {"accuracy": accuracy, "val_accuracy": val_accuracy, "train_accuracy": sum(recent) / len(recent),
            "loss": sum(recent_loss) / len(recent_loss), "baseline": task.baseline,
            "params": sum(p.numel() for p in model.parameters()), "train_s": train_s, "step_ms": median_ms,
            "tokens_per_s": point.batch * point.seq_len / (median_ms / 1e3), "threads": torch.get_num_threads()}


def source_hash(point: TrainPoint) -> str:
    """What a quality row depends on: the layout's mixers, the model, the task generators and this loop."""
    from bench.measuring.worker import layout_hash

    return layout_hash(point.layout, "bench.models", "bench.tasks", __name__)


def refusal(point: TrainPoint) -> str | None:
    """Why the run cannot happen (a task or mixer that refuses its sizes), or None."""
    from bench.measuring.plan import parse_options

    support = tasks.get(point.task).supports(point.seq_len, **parse_options(point.task_options))
    if not support:
        return support.reason
    import mixers

    for name in models.parse_layout(point.layout).names:
        options = models.options_for(name, {"head_dim": head_dim(point.dim)})
        support = mixers.get(name).supports(point.seq_len, point.dim, torch.float32, point.device, **options)
        if not support:
            return support.reason
    return None


def base_row(point: TrainPoint, device_name: str) -> dict:
    """The columns every quality row has, whatever its status."""
    try:
        digest = source_hash(point)
    except Exception:  # noqa: BLE001 - a mixer or task that is gone since planning
        digest = ""
    return {**point.as_dict(), "device_name": device_name, "source_hash": digest,
            "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def train_point(point: TrainPoint, device_name: str) -> dict:
    """Train one point in this process; never raises: a failure is a row with its status and reason."""
    from bench.measuring.worker import failure

    row = base_row(point, device_name)
    try:
        refused = refusal(point)
        if refused:
            return {**row, "status": "unsupported", "error": refused}
        row["baseline"] = point.build_task().baseline
        return {**row, "status": "ok", **train(point), "error": ""}
    except BaseException as exc:  # noqa: BLE001 - a run's failure is data
        if isinstance(exc, KeyboardInterrupt):
            raise
        return {**row, **failure(exc)}
