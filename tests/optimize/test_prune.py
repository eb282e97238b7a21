from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from lockgate.errors import UserError
from lockgate.optimize.prune import prune_encoder_ffn, prune_mlp_neurons, prune_unstructured, sparsity


def accuracy(model: Any, x: Any, y: Any) -> float:
    with torch.no_grad():
        out = model(torch.tensor(x, dtype=torch.float32))
    return float((out.argmax(dim=1).numpy() == y).mean())


def test_unstructured_zeroes_weights_but_keeps_shapes(mlp: Any, breast_cancer: tuple[Any, Any]) -> None:
    x, y = breast_cancer
    before = sparsity(mlp)
    pruned = prune_unstructured(mlp, 0.5)
    assert sparsity(pruned) == pytest.approx(0.5, abs=0.01)
    assert sparsity(mlp) == before, "the parent is untouched"
    assert {k: v.shape for k, v in pruned.state_dict().items()} == {
        k: v.shape for k, v in mlp.state_dict().items()
    }
    assert accuracy(pruned, x, y) >= accuracy(mlp, x, y) - 0.1


def test_structured_removes_neurons(mlp: Any, breast_cancer: tuple[Any, Any]) -> None:
    x, y = breast_cancer
    pruned = prune_mlp_neurons(mlp, 0.5)
    widths = [m.out_features for m in pruned if isinstance(m, torch.nn.Linear)]
    assert widths == [32, 16, 2]
    assert sum(p.numel() for p in pruned.parameters()) < 0.5 * sum(p.numel() for p in mlp.parameters())
    assert accuracy(pruned, x, y) >= accuracy(mlp, x, y) - 0.15


def test_structured_refuses_what_it_cannot_shrink() -> None:
    with pytest.raises(UserError, match=r"nn\.Sequential MLP"):
        prune_mlp_neurons(torch.nn.Linear(3, 2), 0.5)
    conv = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    with pytest.raises(UserError, match="found BatchNorm1d"):
        prune_mlp_neurons(conv, 0.5)
    with pytest.raises(UserError, match="outside"):
        prune_unstructured(conv, 1.0)


def test_encoder_ffn_shrinks_and_keeps_the_embedding_width(tiny_encoder: Any) -> None:
    pruned = prune_encoder_ffn(tiny_encoder, 0.5)
    block = pruned[0].auto_model.encoder.layer[0]
    assert block.intermediate.dense.out_features == 32 and block.output.dense.in_features == 32
    texts = ["a short sentence", "another, rather longer sentence about nothing"]
    parent = tiny_encoder.encode(texts)
    child = pruned.encode(texts)
    assert child.shape == parent.shape
    assert np.all(np.isfinite(child))
