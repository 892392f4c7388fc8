"""`hwgan verify DIR`: checks a built dataset (= python -m data_pipeline.build verify DIR)."""

from __future__ import annotations

from typing import Sequence

from data_pipeline import build


def verify_main(argv: Sequence[str]) -> int:
    return build.main(["verify", *argv])
