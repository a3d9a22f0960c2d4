"""Planning a sweep: presets, parsing, validation, point order."""

import pytest
import torch

import mixers
from bench import api
from bench.measuring import plan, points
from bench.measuring.plan import Axes
from bench.measuring.points import PlanError


def test_parse_ints_accepts_k_suffix_and_sorts_unique():
    assert points.parse_ints("4k,512, 1K,512", "seq-lens") == (512, 1024, 4096)
    assert points.parse_ints([256, "128"], "dims") == (128, 256)


@pytest.mark.parametrize("text", ["", "12,abc", "0", "-5", "1,,2", "3.5", "k"])
def test_parse_ints_rejects_malformed_or_non_positive(text):
    with pytest.raises(PlanError, match="seq-lens"):
        points.parse_ints(text, "seq-lens")


def test_parse_names_resolves_aliases_and_names_the_allowed_values():
    assert points.parse_names("bf16,float32,fp32", "dtypes", points.DTYPE_NAMES, points.DTYPE_ALIASES) == (
        "bfloat16", "float32")
    with pytest.raises(PlanError) as info:
        points.parse_names("float8", "dtypes", points.DTYPE_NAMES, points.DTYPE_ALIASES)
    assert "float8" in str(info.value) and "bfloat16" in str(info.value)


def test_expand_orders_each_series_by_length_and_applies_tokens_per_batch():
    axes = Axes(mixers=("a", "b"), seq_lens=(1024, 256), dims=(64,), batches=(2,), tokens=(2048,),
                dtypes=("float32",), modes=("forward",))
    points = plan.expand(axes, "cpu")
    assert len(points) == 2 * 2 * 2
    fixed = [p for p in points if p.batching == "batch=2"]
    assert [(p.mixer, p.seq_len, p.batch) for p in fixed] == [("a", 256, 2), ("a", 1024, 2), ("b", 256, 2),
                                                               ("b", 1024, 2)]
    tokens = {p.seq_len: p.batch for p in points if p.batching == "tokens=2048"}
    assert tokens == {256: 8, 1024: 2}


def test_every_preset_expands_and_is_documented():
    for name, (description, axes) in plan.PRESETS.items():
        assert description
        assert plan.expand(axes, "cuda" if name != "cpu" else "cpu")


def test_cpu_preset_covers_all_mixers_five_lengths_both_modes():
    axes = plan.PRESETS["cpu"][1]
    assert len(axes.seq_lens) >= 5 and set(axes.modes) == {"forward", "train"}
    assert set(plan.mixer_names(axes)) == set(mixers.available())


def test_long_preset_keeps_only_mixers_whose_flops_grow_as_n_log_n():
    names = plan.mixer_names(plan.PRESETS["long"][1])
    for name in names:
        cls = mixers.get(name)
        assert cls.flops(131072, 768) / cls.flops(65536, 768) < 2.5
    for quadratic in ("attention-naive", "linear"):
        if quadratic in mixers.available():
            assert quadratic not in names


def test_plan_sweep_defaults_to_the_preset_for_the_device(tmp_path):
    sweep_plan = api.plan_sweep(device="cpu", out=tmp_path / "run")
    assert sweep_plan.preset == "cpu" and sweep_plan.device == "cpu"


def test_explicit_batch_replaces_the_presets_series(tmp_path):
    sweep_plan = api.plan_sweep("gpu", batches="2", device="cpu", dtypes="float32", out=tmp_path / "run")
    assert {p.batching for p in sweep_plan.points} == {"batch=2"}


def test_plan_sweep_refuses_dtypes_the_device_cannot_run(tmp_path):
    with pytest.raises(PlanError, match="bfloat16 cannot run on cpu"):
        api.plan_sweep(dtypes="bf16", device="cpu", out=tmp_path / "run")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_refused():
    with pytest.raises(PlanError, match="no CUDA GPU"):
        plan.resolve_device("cuda")
