"""Tracer-kinetic models for pixel-wise myocardial perfusion quantification.

One interface for all models, in the manner of DIPY (``Model(acquisition).fit(data) -> Fit``)::

    from qperf import kinetics
    model = kinetics.get_model("btex")   # "btex", "fermi", "2cxm", "tofts", "extended_tofts"
    curve = model.simulate(aif_plasma_mmol_l, time_s, Fp=1.0, PS=1.3, Vp=0.05, Visf=0.2)
    bound = model.bind(aif_plasma_mmol_l, time_s, hematocrit=0.42)
    fit = bound.fit(tissue_mmol_l, mask=None, max_delay_s=3.0)
    fit.params["Fp"], fit.status, fit.nrmse, fit.maps()
    fast = kinetics.get_model("tofts", method="linear")   # Murase / Flouri linear least squares

``model.fit(tissue_mmol_l, aif_plasma_mmol_l, time_s, mask, max_delay_s, hematocrit)`` does
both steps in one call. Every model takes the same arguments (a model without whole-blood
quantities ignores the haematocrit). A new model subclasses :class:`KineticModel` (or
:class:`LeastSquaresModel`, which needs only its curves and start values) and can be passed
wherever :func:`qperf.flow.compute_flow_maps` takes a model name.

Units: Fp, PS ml/min/g; Vp, Visf, Ve ml/g; Ktrans /min; delay_s s; concentrations mmol/L
(plasma AIF). Tissue density is taken as 1 g/ml (ml/g = ml/ml). See :mod:`qperf.kinetics.base`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qperf.errors import ValidationError
from qperf.kinetics._lsq_model import LeastSquaresModel
from qperf.kinetics.base import Acquisition, BoundModel, FitResult, FitStatus, KineticModel, ParameterInfo
from qperf.kinetics.btex import BtexModel
from qperf.kinetics.compartment import ExtendedToftsModel, ToftsModel, TwoCompartmentExchangeModel
from qperf.kinetics.fermi import FermiModel

_FACTORIES: dict[str, Callable[..., KineticModel]] = {
    "btex": BtexModel,
    "fermi": FermiModel,
    "2cxm": TwoCompartmentExchangeModel,
    "tofts": ToftsModel,
    "extended_tofts": ExtendedToftsModel,
}


def available_models() -> tuple[str, ...]:
    """Names accepted by :func:`get_model`."""
    return tuple(_FACTORIES)


def get_model(name: str, **options: Any) -> KineticModel:
    """A kinetic model by name.

    Parameters
    ----------
    name : str
        One of :func:`available_models` (case-insensitive).
    **options
        Passed to the model's constructor, for example ``method="linear"`` for the linear
        least-squares fit of ``"tofts"``, ``"extended_tofts"`` and ``"2cxm"``.

    Raises
    ------
    ValidationError
        For an unknown name or option.
    """
    key = str(name).strip().lower().replace("-", "_")
    if key not in _FACTORIES:
        raise ValidationError(f"model: expected one of {list(_FACTORIES)}, found {name!r}")
    try:
        return _FACTORIES[key](**options)
    except TypeError:
        raise ValidationError(f"options: {key} does not take {sorted(options)}") from None


__all__ = [
    "Acquisition",
    "BoundModel",
    "BtexModel",
    "ExtendedToftsModel",
    "FermiModel",
    "ToftsModel",
    "TwoCompartmentExchangeModel",
    "FitResult",
    "FitStatus",
    "KineticModel",
    "LeastSquaresModel",
    "ParameterInfo",
    "available_models",
    "get_model",
]
