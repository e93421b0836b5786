"""Segmentation of a perfusion series with the trained network.

>>> from qperf.segmentation import load_segmenter
>>> segmenter = load_segmenter()          # the shipped model, or a path
>>> result = segmenter(series)            # a PerfusionSeries
>>> result.labels, result.insertion_points, result.confidence, result.qc
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from scipy import ndimage

from qperf.errors import ValidationError
from qperf.segmentation import postprocess as post
from qperf.segmentation import preprocessing as pre
from qperf.segmentation.model_store import load_network
from qperf.segmentation.network import POINT_NAMES, ResUNet
from qperf.types import PerfusionSeries

_log = logging.getLogger(__name__)

#: A heat map whose peak holds less than this fraction of its mass is not trusted.
MIN_POINT_PEAK = 0.02
#: Two junction points closer than this (seen from the LV centre) are one point found twice.
MIN_JUNCTION_SEPARATION_DEG = 25.0
#: Re-centre and run again when the first pass finds the heart this far from the crop centre.
RECENTRE_MM = 15.0
#: An output scoring below this (:meth:`Segmenter.heart_score`) sends the segmenter to the next
#: heart candidate; at most this many candidates are tried.
MIN_HEART_SCORE = 0.75
MAX_CANDIDATES = 3
#: A candidate the locator scores at least this (the best scoring 1) is a rival: the network
#: looks there too, and the output that looks most like a heart wins. A large enhancing vessel
#: can outscore a small apical heart and still give a confident, heart-like output (held-out
#: phantom: 0.905 at the vessel, the heart itself at 0.86 of the vessel's locator score).
RIVAL_LOCATOR_SCORE = 0.5
#: Fewest network-grid pixels (1.5 mm) of LV blood pool and of myocardium in a heart.
MIN_POOL_GRID_PX = 10
#: Motion correction of :meth:`Segmenter.segment` registers the heart the network found plus
#: this margin (mm): the breathing heart, not the chest wall that moves differently; a disc of
#: MOTION_FALLBACK_RADIUS_MM around the crop centre when it found none.
MOTION_MARGIN_MM = 40.0
MOTION_FALLBACK_RADIUS_MM = 60.0


@dataclass
class SegmentationResult:
    """Segmentation of one slice.

    Attributes
    ----------
    labels : ndarray, uint8, shape (t, y, x)
        Labels over every frame of the input (0 background, 1 LV blood pool, 2 myocardium,
        3 RV blood pool). Without motion fields, the reference-frame labels are repeated over
        frames (``qc.labels_per_frame == "repeated"``).
    labels_ref : ndarray, uint8, shape (y, x)
        Labels in the (motion-corrected) reference frame.
    confidence : ndarray, float32, shape (y, x)
        Per-pixel probability of the chosen class (1.0 outside the analysed window).
    probabilities : ndarray, float32, shape (4, y, x)
        Class probabilities on the input grid.
    insertion_points : dict
        ``{"anterior": (y, x), "inferior": (y, x)}`` in reference-frame pixels (empty without RV).
    insertion_points_per_frame : dict
        Same names, arrays (t, 2) of pixel positions per frame.
    qc : QualityReport
    """

    labels: NDArray[np.uint8]
    labels_ref: NDArray[np.uint8]
    confidence: NDArray[np.float32]
    probabilities: NDArray[np.float32]
    insertion_points: dict[str, tuple[float, float]]
    insertion_points_per_frame: dict[str, NDArray[np.float64]]
    qc: post.QualityReport
    extras: dict[str, Any] = field(default_factory=dict)


def _to_input_grid(maps: NDArray[np.float32], tf: pre.CropTransform, shape: tuple[int, int]) -> NDArray[np.float32]:
    """Resample network-grid maps (c, v, u) onto the input's pixels (c, y, x); NaN outside."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    vu = tf.original_to_grid(yy, xx)
    return pre.grid_sample(maps, vu, outside=np.nan)


class Segmenter:
    """A loaded segmentation network with its pre- and post-processing.

    Parameters
    ----------
    network : ResUNet
        In eval mode.
    card : dict
        The model card (version, metrics).
    threads : int or None
        Threads of every step (:func:`qperf.runtime.set_threads`), set when the segmenter is
        made (None leaves them; ``QPERF_THREADS`` sets them too).
    device : str or torch.device
        Where the network and the motion correction of :meth:`segment` compute:
        ``"auto"`` (a GPU when there is one), ``"cpu"``, ``"cuda"``, ``"mps"``
        (:func:`qperf.runtime.resolve_device`).
    flip_tta : bool
        Average the prediction with that of the flipped input (twice the compute).
    refine_endocardium : bool
        Give the LV blood pool the myocardium pixels at its edge that enhance like blood
        (:func:`~.postprocess.refine_endocardium`).
    fill_hull : bool
        Give the LV blood pool the myocardium inside its convex hull (papillary muscles and
        trabeculae attached to the wall; :func:`~.postprocess.fill_pool_hull`).
    normalise_timing : bool
        Read the series on a clock normalised to the RV-to-LV transit measured in its images
        (:func:`~.preprocessing.normalise_timing`) rather than on its own clock, which may be
        assumed (files without frame times) or reflect a slow or fast circulation.
    """

    def __init__(
        self,
        network: ResUNet,
        card: dict[str, Any] | None = None,
        *,
        threads: int | None = None,
        device: str | torch.device = "auto",
        flip_tta: bool = False,
        refine_endocardium: bool = True,
        fill_hull: bool = True,
        normalise_timing: bool = True,
    ) -> None:
        from qperf.runtime import resolve_device, set_threads

        self.device = resolve_device(device)
        self.network = network.eval().to(self.device)
        self.card = dict(card or {})
        self.threads = set_threads(threads) if threads is not None else None
        self.flip_tta = flip_tta
        self.refine_endocardium = refine_endocardium
        self.fill_hull = fill_hull
        self.normalise_timing = normalise_timing

    def to(self, device: str | torch.device) -> Segmenter:
        """Compute on ``device`` from now on (:func:`qperf.runtime.resolve_device`); returns self."""
        from qperf.runtime import resolve_device

        self.device = resolve_device(device)
        self.network = self.network.to(self.device)
        return self

    def _run(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        with torch.inference_mode():
            xt = torch.from_numpy(x[None]).to(self.device)
            out = self.network(xt)
            if self.flip_tta:
                out = 0.5 * (out + torch.flip(self.network(torch.flip(xt, dims=[3])), dims=[3]))
        return np.asarray(out[0].float().cpu().numpy(), dtype=np.float32)

    def _crop_output(
        self, temporal: pre.TemporalInput, centre: tuple[float, float], spacing_mm: tuple[float, float]
    ) -> tuple[NDArray[np.float32], pre.CropTransform]:
        tf = pre.CropTransform.make(centre, spacing_mm)
        x = pre.normalise_crop(pre.sample_channels(temporal.enhancement, tf.coordinates()))
        return self._run(x), tf

    def heart_score(self, out: NDArray[np.float32]) -> float:
        """How much a network output (on its grid) looks like a heart, 0 to 1.

        The mean confidence of the myocardium after clean-up, halved when the ring is not
        closed; 0 when the LV blood pool or the myocardium is (nearly) missing.
        """
        n_classes = self.network.config.n_classes
        logits = out[:n_classes]
        e = np.exp(logits - logits.max(0, keepdims=True))
        prob = e / e.sum(0, keepdims=True)
        labels = post.clean_labels(prob.argmax(0))
        myo = labels == 2
        if np.count_nonzero(labels == 1) < MIN_POOL_GRID_PX or np.count_nonzero(myo) < MIN_POOL_GRID_PX:
            return 0.0
        confidence = float(prob.max(0)[myo].mean())
        return confidence if post.ring_is_closed(labels) else 0.5 * confidence

    def predict_grid(self, series: PerfusionSeries) -> tuple[NDArray[np.float32], pre.CropTransform]:
        """Raw network output (classes + heat maps, on the network grid) and its crop transform.

        The crop is centred on the located heart, and once more on the heart the network found
        when that lies off-centre. The next candidate centres of
        :func:`~.preprocessing.scored_heart_candidates` are tried too when the output does not
        look like a heart (:meth:`heart_score` below :data:`MIN_HEART_SCORE`: no LV or
        myocardium, an open ring, low confidence) or when the locator scores them as rivals
        (:data:`RIVAL_LOCATOR_SCORE`); the output that looks most like a heart is kept.
        """
        if self.normalise_timing:
            series = pre.normalise_timing(series)[0]
        out, tf, _ = self._predict(series, pre.temporal_input(series))
        return out, tf

    def _predict(
        self, series: PerfusionSeries, temporal: pre.TemporalInput
    ) -> tuple[NDArray[np.float32], pre.CropTransform, dict[str, Any]]:
        candidates = pre.scored_heart_candidates(temporal.enhancement, series.spacing_mm, max_candidates=MAX_CANDIDATES)
        tried: list[tuple[float, NDArray[np.float32], pre.CropTransform, int]] = []
        for k, (centre, located) in enumerate(candidates):
            if tried and max(t[0] for t in tried) >= MIN_HEART_SCORE and located < RIVAL_LOCATOR_SCORE:
                break
            out, tf = self._centred_output(temporal, centre, series.spacing_mm)
            tried.append((self.heart_score(out), out, tf, k))
        score, out, tf, chosen = max(tried, key=lambda item: item[0])
        network_scores = {k: sc for sc, _, _, k in tried}

        def describe(k: int) -> dict[str, Any]:
            (cy, cx), located = candidates[k]
            return {
                "centre_yx": [round(float(cy), 2), round(float(cx), 2)],
                "locator_score": round(float(located), 4),
                "network_score": None if k not in network_scores else round(float(network_scores[k]), 4),
            }

        info: dict[str, Any] = {"chosen": describe(chosen), "candidates": len(candidates)}
        info["crop_centre_yx"] = [round(float(v), 2) for v in tf.centre_yx]
        others = [k for k in range(len(candidates)) if k != chosen]
        info["runner_up"] = describe(others[0]) if others else None
        return out, tf, info

    def _centred_output(
        self, temporal: pre.TemporalInput, centre: tuple[float, float], spacing_mm: tuple[float, float]
    ) -> tuple[NDArray[np.float32], pre.CropTransform]:
        """Network output at ``centre``, re-centred once on the heart it finds when that lies off-centre."""
        out, tf = self._crop_output(temporal, centre, spacing_mm)
        pred = out[: self.network.config.n_classes].argmax(0)
        heart = np.isin(pred, (1, 2, 3))
        if heart.sum() >= 20:
            cv, cu = ndimage.center_of_mass(heart)
            new = tf.grid_to_original(np.array([cv]), np.array([cu]))[:, 0]
            old = tf.centre_yx
            shift_mm = np.hypot((new[0] - old[0]) * spacing_mm[0], (new[1] - old[1]) * spacing_mm[1])
            if shift_mm >= RECENTRE_MM:
                out, tf = self._crop_output(temporal, (float(new[0]), float(new[1])), spacing_mm)
        return out, tf

    def __call__(self, series: PerfusionSeries, *, motion: Any | None = None) -> SegmentationResult:
        """Segment one slice.

        Parameters
        ----------
        series : PerfusionSeries
            Preferably motion-corrected; any units, with or without PD frames.
        motion : optional
            A motion-correction result of :func:`qperf.motion.correct_series` for this series;
            when given, ``series`` should be its corrected series and labels and insertion
            points are carried to every original frame through its inverse fields.
        """
        if not isinstance(series, PerfusionSeries):
            raise ValidationError(f"series: expected a PerfusionSeries, found {type(series).__name__}")
        timed = pre.normalise_timing(series)[0] if self.normalise_timing else series
        temporal = pre.temporal_input(timed)
        out, tf, heart = self._predict(timed, temporal)
        return self._result(series, temporal, out, tf, heart, motion)

    def segment(self, series: PerfusionSeries, *, motion: str = "auto") -> SegmentationResult:
        """Segment one acquired (uncorrected) slice, with labels that follow the heart on every frame.

        Parameters
        ----------
        series : PerfusionSeries
            As acquired: any units, with or without PD frames, breathing or not.
        motion : {"auto", "on", "off"}
            ``"auto"`` (the default) measures the heart's breathing displacement
            (:func:`qperf.motion.detect.heart_shifts_mm`, tens of milliseconds) and corrects the
            motion when it exceeds :data:`qperf.motion.detect.MOVING_MM` and the series is not
            already corrected; ``"on"`` always corrects, ``"off"`` never does. The correction
            registers the heart the network found on the acquired series (blurred by the motion,
            but where the heart is) plus :data:`MOTION_MARGIN_MM`
            (:func:`qperf.motion.correct_series`); the network then segments the corrected
            series and its labels and insertion points are carried back to every acquired frame.
            Without correction the labels are repeated over the frames.

        Returns
        -------
        SegmentationResult
            ``qc.motion`` records the decision: measured displacement (mm), whether the series
            was corrected, and the correction's quality score.
        """
        from qperf.motion.detect import MOVING_MM, heart_shifts_mm, motion_extent_mm

        if motion not in ("auto", "on", "off"):
            raise ValidationError(f"motion: expected 'auto', 'on' or 'off', found {motion!r}")
        if not isinstance(series, PerfusionSeries):
            raise ValidationError(f"series: expected a PerfusionSeries, found {type(series).__name__}")
        timed = pre.normalise_timing(series)[0] if self.normalise_timing else series
        temporal = pre.temporal_input(timed)
        out, tf, heart = self._predict(timed, temporal)
        first = self._result(series, temporal, out, tf, heart, None)
        region = np.isin(first.labels_ref, (1, 2, 3))
        centre = tuple(float(c) for c in np.argwhere(region).mean(axis=0)) if region.any() else tf.centre_yx
        record: dict[str, Any] = {"mode": motion, "corrected": False}
        correct = motion == "on"
        if motion == "auto":
            already = bool(series.metadata.get("motion_corrected", False))
            extent = motion_extent_mm(heart_shifts_mm(series, (centre[0], centre[1])))
            record.update(displacement_mm=round(extent, 3), threshold_mm=MOVING_MM, already_corrected=already)
            correct = extent >= MOVING_MM and not already
        if not correct:
            first.qc.motion = record
            self._log_result(series, first)
            return first
        from qperf import motion as motion_mod

        if not region.any():
            yy, xx = np.mgrid[0 : series.shape[0], 0 : series.shape[1]]
            dy, dx = series.spacing_mm
            region = np.hypot((yy - centre[0]) * dy, (xx - centre[1]) * dx) <= MOTION_FALLBACK_RADIUS_MM
        margin = int(np.ceil(MOTION_MARGIN_MM / min(series.spacing_mm)))
        moco = motion_mod.correct_series(series, heart_mask=region, margin_px=margin, device=self.device)
        result = self(moco.corrected, motion=moco)
        record.update(corrected=True, quality_score=round(float(moco.quality.get("score", float("nan"))), 4))
        record["key_frame"] = int(moco.key_frame)
        result.qc.motion = record
        result.extras["motion"] = moco
        self._log_result(series, result)
        return result

    @staticmethod
    def _log_result(series: PerfusionSeries, result: SegmentationResult) -> None:
        motion = result.qc.motion or {}
        _log.info(
            "segmentation of %s: myocardium %.0f mm2, motion %s, QC flags: %s",
            series.name or "the slice",
            result.qc.myo_area_mm2,
            "corrected" if motion.get("corrected") else "not corrected",
            ", ".join(result.qc.flags) or "none",
        )

    def _result(
        self,
        series: PerfusionSeries,
        temporal: pre.TemporalInput,
        out: NDArray[np.float32],
        tf: pre.CropTransform,
        heart: dict[str, Any],
        motion: Any | None,
    ) -> SegmentationResult:
        n_classes = self.network.config.n_classes
        logits = out[:n_classes]
        e = np.exp(logits - logits.max(0, keepdims=True))
        prob_grid = (e / e.sum(0, keepdims=True)).astype(np.float32)
        prob = _to_input_grid(prob_grid, tf, series.shape)
        outside = ~np.isfinite(prob[0])
        prob[:, outside] = 0.0
        prob[0, outside] = 1.0
        raw = prob.argmax(0)
        labels_ref = post.clean_labels(raw)
        if self.refine_endocardium:
            peak = np.max(temporal.enhancement[pre.FOOT_CHANNEL : pre.FIRST_PASS_END], axis=0)
            labels_ref = post.refine_endocardium(labels_ref, peak)
        if self.fill_hull:
            labels_ref = post.fill_pool_hull(labels_ref)
        confidence = prob.max(0).astype(np.float32)
        qc = post.quality(labels_ref, confidence, series.spacing_mm)
        qc.heart = heart
        points, source, from_geometry = self._insertion_points(out[n_classes:], tf, labels_ref, series)
        qc.insertion_source = source
        qc.orientation_from_geometry = from_geometry
        if points and not from_geometry:
            qc.flags.append("orientation_assumed")
        labels, per_frame = self._over_frames(labels_ref, points, series, motion, qc)
        return SegmentationResult(
            labels, labels_ref, confidence, prob, points, per_frame, qc, extras={"crop_centre_yx": tf.centre_yx}
        )

    def _insertion_points(
        self, heat: NDArray[np.float32], tf: pre.CropTransform, labels: NDArray[np.uint8], series: PerfusionSeries
    ) -> tuple[dict[str, tuple[float, float]], str, bool]:
        if not (labels == 3).any() or not (labels == 2).any():
            return {}, "none", False
        found: list[tuple[float, float]] = []
        for k in range(min(heat.shape[0], len(POINT_NAMES))):
            h = heat[k].astype(np.float64)
            p = np.exp(h - h.max())
            p /= p.sum()
            iv, iu = np.unravel_index(int(np.argmax(p)), p.shape)
            win = np.zeros_like(p, dtype=bool)
            win[max(0, iv - 3) : iv + 4, max(0, iu - 3) : iu + 4] = True
            mass = float(p[win].sum())
            if mass < MIN_POINT_PEAK * 10:
                break
            vv, uu = np.nonzero(win)
            w = p[vv, uu] / p[vv, uu].sum()
            yx = tf.grid_to_original(np.array([np.sum(w * vv)]), np.array([np.sum(w * uu)]))[:, 0]
            found.append(post.snap_to_epicardium((float(yx[0]), float(yx[1])), labels, series.spacing_mm))
        source = "heatmap"
        centre = np.argwhere(labels == 1).mean(axis=0) if (labels == 1).any() else None

        def separation_deg(a: tuple[float, float], b: tuple[float, float]) -> float:
            if centre is None:
                return 0.0
            sp = np.asarray(series.spacing_mm)
            da, db = (np.asarray(a) - centre) * sp, (np.asarray(b) - centre) * sp
            cos = float(np.dot(da, db) / max(np.linalg.norm(da) * np.linalg.norm(db), 1e-9))
            return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))

        if len(found) < 2 or separation_deg(found[0], found[1]) < MIN_JUNCTION_SEPARATION_DEG:
            # The heat maps do not give two distinct junctions: use the ends of the LV-RV
            # contact arc (keeping a confident heat-map point and the arc end away from it).
            ends = post.arc_ends(labels, series.spacing_mm)
            if ends is None:
                return {}, "none", False
            if found:
                far = max(ends, key=lambda e: separation_deg(found[0], e))
                found = [found[0], far]
                source = "heatmap+contact_arc"
            else:
                found = list(ends)
                source = "contact_arc"
        named, from_geometry = post.name_junctions(found[0], found[1], labels, series.spacing_mm, series.geometry)
        return named, source, from_geometry

    @staticmethod
    def _over_frames(
        labels_ref: NDArray[np.uint8],
        points: dict[str, tuple[float, float]],
        series: PerfusionSeries,
        motion: Any | None,
        qc: post.QualityReport,
    ) -> tuple[NDArray[np.uint8], dict[str, NDArray[np.float64]]]:
        from qperf.motion.propagate import labels_over_frames, point_over_frames

        t = series.n_frames
        labels = labels_over_frames(labels_ref, motion, t)
        per_frame = {k: point_over_frames(p, motion, t) for k, p in points.items()}
        qc.labels_per_frame = "repeated" if motion is None else "motion_fields"
        return labels, per_frame


def load_segmenter(
    model: str | Path | None = None,
    *,
    threads: int | None = None,
    device: str | torch.device = "auto",
    flip_tta: bool = False,
) -> Segmenter:
    """Load the shipped segmentation model (or one named by path), verifying its checksum.

    Parameters
    ----------
    model : str or path, optional
        A model name in ``models/``, or the path of its ``.pt`` weights or ``.json`` card.
    threads : int, optional
        Threads of every step (:func:`qperf.runtime.set_threads`; default ``QPERF_THREADS``).
    device : {"auto", "cpu", "cuda", "mps"} or torch.device
        Where the network and the motion correction compute; ``"auto"`` takes a GPU when
        there is one (:func:`qperf.runtime.resolve_device`).
    flip_tta : bool
        Flip test-time augmentation (about twice the time).

    Raises
    ------
    NotAvailableError
        No such model, or a ``device`` this machine does not have.
    ModelIntegrityError
        The weights do not match the card's sha256.
    """
    from qperf.runtime import resolve_device

    target = resolve_device(device)  # an unavailable device is refused before the weights are read
    net, card, _ = load_network(model)
    _log.info("segmentation model %s %s on %s", card.get("name", model), card.get("version", ""), target)
    return Segmenter(net, card, threads=threads, device=target, flip_tta=flip_tta)
