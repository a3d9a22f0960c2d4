"""Training runs: every layout learns something in a few steps, a seed repeats itself, failures are rows."""

import dataclasses
import math
import time

import pytest
import torch

import mixers
from bench.measuring import train
from bench.measuring.points import TrainingRun

SUPPORTED = [name for name in mixers.available()
             if mixers.get(name).supports(16, 32, torch.float32, "cpu", **(
                 {"head_dim": 32} if "head_dim" in mixers.get(name).__init__.__code__.co_varnames else {}))]


@pytest.fixture(autouse=True)
def no_cached_batches():
    """Each test draws its own data: a stream cached by another test's task could stand in for this one's."""
    train.clear_batch_streams()
    yield
    train.clear_batch_streams()


def run_of(layout="fft", task="majority", steps=15, seed=0, lr=3e-3, dim=32, options="num_symbols=4"):
    return TrainingRun(task, options, layout, 16, dim, 2, 2 * dim, "pre", True, 16, steps, lr, seed, "float32", "cpu")


def losses(run: TrainingRun) -> tuple[float, float]:
    """The loss on a fixed batch before and after training `run`'s model (same init, same data)."""
    task = train.build_task(run)
    inputs, targets, mask = task.batch(64, 12345)
    torch.manual_seed(run.seed)
    model = train.build(run, task)
    optimizer = torch.optim.AdamW(model.parameters(), lr=run.lr)
    with torch.no_grad():
        before = train.loss_and_correct(model(inputs), targets, mask)[0].item()
    for step in range(run.steps):
        batch = task.batch(run.batch, step)
        loss = train.loss_and_correct(model(batch[0]), batch[1], batch[2])[0]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    with torch.no_grad():
        after = train.loss_and_correct(model(inputs), targets, mask)[0].item()
    return before, after


@pytest.mark.parametrize("layout", [*SUPPORTED, "fft+attention:1"])
def test_a_few_steps_reduce_the_loss_for_every_layout(layout):
    before, after = losses(run_of(layout))
    assert math.isfinite(after) and after < before, (before, after)


def test_the_same_seed_gives_the_same_run_and_another_seed_another():
    first, again = train.train(run_of(steps=10)), train.train(run_of(steps=10))
    assert first["accuracy"] == again["accuracy"] and first["loss"] == again["loss"]
    other = train.train(run_of(steps=10, seed=1))
    assert (other["loss"], other["accuracy"]) != (first["loss"], first["accuracy"])


def trained(run: TrainingRun) -> dict:
    """The row of `run` trained in this process (its reply carries no samples and, on a CPU, is never fatal)."""
    reply = train.train_run(run, "test cpu")
    assert reply.samples == [] and not reply.fatal
    return reply.row


def test_a_run_reports_its_measured_columns_and_the_tasks_baseline():
    row = trained(run_of(task="mqar", options="vocab_size=32,num_kv_pairs=4", steps=10))
    assert row["status"] == "ok", row["error"]
    assert row["baseline"] == pytest.approx(1 / 4) and 0 <= row["accuracy"] <= 1 and 0 <= row["val_accuracy"] <= 1
    assert row["params"] > 0 and row["step_ms"] > 0 and row["tokens_per_s"] == pytest.approx(
        16 * 16 / (row["step_ms"] / 1e3))
    assert len(row["source_hash"]) == 12


def test_a_refused_run_is_unsupported_with_the_reason():
    row = trained(run_of(layout="hadamard", dim=24))
    assert row["status"] == "unsupported" and "power" in row["error"]
    row = trained(run_of(task="mqar", options="vocab_size=32,num_kv_pairs=40"))
    assert row["status"] == "unsupported" and "num_kv_pairs" in row["error"]


def test_the_learning_rate_warms_up_then_decays_to_zero():
    rates = [train.learning_rate(step, 1000, 1.0) for step in range(1000)]
    assert rates[0] == pytest.approx(0.01) and rates[99] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(rates[100:], rates[101:])) and rates[-1] < 1e-4


def test_each_step_trains_at_the_scheduled_learning_rate():
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    rates = []
    hook = register_optimizer_step_pre_hook(
        lambda optimizer, args, kwargs: rates.append(optimizer.param_groups[0]["lr"]))
    try:
        train.train(run_of(steps=12, lr=2e-3))
    finally:
        hook.remove()
    assert rates == pytest.approx([train.learning_rate(step, 12, 2e-3) for step in range(12)])


def test_the_test_score_is_drawn_from_the_test_split_and_the_validation_score_from_validation(monkeypatch):
    calls = []
    scores = {"val": (0.75, 0.5), "test": (0.25, 1.5)}  # distinct, so a swapped split shows in the row

    def evaluate(model, task, split, batches, device, stream=None):
        calls.append((split, batches))
        return scores[split]

    monkeypatch.setattr(train, "evaluate", evaluate)
    row = train.train(run_of(steps=3))
    assert row["accuracy"] == 0.25 and row["val_accuracy"] == 0.75
    assert sorted(calls) == [("test", train.TEST_BATCHES), ("val", train.VAL_BATCHES)]


def test_evaluation_scores_batches_of_its_own_split_only():
    from bench import tasks

    run = run_of(steps=1)
    task = train.build_task(run)
    seeds = []
    drawn = task.batch
    task.batch = lambda size, seed: seeds.append(seed) or drawn(size, seed)
    torch.manual_seed(0)
    model = train.build(run, task)
    accuracy, loss = train.evaluate(model, task, "test", 3, "cpu")
    assert seeds == [tasks.split_seed("test", index) for index in range(3)]
    assert not set(seeds) & {tasks.split_seed("val", index) for index in range(3)}
    assert 0 <= accuracy <= 1 and math.isfinite(loss)


def test_the_learning_rate_by_hand():
    # 50 steps: warm-up over max(1, min(100, 50 // 10)) = 5 steps, then a half cosine over the other 45
    assert [train.learning_rate(step, 50, 2.0) for step in range(6)] == pytest.approx([0.4, 0.8, 1.2, 1.6, 2.0, 2.0])
    assert train.learning_rate(5 + 45 // 3, 50, 2.0) == pytest.approx(1 + math.cos(math.pi / 3))  # a third of the way
    assert train.learning_rate(50, 50, 2.0) == pytest.approx(0.0) and train.learning_rate(60, 50, 2.0) == 0.0
    assert train.learning_rate(0, 5, 1.0) == 1.0  # no warm-up step to speak of: a one-step warm-up
    assert train.learning_rate(2, 25, 1.0) == 1.0  # 25 // 10 = 2 warm-up steps: step 2 is the cosine's first
    assert train.learning_rate(0, 2000, 1.0) == pytest.approx(0.01)  # warm-up capped at 100 steps
    assert train.learning_rate(2, 1, 1.0) == 0.0  # past the end stays at zero


def test_loss_and_correct_count_right_predictions_where_the_task_scores():
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 1.0], [5.0, 0.0, 0.0]]])  # predicts 0, 1, 2, 0
    targets = torch.tensor([[0, 1, 0, 2]])
    loss, correct, counted = train.loss_and_correct(logits[0], targets[0], None)  # a label per sequence
    assert (correct, counted) == (2, 4)
    expected = torch.nn.functional.cross_entropy(logits[0], targets[0])
    assert loss.item() == pytest.approx(expected.item())
    mask = torch.tensor([[True, False, True, True]])  # a label per token, scored at positions 0, 2 and 3: one right
    loss, correct, counted = train.loss_and_correct(logits, targets, mask)
    assert (correct, counted) == (1, 3)
    assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(logits[0][[0, 2, 3]],
                                                                          targets[0][[0, 2, 3]]).item())


def test_heads_are_64_wide_or_the_whole_width():
    assert [train.head_dim(dim) for dim in (16, 64, 65, 128)] == [16, 64, 64, 64]


def test_evaluation_averages_right_predictions_and_losses_over_its_batches_by_hand():
    class Fixed(torch.nn.Module):
        def forward(self, inputs):  # always predicts class 1, with margin 2
            return torch.tensor([[0.0, 2.0]]).expand(inputs.shape[0], 2)

    class Task:
        def __init__(self):
            self.labels = iter([1, 0])  # the first batch is right, the second wrong

        def batch(self, size, seed):
            return torch.zeros(1, 3), torch.tensor([next(self.labels)]), None

    accuracy, loss = train.evaluate(Fixed(), Task(), "val", 2, "cpu")
    right, wrong = math.log(1 + math.exp(-2)), math.log(1 + math.exp(2))  # cross-entropy of each batch
    assert accuracy == 0.5 and loss == pytest.approx((right + wrong) / 2)
    assert train.evaluate(Fixed(), Task(), "val", 1, "cpu") == (1.0, pytest.approx(right))  # one scored label


def test_a_run_is_refused_for_its_own_length_and_attention_gets_the_quality_models_head_width():
    short = TrainingRun("mqar", "vocab_size=32,num_kv_pairs=8", "fft", 8, 32, 2, 64, "pre", True, 16, 5, 1e-3, 0,
                       "float32", "cpu")
    assert train.refusal(short).startswith("mqar: seq_len=8 is too short for 8 key-value pairs")
    assert train.refusal(dataclasses.replace(short, seq_len=64)) is None
    assert train.refusal(run_of(layout="attention", dim=32)) is None  # head_dim = min(64, 32): one head of 32


@pytest.mark.parametrize("batch", [16, 1])
def test_a_run_by_hand_gives_the_same_row(batch):
    """train() against the same run written out step by step: AdamW with betas (0.9, 0.98) and weight decay 0.1 at
    the scheduled rate, a fresh training batch per step and seed, clipping at norm 1, the mean accuracy and loss of
    the last 20 steps, and both scores from the trained model."""
    from bench import tasks

    run = dataclasses.replace(run_of(steps=24, lr=3e-3, seed=3), batch=batch)
    task = train.build_task(run)
    torch.manual_seed(run.seed)
    model = train.build(run, task)
    optimizer = torch.optim.AdamW(model.parameters(), lr=run.lr, betas=(0.9, 0.98), weight_decay=0.1)
    accuracies, losses = [], []
    for step in range(run.steps):
        for group in optimizer.param_groups:
            group["lr"] = train.learning_rate(step, run.steps, run.lr)
        inputs, targets, mask = task.batch(run.batch, tasks.split_seed("train", step, run.seed))
        assert mask is None  # majority scores one class per sequence
        logits = model(inputs)
        loss = torch.nn.functional.cross_entropy(logits, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        accuracies.append((logits.argmax(1) == targets).float().mean().item())
        losses.append(loss.item())
    started = time.perf_counter()
    row = train.train(run)
    elapsed = time.perf_counter() - started
    assert row["train_accuracy"] == pytest.approx(sum(accuracies[-20:]) / 20)
    assert row["loss"] == pytest.approx(sum(losses[-20:]) / 20)
    assert row["val_accuracy"] == train.evaluate(model, task, "val", train.VAL_BATCHES, "cpu")[0]
    assert row["accuracy"] == train.evaluate(model, task, "test", train.TEST_BATCHES, "cpu")[0]
    assert set(row) == {"accuracy", "val_accuracy", "train_accuracy", "loss", "baseline", "params", "train_s",
                        "step_ms", "tokens_per_s", "threads"}
    assert row["baseline"] == task.baseline and row["threads"] == torch.get_num_threads()
    assert row["params"] == sum(p.numel() for p in model.parameters())
    assert 0 < row["train_s"] < elapsed
    # the median of the timed steps (forward, backward, update) against the mean of all of them (and their batches)
    assert 0.01 < row["step_ms"] / (row["train_s"] * 1e3 / run.steps) <= 1.5


def test_a_loss_that_stops_being_finite_ends_the_run_with_the_step(monkeypatch):
    scored = train.loss_and_correct
    steps = []

    def poisoned(logits, targets, mask):
        loss, correct, counted = scored(logits, targets, mask)
        steps.append(len(steps))
        return (loss * math.nan if len(steps) == 3 else loss), correct, counted

    monkeypatch.setattr(train, "loss_and_correct", poisoned)
    with pytest.raises(FloatingPointError, match=r"^the training loss became nan at step 2$"):
        train.train(run_of(steps=6))


@pytest.mark.parametrize("dtype, computed", [("float32", torch.float32), ("bfloat16", torch.bfloat16)])
def test_a_bfloat16_run_trains_and_scores_under_autocast_and_a_float32_run_does_not(monkeypatch, dtype, computed):
    scored, seen = train.loss_and_correct, set()

    def recording(logits, targets, mask):
        seen.add(logits.dtype)
        return scored(logits, targets, mask)

    monkeypatch.setattr(train, "loss_and_correct", recording)
    train.train(dataclasses.replace(run_of(steps=2), dtype=dtype))
    assert seen == {computed}


def test_a_quality_row_gives_back_its_run():
    run = run_of(layout="fft+attention:1", steps=7, lr=1e-3, seed=2)
    row = {key: str(value) for key, value in run.as_dict().items()}
    assert TrainingRun.from_row(row) == run
    assert TrainingRun.from_row({**row, "shift": "False"}).shift is False


STREAM_RUNS = [TrainingRun("mqar", "vocab_size=64,num_kv_pairs=4", "fft", 32, 32, 2, 64, "pre", True, 8, 12, 1e-3, 1,
                           "float32", "cpu"),
               TrainingRun("listops", "", "fft", 128, 32, 2, 64, "pre", True, 8, 12, 1e-3, 2, "float32", "cpu")]


@pytest.mark.parametrize("run", STREAM_RUNS, ids=[run.task for run in STREAM_RUNS])
def test_the_cached_stream_is_the_stream_generated_step_by_step(run):
    from bench import tasks

    task = train.build_task(run)
    stream = train.training_batches(run, task)
    assert len(stream) == run.steps and stream.nbytes > 0
    for step in range(run.steps):
        expected = task.batch(run.batch, tasks.split_seed("train", step, run.seed))
        for got, want in zip(stream[step], expected, strict=True):
            assert (got is None) == (want is None)
            if want is not None:
                assert got.dtype == want.dtype and torch.equal(got, want)
    # kept narrowed: int8 tokens (listops' 16 tokens, mqar's 64) instead of int64
    assert stream.nbytes < sum(item.numel() * 8 for item in expected if item is not None) * run.steps / 4


def test_layouts_rates_and_widths_on_one_task_and_seed_share_one_stream_and_other_seeds_do_not(monkeypatch):
    run = STREAM_RUNS[0]
    first = train.training_batches(run, train.build_task(run))
    task = train.build_task(run)
    monkeypatch.setattr(task, "batch", lambda size, seed: pytest.fail("generated again"))
    for other in (dataclasses.replace(run, layout="attention"), dataclasses.replace(run, lr=1e-2),
                  dataclasses.replace(run, dim=64, ffn=128)):
        assert train.training_batches(other, task) is first
    for other in (dataclasses.replace(run, seed=2), dataclasses.replace(run, steps=13),
                  dataclasses.replace(run, batch=4), dataclasses.replace(run, task_options="vocab_size=64")):
        real_task = train.build_task(other)
        assert train.training_batches(other, real_task) is not first


def test_training_takes_its_batches_from_the_stream_and_the_row_stays_the_same(monkeypatch):
    run = run_of(steps=8)
    cold = train.train(run)
    warm = train.train(run)  # the stream is cached now
    assert {k: v for k, v in cold.items() if k not in ("train_s", "step_ms", "tokens_per_s")} == \
        {k: v for k, v in warm.items() if k not in ("train_s", "step_ms", "tokens_per_s")}
    generated = []
    real_batch = train.tasks.Task.batch
    monkeypatch.setattr(train.tasks.Task, "batch", lambda self, size, seed: generated.append(seed) or
                        real_batch(self, size, seed))
    train.train(dataclasses.replace(run, layout="attention"))
    assert generated == []  # training, validation and test batches all from this worker's cache


def test_the_cache_keeps_streams_within_its_byte_cap_least_recently_used_first():
    run = STREAM_RUNS[1]  # listops: 8 x 128 int8 tokens per batch, 12 steps
    task = train.build_task(run)
    one = train.training_batches(run, task).nbytes
    seeds = [tasks_seed for tasks_seed in range(5)]
    streams = [train.batch_stream(task, ("t", seed), run.batch, [seed], cap_bytes=3 * one // run.steps)
               for seed in seeds]
    assert [key for key in train._STREAMS if key[0] == "t"] == [("t", 2), ("t", 3), ("t", 4)]
    assert all(stream.batches is not None for stream in streams)
    too_big = train.batch_stream(task, ("big",), run.batch, list(range(4)), cap_bytes=3 * one // run.steps)
    assert too_big.batches is None and ("big",) not in train._STREAMS  # generated on request, not kept
    assert torch.equal(too_big[3][0], task.batch(run.batch, 3)[0])


def test_quality_runs_on_the_same_data_come_one_after_another():
    from bench.measuring import plan

    axes = plan.QualityAxes(tasks=("mqar", "listops"), settings=(
        ("mqar", plan.TaskSetting((64, 128), dims=(32, 64))), ("listops", plan.TaskSetting((128,)))),
        mixers=("fft", "attention", "linear"), lrs=(1e-3, 3e-3), seeds=(0, 1))
    runs = plan.expand_quality(axes, "cpu")
    assert len(runs) == 2 * 3 * 2 * 2 * 2 + 3 * 2 * 2
    data = [(run.task, run.task_options, run.seq_len, run.batch, run.steps, run.seed) for run in runs]
    changes = sum(1 for before, after in zip(data, data[1:]) if before != after)
    assert changes == len(set(data)) - 1  # each stream's runs in one stretch
    assert len(set(runs)) == len(runs)

def test_a_run_trains_with_its_own_weight_decay(monkeypatch):
    made = []
    real = torch.optim.AdamW

    def recording(params, **options):
        made.append(options["weight_decay"])
        return real(params, **options)

    monkeypatch.setattr(torch.optim, "AdamW", recording)
    train.train(dataclasses.replace(run_of(steps=2), weight_decay=0.0))
    train.train(run_of(steps=2))
    assert made == [0.0, 0.1]
    row = {key: str(value) for key, value in dataclasses.replace(run_of(), weight_decay=0.0).as_dict().items()}
    assert TrainingRun.from_row(row).weight_decay == 0.0
