"""Reading a dotenv file for ``aether config import`` with python-dotenv's parser.

The usual rules (``KEY=value``, ``export KEY=…``, ``#`` comments, single quotes taken
literally, double quotes with escapes and several lines) come from python-dotenv, read
through its parser rather than ``dotenv_values`` because that one skips a line it cannot
parse with only a log line, and an import must not drop a variable quietly. Values are taken
as written: no ``${VAR}`` expansion from the file or this machine's environment.
python-dotenv is imported here only.
"""

from __future__ import annotations

from pathlib import Path

from dotenv.parser import parse_stream

from aether.errors import IOFailure, UsageError
from aether.models import check_config_name, check_config_value, check_environment


def read_env_file(path: Path) -> dict[str, str]:
    """The file's variables in order (a later line wins); UsageError naming the line of the
    first problem — never its value."""
    try:
        stream = path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise IOFailure(f"cannot read {path}: {exc.strerror or exc}") from exc
    found: dict[str, str] = {}
    with stream:
        try:
            bindings = list(parse_stream(stream))
        except UnicodeDecodeError as exc:
            raise UsageError(f"{path} is not UTF-8 text") from exc
    for binding in bindings:
        line = binding.original.line
        if binding.error:
            raise UsageError(f"{path}:{line}: not KEY=VALUE (dotenv syntax)")
        if binding.key is None:
            continue  # a blank line or a comment
        if binding.value is None:
            raise UsageError(f"{path}:{line}: {binding.key[:60]} has no '=' and no value")
        try:
            name = check_config_name(binding.key, error=UsageError)
            found[name] = check_config_value(name, binding.value, error=UsageError)
        except UsageError as exc:
            raise UsageError(f"{path}:{line}: {exc.message}") from exc
    check_environment(found, error=UsageError)
    return found
