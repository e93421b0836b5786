"""The QPerfSeg self-test: loading a study, then the whole segmentation workflow on a phantom.

:func:`runSelfTest` is what the module's ``ScriptedLoadableModuleTest`` runs inside Slicer and
what the test suite runs headless with ``slicer-core``. First
``QPerfCommonLib.selftest.runLoadSelfTest``: a generated two-slice study written with
``qperf.io.write_study``, loaded into the scene, its nodes checked (types, names, time index,
geometry, proxies) and read back from the scene, every array compared with the original. Then
:func:`~.workflowtest.runWorkflowSelfTest` on a small digital phantom with breathing motion
(one slice, 30 frames): motion correction, labels and insertion points (the phantom's truth,
drawn on one acquired frame, so the test never depends on trained weights), outputs under the
study browser, a manual edit and a moved point propagated over frames, AHA sectors and the
ground-truth export, each checked against the phantom's truth, which the code never sees.
"""

from __future__ import annotations

from typing import Any, Callable

from QPerfCommonLib.selftest import runLoadSelfTest

LogCallback = Callable[[str], None]


def runSelfTest(scene: Any | None = None, log: LogCallback | None = None) -> dict:
    """Run the QPerfSeg self-test in ``scene`` (default ``slicer.mrmlScene``).

    Returns
    -------
    dict
        ``{"study", "nodes", "checks"}`` of ``runLoadSelfTest`` and ``"workflow"``, the result
        of :func:`~.workflowtest.runWorkflowSelfTest`.

    Raises
    ------
    AssertionError
        On the first check that fails, naming it.
    """
    from .workflowtest import runWorkflowSelfTest

    log = log or (lambda message: None)
    loaded = runLoadSelfTest(scene, log)
    workflow = runWorkflowSelfTest(scene, log)
    loaded["checks"] += workflow["checks"]
    loaded["workflow"] = workflow
    log(f"QPerfSeg self-test passed ({loaded['checks']} groups of checks)")
    return loaded
