"""The BTEX transfer-function basis kept on disk, so that a new process need not compute it again.

The basis (:func:`qperf.kinetics._btex_lut.transfer_basis`) depends only on the time grid and
the model's constants, and takes 2-3 s to compute on one core: a quarter of a one-click
analysis of a 3-slice study, paid by every ``qperf analyze`` process. A file holds one basis
(complex64, 14 MB for 64 samples, 28 MB for 128), named by a digest of the grid, the constants,
the numpy version and the source of the code that computes it, so an edit to that code never
reads an old file; files of other code are removed when a new one is written.

Folder: ``$QPERF_CACHE_DIR``, else ``$XDG_CACHE_HOME/qperf``, else ``~/.cache/qperf``; an empty
``QPERF_CACHE_DIR`` turns the cache off. A file that cannot be read or written is ignored (the
basis is computed as without a cache).
"""

from __future__ import annotations

import hashlib
import inspect
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

PREFIX = "btex-basis-"
_CODE_DIGESTS: dict[type, str] = {}


def cache_dir() -> Path | None:
    """The folder of the cache, or None when it is turned off."""
    configured = os.environ.get("QPERF_CACHE_DIR")
    if configured is not None:
        return Path(configured).expanduser() if configured.strip() else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "qperf"


def _code_digest(model: Any) -> str:
    """Digest of the code that computes a basis: this package's solver and the model's class."""
    cls = type(model)
    digest = _CODE_DIGESTS.get(cls)
    if digest is None:
        h = hashlib.sha256(f"{cls.__module__}.{cls.__qualname__} numpy {np.__version__}".encode())
        names = {"_btex_lut", "_btex_solver", "_spectral", "_basis_cache"}
        files = [Path(__file__).with_name(f"{n}.py") for n in sorted(names)]
        files.append(Path(inspect.getfile(cls)))
        for f in files:
            h.update(f.read_bytes())
        digest = _CODE_DIGESTS[cls] = h.hexdigest()[:16]
    return digest


def _path(model: Any, key: tuple[Any, ...]) -> Path | None:
    folder = cache_dir()
    if folder is None:
        return None
    try:
        code = _code_digest(model)
    except (OSError, TypeError):  # source not available (a frozen application): no cache
        return None
    grid = hashlib.sha256(repr(key).encode()).hexdigest()[:16]
    return folder / f"{PREFIX}{code}-{grid}.npy"


def load(model: Any, key: tuple[Any, ...], shape: tuple[int, int]) -> NDArray[np.complex64] | None:
    """The basis of ``key`` from the cache, or None (no file, another shape, unreadable)."""
    path = _path(model, key)
    if path is None or not path.is_file():
        return None
    try:
        g = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if g.dtype != np.complex64 or g.shape != shape:
        return None
    return np.asarray(g)


def save(model: Any, key: tuple[Any, ...], g: NDArray[np.complex64]) -> None:
    """Keep the basis of ``key`` (written to a temporary name and renamed); failures are ignored."""
    path = _path(model, key)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".part.npy", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, g, allow_pickle=False)
            os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache is as readable as a plain file
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        code = path.name[len(PREFIX) :].split("-")[0]
        for old in path.parent.glob(f"{PREFIX}*.npy"):
            if not old.name.startswith(f"{PREFIX}{code}-"):
                old.unlink(missing_ok=True)
    except OSError:  # a read-only or full disk: the next process computes the basis again
        return
