"""Where a model comes from, and proof that its bytes are the ones that were registered.

``models:/NAME@ALIAS`` and ``models:/NAME/VERSION`` resolve through MLflow's registry: the version's
tag ``lockgate.artifact_sha256`` (written by the registry) must equal
:func:`lockgate.tracking.digest.model_sha256` of the downloaded folder, or the model is refused with
:class:`~lockgate.errors.IntegrityError`. A version without the tag loads only with
``allow_unverified=True``. ``runs:/`` URIs and local paths are checked against ``expected_sha256``
when one is given.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lockgate.errors import IntegrityError, NotFound, StoreUnreachable, UserError
from lockgate.settings import current_settings
from lockgate.tracking.digest import links_out_of, model_sha256
from lockgate.tracking.registry import TAG_ARTIFACT_SHA256

__all__ = [
    "DIGEST_TAG",
    "ModelSource",
    "check_model_uri",
    "describe_source",
    "resolve_source",
    "verify_digest",
]

DIGEST_TAG = TAG_ARTIFACT_SHA256
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>[^/]+))$")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_SOURCES_HINT = (
    "pass a local model folder or file, models:/NAME@ALIAS, models:/NAME/VERSION or runs:/RUN_ID/PATH "
    "(registry and run artifacts are fetched through the configured MLflow tracking server)"
)


@dataclass(frozen=True)
class ModelSource:
    """A model folder on local disk: its name, version, digest and whether that was checked."""

    uri: str
    path: Path
    name: str
    version: str
    sha256: str
    is_verified: bool


def describe_source(source: ModelSource) -> str:
    """What a server says about the model it is about to load: which one, and whether its bytes
    were checked (``verified models:/m@champion (version 3) sha256 1a2b3c4d5e6f``)."""
    is_registered = source.uri.startswith("models:/")
    what = source.uri if is_registered or source.uri.startswith("runs:/") else str(source.path)
    version = f" (version {source.version})" if is_registered else ""
    said = f"{what}{version} sha256 {source.sha256[:12]}"
    if source.is_verified:
        return f"verified {said}"
    why = "no digest was recorded at registration" if is_registered else "no --sha256 to compare with"
    return f"not verified {said}: {why}"


def verify_digest(path: Path, expected: str, *, what: str) -> str:
    """Digest ``path`` and compare with ``expected``; a mismatch raises IntegrityError."""
    actual = model_sha256(path)
    if actual != expected.strip().lower():
        raise IntegrityError(
            f"{what} does not match its recorded digest: expected {expected}, got {actual}",
            hint="the artifact changed after it was registered; re-register it or investigate",
            detail={"expected": expected, "actual": actual},
        )
    return actual


def _sanitize(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return cleaned or "model"


def check_model_uri(uri: str, *, allow_relative: bool = True) -> str:
    """The local path ``uri`` names, or ``uri`` itself for ``models:/`` and ``runs:/``; refuses
    anything else before a byte is fetched or read.

    lockgate fetches models only through MLflow (``models:/``, ``runs:/``): an ``http://``,
    ``s3://`` or other URL given directly could make the server reach any address it can (a cloud
    metadata service at 169.254.169.254, an internal host), so none is fetched. ``file://`` names a
    path on this machine only (no host part). A relative path means the server's working
    directory, which a client of the admin API cannot see: refused unless ``allow_relative``.
    """
    if "\x00" in uri:
        raise UserError("the model URI contains a NUL byte", hint=_SOURCES_HINT)
    if uri.startswith(("models:/", "runs:/")):
        if "#" in uri or "?" in uri:
            raise UserError(f"the model URI '{uri}' has a query or #fragment", hint=_SOURCES_HINT)
        return uri
    if uri.startswith("file:"):
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
            raise UserError(
                f"'{uri}' is not a local file URI (file:///ABSOLUTE/PATH)",
                hint="a file:// URI names a path on this machine, with no host, query or #fragment",
            )
        path = parts.path
    elif _URL.match(uri) and not re.match(r"^[A-Za-z]:[\\/]", uri):
        scheme = uri.split(":", 1)[0]
        raise UserError(
            f"lockgate does not fetch models from '{scheme}:' URIs, so '{uri}' was not fetched",
            hint=_SOURCES_HINT,
        )
    else:
        path = uri
    if not allow_relative and not os.path.isabs(os.path.expanduser(path)):
        raise UserError(
            f"the model path '{uri}' is relative: the server would resolve it against its own "
            "working directory",
            hint="give an absolute path, or models:/NAME@ALIAS",
        )
    return path


def resolve_source(
    uri: str,
    *,
    expected_sha256: str | None = None,
    allow_unverified: bool = False,
    download_dir: Path | None = None,
    name: str | None = None,
    allow_relative: bool = True,
) -> ModelSource:
    """Resolve ``uri`` to a verified local folder (downloading registry and run artifacts)."""
    local = check_model_uri(uri, allow_relative=allow_relative)
    if uri.startswith("models:/"):
        return _resolve_registered(uri, expected_sha256, allow_unverified, download_dir, name)
    if uri.startswith("runs:/"):
        path = _download(uri, download_dir)
        run_part = uri[len("runs:/") :].split("/", 1)
        label = name or _sanitize(run_part[-1] if len(run_part) > 1 else run_part[0])
        return _checked_local(uri, path, label, run_part[0][:12], expected_sha256)
    path = Path(local).expanduser()
    if not path.exists():
        raise NotFound(
            f"model path '{path}' does not exist",
            hint="pass a local model folder or file, models:/NAME@ALIAS, models:/NAME/VERSION "
            "or runs:/RUN_ID/PATH",
        )
    path = path.resolve()
    label = name or _sanitize(path.stem if path.is_file() else path.name)
    return _checked_local(uri, path, label, None, expected_sha256)


MODEL_FILE_SUFFIXES = (".onnx", ".pt", ".pth", ".ts", ".pt2")
MODEL_FOLDER_MARKERS = ("MLmodel", "modules.json", "model.onnx", "config.json")


def require_model(path: Path, uri: str) -> None:
    """Refuse a path that is not a model before reading a byte of it.

    Digesting (and then loading) whatever a URI names would walk any folder given: ``/``,
    ``/proc/self/root``, a home directory. Only a model file or a folder that declares a model
    (MLflow's ``MLmodel``, sentence-transformers' ``modules.json``, a ``model.onnx``, a Hugging Face
    ``save_pretrained`` folder's ``config.json``) is read.
    """
    if path.is_file():
        if path.suffix in MODEL_FILE_SUFFIXES:
            return
    elif path.is_dir() and any((path / marker).is_file() for marker in MODEL_FOLDER_MARKERS):
        _refuse_links_out(path, uri)
        return
    raise UserError(
        f"'{uri}' is not a model: nothing there was read",
        hint="pass an MLflow model folder (with MLmodel), a sentence-transformers folder, or a "
        f"{', '.join(MODEL_FILE_SUFFIXES)} file",
    )


def _refuse_links_out(root: Path, uri: str) -> None:
    """A symbolic link in a model folder that leads out of it is refused: the digest does not
    follow links, so a loader that did would read bytes nobody verified."""
    escaping = links_out_of(root)
    if escaping:
        raise UserError(
            f"'{uri}' is not loaded: '{escaping[0]}' is a link out of the model folder",
            hint="copy the file into the folder instead of linking to it",
        )


_SAFE_FLAVOURS = frozenset({"onnx", "sentence_transformers"})


def unsafe_format(path: Path) -> str | None:
    """Why loading ``path`` would run code stored in it (a pickle, a model-from-code), or None.

    Safe: ONNX files and flavours, torch.export programs and TorchScript archives (tensors and a
    restricted graph), sentence-transformers folders (safetensors), scikit-learn saved with skops.
    Everything else MLflow stores as a pickle: a PythonModel, a pickled scikit-learn or PyTorch
    model, and any flavour lockgate does not know.
    """
    if path.is_file():
        return None if path.suffix in MODEL_FILE_SUFFIXES else f"'{path.name}' is not a known safe format"
    mlmodel = path / "MLmodel"
    if not mlmodel.is_file():
        return None  # a sentence-transformers or ONNX folder
    import yaml

    flavors: dict[str, Any] = (yaml.safe_load(mlmodel.read_text(encoding="utf-8")) or {}).get("flavors", {})
    sklearn = flavors.get("sklearn")
    if isinstance(sklearn, dict) and sklearn.get("serialization_format") == "skops":
        return None
    if _SAFE_FLAVOURS & set(flavors):
        return None
    transformers = flavors.get("transformers")
    if isinstance(transformers, dict):
        from lockgate.llm.folder import mlflow_transformers_parts

        if mlflow_transformers_parts(path, transformers) is not None:
            return None  # a causal LM in safetensors, loaded without code from the folder
    pyfunc = flavors.get("python_function") or {}
    what = pyfunc.get("python_model") or (sklearn or {}).get("pickled_model") or "a pickle"
    named = sorted(set(flavors) - {"python_function"}) or ["python_function"]
    return f"its {', '.join(named)} model is stored as {what}, and loading it runs the code inside"


def _checked_local(uri: str, path: Path, name: str, version: str | None, expected: str | None) -> ModelSource:
    require_model(path, uri)
    if expected is not None:
        digest = verify_digest(path, expected, what=f"model '{uri}'")
    else:
        digest = model_sha256(path)
    return ModelSource(uri, path, name, version or digest[:12], digest, expected is not None)


def _client() -> Any:
    from lockgate.tracking.connection import connect

    return connect(current_settings()).client


def _download(uri: str, download_dir: Path | None) -> Path:
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    target = download_dir or Path(tempfile.mkdtemp(prefix="lockgate-model-"))
    target.mkdir(parents=True, exist_ok=True)
    settings = current_settings()
    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=str(target), tracking_uri=settings.tracking_uri
        )
    except MlflowException as exc:
        raise NotFound(f"cannot download '{uri}': {exc.message}") from None
    except OSError as exc:
        raise StoreUnreachable(
            f"cannot reach the artifact store for '{uri}': {exc}",
            hint=f"check the tracking URI {settings.tracking_uri}",
        ) from None
    return Path(local)


def _resolve_registered(
    uri: str,
    expected_sha256: str | None,
    allow_unverified: bool,
    download_dir: Path | None,
    name: str | None,
) -> ModelSource:
    from mlflow.exceptions import MlflowException

    match = _MODELS_URI.match(uri)
    if match is None:
        raise UserError(
            f"cannot read the model URI '{uri}'",
            hint="use models:/NAME@ALIAS or models:/NAME/VERSION",
        )
    model_name, alias, version = match["name"], match["alias"], match["version"]
    client = _client()
    try:
        if alias is not None:
            model_version = client.get_model_version_by_alias(model_name, alias)
        else:
            model_version = client.get_model_version(model_name, version)
    except MlflowException:
        wanted = f"alias '{alias}'" if alias else f"version {version}"
        raise NotFound(
            f"model '{model_name}' has no {wanted}",
            hint=f"list its versions and aliases with `lockgate models show {model_name}`",
        ) from None
    resolved_version = str(model_version.version)
    try:
        artifact_uri = client.get_model_version_download_uri(model_name, resolved_version)
    except MlflowException as exc:
        raise NotFound(f"cannot locate the files of '{uri}': {exc.message}") from None
    path = _download(artifact_uri, download_dir)
    recorded = (model_version.tags or {}).get(DIGEST_TAG) or expected_sha256
    label = name or model_name
    if recorded is None:
        if not allow_unverified:
            raise IntegrityError(
                f"model '{model_name}' version {resolved_version} has no '{DIGEST_TAG}' tag, "
                "so its bytes cannot be verified",
                hint="register it through lockgate (which records the digest), or pass "
                "--allow-unverified to serve it anyway",
            )
        return ModelSource(uri, path, label, resolved_version, model_sha256(path), False)
    digest = verify_digest(path, recorded, what=f"model '{model_name}' version {resolved_version}")
    return ModelSource(uri, path, label, resolved_version, digest, True)
