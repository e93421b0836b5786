"""Containment of the paths a file names: a manifest or a detached header reads only beside itself.

A ``study.json`` names its series and AIF files, a detached NRRD header (``.nhdr``) its data
file, a case folder its files. Such a path must resolve (symlinks followed) inside the folder
that holds the file naming it: a study from elsewhere cannot make QPerf read ``../../etc/...``
or an absolute path outside its folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from qperf.errors import FormatError

__all__ = ["inside"]


def inside(base: str | os.PathLike[str], name: str, where: str) -> Path:
    """``base / name``, refused unless it resolves inside ``base``.

    Parameters
    ----------
    base : path
        The folder of the file that names ``name`` (a manifest, a header).
    name : str
        The path as written (relative to ``base``, or absolute).
    where : str
        The file and field for messages, e.g. ``"study.json: slices[0].path"``.

    Returns
    -------
    Path
        ``base / name`` as written (not resolved), for messages that show the user's path.

    Raises
    ------
    FormatError
        The path resolves outside ``base``.
    """
    folder = Path(base)
    candidate = folder / name
    try:
        resolved = candidate.resolve()
        root = folder.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise FormatError(f"{where}: {name!r} cannot be resolved ({exc.__class__.__name__})") from None
    if resolved != root and root not in resolved.parents:
        raise FormatError(
            f"{where}: {name!r} resolves to {resolved}, outside the folder {folder} that holds it; "
            "expected a path inside that folder (copy or move the file there)"
        )
    return candidate
