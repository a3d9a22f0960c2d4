"""What a mixer holds between calls: parameters, buffers and the constant tables it caches on a first call.

The expected sizes are worked out by hand from the tables each mixer's file builds (float32: 4 bytes,
complex64: 8, int32 indices: 4).
"""

import pytest
import torch

import mixers

CUDA = pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(),
                                                                        reason="needs a CUDA GPU")])


def cached_bytes():
    return sum(t.numel() * t.element_size() for t in mixers.cached_tensors())


def dft_matrix_tables(n, d):
    # [C_d | S_d] (d × 2d) and the interleaved W_n (n × 2n), float32
    return 4 * (d * 2 * d + n * 2 * n)


def dft_monarch_tables(n, d, n1, n2, d1, d2):
    # [C; −S]_{d1} (2d1 × d1), the d axis's twiddles (2 × d1 × d2), [[C, −S], [S, C]]_{d2} (2d2 × 2d2),
    # [C; S]_{n1} (2n1 × n1), the n axis's twiddles (2 × n1 × n2), [C | S]_{n2} (n2 × 2n2), float32
    assert n1 * n2 == n and d1 * d2 == d
    return 4 * (2 * d1 * d1 + 2 * d1 * d2 + 4 * d2 * d2 + 2 * n1 * n1 + 2 * n1 * n2 + 2 * n2 * n2)


def dct_fft_forward_tables(n, d):
    # Makhoul's input order (n·d) and the negated rows (n) and unfold index (d) as int32; the twiddles
    # (2 × n × (d//2 + 1)) complex64
    return 4 * (n * d + n + d) + 8 * 2 * n * (d // 2 + 1)


def dct_fft_backward_tables(n, d):
    # the fold index ((d//2 + 1) pairs) and the inverse order (n·d) as int32, the inverse twiddles complex64
    return 4 * (2 * (d // 2 + 1) + n * d) + 8 * 2 * n * (d // 2 + 1)


# (mixer, options, seq_len, dim, bytes of the tables a forward builds)
CASES = [
    ("dft-matrix", {}, 2048, 128, dft_matrix_tables(2048, 128)),  # 33.7 MB: what issue 23 saw reported as 1 MB
    ("dft-matrix", {}, 24, 40, dft_matrix_tables(24, 40)),
    ("dft-monarch", {}, 64, 96, dft_monarch_tables(64, 96, n1=8, n2=8, d1=12, d2=8)),
    ("dft-monarch", {}, 384, 192, dft_monarch_tables(384, 192, n1=16, n2=24, d1=16, d2=12)),
    ("dct", {"method": "matmul"}, 16, 64, 4 * (16 * 16 + 64 * 64)),  # C_n and C_d
    ("dct", {}, 16, 64, 4 * (16 * 16 + 64 * 64)),  # n + d ≤ 192: "auto" takes the matmul
    ("dct", {"method": "fft"}, 16, 64, dct_fft_forward_tables(16, 64)),
    ("dct", {"method": "fft"}, 15, 13, dct_fft_forward_tables(15, 13)),
]


@pytest.mark.parametrize("device", ["cpu", CUDA])
@pytest.mark.parametrize("name, options, seq_len, dim, expected", CASES,
                         ids=[f"{c[0]}{c[1] or ''}-{c[2]}x{c[3]}" for c in CASES])
def test_a_first_call_caches_exactly_the_analytic_tables(name, options, seq_len, dim, expected, device):
    mixers.clear_caches()
    module = mixers.build(name, seq_len, dim, dtype=torch.float32, device=device, **options)
    assert mixers.cached_tensors() == [] and mixers.held_bytes(module) == 0  # no parameters, nothing built yet
    with torch.no_grad():
        module(torch.randn(2, seq_len, dim, device=device))
    assert cached_bytes() == expected
    assert all(t.device.type == device for t in mixers.cached_tensors())
    assert mixers.held_bytes(module) == expected
    with torch.no_grad():
        module(torch.randn(3, seq_len, dim, device=device))  # a second call reuses them
    assert cached_bytes() == expected
    mixers.clear_caches()
    assert mixers.cached_tensors() == [] and mixers.held_bytes(module) == 0


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_the_dct_fft_paths_backward_caches_its_inverse_tables(device):
    mixers.clear_caches()
    module = mixers.build("dct", 16, 64, method="fft", device=device)
    x = torch.randn(2, 16, 64, device=device, requires_grad=True)
    module(x).square().sum().backward()
    assert cached_bytes() == dct_fft_forward_tables(16, 64) + dct_fft_backward_tables(16, 64)
    mixers.clear_caches()


def test_held_bytes_counts_parameters_buffers_and_caches_once_per_storage():
    mixers.clear_caches()
    linear = mixers.build("linear", 8, 4)  # W_n (8 × 8) and W_d (4 × 4), float32
    assert mixers.held_bytes(linear) == 4 * (64 + 16)
    assert mixers.held_bytes(linear, linear) == 4 * (64 + 16)  # the same module twice counts once
    linear.register_buffer("view", linear.seq_weight.detach()[:2])  # a view of a parameter: no new storage
    linear.register_buffer("extra", torch.zeros(5, dtype=torch.float64))
    assert mixers.held_bytes(linear) == 4 * (64 + 16) + 8 * 5
    dft = mixers.build("dft-matrix", 8, 4)
    dft(torch.randn(1, 8, 4))
    assert mixers.held_bytes(linear, dft) == 4 * (64 + 16) + 8 * 5 + dft_matrix_tables(8, 4)
    assert len(mixers.held_tensors(linear, dft)) == 2 + 1 + 2  # W_n, W_d, extra, the two tables
    mixers.clear_caches()


def test_caches_keep_the_most_recent_sizes_only(monkeypatch):
    from mixers import _cache

    monkeypatch.setattr(_cache, "CACHE_ENTRIES", 2)
    mixers.clear_caches()
    module = mixers.get("dft-matrix")
    for seq_len in (4, 5, 6):  # each a new W_n; [C_d | S_d] stays the most recently used
        module(seq_len, 3)(torch.randn(1, seq_len, 3))
    shapes = sorted(tuple(t.shape) for t in mixers.cached_tensors())
    assert shapes == [(3, 6), (5, 10), (6, 12)]  # W_4 (4 × 8) was dropped from its cache of two
    mixers.clear_caches()


@pytest.mark.parametrize("device", ["meta", "cpu", CUDA])
def test_tables_are_built_on_the_device_that_uses_them_in_float64_then_cast(device):
    from mixers import _cache

    seen = []

    @_cache.tensor_cache
    def table(size):
        made = torch.arange(size, dtype=torch.float64) / 3  # a factory call, as every table's build makes
        seen.append((made.device.type, made.dtype))
        return made

    try:
        out = table(5, dtype=torch.float32, device=torch.device(device))
        assert seen == [(device, torch.float64)]  # made there, in float64: no host build, no copy
        assert out.device.type == device and out.dtype == torch.float32
        if device != "meta":
            assert torch.equal(out.cpu(), (torch.arange(5, dtype=torch.float64) / 3).float())
        assert table(5, dtype=torch.float32, device=torch.device(device)) is out and len(seen) == 1
    finally:
        _cache._CACHES.remove(table)


TABLE_MIXERS = [("dft-matrix", {}), ("dft-monarch", {}), ("dct", {"method": "matmul"}), ("dct", {"method": "fft"}),
                ("hadamard", {}), ("hyena", {}), ("fft", {}), ("hartley", {})]


@pytest.mark.parametrize("name, options", TABLE_MIXERS, ids=[f"{n}{o or ''}" for n, o in TABLE_MIXERS])
def test_every_table_builds_on_a_device_that_is_not_the_host(name, options):
    # the meta device stands in for a GPU: tables are built under torch.device(device) (the toy table above checks
    # that), so a build that mixed a host tensor into the device's would fail here as it would on a GPU
    mixers.clear_caches()
    with torch.device("meta"):
        module = mixers.build(name, 64, 64, dtype=torch.float32, device="meta", **options)
        x = torch.randn(2, 64, 64, requires_grad=True)
        module(x).sum().backward()
    assert mixers.cached_tensors() and {t.device.type for t in mixers.cached_tensors()} == {"meta"}
    mixers.clear_caches()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_table_whose_build_runs_out_of_gpu_memory_is_built_on_the_host():
    from mixers import _cache

    @_cache.tensor_cache
    def table(size):
        made = torch.arange(size, dtype=torch.float64) / 3
        if made.device.type == "cuda":
            raise torch.cuda.OutOfMemoryError("no room for the temporaries")
        return made

    try:
        out = table(5, dtype=torch.float32, device=torch.device("cuda"))
        assert out.device.type == "cuda" and torch.equal(out.cpu(), (torch.arange(5, dtype=torch.float64) / 3).float())
    finally:
        _cache._CACHES.remove(table)
