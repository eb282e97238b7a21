"""``python -m lockgate.llm FOLDER [STEPS]``: build the tiny demo model into FOLDER."""

from __future__ import annotations

import sys
from pathlib import Path

from lockgate.llm.tiny import build_tiny_model


def main(argv: list[str]) -> None:
    if not 1 <= len(argv) <= 2 or not (len(argv) == 1 or argv[1].isdigit()):
        raise SystemExit(
            "usage: python -m lockgate.llm FOLDER [STEPS]   (STEPS: optimizer steps, default 150)"
        )
    folder = build_tiny_model(Path(argv[0]), steps=int(argv[1]) if len(argv) == 2 else 150)
    print(f"saved the tiny GPT-2 and its tokenizer to {folder}")


if __name__ == "__main__":
    main(sys.argv[1:])
