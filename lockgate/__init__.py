"""lockgate: carry a machine-learning model from experiment to production through gates."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
