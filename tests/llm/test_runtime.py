"""The generative runtime as ``lockgate serve`` picks it: a save_pretrained folder, or an MLflow
``transformers`` model of one."""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path

import pytest

from lockgate.errors import UserError
from lockgate.llm.params import SamplingParams
from lockgate.llm.runtime import GenerativePredictor
from lockgate.serving.runtimes import load_predictor
from lockgate.serving.source import unsafe_format


@pytest.fixture(scope="module")
def mlflow_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import mlflow.transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("mlflow") / "tiny"
    parts = {
        "model": AutoModelForCausalLM.from_pretrained(tiny_model),
        "tokenizer": AutoTokenizer.from_pretrained(tiny_model),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.transformers.save_model(
            parts, str(folder), task="text-generation", pip_requirements=["transformers"]
        )
    return folder


def _greedy(predictor: GenerativePredictor, prompt: str) -> str:
    predictor.load()

    async def run() -> str:
        try:
            return "".join(
                [c.text async for c in predictor.generate(predictor.encode(prompt), SamplingParams(8, 0.0))]
            )
        finally:
            await predictor.stop()

    return asyncio.run(run())


def test_a_save_pretrained_causal_lm_is_served_by_the_generative_runtime(tiny_model: Path) -> None:
    predictor = load_predictor(tiny_model)
    assert isinstance(predictor, GenerativePredictor)
    assert unsafe_format(tiny_model) is None


def test_an_mlflow_transformers_model_answers_as_its_folder_does(
    tiny_model: Path, mlflow_model: Path
) -> None:
    predictor = load_predictor(mlflow_model)
    assert isinstance(predictor, GenerativePredictor)
    assert unsafe_format(mlflow_model) is None  # safetensors: no pickle is loaded
    assert _greedy(predictor, "The server") == _greedy(GenerativePredictor(tiny_model), "The server")


def test_the_tensor_endpoints_say_where_to_go(tiny_model: Path) -> None:
    with pytest.raises(UserError, match="generates text"):
        GenerativePredictor(tiny_model).predict(None)  # type: ignore[arg-type]


def test_a_folder_without_safetensors_is_refused(tmp_path: Path, tiny_model: Path) -> None:
    (tmp_path / "config.json").write_bytes((tiny_model / "config.json").read_bytes())
    with pytest.raises(UserError, match="safetensors"):
        GenerativePredictor(tmp_path).load()
