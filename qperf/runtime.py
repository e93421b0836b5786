"""Where QPerf computes: the torch device and the number of threads.

One device setting and one thread setting for every step, read by the command line
(``--device``, ``--threads``), the Python API (``device=`` of
:func:`qperf.segmentation.load_segmenter`, :func:`qperf.motion.correct_series`, the AIF
detector and :class:`qperf.segmentation.train.TrainConfig`; :func:`set_threads`) and batch
workers.

Device: ``"auto"`` takes a CUDA GPU when torch sees one, then Apple's MPS, else the CPU; a
device that is asked for by name and is missing is refused (:class:`~qperf.errors.NotAvailableError`)
rather than replaced by another.

Threads: :func:`set_threads` sizes every pool QPerf computes with: torch's intra-op threads,
the BLAS/OpenMP pools of numpy and scipy (through ``threadpoolctl`` when it is installed, else
only in processes started afterwards), the
worker threads of the kinetic fit (which reads ``QPERF_THREADS``), and, through the
environment, the pools of processes started afterwards (batch workers, the Slicer modules' CLI
process). Its default is the environment variable ``QPERF_THREADS``; unset, nothing is changed.

torch is imported only when a device is resolved or threads are set, not with this module.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from qperf.errors import NotAvailableError, ValidationError

if TYPE_CHECKING:
    import torch

#: Device names accepted by ``--device`` and ``device=``; ``"cuda:1"`` names one GPU.
DEVICES = ("auto", "cpu", "cuda", "mps")
#: Environment variable giving the default number of threads.
THREADS_VARIABLE = "QPERF_THREADS"
#: Environment variables that size the thread pools of BLAS, OpenMP and QPerf; read when numpy
#: or torch is imported, so a process started with them is sized from its start.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    THREADS_VARIABLE,
)

_pool_limits: Any = None  # the threadpoolctl limiter in force, kept so that it is not undone


def _device_name(device: object) -> str:
    if device is None:
        return "auto"
    if type(device).__name__ == "device" and hasattr(device, "type"):  # a torch.device
        return str(device)
    if not isinstance(device, str):
        raise ValidationError(f"device: expected one of {', '.join(DEVICES)} or a torch.device, found {device!r}")
    name = device.strip().lower()
    kind, _, index = name.partition(":")
    if kind not in DEVICES or (index and (kind != "cuda" or not index.isdigit())):
        raise ValidationError(f"device: expected one of {', '.join(DEVICES)} (or cuda:N), found {device!r}")
    return name


def check_device_name(device: object) -> None:
    """Refuse (ValidationError) what is not a device name, without importing torch or probing the device."""
    _device_name(device)


def _mps_available(torch: Any) -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(device: object = "auto") -> torch.device:
    """The torch device to compute on.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda", "cuda:N", "mps"} or torch.device, optional
        ``"auto"`` (or None): the first CUDA GPU when torch sees one, else MPS when available,
        else the CPU.

    Returns
    -------
    torch.device

    Raises
    ------
    ValidationError
        Not a device name.
    NotAvailableError
        A device named that this machine (or this build of torch) does not have.
    """
    name = _device_name(device)
    import torch

    kind, _, index = name.partition(":")
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available(torch) else torch.device("cpu")
    if kind == "cuda":
        if not torch.cuda.is_available():
            why = "this torch was built without CUDA" if torch.version.cuda is None else "torch finds no CUDA GPU"
            raise NotAvailableError(f"device {name}: not available on this machine ({why}); use cpu or auto")
        if index and int(index) >= torch.cuda.device_count():
            raise NotAvailableError(
                f"device {name}: not available on this machine ({torch.cuda.device_count()} CUDA GPUs); use cuda or auto"
            )
    if kind == "mps" and not _mps_available(torch):
        raise NotAvailableError(f"device {name}: not available on this machine (no Apple MPS); use cpu or auto")
    return torch.device(name)


def env_threads() -> int | None:
    """The number of threads ``QPERF_THREADS`` asks for (None when unset).

    Raises
    ------
    ValidationError
        The variable is set to something other than a positive integer.
    """
    text = os.environ.get(THREADS_VARIABLE, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ValidationError(f"{THREADS_VARIABLE}: expected a positive integer, found {text!r}")
    return int(text)


def thread_environment(threads: int) -> dict[str, str]:
    """The environment that limits a process's BLAS, OpenMP and QPerf threads to ``threads``."""
    return {name: str(int(threads)) for name in THREAD_VARIABLES}


def set_threads(threads: int | None = None, *, import_torch: bool = False) -> int | None:
    """Use ``threads`` threads in every step of this process and of the processes it starts.

    Parameters
    ----------
    threads : int, optional
        Number of threads; default :func:`env_threads` (``QPERF_THREADS``). When both are
        unset nothing is changed.
    import_torch : bool
        Import torch now to set its threads (otherwise torch, when imported later, takes them
        from ``OMP_NUM_THREADS``).

    Returns
    -------
    int or None
        The number of threads set, or None when nothing was changed.

    Raises
    ------
    ValidationError
        ``threads`` (or ``QPERF_THREADS``) is not a positive integer.
    """
    global _pool_limits
    if threads is None:
        threads = env_threads()
        if threads is None:
            return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValidationError(f"threads: expected a positive integer, found {threads!r}")
    os.environ.update(thread_environment(threads))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it the environment sizes the pools of new processes only
        pass
    else:
        _pool_limits = threadpool_limits(limits=threads)
    if import_torch:
        import torch as _torch  # noqa: F401
    torch = sys.modules.get("torch")  # not imported yet: it reads OMP_NUM_THREADS when it is
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads
