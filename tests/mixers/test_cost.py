"""Every built-in mixer's analytic cost at one small point, against numbers worked out by hand.

The point is n = 8 tokens, d = 64 channels, batch 2. Each number below is the formula in docs/mixers.md (its mixer
table) or, where that is approximate (hyena, mamba, pool), the term-by-term count in the mixer's own
docstring and comments, evaluated by hand at that point — never by calling the code under test. Then:
- forward: FLOPs as listed; bytes = (2·b·n·d + parameters + constants read on every call) × itemsize;
- train (TokenMixer.cost): FLOPs × 3 where there are parameters (input and weight gradients), × 2 where
  there are none; bytes = 2 × forward bytes + parameters × itemsize (the parameter gradients written).
"""

import pytest
import torch

import mixers

N, D, B = 8, 64, 2
TOKENS = 2 * B * N * D  # input read and output written: 2048 elements

# name (options): (parameters, FLOPs of a batch-2 call, constants read per call in elements)
KNOWN = {
    # 2.5·n·d·log2 d + 5·n·(d/2+1)·log2 n = 7680 + 3960 per sample
    "fft": (0, B * (2.5 * N * D * 6 + 5 * N * 33 * 3), 0),
    # 4·n·d·(n + d) per sample; reads the cached [C_d | S_d] (2d²) and the interleaved W_n (2n²)
    "dft-matrix": (0, B * 4 * N * D * (N + D), 2 * N * N + 2 * D * D),
    # fft + 2·n·(d/2+1): the (1 + i) rotation of the half spectrum
    "hartley": (0, B * (7680 + 3960 + 2 * N * 33), 0),
    # n + d = 72 ≤ 192: the matmul path, 2·n·d·(n + d), reading C_n and C_d
    "dct": (0, B * 2 * N * D * (N + D), N * N + D * D),
    # 2·n·d·Σ factors; factors(8) = [8], factors(64) = [64]
    "hadamard": (0, B * 2 * N * D * (8 + 64), 0),
    # n² + d² parameters; 2·n·d·(n + d)
    "linear": (N * N + D * D, B * 2 * N * D * (N + D), 0),
    # e = 2: 2·e·n² + e·n + n parameters; 4·e·n²·d + (6e + 1)·n·d
    "mlp-mixer": (2 * 2 * 64 + 2 * 8 + 8, B * (4 * 2 * 64 * 64 + 13 * N * D), 0),
    # 4d² + 4d; 8·n·d² + 4·n²·d + bias adds 4·n·d + softmax 5·heads·n² (one head of 64)
    "attention": (4 * D * D + 4 * D, B * (8 * N * D * D + 4 * N * N * D + 4 * N * D + 5 * 1 * N * N), 0),
    "attention-naive": (4 * D * D + 4 * D, B * (8 * N * D * D + 4 * N * N * D + 4 * N * D + 5 * 1 * N * N), 0),
    # 8·n·d² + 4·n·d·h + 15·n·d, h = head_dim = 64
    "linear-attention": (4 * D * D + 4 * D, B * (8 * N * D * D + 4 * N * D * 64 + 15 * N * D), 0),
    # 2·n·(d/2+1) parameters; 5·n·d·log2 d + 10·n·(d/2+1)·log2 n + 6·n·(d/2+1)
    "gfnet": (2 * N * 33, B * (5 * N * D * 6 + 10 * N * 33 * 3 + 6 * N * 33), 0),
    # n = 2·4, d = 8·8 (n1 = 2, n2 = 4, d1 = 8, d2 = 8): n·d·(4·d1 + 8·d2 + 8·n1 + 4·n2 + 14);
    # constants 2·d1² + 4·d2² + 2·d + 2·n1² + 2·n + 2·n2²
    "dft-monarch": (0, B * N * D * (4 * 8 + 8 * 8 + 8 * 2 + 4 * 4 + 14), 2 * 64 + 4 * 64 + 2 * D + 2 * 4 + 2 * N + 2 * 16),
    # n² + n + d²/2 + 2d; n²·d + n·d² + 5.5·n·d
    "gmlp": (N * N + N + D * D // 2 + 2 * D, B * (N * N * D + N * D * D + 5.5 * N * D), 0),
    # window 3: the first and last token average 2 tokens, the others 3 (22 terms); per output
    # (terms − 1) adds, a divide and a subtract: d·(22 + n)
    "pool": (0, B * D * (22 + N), 0),
    # per sample 8·n·d² + 35·n·d + 6·d + 10·n·d·log2(2n); once per call: the filter network's products
    # 128·n·(2d + 131), its sines 3·3·n·64, the window 2·n·d, the filters' rffts 10·n·(2d)·log2(2n)/2 and
    # the two directions' sum 2·(n+1)·d. Parameters 4d² + 145·d + 8640.
    "hyena": (4 * D * D + 145 * D + 8640,
              B * (8 * N * D * D + 35 * N * D + 6 * D + 10 * N * D * 4)
              + 128 * N * (2 * D + 131) + 9 * N * 64 + 2 * N * D + 2.5 * 2 * D * 16 * 4 + 2 * (N + 1) * D, 0),
    # e = 2d = 128 channels, N = 16 states, rank R = 4, chunks of L = 3 (3 chunks, 9 padded tokens):
    # projections and conv 2·n·d·2e + 2·4·n·e + 2·n·e·(R + 2N) + 2·n·R·e + 2·n·e·d; elementwise 16·n·e;
    # scan inside chunks 9·e·(7N + 1) − 3·e·4N, carried 2·(L·e·(6N + 1) + 2·e·N); A once: 2·e·N.
    # Parameters 6d² + 4·d·R + 110·d.
    "mamba": (6 * D * D + 4 * D * 4 + 110 * D,
              B * (2 * N * D * 256 + 8 * N * 128 + 2 * N * 128 * 36 + 2 * N * 4 * 128 + 2 * N * 128 * D
                   + 16 * N * 128 + 9 * 128 * 113 - 3 * 128 * 64 + 2 * (3 * 128 * 97 + 2 * 128 * 16))
              + 2 * 128 * 16, 0),
}
OPTIONS = {
    "dct[fft]": ("dct", {"method": "fft"}, (0, B * (7680 + 3960 + 14 * N * 33), 0)),
    "dct[matmul]": ("dct", {"method": "matmul"}, (0, B * 2 * N * D * (N + D), N * N + D * D)),
    # two heads of 32: the softmax counts 5·heads·n²
    "attention[head_dim=32]": ("attention", {"head_dim": 32},
                               (4 * D * D + 4 * D, B * (8 * N * D * D + 4 * N * N * D + 4 * N * D + 5 * 2 * N * N), 0)),
    "linear-attention[head_dim=32]": ("linear-attention", {"head_dim": 32},
                                      (4 * D * D + 4 * D, B * (8 * N * D * D + 4 * N * D * 32 + 15 * N * D), 0)),
    # e = 1: 2·n² + n + n parameters; 4·n²·d + 7·n·d
    "mlp-mixer[expansion=1]": ("mlp-mixer", {"expansion": 1}, (2 * 64 + 8 + 8, B * (4 * 64 * 64 + 7 * N * D), 0)),
    # causal: one filter direction, so the filter network's output and its rffts halve, and no sum of directions
    "hyena[causal]": ("hyena", {"causal": True},
                      (4 * D * D + 81 * D + 8640,
                       B * (8 * N * D * D + 35 * N * D + 6 * D + 10 * N * D * 4)
                       + 2 * N * 3 * 64 + 2 * 2 * N * 64 * 64 + 2 * N * 64 * D + 9 * N * 64 + N * D + 2.5 * D * 16 * 4,
                       0)),
    # chunks of 4: 2 chunks, 8 tokens, no padding: inside 8·e·(7N + 1) − 2·e·4N, carried 1·(4·e·(6N + 1) + 2·e·N)
    "mamba[chunk_len=4]": ("mamba", {"chunk_len": 4},
                           (6 * D * D + 4 * D * 4 + 110 * D,
                            B * (2 * N * D * 256 + 8 * N * 128 + 2 * N * 128 * 36 + 2 * N * 4 * 128 + 2 * N * 128 * D
                                 + 16 * N * 128 + 8 * 128 * 113 - 2 * 128 * 64 + (4 * 128 * 97 + 2 * 128 * 16))
                            + 2 * 128 * 16, 0)),
    "pool[window=5]": ("pool", {"window": 5}, (0, B * D * (8 * 5 - 2 * (2 + 1) + N), 0)),
    # a filter network of width w = 32: parameters 4d² + 4d + 12d (short conv) + 2w² + 7w + 2·d·w + d
    "hyena[filter_order=32]": ("hyena", {"filter_order": 32},
                               (4 * D * D + 4 * D + 12 * D + 2 * 32 * 32 + 7 * 32 + 2 * D * 32 + D,
                                B * (8 * N * D * D + 35 * N * D + 6 * D + 10 * N * D * 4)
                                + 2 * N * 3 * 32 + 2 * 2 * N * 32 * 32 + 2 * N * 32 * 2 * D + 9 * N * 32 + 2 * N * D
                                + 2.5 * 2 * D * 16 * 4 + 2 * (N + 1) * D, 0)),
    # a convolution of width 2: its FLOPs 2·2·n·e and its weights e·2
    "mamba[d_conv=2]": ("mamba", {"d_conv": 2},
                        (6 * D * D + 4 * D * 4 + 110 * D - 2 * 128,
                         B * (2 * N * D * 256 + 4 * N * 128 + 2 * N * 128 * 36 + 2 * N * 4 * 128 + 2 * N * 128 * D
                              + 16 * N * 128 + 9 * 128 * 113 - 3 * 128 * 64 + 2 * (3 * 128 * 97 + 2 * 128 * 16))
                         + 2 * 128 * 16, 0)),
}
CASES = [(name, name, {}, known) for name, known in KNOWN.items()]
CASES += [(case, name, options, known) for case, (name, options, known) in OPTIONS.items()]
ITEMSIZE = {torch.float32: 4, torch.float64: 8, torch.bfloat16: 2}


def test_every_builtin_that_states_its_flops_has_a_known_cost():
    # flops() 0 means unknown by contract: a one-file mixer (a constructor and a forward) states nothing to check
    builtin = {name for name in mixers.available()
               if mixers.get(name).__module__.startswith("mixers.") and mixers.get(name).flops(64, 64) != 0}
    assert builtin <= set(KNOWN), f"add hand-computed costs for {sorted(builtin - set(KNOWN))}"


@pytest.mark.parametrize("case, name, options, known", CASES, ids=[case[0] for case in CASES])
def test_forward_cost_params_and_bytes_are_the_hand_computed_ones(case, name, options, known):
    params, flops, constants = known
    cls = mixers.get(name)
    assert cls.param_count(N, D, **options) == params
    assert cls.flops(N, D, B, **options) == flops
    for dtype, itemsize in ITEMSIZE.items():
        assert cls.bytes_min(N, D, B, dtype, **options) == (TOKENS + params + constants) * itemsize, dtype
        assert cls.cost(N, D, B, dtype, "forward", **options) == ((flops, (TOKENS + params + constants) * itemsize))


@pytest.mark.parametrize("case, name, options, known", CASES, ids=[case[0] for case in CASES])
def test_train_cost_adds_the_input_gradient_and_where_there_are_parameters_their_gradient(case, name, options, known):
    params, flops, constants = known
    cls = mixers.get(name)
    for dtype, itemsize in ITEMSIZE.items():
        train = cls.cost(N, D, B, dtype, "train", **options)
        assert train.flops == flops * (3 if params else 2), dtype
        assert train.bytes_min == 2 * (TOKENS + params + constants) * itemsize + params * itemsize, dtype


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_the_defaults_are_one_sample_in_float32_forward_and_every_count_is_an_int(name):
    cls = mixers.get(name)
    assert cls.flops(N, D) == cls.flops(N, D, 1) != cls.flops(N, D, 2)
    assert cls.bytes_min(N, D) == cls.bytes_min(N, D, 1, torch.float32)
    assert cls.cost(N, D) == cls.cost(N, D, 1, torch.float32, "forward")
    for value in (cls.flops(N, D, B), cls.bytes_min(N, D, B), cls.param_count(N, D), *cls.cost(N, D, B, mode="train")):
        assert type(value) is int, value


def test_the_parts_counts_take_the_documented_defaults():
    hyena, mamba = mixers.get("hyena"), mixers.get("mamba")
    assert hyena.matmul_flops(N, D) == hyena.matmul_flops(N, D, 1, False, 64) != hyena.matmul_flops(N, D, 1, True, 64)
    assert mamba.matmul_flops(N, D) == mamba.matmul_flops(N, D, 16, 2, 4)
    assert mixers.get("linear-attention").matmul_flops(N, D) == mixers.get("linear-attention").matmul_flops(N, D, 64)
    # mamba's Δ has rank ⌈d/16⌉: 3 at d = 33 (6d² + 4·d·R + 110·d parameters)
    assert mamba.param_count(N, 33) == 6 * 33 * 33 + 4 * 33 * 3 + 110 * 33
    assert mamba.matmul_flops(N, 33) == (2 * N * 33 * 132 + 8 * N * 66 + 2 * N * 66 * (3 + 32) + 2 * N * 3 * 66
                                         + 2 * N * 66 * 33)


def test_an_unknown_mode_is_refused_with_the_allowed_ones():
    with pytest.raises(ValueError, match=r"unknown mode 'backward' \(allowed: forward, train\)"):
        mixers.get("fft").cost(N, D, B, torch.float32, "backward")


class Bare(mixers.TokenMixer):
    """The smallest mixer (never registered): the base class's defaults."""

    def forward(self, x):
        return x


def test_a_mixer_that_states_nothing_costs_zero_flops_and_its_input_and_output_bytes():
    assert Bare.flops(N, D, B) == 0 and Bare.param_count(N, D) == 0
    assert Bare.bytes_min(N, D, B, torch.float64) == TOKENS * 8
    assert Bare.cost(N, D, B, torch.float32, "train") == (0, 2 * TOKENS * 4)
    assert Bare.compute_dtype(torch.bfloat16, "cuda") == torch.bfloat16


def test_mode_cost_is_the_rule_every_part_follows():
    assert mixers.mode_cost(100, 40, 0, 4, "forward") == (100, 40)
    assert mixers.mode_cost(100, 40, 0, 4, "train") == (200, 80)
    assert mixers.mode_cost(100, 40, 5, 2, "train") == (300, 90)
    with pytest.raises(ValueError, match="unknown mode 'eval'"):
        mixers.mode_cost(100, 40, 5, 2, "eval")
