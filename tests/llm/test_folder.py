from __future__ import annotations

import json
from pathlib import Path

from lockgate.llm.folder import is_causal_lm_folder, mlflow_transformers_parts


def test_a_causal_lm_is_recognised_by_its_config(tmp_path: Path, tiny_model: Path) -> None:
    assert is_causal_lm_folder(tiny_model)
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    assert not is_causal_lm_folder(tmp_path)
    (tmp_path / "config.json").write_text("not json")
    assert not is_causal_lm_folder(tmp_path)
    assert not is_causal_lm_folder(tmp_path / "missing")


def test_an_mlflow_model_binary_outside_its_folder_is_not_followed(tmp_path: Path, tiny_model: Path) -> None:
    mlflow_folder = tmp_path / "mlflow"
    mlflow_folder.mkdir()
    escape = str(Path("..") / ".." / tiny_model.relative_to(tiny_model.anchor))
    assert mlflow_transformers_parts(mlflow_folder, {"model_binary": "/" + escape}) is None
    assert mlflow_transformers_parts(mlflow_folder, {"model_binary": "../" * 10 + escape}) is None
    assert mlflow_transformers_parts(mlflow_folder, {}) is None  # no model/ folder
