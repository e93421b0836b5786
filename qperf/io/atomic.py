"""Safe outputs: written to a temporary name beside the target, then renamed into place.

A failure half-way leaves no partial output; an existing output is replaced only when the
caller asks for it; an output that is one of the inputs is refused. Every writer of QPerf and
every command goes through these three functions:

>>> from qperf.io import atomic_dir, atomic_file, check_output
>>> with atomic_dir("analysis", overwrite=True) as tmp:     # a folder, complete or absent
...     (tmp / "report.json").write_text("{}")
>>> with atomic_file("mask.npy") as tmp:                   # one file, same suffix as the target
...     np.save(tmp, mask)
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from qperf.errors import OutputExistsError, ValidationError

__all__ = ["atomic_dir", "atomic_file", "check_output"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish_mode(path: Path, directory: bool) -> None:
    """Give a temporary output the permissions a plainly created file or folder would have."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def _suffix(path: Path) -> str:
    name = path.name
    for multi in (".seq.nrrd", ".seg.nrrd", ".nii.gz", ".tar.gz"):
        if name.lower().endswith(multi):
            return name[-len(multi) :]
    return path.suffix


def check_output(
    path: str | os.PathLike[str], overwrite: bool = False, inputs: Iterable[str | os.PathLike[str]] = ()
) -> Path:
    """Validate an output path before anything is written to it.

    Parameters
    ----------
    path : str or path-like
        The file or folder to be written.
    overwrite : bool
        Whether an existing ``path`` may be replaced.
    inputs : iterable of str or path-like
        Inputs of the same operation: the output may be none of them and may not contain one.

    Returns
    -------
    Path
        ``path`` as a :class:`~pathlib.Path`.

    Raises
    ------
    OutputExistsError
        ``path`` exists and ``overwrite`` is false.
    ValidationError
        ``path`` is (or contains) one of ``inputs``, lies inside an input folder, or its folder
        does not exist.
    """
    out = Path(path)
    for inp in inputs:
        p = Path(inp)
        if p.exists() and out.exists() and os.path.samefile(p, out):
            raise ValidationError(f"output {out} is one of the inputs; choose another output path")
        if p.resolve() == out.resolve() or out.resolve() in p.resolve().parents:
            raise ValidationError(f"output {out} is or contains the input {p}; choose another output path")
        if p.is_dir() and p.resolve() in out.resolve().parents:
            raise ValidationError(
                f"output {out} lies inside the input folder {p} (an input is never modified); choose another output path"
            )
    if out.exists() and not overwrite:
        raise OutputExistsError(f"output {out} exists; pass --overwrite (overwrite=True) to replace it")
    if not out.parent.exists():
        raise ValidationError(f"output folder {out.parent} does not exist")
    return out


@contextmanager
def atomic_file(path: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success.

    The temporary name ends with the target's suffix (``.seq.nrrd``, ``.nii.gz`` included), so
    writers that choose the format by the name write the right one. On an exception the
    temporary file is removed and ``path`` is left as it was.

    Parameters
    ----------
    path : str or path-like
        The file to write.
    overwrite : bool
        Whether an existing ``path`` may be replaced.

    Raises
    ------
    OutputExistsError, ValidationError
        As :func:`check_output`.
    """
    target = check_output(path, overwrite)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part" + _suffix(target), dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _publish_mode(tmp, directory=False)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_dir(
    path: str | os.PathLike[str], overwrite: bool = False, inputs: Iterable[str | os.PathLike[str]] = ()
) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it becomes ``path`` when the block succeeds.

    With ``overwrite`` an existing folder is replaced as a whole (never merged), and only
    after the new one is complete. On an exception the temporary folder is removed and
    ``path`` is left as it was.

    Parameters
    ----------
    path : str or path-like
        The folder to write.
    overwrite : bool
        Whether an existing ``path`` may be replaced.
    inputs : iterable of str or path-like
        Inputs of the same operation (see :func:`check_output`).

    Raises
    ------
    OutputExistsError, ValidationError
        As :func:`check_output`; also when ``path`` exists and is not a folder.
    """
    target = check_output(path, overwrite, inputs)
    if target.exists() and not target.is_dir():
        raise ValidationError(f"output {target} exists and is not a folder")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    try:
        yield tmp
        _publish_mode(tmp, directory=True)
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
