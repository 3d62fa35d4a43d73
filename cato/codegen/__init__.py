"""Feature selection + packet depths -> a tailored Zeek script."""

from cato.codegen.generator import (
    ENGINES,
    STRATEGIES,
    GeneratedScript,
    GeneratorError,
    choose_strategy,
    generate,
    normalize_depths,
    parse_deadline,
)

__all__ = ["ENGINES", "STRATEGIES", "GeneratedScript", "GeneratorError", "choose_strategy", "generate", "normalize_depths", "parse_deadline"]
