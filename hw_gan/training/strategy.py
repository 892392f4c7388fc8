"""tf.distribute and precision set-up, chosen explicitly from the runtime config."""

from __future__ import annotations

import json
import os
from typing import Optional

import tensorflow as tf

from hw_gan.config import JIT_AUTO


def split_cpu(num_devices: int) -> None:
    """Splits the first CPU into `num_devices` logical devices (real multi-replica runs on a CPU).
    Must run before TensorFlow initialises its devices; a no-op for num_devices <= 1."""
    if num_devices <= 1:
        return
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)])
    except RuntimeError as e:
        existing = len(tf.config.list_logical_devices("CPU"))
        if existing != num_devices:
            raise RuntimeError(f"--num_cpu_devices={num_devices}: TensorFlow already initialised "
                               f"{existing} CPU device(s); set it before any TF op") from e


def _tf_config_workers() -> int:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return 0
    try:
        cluster = json.loads(raw).get("cluster", {})
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON: {e}") from e
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def mirrored(devices) -> tf.distribute.MirroredStrategy:
    """MirroredStrategy over `devices`. On logical CPUs it reduces through one device instead of
    collective ops: every MirroredStrategy in a process restarts the collective group and
    instance keys, so a second strategy over the same CPUs (tests, or train then adapt in one
    process) would meet the first one's cached instances and fail with "Shape mismatch in the
    collective instance". GPUs keep the default (NCCL) all-reduce."""
    devices = list(devices)
    if all("GPU" not in d.upper() for d in devices):
        return tf.distribute.MirroredStrategy(
            devices=devices, cross_device_ops=tf.distribute.ReductionToOneDevice())
    return tf.distribute.MirroredStrategy(devices=devices)


def make_strategy(name: str) -> tf.distribute.Strategy:
    """auto: multi_worker when TF_CONFIG names 2+ workers, mirrored with 2+ GPUs (or 2+ logical
    CPUs), default otherwise. mirrored: all local GPUs, else all logical CPUs. multi_worker:
    MultiWorkerMirroredStrategy from TF_CONFIG. tpu: TPUStrategy on the resolved TPU."""
    if name == "auto":
        if _tf_config_workers() >= 2:
            name = "multi_worker"
        elif (len(tf.config.list_physical_devices("GPU")) >= 2
              or len(tf.config.list_logical_devices("CPU")) >= 2):
            name = "mirrored"
        else:
            name = "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return mirrored(devices)
    if name == "multi_worker":
        if _tf_config_workers() < 1:
            raise ValueError("--strategy=multi_worker needs TF_CONFIG with a 'cluster' of workers")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, tf.errors.NotFoundError) as e:
            raise RuntimeError(f"--strategy=tpu: no TPU found ({e})") from e
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"--strategy={name!r} is not one of auto, default, mirrored, multi_worker, tpu")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """The worker that writes checkpoints, summaries and exports for the whole cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type in (None, "chief") or (task_type == "worker" and task_id == 0
                                            and "chief" not in resolver.cluster_spec().as_dict())


def worker_id(strategy: tf.distribute.Strategy) -> int:
    resolver = getattr(strategy, "cluster_resolver", None)
    return int(getattr(resolver, "task_id", 0) or 0) if resolver is not None else 0


CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of native bfloat16 math
CPU_AVX512_FLAG = "avx512f"  # oneDNN's AVX-512 kernels (without them XLA's own ones are faster)


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> Optional[frozenset]:
    """The CPU's feature flags from `cpuinfo`; None where it cannot be read (not Linux)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[-1].split())
    except OSError:
        return None
    return None


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU computes bfloat16 natively (AVX512-BF16 or AMX: oneDNN then runs bf16
    convolutions faster than float32; without them it emulates bf16, slower). False where
    `cpuinfo` cannot be read (not Linux)."""
    return bool((cpu_flags(cpuinfo) or frozenset()) & set(CPU_BF16_FLAGS))


def resolve_jit_compile(value, cpuinfo: str = "/proc/cpuinfo", replicas: int = 1) -> bool:
    """Whether --jit_compile=`value` XLA-compiles the train step of a strategy with `replicas`
    replicas: True / False as given; "auto" (config.JIT_AUTO): on for one replica on a CPU
    without AVX-512 and no GPU, where XLA's kernels beat oneDNN's AVX2 ones for the
    convolution-heavy steps (style_cgan 1.25-1.36x, few-shot 1.1-1.3x; with AVX-512 0.7-0.9x:
    docs/results.md); off on a GPU (not measured), over logical CPUs and where `cpuinfo` cannot
    be read. ValueError for XLA asked over 2+ logical CPUs: its compiled step reads every
    replica's variables from the first CPU and fails ("resource ... located in device CPU:1")."""
    gpu = bool(tf.config.list_physical_devices("GPU"))
    if value is True and replicas > 1 and not gpu:
        raise ValueError(f"--jit_compile: XLA cannot compile a step mirrored over {replicas} "
                         "logical CPUs; use --nojit_compile or one CPU device "
                         "(--num_cpu_devices=0)")
    if isinstance(value, bool):
        return value
    if value != JIT_AUTO:
        raise ValueError(f"--jit_compile: {value!r} is not true, false or {JIT_AUTO}")
    if gpu or replicas > 1:
        return False
    flags = cpu_flags(cpuinfo)
    return flags is not None and CPU_AVX512_FLAG not in flags


def resolve_precision(name: str, cpuinfo: str = "/proc/cpuinfo") -> str:
    """The dtype policy for --precision=`name`. "auto": mixed_bfloat16 on a GPU of compute
    capability 8.0+ (Ampere on) or, without a GPU, on a CPU with native bfloat16; float32
    otherwise. Any other name is returned as it is."""
    if name != "auto":
        return name
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = [tf.config.experimental.get_device_details(g) for g in gpus]
        ampere = all(tuple(d.get("compute_capability", (0, 0))) >= (8, 0) for d in details)
        return "mixed_bfloat16" if ampere else "float32"
    return "mixed_bfloat16" if cpu_has_native_bf16(cpuinfo) else "float32"


def set_precision(policy: str) -> None:
    """Sets Keras's global dtype policy ("float32", "mixed_float16" or "mixed_bfloat16")."""
    import keras

    keras.mixed_precision.set_global_policy(policy)
