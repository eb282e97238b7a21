"""Logging a trained model to MLflow with the right flavour and without slow requirement inference."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from lockgate.errors import UserError

if TYPE_CHECKING:
    from mlflow.models.model import ModelInfo

__all__ = ["flavor_of", "log_model", "write_options"]


def flavor_of(model: Any) -> str:
    """``sklearn`` for scikit-learn estimators, ``pytorch`` for torch modules, else ``pyfunc``."""
    module = type(model).__module__
    if module.startswith("sklearn.") or hasattr(model, "_get_param_names"):
        return "sklearn"
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency here
        torch = None  # type: ignore[assignment]
    if torch is not None and isinstance(model, torch.nn.Module):
        return "pytorch"
    try:
        from mlflow.pyfunc.model import PythonModel
    except ImportError:  # pragma: no cover
        return "unknown"
    return "pyfunc" if isinstance(model, PythonModel) else "unknown"


def _skops_types_of(model: Any) -> list[str]:
    """The types skops would refuse to load for ``model``.

    MLflow saves scikit-learn models with skops, which loads only types known to be safe unless told
    otherwise. The model in hand was built in this process, so its own types are trusted when it is
    saved; what protects the loading side is the artifact checksum the registry records.
    """
    import skops.io

    return list(skops.io.get_untrusted_types(data=skops.io.dumps(model)))


def write_options(model: Any) -> dict[str, Any]:
    """The options lockgate writes ``model`` with (to log or to save it): the flavour's own
    requirements rather than MLflow's inference, which starts a subprocess and takes seconds per
    model, and for scikit-learn the model's own types trusted by skops."""
    flavor = flavor_of(model)
    if flavor == "sklearn":
        import mlflow.sklearn

        return {
            "pip_requirements": mlflow.sklearn.get_default_pip_requirements(),
            "skops_trusted_types": _skops_types_of(model),
        }
    if flavor == "pytorch":
        import mlflow.pytorch

        return {"pip_requirements": mlflow.pytorch.get_default_pip_requirements()}
    return {}


def log_model(
    model: Any,
    name: str = "model",
    *,
    signature: Any = None,
    input_example: Any = None,
    **kwargs: Any,
) -> ModelInfo:
    """Log ``model`` to the active MLflow run.

    Requirements default to the flavour's own list rather than MLflow's inference, which starts a
    subprocess and takes seconds per model.
    """
    flavor = flavor_of(model)
    kwargs = {**write_options(model), **kwargs}
    if flavor == "sklearn":
        import mlflow.sklearn

        return cast(
            "ModelInfo",
            mlflow.sklearn.log_model(
                model, name=name, signature=signature, input_example=input_example, **kwargs
            ),
        )
    if flavor == "pytorch":
        import mlflow.pytorch

        return cast(
            "ModelInfo",
            mlflow.pytorch.log_model(
                model, name=name, signature=signature, input_example=input_example, **kwargs
            ),
        )
    if flavor == "pyfunc":
        import mlflow.pyfunc

        return cast(
            "ModelInfo",
            mlflow.pyfunc.log_model(
                name=name,
                python_model=model,
                signature=signature,
                input_example=input_example,
                **kwargs,
            ),
        )
    raise UserError(
        f"lockgate cannot log a model of type {type(model).__name__}",
        hint="pass a scikit-learn estimator, a torch.nn.Module or an mlflow.pyfunc.PythonModel, "
        "or log it with the MLflow flavour that fits",
    )
