"""Respiratory motion correction of 2D+T perfusion series (pre-processing step 1).

>>> from qperf import motion
>>> result = motion.correct_series(series, heart_mask=None, n_rounds=3)
>>> result.corrected, result.key_frame, result.forward_px, result.inverse_px, result.quality
>>> labels_t = motion.labels_to_original(labels, result)     # (t, y, x), over the moving images
"""
