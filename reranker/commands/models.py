"""`python -m reranker models`: the known models and whether each resolves offline on this machine."""

from __future__ import annotations

import argparse

from reranker.commands.common import Command
from reranker.models import KNOWN_BI_ENCODERS, KNOWN_CROSS_ENCODERS, PROJECT_MODELS, is_available_offline


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options."""


def run(args: argparse.Namespace) -> int:
    print("cross-encoders:")
    for spec in [*PROJECT_MODELS, *(m for m, _ in KNOWN_CROSS_ENCODERS)]:
        print(f"  {'offline ok' if is_available_offline(spec) else 'needs hub ':<11} {spec}")
    print("bi-encoders:")
    for spec, _ in KNOWN_BI_ENCODERS:
        print(f"  {'offline ok' if is_available_offline(spec) else 'needs hub ':<11} {spec}")
    return 0


COMMAND = Command("models", "list known models and whether each works offline here", add_arguments, run)
