from __future__ import annotations

import json
from pathlib import Path

from lockgate.llm.folder import is_causal_lm_folder


def test_a_causal_lm_is_recognised_by_its_config(tmp_path: Path, tiny_model: Path) -> None:
    assert is_causal_lm_folder(tiny_model)
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    assert not is_causal_lm_folder(tmp_path)
    (tmp_path / "config.json").write_text("not json")
    assert not is_causal_lm_folder(tmp_path)
    assert not is_causal_lm_folder(tmp_path / "missing")
