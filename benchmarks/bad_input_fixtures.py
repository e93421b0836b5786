"""Inputs for the bad-input sweep (``bad_inputs.py``): one good study in every format, and helpers
that write damaged copies of it.

Everything is written under one root whose name holds a space and non-ASCII letters, so the
sweep also checks that such paths keep working. The good study is a small digital phantom
(2 slices, 24 frames, 64 x 64 pixels, dual-echo AIF images); an AIF curve in blood Gd, a DICOM
folder, annotated case folders and a ``qperf segment``-like prediction folder come beside it.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from qperf import io, phantom
from qperf.io import dicom
from qperf.segmentation.cases import write_case
from qperf.types import AifCurve, PerfusionSeries, PerfusionStudy

SHAPE = (64, 64)


class Fixtures:
    """Paths of the good inputs, and writers of bad copies into ``root/bad``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.good = root / "good ü"
        self.bad = root / "bad å"
        self.out = root / "out ø"
        for d in (self.good, self.bad, self.out):
            d.mkdir(parents=True, exist_ok=True)
        ps = phantom.generate_study(seed=3, n_slices=2, n_frames=24, shape=SHAPE, spacing_mm=2.6, noise=False)
        self.phantom = ps
        self.study_obj: PerfusionStudy = ps.study
        self.series: PerfusionSeries = ps.study.slices[0]
        self.truth_labels = ps.truth.slices[0].labels_ref
        self.aif_curve = AifCurve(ps.truth.aif_blood_gd_mmol_l, ps.truth.aif_time_s, units="gd_mmol_l", kind="blood")
        self._write_good()

    # --- good inputs ---------------------------------------------------------------------------
    def _write_good(self) -> None:
        g = self.good
        io.write_series(self.series, g / "slice.seq.nrrd")
        io.write_series(self.series, g / "slice.nii.gz")
        io.write_series(self.series, g / "slice.npz")
        io.write_series(self.series, g / "slice.npy")
        io.write_aif_curve(self.aif_curve, g / "aif.csv")
        io.write_study(self.study_obj, g / "study")
        io.write_study(self.study_obj.replace(aif=self.aif_curve, aif_series=()), g / "study curve")
        dicom.write_dicom_study(self.study_obj, g / "dicom")
        io.write_image(self.truth_labels, g / "labels_ref.nrrd", spacing_mm=self.series.spacing_mm)
        self._write_cases()

    def _write_cases(self) -> None:
        cases = self.good / "cases"
        for i, s in enumerate(self.study_obj.slices, start=1):
            t = self.phantom.truth.slices[i - 1]
            points = {k: tuple(np.asarray(v, float)) for k, v in t.insertion_points_yx.items()}
            write_case(cases / f"case{i}", s, t.labels_ref, points_yx=points, patient=f"P{i}")
        pred = self.good / "pred" / "case1"
        pred.mkdir(parents=True)
        io.write_image(self.truth_labels, pred / "labels.nrrd", spacing_mm=self.series.spacing_mm)

    @property
    def slice_nrrd(self) -> Path:
        return self.good / "slice.seq.nrrd"

    # --- bad copies -----------------------------------------------------------------------------
    def path(self, name: str) -> Path:
        return self.bad / name

    def nrrd_with(self, name: str, edit: dict[str, str | None], *, detached: str | None = None) -> Path:
        """A copy of the good series with header fields replaced (None: removed)."""
        raw = self.slice_nrrd.read_bytes()
        head, _, body = raw.partition(b"\n\n")
        lines = head.decode("latin-1").split("\n")
        out = []
        for line in lines:
            key = line.split(":=", 1)[0] if ":=" in line else line.split(":", 1)[0]
            if key in edit:
                continue
            out.append(line)
        for key, value in edit.items():
            if value is not None:
                sep = ":=" if key.startswith(("qperf_", "axis ", "DataNodeClassName")) else ": "
                out.append(f"{key}{sep}{value}")
        path = self.path(name)
        if detached is not None:
            out = [line for line in out if not line.startswith("encoding")] + [
                "encoding: raw",
                f"data file: {detached}",
            ]
            path.write_text("\n".join(out) + "\n", encoding="latin-1")
            return path
        path.write_bytes("\n".join(out).encode("latin-1") + b"\n\n" + body)
        return path

    def nifti_with(self, name: str, extension: Any = "keep", *, pixdim: dict[int, float] | None = None) -> Path:
        """A copy of the good NIfTI with its QPerf extension replaced (a dict, raw text, or None)."""
        import nibabel as nib

        img = nib.load(str(self.good / "slice.nii.gz"))
        data = np.asarray(img.dataobj)
        header = img.header.copy()
        if pixdim:
            header.set_sform(None, code=0)
            header.set_qform(None, code=0)
        new = nib.Nifti1Image(data, None if pixdim else img.affine, header)
        if extension != "keep":
            new.header.extensions.clear()
            if extension is not None:
                text = extension if isinstance(extension, str) else "qperf:" + json.dumps(extension)
                new.header.extensions.append(nib.nifti1.Nifti1Extension(6, text.encode()))
        path = self.path(name)
        nib.save(new, str(path))
        if pixdim:  # written over the saved bytes: nibabel repairs a zero or negative pixdim when it saves
            raw = bytearray(gzip.decompress(path.read_bytes()))
            values = np.frombuffer(bytes(raw[76:108]), "<f4").copy()
            for i, v in pixdim.items():
                values[i] = v
            raw[76:108] = values.astype("<f4").tobytes()
            path.write_bytes(gzip.compress(bytes(raw)))
        return path

    def nifti_extension(self) -> dict[str, Any]:
        import nibabel as nib

        ext = nib.load(str(self.good / "slice.nii.gz")).header.extensions[0]
        content = ext.get_content()
        text = content.decode() if isinstance(content, bytes) else str(content)
        return dict(json.loads(text[len("qperf:") :]))

    def npz_with(self, name: str, **arrays: Any) -> Path:
        """A copy of the good ``.npz`` with arrays replaced (None: removed)."""
        with np.load(self.good / "slice.npz") as f:
            content = {k: f[k] for k in f.files}
        for k, v in arrays.items():
            if v is None:
                content.pop(k, None)
            else:
                content[k] = np.asarray(v)
        path = self.path(name)
        np.savez(path, **content)
        return path

    def npy(self, name: str, array: Any) -> Path:
        path = self.path(name)
        np.save(path, np.asarray(array))
        return path

    def study_with(self, name: str, edit: Any, *, curve: bool = False) -> Path:
        """A copy of a good study folder with its manifest changed: a function of the document, or text."""
        folder = self.path(name)
        shutil.copytree(self.good / ("study curve" if curve else "study"), folder)
        manifest = folder / "study.json"
        if isinstance(edit, str):
            manifest.write_text(edit, encoding="utf-8")
        elif isinstance(edit, bytes):
            manifest.write_bytes(edit)
        else:
            doc = json.loads(manifest.read_text(encoding="utf-8"))
            edit(doc)
            manifest.write_text(json.dumps(doc), encoding="utf-8")
        return folder

    def series_study(self, name: str, data: Any) -> Path:
        """A one-slice study whose slice holds ``data`` (the good slice's times and metadata)."""
        s = self.series.replace(data=np.broadcast_to(np.asarray(data, np.float32), self.series.data.shape))
        path = self.path(name)
        io.write_series(s, path)
        return path

    def aif_csv(self, name: str, values: Any = None, *, text: str | None = None) -> Path:
        path = self.path(name)
        if text is not None:
            path.write_text(text, encoding="utf-8")
            return path
        t = self.aif_curve.time_s
        rows = ["time_s,blood_gd_mmol_l"] + [f"{float(a)!r},{float(b)!r}" for a, b in zip(t, values, strict=True)]
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
        return path

    def json_file(self, name: str, doc: Any) -> Path:
        path = self.path(name)
        path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
        return path

    def dicom_with(self, name: str, edit: Any) -> Path:
        """A copy of the good DICOM folder; ``edit(files)`` changes its sorted first-slice files."""
        folder = self.path(name)
        shutil.copytree(self.good / "dicom", folder)
        edit(sorted(p for p in folder.rglob("*") if p.is_file()))
        return folder

    def case_with(self, name: str, edit: Any) -> Path:
        """A copy of the good case folders; ``edit(case1_folder)`` damages the first."""
        folder = self.path(name)
        shutil.copytree(self.good / "cases", folder)
        edit(folder / "case1")
        return folder

    def model_with(self, name: str, weights: bytes, card: Any = "match") -> Path:
        """A model pair ``name.pt``/``name.json``; the card records the weights' checksum unless given."""
        import hashlib

        pt = self.path(f"{name}.pt")
        pt.write_bytes(weights)
        if card == "match":
            card = {"name": name, "sha256": hashlib.sha256(weights).hexdigest()}
        (self.path(f"{name}.json")).write_text(card if isinstance(card, str) else json.dumps(card), encoding="utf-8")
        return pt


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data)


def symlink(target: Path, link: Path) -> Path:
    if link.exists() or link.is_symlink():
        link.unlink()
    os.symlink(target, link)
    return link
