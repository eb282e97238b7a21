"""A running batch that keeps each sequence's attention keys and values between decoding steps.

Recomputing every sequence in full at every step is simple and exact, but its work grows with
the length of the answer (measured on the tiny model, 16 sequences of 64 new tokens: about a fifth
of the speed of Hugging Face's own ``generate``). :class:`KVBatch` does what a serving engine
does instead: each step feeds only the newest token of each sequence, attending to keys and values
kept from earlier steps. Sequences join and leave
between steps, so the kept tensors are reshaped when the membership changes:

- a sequence that joins is run once over its whole prompt (the *prefill*), and its keys and values
  are merged into the batch's, the shorter side padded on the left;
- a sequence that leaves is dropped from the batch's rows, and leading columns that hold only
  padding are cut off, so a long answer that finished does not make the others pay for it.

The padding is masked out (``attention_mask``) and every row's position ids count only its real
tokens, so a row's logits do not depend on what else is in the batch: the tests compare them with
a full recomputation.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from lockgate.errors import UserError
from lockgate.llm.model import CausalModel
from lockgate.llm.sampling import Chooser, choose_tokens

__all__ = ["Chooser", "KVBatch", "left_padded"]


@dataclass
class _Kept:
    """Keys and values of every layer (``[rows, heads, columns, head_dim]``), the mask of real
    tokens (``[rows, columns]``) and each row's count of real tokens."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    mask: torch.Tensor
    lengths: list[int]
    # the transformers cache holding exactly these tensors, reused by the next step so that it
    # is not copied into a new one (None after the rows changed: the next step builds one)
    cache: Any = None

    @property
    def columns(self) -> int:
        return int(self.mask.shape[1])

    def padded_left(self, columns: int) -> _Kept:
        extra = columns - self.columns
        if extra == 0:
            return self

        def pad(t: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.pad(t, (0, 0, extra, 0))

        mask = torch.nn.functional.pad(self.mask, (extra, 0))
        return _Kept([pad(k) for k in self.keys], [pad(v) for v in self.values], mask, self.lengths)

    def rows(self, index: list[int]) -> _Kept:
        """The rows at ``index``, with the leading columns no kept row uses cut off."""
        picked = torch.tensor(index, dtype=torch.long)
        mask = self.mask.index_select(0, picked)
        used = torch.nonzero(mask.any(dim=0))
        start = int(used[0].item()) if len(used) else mask.shape[1]
        keys = [k.index_select(0, picked)[:, :, start:] for k in self.keys]
        values = [v.index_select(0, picked)[:, :, start:] for v in self.values]
        return _Kept(keys, values, mask[:, start:], [self.lengths[i] for i in index])


def left_padded(sequences: Sequence[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``sequences`` as one batch padded on the left with ``pad``, and the mask of real tokens."""
    longest = max(len(s) for s in sequences)
    input_ids = torch.tensor([[pad] * (longest - len(s)) + s for s in sequences])
    mask = torch.tensor([[0] * (longest - len(s)) + [1] * len(s) for s in sequences])
    return input_ids, mask


def _layers(cache: Any) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The keys and values a forward pass left in ``cache`` (a ``transformers.DynamicCache``)."""
    layers = cache.layers
    if not all(isinstance(getattr(layer, "keys", None), torch.Tensor) for layer in layers):
        raise UserError(
            "this model's attention cache is not plain keys and values (sliding-window or "
            "recurrent layers), which lockgate's batched decoding does not support yet",
            hint="serve a model with standard attention (GPT-2, Llama, Qwen and the like)",
        )
    return [layer.keys for layer in layers], [layer.values for layer in layers]


def _cache_holding(keys: list[torch.Tensor], values: list[torch.Tensor]) -> Any:
    """A ``transformers.DynamicCache`` holding these tensors themselves. Building it from them
    (``ddp_cache_data``) would copy every layer's keys and values once more (its first update
    concatenates them to an empty tensor), at every step after the batch's rows changed."""
    from transformers import DynamicCache

    empty = [(k[:, :, :0], v[:, :, :0]) for k, v in zip(keys, values, strict=True)]
    cache: Any = DynamicCache(ddp_cache_data=empty)
    for layer, k, v in zip(cache.layers, keys, values, strict=True):
        layer.keys, layer.values = k, v
    return cache


def _last_logits(out: Any) -> torch.Tensor:
    logits: torch.Tensor = out.logits[:, -1, :]
    return logits


def _merged(a: _Kept, b: _Kept) -> _Kept:
    columns = max(a.columns, b.columns)
    a, b = a.padded_left(columns), b.padded_left(columns)
    return _Kept(
        [torch.cat(pair) for pair in zip(a.keys, b.keys, strict=True)],
        [torch.cat(pair) for pair in zip(a.values, b.values, strict=True)],
        torch.cat([a.mask, b.mask]),
        a.lengths + b.lengths,
    )


class KVBatch:
    """The batch of one :class:`~lockgate.llm.scheduler.DecodeScheduler`; called from one thread."""

    def __init__(self, model: CausalModel) -> None:
        self.model = model
        self._order: list[Hashable] = []  # the key of each kept row, in row order
        self._kept: _Kept | None = None

    @property
    def size(self) -> int:
        return len(self._order)

    def step(
        self, keys: Sequence[Hashable], sequences: Sequence[list[int]], choosers: Sequence[Chooser]
    ) -> list[int]:
        """The next token of each sequence (``keys`` name them across steps). A key seen at the
        previous step must come with its tokens then plus the one that step chose; a new key is
        prefilled; a key not given any more leaves the batch."""
        return choose_tokens(self.logits(keys, sequences), choosers)

    def logits(self, keys: Sequence[Hashable], sequences: Sequence[list[int]]) -> torch.Tensor:
        """The last position's logits of each sequence, in the order given."""
        wanted = set(keys)
        staying = [row for row, key in enumerate(self._order) if key in wanted]
        if self._kept is not None and len(staying) < len(self._order):
            self._kept = self._kept.rows(staying) if staying else None
            self._order = [self._order[row] for row in staying]
        known = {key: row for row, key in enumerate(self._order)}
        joining = [i for i, key in enumerate(keys) if key not in known]
        pieces: list[torch.Tensor] = []
        if self._kept is not None:
            given = dict(zip(keys, sequences, strict=True))
            for key in self._order:
                if len(given[key]) != self._kept.lengths[known[key]] + 1:
                    raise ValueError(f"sequence {key!r} did not grow by one token since the last step")
            pieces.append(self._decode([given[key][-1] for key in self._order]))
        if joining:
            prefilled_logits, prefilled = self._prefill([sequences[i] for i in joining])
            pieces.append(prefilled_logits)
            self._kept = prefilled if self._kept is None else _merged(self._kept, prefilled)
            self._order += [keys[i] for i in joining]
        rows = {key: row for row, key in enumerate(self._order)}
        every = torch.cat(pieces)
        return every.index_select(0, torch.tensor([rows[key] for key in keys], dtype=torch.long))

    def _prefill(self, sequences: list[list[int]]) -> tuple[torch.Tensor, _Kept]:
        from transformers import DynamicCache

        pad = self.model.eos_token_id if self.model.eos_token_id is not None else 0
        input_ids, mask = left_padded(sequences, pad)
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        cache = DynamicCache()
        with torch.inference_mode():
            out = self.model.model(
                input_ids=input_ids,
                attention_mask=mask,
                position_ids=positions,
                cache=cache,
                use_cache=True,
            )
        keys, values = _layers(cache)
        return _last_logits(out), _Kept(keys, values, mask, [len(s) for s in sequences], cache)

    def _decode(self, newest: list[int]) -> torch.Tensor:
        kept = self._kept
        assert kept is not None
        cache = kept.cache if kept.cache is not None else _cache_holding(kept.keys, kept.values)
        mask = torch.cat([kept.mask, torch.ones((len(newest), 1), dtype=kept.mask.dtype)], dim=1)
        positions = torch.tensor([[length] for length in kept.lengths])
        with torch.inference_mode():
            out = self.model.model(
                input_ids=torch.tensor([[token] for token in newest]),
                # the step's one query may attend every real column: given as the 4-D mask attention
                # takes (rows, heads, queries, columns), transformers uses it as it is, instead of
                # building a causal mask from the 2-D one at every step (8% of a step on a small model)
                attention_mask=mask[:, None, None, :].bool(),
                position_ids=positions,
                cache=cache,
                use_cache=True,
            )
        keys, values = _layers(cache)
        self._kept = _Kept(keys, values, mask, [length + 1 for length in kept.lengths], cache)
        return _last_logits(out)

    def clear(self) -> None:
        """Forget every kept sequence (after a failed step, whose state is unknown)."""
        self._order, self._kept = [], None
