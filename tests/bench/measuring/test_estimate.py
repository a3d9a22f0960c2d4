"""--dry-run's estimate (bench.measuring.estimate): the floor it prices is the roofline's, the calls it counts are
the timing policy's, it grows with what a sweep asks for, and the `make bench` GPU default fits 15 minutes."""

import pytest
import torch

from bench import api
from bench.measuring import estimate, measure, timing
from bench.measuring.points import PlanError, mixer_point

H100, _ = estimate.resolve_target("h100", "auto", True)
OVERHEAD_S = 0.5  # per point: above the 0.2-0.3 s measured on a busy 2-core CPU, so the sums below have margin


def sweep(**axes):
    return api.plan_sweep(device="cuda", dry_run=True, **axes)


def sweep_estimate(**axes) -> estimate.Estimate:
    planned = sweep(**axes)
    return estimate.estimate_sweep(planned.points, planned.axes, H100, OVERHEAD_S)


@pytest.mark.parametrize("point", [
    mixer_point("attention", 4096, 1024, 4, "bfloat16", "train", "cuda"),
    mixer_point("fft", 16384, 1024, 4, "float32", "forward", "cuda"),
    mixer_point("hadamard", 512, 1024, 128, "bfloat16", "forward", "cuda"),
])
def test_the_floor_is_the_roofline_floor_of_the_rows(point):
    # metrics() at a time of one second gives roofline_frac = floor / 1 s
    roofline = timing.metrics(point, 1000.0, H100.peaks)["roofline_frac"]
    assert estimate.floor_s(timing.cost_parts(point), H100.peaks) == pytest.approx(roofline)
    assert estimate.call_s(timing.cost_parts(point), H100.peaks) >= roofline / estimate.EFFICIENCY * (1 - 1e-9)


class Clock:
    """measure's clock, moved on only by the timed function: a call takes exactly what the test says."""

    def __init__(self):
        self.now, self.calls = 0.0, 0

    def perf_counter(self) -> float:
        return self.now

    def call(self, seconds: float) -> None:
        self.now += seconds
        self.calls += 1


@pytest.mark.parametrize("seconds", [1e-5, 0.01, 0.03, 1.0])
def test_the_calls_counted_are_those_time_call_makes(seconds, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(measure, "time", clock)
    policy = measure.TimingPolicy(warmup_calls=3, warmup_s=0.05, min_reps=5, budget_s=0.055, target_spread=-1.0)
    warm, timed = estimate.calls_of(seconds, policy)
    assert measure.time_call(lambda: clock.call(seconds), "cpu", policy).reps == timed
    assert clock.calls == warm + timed


def test_the_calls_of_a_small_and_a_slow_point():
    policy = measure.TimingPolicy(warmup_calls=3, warmup_s=0.05, min_reps=3, budget_s=0.055)
    assert estimate.calls_of(0.01, policy) == (5, 7)  # 5 calls fill the 50 ms warm-up; rounds 1, 2, 4 reach 55 ms
    # a slow call: warmed up once (slower than the warm-up time), and at least 3 reps once twice the budget
    # has passed, whatever min_reps says
    assert estimate.calls_of(1.0, measure.TimingPolicy(min_reps=5, budget_s=0.1)) == (1, 3)
    # a tiny call: the warm-up stops at warmup_max_calls
    assert estimate.calls_of(1e-7, measure.TimingPolicy())[0] == measure.TimingPolicy().warmup_max_calls


def test_the_estimate_grows_with_the_budget_and_with_the_points():
    small = sweep_estimate(layouts="fft,linear", seq_lens="512", dims="1024", tokens="65536", budget_s=0.1)
    assert sweep_estimate(layouts="fft,linear", seq_lens="512", dims="1024", tokens="65536",
                          budget_s=0.5).total_s > small.total_s
    assert sweep_estimate(layouts="fft,linear", seq_lens="512,2048", dims="1024", tokens="65536",
                          budget_s=0.1).total_s > small.total_s


def test_hadamard_runs_every_point_of_the_gpu_preset_on_an_h100():
    found = sweep_estimate(preset="gpu")
    assert found.counts[("hadamard", "mixer")] == (20, 20)
    assert not found.reasons


def test_a_refused_point_is_counted_with_its_reason():
    found = sweep_estimate(layouts="hadamard,fft", seq_lens="1000,1024", dims="64", batches="1", modes="forward")
    assert found.counts[("hadamard", "mixer")] == (1, 2) and found.counts[("fft", "mixer")] == (2, 2)
    [(reason, count)] = found.reasons.items()
    assert count == 1 and "powers of two" in reason and "seq_len=1000" in reason


def test_make_bench_on_an_h100_is_estimated_within_15_minutes():
    planned = api.plan_quality("gpu", device="cuda", dry_run=True)
    quality = estimate.estimate_quality(planned.runs, planned.axes, H100, report=True)
    total = sweep_estimate(preset="gpu").total_s + quality.total_s
    assert 60 < total <= 15 * 60


def test_the_quality_estimate_grows_with_the_steps():
    def total(steps):
        planned = api.plan_quality("gpu", layouts="fft", steps=steps, device="cuda", dry_run=True)
        return estimate.estimate_quality(planned.runs, planned.axes, H100, report=False).total_s
    assert total("1600") > total("800")


def test_a_training_step_counts_its_operators():
    planned = api.plan_quality("gpu", layouts="fft,mamba", device="cuda", dry_run=True)
    fft = next(run for run in planned.runs if run.layout == "fft")
    mamba = next(run for run in planned.runs if run.layout == "mamba")
    assert 50 < estimate.step_ops("fft", fft)[0] < estimate.step_ops("mamba", mamba)[0]


def test_targets():
    with pytest.raises(PlanError, match="unknown target 'h300'"):
        estimate.resolve_target("h300", "auto", True)
    with pytest.raises(PlanError, match="--device cpu"):
        estimate.resolve_target("h100", "cpu", True)
    h200, note = estimate.resolve_target("h200", "auto", True)
    assert h200.peaks["peak_bandwidth_gbps"] > H100.peaks["peak_bandwidth_gbps"] and not note
    assert estimate.resolve_target(None, "cpu", True)[0].device == "cpu"
    if not torch.cuda.is_available():
        target, note = estimate.resolve_target(None, "auto", estimate.gpu_plan("gpu"))
        assert target.name == "h100" and "no GPU here" in note
        assert estimate.resolve_target(None, "auto", estimate.gpu_plan("cpu"))[0].name == "cpu"
    assert estimate.gpu_plan("gpu", quality=True) and not estimate.gpu_plan("quick", quality=True)
    assert estimate.gpu_plan(None, "bf16") and not estimate.gpu_plan(None, "fp32")


def test_a_point_past_its_timeout_counts_at_it_once_and_a_refused_one_costs_no_build():
    axes = dict(layouts="attention,hadamard", seq_lens="16384,12288", dims="1024", tokens="65536", dtypes="float32",
                modes="train", rounds="2")
    free = sweep_estimate(**axes)
    assert free.over_timeout == 0 and free.reasons[next(iter(free.reasons))] == 1
    capped = sweep_estimate(**axes, timeout_s=1.0)
    assert capped.over_timeout == 2  # attention at both lengths: seconds per point; hadamard at 16384 well under one
    policy = measure.TimingPolicy(min_reps=5, budget_s=0.5)
    hadamard = estimate.point_s(mixer_point("hadamard", 16384, 1024, 4, "float32", "train", "cuda"), policy,
                                H100.peaks)
    assert hadamard < 1.0
    assert capped.parts["calls"] == pytest.approx(2 * (1.0 + estimate.WORKER_START_S) + 2 * hadamard)
    assert capped.parts["harness"] == pytest.approx(3 * 2 * OVERHEAD_S + estimate.ROW_S)
