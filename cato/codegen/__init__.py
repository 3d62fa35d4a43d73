"""Feature selection + packet depths -> a tailored Zeek script."""

from cato.codegen.generator import (
    STRATEGIES,
    GeneratedScript,
    GeneratorError,
    choose_strategy,
    generate,
    normalize_depths,
    parse_deadline,
)

__all__ = ["STRATEGIES", "GeneratedScript", "GeneratorError", "choose_strategy", "generate", "normalize_depths", "parse_deadline"]
