"""The CUDA path's bookkeeping, tested on a CPU with fakes: which GPU a worker gets under an inherited
CUDA_VISIBLE_DEVICES, which GPU NVML is asked about (a fake pynvml of two devices), what ran (`kernel`, `tf32`),
allocation failures as `oom`, a sticky CUDA error ending its worker, and a run folder that stays on its machine."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
import sys
import types
from types import SimpleNamespace

import pytest
import torch

from bench import api, cli
from bench.measuring import fingerprint, measure, rows, serve, timing
from bench.measuring.points import PlanError, Point
from bench.measuring.rows import Reply
from bench.measuring.store import COLUMNS, EnvRecord, RunFolder, RunFolderError
from bench.measuring.workers import Slot, Worker, local_slots, visible_device

# --- the right GPU: CUDA_VISIBLE_DEVICES ------------------------------------------------------------------


@pytest.mark.parametrize("mask, expected", [
    ("5,7", ["5", "7"]),
    ("GPU-aaaa-1111,GPU-bbbb-2222", ["GPU-aaaa-1111", "GPU-bbbb-2222"]),
    (" 2, 3 ", ["2", "3"]),
    (None, ["0", "1"]),
])
def test_a_worker_gets_its_entry_of_the_inherited_mask(monkeypatch, mask, expected):
    if mask is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", mask)
    slots = local_slots("cuda", devices=(0, 1))
    assert [slot.env["CUDA_VISIBLE_DEVICES"] for slot in slots] == expected
    assert [slot.index for slot in slots] == [0, 1]  # rows keep torch's numbering (device_index)
    assert local_slots("cuda", devices=(1,))[0].env == {"CUDA_VISIBLE_DEVICES": expected[1]}


def test_a_device_beyond_the_mask_is_refused(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")
    with pytest.raises(ValueError, match="CUDA device 2 is not among the 2 GPU"):
        visible_device(2)


@pytest.fixture
def two_visible_gpus(monkeypatch):
    """A machine whose job may use physical GPUs 5 and 7 (torch sees two)."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_devices_and_workers_map_through_the_inherited_mask(two_visible_gpus):
    slots, _ = api._workers("cuda", None, "1", None)
    assert [(slot.index, slot.env) for slot in slots] == [(1, {"CUDA_VISIBLE_DEVICES": "7"})]
    slots, _ = api._workers("cuda", "2", None, None)
    assert [slot.env["CUDA_VISIBLE_DEVICES"] for slot in slots] == ["5", "7"]
    with pytest.raises(PlanError, match=r"--devices 2: this machine has 2 GPU\(s\) visible \(CUDA_VISIBLE_DEVICES=5,7\)"):
        api._workers("cuda", None, "2", None)
    with pytest.raises(PlanError, match="--workers 3: this machine has 2 GPU"):
        api._workers("cuda", "3", None, None)


def test_the_mask_entry_reaches_the_worker_process(monkeypatch):
    """A worker starts with its slot's CUDA_VISIBLE_DEVICES in its environment (here a CPU worker, spawned because
    its environment differs), and the parent's environment is as it was."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")
    slot = Slot(1, {"CUDA_VISIBLE_DEVICES": visible_device(1)})
    worker = Worker(slot, "cpu", "cpu", measure.TimingPolicy())
    try:
        assert worker.settings["cuda_visible_devices"] == "7"
    finally:
        worker.stop()
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "5,7"


# --- the right GPU: NVML --------------------------------------------------------------------------------

def point_at(mixer: str, device: str) -> Point:
    return Point(mixer, "mixer", 8, 4, None, None, None, None, 1, "batch=1", "float32", "forward", device)


class FakeNvml(types.ModuleType):
    """pynvml with two GPUs; looking a GPU up by index fails the test (NVML's index is PCI order, not CUDA's)."""

    NVML_CLOCK_SM, NVML_CLOCK_MEM, NVML_TEMPERATURE_GPU = 0, 1, 0

    def __init__(self, fail_init: bool = False):
        super().__init__("pynvml")
        self.fail_init = fail_init
        self.gpus = [
            {"uuid": "GPU-aaaa", "pci": "00000000:3b:00.0", "name": "Fake GPU A", "energy": 1000.0, "sm": 1100,
             "temp": 41},
            {"uuid": "GPU-bbbb", "pci": "00000000:5e:00.0", "name": "Fake GPU B", "energy": 9000.0, "sm": 1980,
             "temp": 67},
        ]
        self.asked: list[str] = []

    def nvmlInit(self):
        if self.fail_init:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlDeviceGetHandleByIndex(self, index):
        raise AssertionError("NVML was asked for a GPU by index")

    def nvmlDeviceGetHandleByUUID(self, uuid):
        self.asked.append(uuid)
        for gpu in self.gpus:
            if gpu["uuid"] == uuid:
                return gpu
        raise RuntimeError("Not Found")

    def nvmlDeviceGetHandleByPciBusId(self, bus_id):
        self.asked.append(bus_id)
        for gpu in self.gpus:
            if gpu["pci"] == bus_id.lower():
                return gpu
        raise RuntimeError("Not Found")

    def nvmlDeviceGetName(self, handle):
        return handle["name"].encode()

    def nvmlDeviceGetMemoryInfo(self, handle):
        return SimpleNamespace(total=80 * 2**30)

    def nvmlSystemGetDriverVersion(self):
        return "550.00"

    def nvmlDeviceGetClockInfo(self, handle, kind):
        return handle["sm"] if kind == self.NVML_CLOCK_SM else 2600

    def nvmlDeviceGetMaxClockInfo(self, handle, kind):
        return 1980 if kind == self.NVML_CLOCK_SM else 2619

    def nvmlDeviceGetEnforcedPowerLimit(self, handle):
        return 700000

    def nvmlDeviceGetTemperature(self, handle, kind):
        return handle["temp"]

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle):
        return 0

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        handle["energy"] += 5.0
        return handle["energy"]


def props(uuid=None, bus=None):
    """What torch.cuda.get_device_properties(0) says inside a worker whose CUDA_VISIBLE_DEVICES names one GPU."""
    fields = {"name": "Fake GPU", "total_memory": 80 * 2**30, "multi_processor_count": 132}
    if uuid is not None:
        fields["uuid"] = uuid
    if bus is not None:
        fields.update(pci_bus_id=bus, pci_device_id=0, pci_domain_id=0)
    return SimpleNamespace(**fields)


@pytest.fixture
def fake_nvml(monkeypatch):
    nvml = FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    return nvml


@pytest.fixture
def on_second_gpu(monkeypatch, fake_nvml):
    """A worker for logical device 1 under the mask "5,7": it sees one GPU, the second of the two, by UUID."""
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index=0: props(uuid="bbbb"))
    return fake_nvml


def test_nvml_reads_the_gpu_of_the_workers_uuid(on_second_gpu):
    state, error = fingerprint.gpu_state()
    assert error is None and state["name"] == "Fake GPU B" and state["uuid"] == "GPU-bbbb"
    assert state["temperature_c"] == 67 and state["sm_clock_mhz"] == 1980
    energy = fingerprint.energy_counter()
    assert energy() == 9010.0 and energy() == 9015.0  # GPU B's counter, not GPU A's (1000)
    assert fingerprint.gpu_sampler()() == {"sm_clock_mhz": 1980, "temp_c": 67}
    assert on_second_gpu.asked and set(on_second_gpu.asked) == {"GPU-bbbb"}


def test_nvml_falls_back_to_the_pci_bus_id(monkeypatch, fake_nvml):
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index=0: props(bus=0x5E))
    state, error = fingerprint.gpu_state()
    assert error is None and state["name"] == "Fake GPU B" and state["pci_bus_id"] == "00000000:5e:00.0"


def test_nvml_never_guesses_a_gpu_it_cannot_find(monkeypatch, fake_nvml):
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index=0: props(uuid="cccc"))
    state, error = fingerprint.gpu_state()
    assert state is None and "GPU-cccc" in error
    assert fingerprint.energy_counter() is None and fingerprint.gpu_sampler() is None
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index=0: props())
    assert fingerprint.gpu_state() == (None, "torch reports neither a UUID nor a PCI bus id for CUDA device 0")


def test_nvml_that_cannot_start_is_recorded_not_raised(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(fail_init=True))
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index=0: props(uuid="bbbb"))
    state, error = fingerprint.gpu_state()
    assert state is None and "NVML Shared Library Not Found" in error
    assert fingerprint.energy_counter() is None and fingerprint.gpu_sampler() is None


def test_a_cuda_worker_records_its_own_gpu_and_its_state_per_row(monkeypatch, on_second_gpu):
    measurer = serve.Measurer("cuda", "Fake GPU", measure.TimingPolicy())
    assert measurer.settings["gpu"]["uuid"] == "GPU-bbbb" and measurer.settings["nvml_error"] is None
    point = point_at("fft", "cuda")

    def measured(point, policy, device_name, energy):
        return Reply({**timing.base_row(point, device_name), "status": "ok", "energy_mj": energy() - energy()})

    monkeypatch.setattr(timing, "measure_point", measured)
    row = measurer.handle(("point", point.as_dict())).row
    assert row["sm_clock_mhz"] == 1980 and row["temp_c"] == 67 and row["energy_mj"] == -5.0
    assert {"sm_clock_mhz", "temp_c", "energy_mj", "kernel", "tf32"} <= set(COLUMNS)


# --- what ran ---------------------------------------------------------------------------------------------

def measured_row(mixer, mode="forward", scope="mixer", layers=None, ffn=None, vocab=None):
    point = Point(mixer, scope, 16, 64, layers, ffn, vocab, None if scope == "mixer" else "post", 2, "batch=2",
                  "float32", mode, "cpu")
    reply = timing.measure_point(point, measure.TimingPolicy(warmup_calls=1, min_reps=2, budget_s=0.01), "cpu")
    assert reply.row["status"] == "ok", reply.row["error"]
    return reply.row


@pytest.mark.parametrize("mode", ["forward", "train"])
def test_rows_say_which_kernel_ran(mode):
    assert measured_row("attention", mode)["kernel"] in ("flash", "efficient", "cudnn", "math")
    assert measured_row("mamba", mode)["kernel"] == "chunked"  # mamba_ssm runs only on CUDA
    assert measured_row("fft", mode)["kernel"] == ""
    assert measured_row("attention-naive", mode)["kernel"] == ""


def test_a_layout_names_the_kernels_of_its_mixers():
    row = measured_row("fft+attention:1", scope="encoder", layers=2, ffn=128, vocab=0)
    assert row["kernel"] in ("flash", "efficient", "cudnn", "math")


def test_the_attention_kernel_is_what_the_dispatcher_allows():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    import mixers

    module = mixers.build("attention", 16, 64)
    with sdpa_kernel([SDPBackend.MATH]):
        assert module.kernel_name() == "math"
    assert module.kernel_name() != "math" or not torch.backends.cuda.flash_sdp_enabled()


def test_rows_record_the_tf32_settings(monkeypatch):
    row = measured_row("fft")
    assert re.fullmatch(r"matmul=[01] cudnn=[01] precision=(highest|high|medium)", row["tf32"])
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    assert "cudnn=0" in fingerprint.tf32_settings()


# --- allocation failures and sticky errors --------------------------------------------------------------

ALLOCATION_FAILURES = [
    "CUDA out of memory. Tried to allocate 2.00 GiB",
    "cuFFT error: CUFFT_ALLOC_FAILED",
    "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
    "cuDNN error: CUDNN_STATUS_ALLOC_FAILED",
    "cuDNN error: CUDNN_STATUS_NOT_ENOUGH_WORKSPACE",
    "CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported",
    "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes",
]
STICKY = [
    "CUDA error: an illegal memory access was encountered\nCUDA kernel errors might be asynchronously reported at "
    "some other API call",
    "CUDA error: device-side assert triggered\nCompile with `TORCH_USE_CUDA_DSA` to enable device-side assertions.",
    "CUDA error: unspecified launch failure",
]


@pytest.mark.parametrize("message", ALLOCATION_FAILURES)
def test_allocation_failures_are_oom_and_leave_the_worker_alone(message):
    reply = rows.failure({"mixer": "fft"}, RuntimeError(message))
    assert reply.row["status"] == "oom" and not reply.fatal


@pytest.mark.parametrize("message", STICKY)
def test_a_sticky_cuda_error_is_an_error_that_ends_the_worker(message):
    reply = rows.failure({"mixer": "fft"}, RuntimeError(message))
    assert reply.row["status"] == "error" and reply.fatal
    assert "\n" not in reply.row["error"]


def test_other_errors_are_errors_and_not_fatal():
    reply = rows.failure({}, RuntimeError("shape mismatch"))
    assert reply.row["status"] == "error" and not reply.fatal


@pytest.fixture
def worker_loop(monkeypatch):
    """Run `serve` here (the main thread: it sets a signal handler) on one end of a pipe; the test holds the other."""
    monkeypatch.setattr(signal, "signal", lambda *args: None)
    parent, child = multiprocessing.Pipe()
    yield parent, child
    parent.close()


def test_a_cleanup_that_raises_after_a_sticky_error_gives_a_row_and_ends_the_worker(monkeypatch, worker_loop):
    """After an illegal memory access, the point's own cleanup (`empty_cache`) raises the error again, out of
    `measure_point`: the worker still answers with the point's row, fatal, and its loop ends."""
    sticky = STICKY[0]

    def cleanup_raises(point, policy, device_name, energy):
        raise RuntimeError(sticky)

    monkeypatch.setattr(timing, "measure_point", cleanup_raises)
    parent, child = worker_loop
    point = point_at("fft", "cpu")
    parent.send(("point", point.as_dict()))
    parent.send(("point", point.as_dict()))  # never read: the loop ends after the fatal reply
    serve.serve(child, "cpu", "cpu", measure.TimingPolicy())  # returns: no ('stop',) was sent
    assert parent.recv()[0] == "ready"
    reply = parent.recv()
    assert reply.fatal and reply.row["status"] == "error" and "illegal memory access" in reply.row["error"]
    assert reply.row["mixer"] == "fft" and reply.row["seq_len"] == 8 and reply.pid is not None
    assert not parent.poll(0.2)


# --- a run folder stays on its machine --------------------------------------------------------------------

FACTS = {"device_name": "cpu", "command": "mixbench sweep", "git_commit": None, "git_dirty": None}


def test_a_folder_started_on_one_machine_is_refused_on_another(tmp_path):
    folder = RunFolder(tmp_path / "run").open()
    try:
        EnvRecord.open(folder, {**FACTS, "machine_id": "A", "host": "alpha"}, "sweep", "now").write()
        assert json.loads(folder.env_path.read_text())["machine_id"] == "A"
        with pytest.raises(RunFolderError) as refused:
            EnvRecord.open(folder, {**FACTS, "machine_id": "B", "host": "beta"}, "sweep", "now")
        message = str(refused.value)
        assert str(folder.path) in message and "alpha" in message and "choose another --out" in message
        assert "\n" not in message
        with pytest.raises(RunFolderError):
            EnvRecord.open(folder, {**FACTS, "machine_id": "B", "host": "beta"}, "quality", "now")
        assert EnvRecord.open(folder, {**FACTS, "machine_id": "A", "host": "alpha"}, "sweep", "later")
    finally:
        folder.close()


def test_a_folder_from_before_machine_ids_is_accepted(tmp_path):
    folder = RunFolder(tmp_path / "run").open()
    try:
        folder.write_env({"device_name": "cpu", "peak_bandwidth_gbps": 1.0})
        record = EnvRecord.open(folder, {**FACTS, "machine_id": "B", "host": "beta"}, "sweep", "now")
        assert record.data["machine_id"] == "B" and record.data["peak_bandwidth_gbps"] == 1.0
    finally:
        folder.close()


def test_the_command_line_refuses_another_machines_folder_in_one_line(tmp_path, capsys, calibrated, monkeypatch):
    run_dir = calibrated(tmp_path / "run")
    env = json.loads((run_dir / "env.json").read_text())
    (run_dir / "env.json").write_text(json.dumps({**env, "machine_id": "A", "host": "alpha"}))
    monkeypatch.setattr(fingerprint, "machine_id", lambda: "B")
    code = cli.main(["sweep", "--device", "cpu", "--mixers", "fft", "--seq-lens", "8", "--dims", "4", "--out",
                     str(run_dir), "--no-report"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "started on another machine" in err and str(run_dir) in err and "--out" in err
    assert not (run_dir / "results.csv").exists()


def test_the_machine_id_is_stable_and_does_not_show_etc_machine_id():
    first = fingerprint.machine_id()
    assert first == fingerprint.machine_id() and re.fullmatch(r"[0-9a-f]{16}", first)
    try:
        with open("/etc/machine-id") as handle:
            assert handle.read().strip() not in first
    except OSError:
        pass
    facts = fingerprint.provenance()
    assert facts["machine_id"] == first and facts["host"]


def test_make_bench_writes_beside_the_committed_reference_runs_not_into_them():
    out = api.default_out("cpu", "cpu")
    assert out.parent == api.REPO_RESULTS and out.parent.name == "results"
    assert not out.is_relative_to(api.REPO_RESULTS / "reference")


def test_without_a_systemd_machine_id_the_host_and_mac_address_tell_machines_apart(monkeypatch):
    class Missing:
        def __init__(self, path):
            pass

        def read_text(self):
            raise OSError("no such file")

    monkeypatch.setattr(fingerprint, "Path", Missing)
    monkeypatch.setattr(fingerprint.socket, "gethostname", lambda: "alpha")
    monkeypatch.setattr(fingerprint.uuid, "getnode", lambda: 0x0242AC110002)
    alpha = fingerprint.machine_id()
    assert alpha == fingerprint.machine_id() and re.fullmatch(r"[0-9a-f]{16}", alpha)
    monkeypatch.setattr(fingerprint.uuid, "getnode", lambda: 0x0242AC110003)
    assert fingerprint.machine_id() != alpha
