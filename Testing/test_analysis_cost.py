"""What keeps a one-click analysis short: no needless imports, the BTEX basis kept between processes.

The edits behind these figures change no number: the template match is scikit-image's to the
bit, and the basis read back is the basis computed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from qperf.kinetics import _basis_cache, _btex_lut
from qperf.kinetics.btex import BtexModel
from qperf.motion.detect import match_template

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_match_template_is_scikit_image_s_to_the_bit(dtype: type, rng: np.random.Generator) -> None:
    from skimage.feature import match_template as reference

    for _ in range(20):
        ny, nx = rng.integers(30, 80, 2)
        image = rng.normal(size=(ny, nx)).astype(dtype)
        template = image[4 : ny - 9, 3 : nx - 7] + rng.normal(size=(ny - 13, nx - 10)).astype(dtype)
        ours, theirs = match_template(image, template), reference(image, template)
        assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs)
    flat = np.ones((20, 20), dtype=dtype)
    assert np.array_equal(match_template(flat, flat[:10, :10]), reference(flat, flat[:10, :10]))


def _fresh_basis(n_time: int) -> np.ndarray:
    _btex_lut._BASIS_CACHE.clear()
    return _btex_lut.transfer_basis(BtexModel(), n_time, 0.5)[0]


def test_the_btex_basis_read_back_is_the_basis_computed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QPERF_CACHE_DIR", str(tmp_path / "cache"))
    computed = _fresh_basis(32)
    (written,) = (tmp_path / "cache").glob(f"{_basis_cache.PREFIX}*.npy")
    assert np.array_equal(_fresh_basis(32), computed)
    written.write_bytes(b"not a basis")  # a damaged file: computed again, and written again
    assert np.array_equal(_fresh_basis(32), computed)
    assert np.array_equal(np.load(written), computed)
    monkeypatch.setenv("QPERF_CACHE_DIR", "")
    assert _basis_cache.cache_dir() is None
    assert np.array_equal(_fresh_basis(32), computed)
    assert len(list((tmp_path / "cache").iterdir())) == 1


def test_files_of_other_code_are_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QPERF_CACHE_DIR", str(tmp_path))
    old = tmp_path / f"{_basis_cache.PREFIX}0123456789abcdef-0123456789abcdef.npy"
    old.write_bytes(b"from an older version")
    _fresh_basis(32)
    names = [p.name for p in tmp_path.iterdir()]
    assert old.name not in names and len(names) == 1


@pytest.mark.slow
def test_motion_correction_and_btex_fits_import_neither_sympy_nor_scipy_signal() -> None:
    """torch.autograd.backward with gradient tensors imports sympy (0.6 s), scikit-image's
    template match imports scipy.signal and scipy.stats (0.65 s): the analysis needs neither."""
    script = textwrap.dedent(
        """
        import json, sys
        import numpy as np
        from qperf import kinetics, motion, phantom
        from qperf.motion.detect import heart_shifts_mm
        series = phantom.generate_study(seed=1, n_slices=1, n_frames=24, shape=(64, 64), aif_images=False).study.slices[0]
        motion.correct_series(series)
        heart_shifts_mm(series, (32.0, 32.0))
        t = np.arange(40) * 0.5
        aif = 5.0 * t**2 * np.exp(-t / 2.0)
        model = kinetics.get_model("btex").bind(aif, t, 0.42)
        model.fit(np.cumsum(aif)[None] * 0.01)
        print(json.dumps(sorted({"sympy", "scipy.signal", "scipy.stats"} & set(sys.modules))))
        """
    )
    env = {**os.environ, "QPERF_CACHE_DIR": "", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
