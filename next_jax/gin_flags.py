"""T5X-style gin flags: `--gin.NAME=VALUE` command-line arguments become gin bindings."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import gin


def gin_bindings(parser: argparse.ArgumentParser, rest: Sequence[str]) -> list[str]:
    """`NAME=VALUE` for each `--gin.NAME=VALUE` among the arguments `parser` left unparsed; any other argument
    is a usage error (the parser's message, exit 2)."""
    bindings = []
    for arg in rest:
        if not arg.startswith("--gin."):
            parser.error(f"unrecognised argument {arg!r} (gin bindings are --gin.NAME=VALUE)")
        bindings.append(arg[len("--gin."):])
    return bindings


def bound_value(selector: str, default: Any) -> Any:
    """The value the parsed gin config binds to `selector` (`"Trainer.num_microbatches"`), through macros
    (`%SEED`), or `default` where it binds none."""
    try:
        value = gin.query_parameter(selector)
    except ValueError:
        return default
    while isinstance(value, gin.config.ConfigurableReference) and value.selector == "gin.macro":
        value = gin.query_parameter("%" + value.scoped_selector.rsplit("/", 1)[0])
    return value
