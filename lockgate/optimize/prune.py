"""Pruning: zero the smallest weights (unstructured) or remove whole neurons (structured).

Unstructured magnitude pruning leaves every tensor its shape: the zeros cost the same in a dense
CPU matrix product, so the model is no faster and no smaller on disk (unless compressed); it is a
step towards sparse kernels, measured here only so nobody expects a speed-up from it. Structured
pruning removes the neurons (rows of one layer, columns of the next) with the smallest L2 norm and
rebuilds smaller layers, so the speed-up is real.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

from lockgate.errors import UserError

__all__ = ["prune_encoder_ffn", "prune_mlp_neurons", "prune_unstructured", "sparsity"]

_ELEMENTWISE = (
    "ReLU",
    "GELU",
    "Tanh",
    "Sigmoid",
    "SiLU",
    "LeakyReLU",
    "ELU",
    "Dropout",
    "Identity",
    "Softplus",
)


def _check_amount(amount: float) -> None:
    if not 0.0 < amount < 1.0:
        raise UserError(f"pruning amount {amount} is outside (0, 1)", hint="pass e.g. --amount 0.5")


def sparsity(module: Any) -> float:
    """Fraction of the weights of the Linear layers of ``module`` that are exactly zero."""
    import torch

    total = zeros = 0
    for layer in module.modules():
        if isinstance(layer, torch.nn.Linear):
            total += layer.weight.numel()
            zeros += int((layer.weight == 0).sum())
    return zeros / total if total else 0.0


def prune_unstructured(module: Any, amount: float) -> Any:
    """A copy of ``module`` with the ``amount`` smallest-magnitude Linear weights set to zero.

    Each layer loses the same fraction (a global threshold would empty layers whose weights are small
    by design, such as a fixed input scaling); made permanent, so the copy is an ordinary module.
    """
    import torch
    from torch.nn.utils import prune

    _check_amount(amount)
    pruned = copy.deepcopy(module)
    targets = [(m, "weight") for m in pruned.modules() if isinstance(m, torch.nn.Linear)]
    if not targets:
        raise UserError("the model has no Linear layers to prune", hint="prune MLPs or transformers")
    for layer, name in targets:
        prune.l1_unstructured(layer, name, amount=amount)  # type: ignore[no-untyped-call]
        prune.remove(layer, name)  # type: ignore[no-untyped-call]
    return pruned


def _keep_rows(weight: Any, amount: float) -> Any:
    import torch

    rows = weight.shape[0]
    keep = max(1, round(rows * (1.0 - amount)))
    scores = torch.linalg.vector_norm(weight, dim=1)
    return torch.sort(torch.topk(scores, keep).indices).values


def _shrunk(layer: Any, *, rows: Any = None, cols: Any = None) -> Any:
    import torch

    weight = layer.weight.detach()
    bias = layer.bias.detach() if layer.bias is not None else None
    if rows is not None:
        weight = weight[rows]
        bias = bias[rows] if bias is not None else None
    if cols is not None:
        weight = weight[:, cols]
    new = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    return new


def prune_mlp_neurons(module: Any, amount: float) -> Any:
    """A smaller copy of an ``nn.Sequential`` MLP with ``amount`` of each hidden layer's neurons removed.

    The layers must be Linear layers separated by element-wise ones (activations, dropout); the input
    and output widths do not change.
    """
    import torch

    _check_amount(amount)
    if not isinstance(module, torch.nn.Sequential):
        raise UserError(
            f"structured pruning takes an nn.Sequential MLP; this model is a {type(module).__name__}",
            hint="log the model as nn.Sequential(Linear, ReLU, ..., Linear) with "
            "serialization_format='pickle', or use --kind unstructured",
        )
    layers = list(module)
    linear_at = [i for i, m in enumerate(layers) if isinstance(m, torch.nn.Linear)]
    others = [type(m).__name__ for m in layers if not isinstance(m, torch.nn.Linear)]
    bad = sorted({name for name in others if name not in _ELEMENTWISE})
    if len(linear_at) < 2 or bad:
        raise UserError(
            "structured pruning needs at least two Linear layers joined by element-wise layers"
            + (f"; found {', '.join(bad)}" if bad else ""),
            hint="use --kind unstructured for other architectures",
        )
    new_layers: list[Any] = [copy.deepcopy(m) for m in layers]
    for current, following in itertools.pairwise(linear_at):
        keep = _keep_rows(new_layers[current].weight.detach(), amount)
        new_layers[current] = _shrunk(new_layers[current], rows=keep)
        new_layers[following] = _shrunk(new_layers[following], cols=keep)
    return torch.nn.Sequential(*new_layers).eval()


def prune_encoder_ffn(model: Any, amount: float) -> Any:
    """A copy of a BERT-style sentence encoder with ``amount`` of each feed-forward block's neurons removed.

    The feed-forward blocks hold two thirds of a layer's weights; removing their weakest intermediate
    neurons shrinks both matrices of each block, so it is faster on dense kernels.
    """
    _check_amount(amount)
    pruned = copy.deepcopy(model)
    transformer = pruned[0].auto_model
    blocks = getattr(getattr(transformer, "encoder", None), "layer", None)
    if blocks is None:
        raise UserError(
            "structured pruning of an encoder needs a BERT-style model (encoder.layer[i].intermediate)",
            hint="use --kind unstructured",
        )
    width = 0
    for block in blocks:
        up, down = block.intermediate.dense, block.output.dense
        keep = _keep_rows(up.weight.detach(), amount)
        block.intermediate.dense = _shrunk(up, rows=keep)
        block.output.dense = _shrunk(down, cols=keep)
        width = int(keep.numel())
    transformer.config.intermediate_size = width
    return pruned.eval()
