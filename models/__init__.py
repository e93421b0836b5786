"""The shipped segmentation models, installed as the data-only package ``qperf._models``.

Read through ``qperf.segmentation.model_store`` (``importlib.resources``); the weights'
checksum is in each model card.
"""
