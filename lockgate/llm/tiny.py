"""The small causal language model the project makes itself, for tests and the demo.

A 2-layer GPT-2 configuration and a byte-level BPE tokenizer, both trained on
``lockgate/llm/corpus.txt`` (text the repository ships) with a fixed seed, then written with
``save_pretrained``: the same folder a Hugging Face model would be. No weights come from a hub.
Quality is beside the point; a few seconds of training make it repeat the corpus's phrases.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CORPUS", "build_tiny_model"]

CORPUS = Path(__file__).with_name("corpus.txt")
_END = "<|endoftext|>"


def _tokenizer(text: str, vocab_size: int) -> object:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[_END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([text], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=_END, eos_token=_END, pad_token=_END)  # type: ignore[no-untyped-call]


def build_tiny_model(
    folder: Path,
    *,
    steps: int = 150,
    seed: int = 0,
    corpus: Path = CORPUS,
    vocab_size: int = 400,
    context: int = 128,
) -> Path:
    """Train the tiny GPT-2 for ``steps`` optimizer steps (a few dozen a second on an idle core) and
    save model and tokenizer to ``folder``, which is returned."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    text = corpus.read_text(encoding="utf-8")
    tokenizer = _tokenizer(text, vocab_size)
    ids = torch.tensor(tokenizer(text)["input_ids"])  # type: ignore[operator]
    config = GPT2Config(
        vocab_size=len(tokenizer),  # type: ignore[arg-type]
        n_positions=context,
        n_embd=64,
        n_layer=2,
        n_head=4,
        bos_token_id=tokenizer.eos_token_id,  # type: ignore[attr-defined]
        eos_token_id=tokenizer.eos_token_id,  # type: ignore[attr-defined]
    )
    model = GPT2LMHeadModel(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    window = min(32, len(ids) - 1)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        starts = torch.randint(0, len(ids) - window, (4,), generator=generator)
        batch = torch.stack([ids[s : s + window] for s in starts.tolist()])
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()  # type: ignore[no-untyped-call]
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)  # type: ignore[attr-defined]
    return folder
