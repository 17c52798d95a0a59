"""Settings for a command from a TOML file and PURECHAT_* variables; flags win.

Every option of `purechat serve` can come from three places, in rising order of
precedence: `--config FILE` (TOML, keys named like the flags: `rate-limit = 5`), the
environment (`PURECHAT_RATE_LIMIT=5`), and the command line.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from purechat.errors import ConfigurationError

ENV_PREFIX = "PURECHAT_"


class SettingsError(ConfigurationError):
    """A setting that cannot be used; str() is a sentence."""


def defaults_from(
    parser: argparse.ArgumentParser, config: Path | None, environ: Mapping[str, str] = os.environ
) -> dict[str, Any]:
    """Values for parser's options from the file, then the environment (which wins)."""
    actions = {
        action.dest: action
        for action in parser._actions
        if action.option_strings and action.dest not in ("help", "config")
    }
    values: dict[str, Any] = {}
    if config is not None:
        for key, value in _read(config).items():
            dest = key.replace("-", "_")
            if dest not in actions:
                raise SettingsError(f"{config}: unknown setting {key!r}")
            values[dest] = _convert(actions[dest], value, f"{config}: {key}")
    for dest, action in actions.items():
        name = ENV_PREFIX + dest.upper()
        if name in environ:
            values[dest] = _convert(action, environ[name], name)
    return values


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except OSError as error:
        raise SettingsError(f"cannot read {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"{path} is not valid TOML: {error}") from None


def _convert(action: argparse.Action, value: Any, where: str) -> Any:
    if isinstance(action, argparse._AppendAction):
        # A repeatable option: a TOML list, or one string of values (commas or spaces).
        values = value if isinstance(value, list) else str(value).replace(",", " ").split()
        return [str(item) for item in values]
    if isinstance(action, argparse._StoreTrueAction):
        if isinstance(value, str):
            return value.lower() in ("1", "true", "yes", "on")
        return bool(value)
    if action.choices is not None and str(value) not in action.choices:
        raise SettingsError(f"{where}: {value!r} is not one of {', '.join(action.choices)}")
    convert = action.type if callable(action.type) else str
    try:
        return convert(value) if not isinstance(value, bool) else value
    except argparse.ArgumentTypeError as wrong:  # the option's own sentence (a duration)
        raise SettingsError(f"{where}: {wrong}") from None
    except (TypeError, ValueError):
        raise SettingsError(f"{where}: {value!r} is not a valid value") from None


def config_path(argv: Sequence[str]) -> Path | None:
    """--config FILE from a command line, before the full parse."""
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--config", type=Path)
    known, _ = early.parse_known_args(argv)
    path: Path | None = known.config
    return path


def setting(key: str, config: Path | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """One `purechat serve` setting (a string: --store, say) as the server would take it
    from its environment or its --config file, for commands that must agree with it
    (`purechat account`); None when neither sets it."""
    name = ENV_PREFIX + key.replace("-", "_").upper()
    if name in environ:
        return environ[name]
    if config is None:
        return None
    value = _read(config).get(key)
    return None if value is None else str(value)
