"""Zeek: running it over captures and corpora, reading its logs, and profiling what a script costs."""

from cato.zeek.logs import LogFormatError, read_zeek_log
from cato.zeek.runner import (
    DEPLOYMENTS,
    ZAM_ARGS,
    ZeekError,
    ZeekNotFoundError,
    ZeekRun,
    deployment_invocation,
    find_zeek,
    native_plugin_dir,
    run_zeek,
    zeek_version,
)
from cato.codegen.static import static_load_script, static_scripts_dir, static_scripts_sha256

__all__ = [
    "DEPLOYMENTS", "deployment_invocation", "LogFormatError", "ZAM_ARGS", "ZeekError", "ZeekNotFoundError", "ZeekRun", "find_zeek", "native_plugin_dir", "read_zeek_log",
    "run_zeek", "static_load_script", "static_scripts_dir", "static_scripts_sha256", "zeek_version",
]
