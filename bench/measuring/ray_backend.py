"""The Ray backend: a sweep's points, or a quality run's trainings, measured by Ray actors across a cluster.

Zoology launches its sweeps the same way (one `ray.remote(num_gpus=1)` per run). Here each actor holds one
GPU (`num_gpus=1`, and `accelerator_type` for --gpu-type), or on a cluster without GPUs `threads` CPUs, and
answers messages with the local worker's own `bench.measuring.serve.Measurer.handle`. The driver (the
`mixbench` process) hands out the work through `scheduler.Scheduler`, as it does to local worker processes,
and stays the only writer of the run folder.

- An actor that dies while measuring (a segfault, a kill, Ray's memory monitor) costs the point it held:
  an `error` row with Ray's reason; a fresh actor carries on.
- An actor whose node is lost (Ray reports the node dead) hands its point back: another worker measures it
  again, and the lost worker's slot is retired for the rest of the run (run again to use nodes added since).
- A run folder holds one kind of device: on a cluster with GPUs of several types a run names one with
  --gpu-type (its default folder is then results/<preset>-<that GPU's name>), and an actor that lands on
  another device than the run folder's is refused.
- Actors run the driver's code: the driver's package root and PYTHONPATH are theirs too (runtime_env
  env_vars), so on a shared file system they import what the driver imported.
"""

from __future__ import annotations

import logging
import os
import re
import time

import ray
from ray.exceptions import ActorUnavailableError, AuthenticationError, GetTimeoutError, RayActorError, RayError

from bench.measuring import fingerprint, measure
from bench.measuring.points import DEVICES, PlanError
from bench.measuring.rows import one_line
from bench.measuring.serve import Measurer
from bench.measuring.workers import DIED, LOST, STARTUP_TIMEOUT_S, Slot, StartError

POLL_S = 0.5  # the longest one wait inside Ray lasts, so that SIGINT and SIGTERM are handled at once


# --- the cluster --------------------------------------------------------------------------------------

def gpu_inventory(nodes: list[dict]) -> dict[str, int]:
    """GPUs per accelerator type among the alive nodes of `ray.nodes()` ("" for GPUs of no known type)."""
    counts: dict[str, int] = {}
    for node in nodes:
        resources = node.get("Resources") or {}
        gpus = int(resources.get("GPU", 0))
        if not node.get("Alive") or not gpus:
            continue
        kinds = sorted(key.split(":", 1)[1] for key in resources if key.startswith("accelerator_type:"))
        kind = kinds[0] if len(kinds) == 1 else ""
        counts[kind] = counts.get(kind, 0) + gpus
    return counts


def _listing(inventory: dict[str, int]) -> str:
    return ", ".join(f"{kind or 'unknown type'}: {count}" for kind, count in sorted(inventory.items()))


def choose_gpus(inventory: dict[str, int], gpu_type: str | None) -> tuple[str | None, int]:
    """The GPU type a run uses and how many GPUs of it there are; one run folder holds one kind of device."""
    if gpu_type is not None:
        if gpu_type not in inventory or not gpu_type:
            has = f"it has {_listing(inventory)}" if inventory else "it has no GPUs"
            raise PlanError(f"--gpu-type {gpu_type}: the Ray cluster has no GPUs of that type ({has})")
        return gpu_type, inventory[gpu_type]
    if len(inventory) > 1:
        named = sorted(kind for kind in inventory if kind)
        raise PlanError(f"the Ray cluster has GPUs of several types ({_listing(inventory)}) and a run folder holds "
                        f"one kind of device: run one sweep per type, --gpu-type "
                        f"{' / --gpu-type '.join(named) or 'TYPE'}")
    for kind, count in inventory.items():
        return kind or None, count
    return None, 0


def code_path() -> str:
    """PYTHONPATH for the actors: the folder the driver's `bench` came from, then the driver's own PYTHONPATH."""
    entries = [str(fingerprint.REPO_ROOT), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    return os.pathsep.join(dict.fromkeys(entry for entry in entries if entry))


def connect(address: str | None) -> None:
    """Connect this process to the Ray cluster at `address` (None: RAY_ADDRESS, the latest cluster started on
    this machine, or a new one here; "auto": an existing one only)."""
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        cause = exc
        while cause is not None and not isinstance(cause, AuthenticationError):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:  # Ray enables token auth by itself only for clusters it finds, not for an address
            raise PlanError(f"--ray-address {address}: the cluster asks for its token; set RAY_AUTH_MODE=token, with "
                            f"the token in ~/.ray/auth_token or RAY_AUTH_TOKEN (see "
                            f"https://docs.ray.io/en/latest/ray-security/token-auth.html)") from None
        where = f"at {address}" if address not in (None, "auto") else "running on this machine"
        raise PlanError(f"--ray-address {address}: no Ray cluster {where} answered ({_reason(exc)}); start one with "
                        f"`ray start --head`, or leave out --ray-address to start one here") from None


class RayBackend:
    """Workers as Ray actors: one per GPU of the chosen type, or per `threads` CPUs on a cluster without GPUs."""

    name = "ray"

    def __init__(self, address: str | None = None, gpu_type: str | None = None):
        self.owned = not ray.is_initialized()  # connected here, so disconnected here (tests connect themselves)
        if self.owned:
            connect(address)
        try:
            nodes = [node for node in ray.nodes() if node.get("Alive")]
            self.gpus = gpu_inventory(nodes)
            self.gpu_type, self.gpu_count = choose_gpus(self.gpus, gpu_type)
        except PlanError:
            self.close()
            raise
        self.nodes = len(nodes)
        # a cluster of this machine alone (a local instance, the tests' cluster) measures here: no probe needed
        self.here = all(node.get("NodeManagerAddress") == ray.util.get_node_ip_address() for node in nodes)
        self.cpus = int(ray.cluster_resources().get("CPU", 0))
        self.options: dict = {}
        self._machine: dict | None = None

    def device(self, requested: str) -> str:
        """The device the points run on: 'auto' is cuda on a cluster with GPUs (of the chosen type), else cpu."""
        if requested not in DEVICES:
            raise PlanError(f"unknown device {requested!r} (allowed: {', '.join(DEVICES)})")
        if requested == "auto":
            return "cuda" if self.gpu_count else "cpu"
        if requested == "cuda" and not self.gpu_count:
            raise PlanError(f"--device cuda: the Ray cluster has no GPUs ({self.nodes} node(s), {self.cpus} CPUs); "
                            f"use --device cpu")
        return requested

    def slots(self, workers: int | None, threads: int | None, fill: bool = False) -> list[Slot]:
        """One slot per actor (by default one per GPU; on a cluster without GPUs one, or as many as its CPUs
        hold when `fill`); sets the resources each actor asks for."""
        if self.gpu_count:  # a GPU each, whatever the points' device, so that no two actors share one
            count = workers or self.gpu_count
            if count > self.gpu_count:
                raise PlanError(f"--workers {count}: the Ray cluster has {self.gpu_count} GPU(s)"
                                f"{f' of type {self.gpu_type}' if self.gpu_type else ''}; use at most {self.gpu_count}")
            self.options = {"num_gpus": 1, **({"num_cpus": threads} if threads else {}),
                            **({"accelerator_type": self.gpu_type} if self.gpu_type else {})}
        else:
            each = threads or 1
            most = max(1, self.cpus // each)
            count = workers or (most if fill else 1)
            if count > most:
                raise PlanError(f"--workers {count}: the Ray cluster has {self.cpus} CPUs, room for {most} worker(s) "
                                f"of {each} thread(s)")
            self.options = {"num_cpus": each}
        self.options["runtime_env"] = {"env_vars": {"PYTHONPATH": code_path()}}
        return [Slot(index, {}, threads) for index in range(count)]

    def machine(self, device: str) -> dict | None:
        """`fingerprint.machine(device)` as a worker of this run finds it (None when the cluster is this machine)."""
        return None if self.here else self.probe(device)

    def probe(self, device: str) -> dict:
        """`fingerprint.machine(device)` as a worker of this run finds it (asked once, by a task)."""
        if self._machine is None:
            # a task of fingerprint.py's own function: its process imports torch and fingerprint.py, not the mixers
            probe = ray.remote(fingerprint.machine).options(**self.options, max_retries=0).remote(device)
            try:
                self._machine = _get(probe, STARTUP_TIMEOUT_S)
            except RayError as exc:
                raise StartError(f"no Ray worker could report its machine: {_reason(exc)}") from None
        return self._machine

    def start(self, slot: Slot, device: str, device_name: str, policy: measure.TimingPolicy, round_: int):
        return RayWorker(slot, self.options, device, device_name, policy, round_)

    def wait(self, workers: list, timeout_s: float) -> list:
        return wait_ray(workers, timeout_s)

    def describe(self) -> dict:
        resources = {key: value for key, value in self.options.items() if key != "runtime_env"}
        return {"backend": self.name, "ray": ray.__version__, "address": ray.get_runtime_context().gcs_address,
                "nodes": self.nodes, "cpus": self.cpus, "gpus": self.gpus, "gpu_type": self.gpu_type,
                "worker_resources": resources}

    def close(self) -> None:
        if self.owned and ray.is_initialized():
            ray.shutdown()


# --- one worker -----------------------------------------------------------------------------------------

@ray.remote(max_restarts=0, max_task_retries=0)
class MeasuringActor:
    """A measuring worker inside Ray: the local worker's `Measurer`, one message per call."""

    def __init__(self, device: str, device_name: str, policy: measure.TimingPolicy, threads: int | None):
        self.device = device
        self.measurer = Measurer(device, device_name, policy, threads)

    def ready(self) -> dict:
        """This worker's settings, where it runs, and the device it found."""
        return {**self.measurer.settings, "node_id": ray.get_runtime_context().get_node_id(),
                "node_ip": ray.util.get_node_ip_address(), "ray_gpu_ids": [str(i) for i in ray.get_gpu_ids()],
                "device_name": fingerprint.device_facts(self.device)["device_name"]}

    def handle(self, message: tuple) -> tuple:
        return self.measurer.handle(message)

    def ping(self) -> bool:
        return True


def _reason(exc: BaseException) -> str:
    """Ray's message of `exc` in one line, without its identifiers and its list of common causes."""
    if isinstance(exc, GetTimeoutError):
        return "no answer in time (are the cluster's GPUs or CPUs held by other work?)"
    return one_line(exc, named=False, limit=400)


def _wait(refs: list, num_returns: int, timeout_s: float) -> list:
    try:
        ready, _ = ray.wait(refs, num_returns=num_returns, timeout=timeout_s)
    except SystemError as exc:
        # Ray runs Python's signal handlers inside its wait; what they raise (runner.Interrupted) comes out
        # wrapped in a SystemError, and is raised here as itself
        if exc.__cause__ is not None:
            raise exc.__cause__ from None
        raise
    return ready


def _ready(refs: list, timeout_s: float) -> list:
    """Those of `refs` that are ready, waiting at most `timeout_s` for the first of them."""
    deadline = time.monotonic() + timeout_s
    while True:
        ready = _wait(refs, 1, min(POLL_S, max(0.0, deadline - time.monotonic())))
        if ready:
            return _wait(refs, len(refs), 0) or ready
        if time.monotonic() >= deadline:
            return []


def _get(ref, timeout_s: float):
    if not _ready([ref], timeout_s):
        raise GetTimeoutError(f"no answer within {timeout_s:g} s")
    return ray.get(ref)


def _node_dead(node_id: str | None) -> bool:
    return any(node["NodeID"] == node_id and not node.get("Alive") for node in ray.nodes())


class RayWorker:
    """One Ray actor serving one round, with the interface of `workers.Worker`."""

    def __init__(self, slot: Slot, options: dict, device: str, device_name: str, policy: measure.TimingPolicy,
                 round_: int = 1):
        self.slot, self.round = slot, round_
        self.call = None  # the reply being waited for
        self.probe = None  # a ping sent when the actor became unreachable: its answer says whether it lives
        self.reason: str | None = None
        self.dead = False
        self.settings: dict = {}
        self.actor = MeasuringActor.options(**options).remote(device, device_name, policy, slot.threads)
        try:
            self.settings = _get(self.actor.ready.remote(), STARTUP_TIMEOUT_S)
        except RayError as exc:
            self.kill()
            raise StartError(f"the Ray worker did not start: {_reason(exc)}") from None
        if self.settings["device_name"] != device_name:
            self.kill()
            raise StartError(f"Ray placed worker {slot.index} on {self.settings['device_name']!r} (node "
                             f"{self.settings['node_ip']}), but this run measures {device_name!r}; give --gpu-type "
                             f"to keep to one kind of device")

    def waiting_on(self):
        return self.probe if self.probe is not None else self.call

    def send(self, message) -> bool:
        if self.dead:
            return False
        self.call = self.actor.handle.remote(message)
        return True

    def receive(self, timeout_s: float):
        """The actor's reply; DIED or LOST if it went away while on it; None if there is none yet."""
        ref = self.waiting_on()
        if ref is None:
            return None
        if not _ready([ref], timeout_s):
            return None
        probing = self.probe is not None
        if probing:
            self.probe = None
        else:
            self.call = None
        try:
            reply = ray.get(ref)
        except ActorUnavailableError:  # unreachable: a network fault, or its node going; ask until Ray knows
            if probing:
                time.sleep(POLL_S)
            self.probe = self.actor.ping.remote()
            return None
        except RayActorError as exc:
            return self._gone(exc)
        except RayError as exc:  # the call itself failed (the actor lives on)
            self.dead = True
            self.reason = f"the Ray worker failed: {_reason(exc)}"
            return DIED
        if probing:  # it answers again, but the reply it was computing went with the connection
            self.dead = True
            self.reason = "the Ray worker was unreachable while measuring and its reply was lost"
            return DIED
        return reply

    def _gone(self, exc: RayActorError) -> tuple:
        self.dead = True
        text = _reason(exc)
        where = f"node {self.settings.get('node_ip')}"
        if getattr(exc, "preempted", False) or re.search(r"\bnode\b", text) or _node_dead(self.settings.get("node_id")):
            self.reason = f"the Ray worker's {where} was lost ({text})"
            return LOST
        self.reason = f"the Ray worker (pid {self.settings.get('pid')}, {where}) died: {text}"
        return DIED

    def alive(self) -> bool:
        return not self.dead

    def death_reason(self) -> str | None:
        return self.reason

    def kill(self) -> None:
        self.dead = True
        try:
            ray.kill(self.actor, no_restart=True)
        except (RayError, ValueError):
            pass  # already gone

    def stop(self) -> None:
        self.kill()


def wait_ray(workers: list[RayWorker], timeout_s: float) -> list[RayWorker]:
    """The workers among `workers` with a reply (or a failure) to read, waiting at most `timeout_s`."""
    by_ref = {worker.waiting_on(): worker for worker in workers}
    return [by_ref[ref] for ref in _ready(list(by_ref), timeout_s)]
