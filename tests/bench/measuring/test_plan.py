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


# --- quality: weight decays, several settings of a task, the presets ------------------------------------

def test_weight_decays_are_a_grid_like_rates_and_zero_is_allowed():
    axes = plan.QualityAxes(tasks=("majority",), mixers=("fft",), seq_lens=(32,), dims=(16,), lrs=(1e-3, 3e-3),
                            weight_decays=plan.parse_weight_decays("0.1,0"), seeds=(0,))
    runs = plan.expand_quality(axes, "cpu")
    assert sorted((run.lr, run.weight_decay) for run in runs) == [(1e-3, 0.0), (1e-3, 0.1), (3e-3, 0.0), (3e-3, 0.1)]
    assert len({run.key for run in runs}) == 4  # the weight decay is part of what makes a run a run (resume)


@pytest.mark.parametrize("text", ["-0.1", "0,,1", "nan", "inf", "heavy"])
def test_weight_decays_refuse_negative_or_malformed_values(text):
    with pytest.raises(PlanError, match="--weight-decays"):
        plan.parse_weight_decays(text)


def test_the_default_weight_decay_is_the_one_training_used_before_it_was_an_axis():
    assert plan.QualityAxes().weight_decays == (0.1,)
    assert {run.weight_decay for run in plan.expand_quality(plan.QUALITY_PRESETS["quick"][1], "cpu")} == {0.1}


def test_a_task_named_twice_in_a_preset_trains_each_setting():
    axes = plan.QualityAxes(tasks=("mqar",), mixers=("fft",), seeds=(0,),
                            settings=(("mqar", plan.TaskSetting((32,), (16,), 5, "vocab_size=64")),
                                      ("mqar", plan.TaskSetting((64,), (16,), 7, "vocab_size=128"))))
    runs = plan.expand_quality(axes, "cpu")
    assert [(run.seq_len, run.task_options, run.steps) for run in runs] == [(32, "vocab_size=64", 5),
                                                                           (64, "vocab_size=128", 7)]
    assert axes.setting("mqar").seq_lens == (32,)


def test_the_make_bench_quality_presets_train_two_widths_three_on_a_gpu():
    for name, widths in (("quick", 2), ("cpu", 2), ("gpu", 3)):
        axes = plan.QUALITY_PRESETS[name][1]
        for task in axes.tasks:
            assert len(axes.setting(task).dims) >= widths, (name, task)


def test_the_causal_presets_name_the_causal_mixers_and_mads_tasks_and_grid():
    from bench.reporting import quality

    assert plan.MAD_TASKS == quality.MAD_TASKS
    mad_cpu, mad = plan.QUALITY_PRESETS["mad-cpu"][1], plan.QUALITY_PRESETS["mad"][1]
    assert mad_cpu.tasks == mad.tasks == plan.MAD_TASKS and mad_cpu.mixers == mad.mixers == plan.CAUSAL_MIXERS
    assert mad.lrs == (1e-4, 5e-4, 1e-3) and mad.weight_decays == (0.0, 0.1) and mad.batch == 128
    assert {d for task in mad.tasks for s in mad.task_settings(task) for d in s.dims} == {128}
    assert max(d for task in mad_cpu.tasks for s in mad_cpu.task_settings(task) for d in s.dims) <= 128
    baselines = {task: mad_cpu.setting(task) for task in mad_cpu.tasks}
    assert baselines["in-context-recall"].seq_lens == (128,) and "vocab_size=16" in baselines["fuzzy-recall"].options
    assert baselines["selective-copying"].seq_lens == (256,) and baselines["compression"].seq_lens == (64,)
    assert [len(mad.task_settings(task)) for task in mad.tasks] == [7, 7, 10, 9, 7, 6]
    zoology = plan.QUALITY_PRESETS["zoology"][1]
    panels = {(s.seq_lens, s.options) for s in zoology.task_settings("mqar-causal")}
    assert panels == {((64,), "vocab_size=8192,num_kv_pairs=4"), ((128,), "vocab_size=8192,num_kv_pairs=8"),
                      ((256,), "vocab_size=8192,num_kv_pairs=16"), ((512,), "vocab_size=8192,num_kv_pairs=64")}
    small = plan.QUALITY_PRESETS["zoology-cpu"][1]
    assert [s.seq_lens for s in small.task_settings("mqar-causal")] == [(64,), (128,)]
    assert small.setting("mqar-causal").dims == (32, 64, 128) and "attention" in small.mixers
