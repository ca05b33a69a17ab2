"""A run's full configuration as ``OUTPUT_DIR/logs/<run id>/config.toml``, and its replay.

Every run writes the command it ran with every option resolved (``[command] argv``),
the same options as a table (``[options]``), its seeds (``[seeds]``) and, at the group
level, the model configuration it trained (``[model]``). ``daninet --replay-run FILE``
runs ``argv`` again (options given after it are appended, so they override). The file
is read with :mod:`tomllib`; nothing in it is evaluated.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from ..errors import DaniNetError

#: the option that replays a run (not ``--config``, which names a model preset)
REPLAY_OPTION = "--replay-run"


class ReplayError(DaniNetError, ValueError):
    """A ``--replay-run`` file is not a run's ``config.toml``."""


# ---- writing TOML (the subset these files need)
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, (str, Path)):
        return json.dumps(str(value))  # a JSON string is a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value if v is not None) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(str(k))} = {_value(v)}" for k, v in value.items()
                               if v is not None) + "}"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def to_toml(tables: dict[str, dict], header: str = "") -> str:
    """``tables`` (name -> flat dict; a nested dict becomes an inline table) as TOML; keys
    whose value is None are left out (TOML has no null).

    >>> print(to_toml({"seeds": {"seed": 0}, "options": {"config": None, "ages": [70.0, 75.5]}}), end="")
    [seeds]
    seed = 0
    <BLANKLINE>
    [options]
    ages = [70.0, 75.5]
    """
    lines = [f"# {line}" for line in header.splitlines()]
    for name, table in tables.items():
        if lines:
            lines.append("")
        lines.append(f"[{_key(name)}]")
        lines += [f"{_key(str(k))} = {_value(v)}" for k, v in table.items() if v is not None]
    return "\n".join(lines) + "\n"


# ---- the options of a run
def _plain(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def resolved_argv(opts, parser, files: dict | None = None) -> list[str]:
    """The command line that gives ``opts`` (every option as parsed, defaults included
    where they differ from nothing), built from ``parser``'s own actions; ``files``:
    option dest -> the file to name for an option parsed from a file's content."""
    import argparse

    files = files or {}
    argv, flags = [], []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)) or action.dest == "replay_run":
            continue
        value = files.get(action.dest, getattr(opts, action.dest, None))
        if not action.option_strings:  # positional
            argv.append(str(value))
            continue
        flag = next(o for o in action.option_strings if o.startswith("--"))
        if isinstance(action, argparse._StoreTrueAction):
            if value:
                flags.append(flag)
        elif isinstance(action, argparse._CountAction):
            flags += [flag] * int(value or 0)
        elif value is None or value is False:
            continue
        elif isinstance(value, dict):
            flags += [flag, json.dumps(value)]
        elif isinstance(value, (list, tuple)):
            flags += [flag, *map(str, value)]
        else:
            flags += [flag, str(value)]
    return argv + flags


def write_run_config(path, opts, parser, *, run_id: str, model: dict | None = None) -> Path:
    """Write ``path`` (``logs/<run id>/config.toml``): ``[command] argv``, ``[options]``,
    ``[seeds]`` and, when given, ``[model]`` (the training configuration)."""
    from .. import __version__

    options = {k: _plain(v) for k, v in sorted(vars(opts).items())
               if not k.startswith("_") and k not in ("replay_run",) and v is not None}
    for key, value in list(options.items()):
        if isinstance(value, dict):  # plugin arguments: a JSON string, as given
            options[key] = json.dumps(value)
    seeds = {"seed": opts.seed}
    if model and "seed" in model:
        seeds["model_seed"] = model["seed"]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    files = {}
    if getattr(opts, "bids_filter_file", None):  # parsed from a file: keep a copy beside
        files["bids_filter_file"] = path.with_name("bids_filter.json")
        files["bids_filter_file"].write_text(json.dumps(opts.bids_filter_file, indent=1) + "\n")
    tables = {"run": {"id": run_id, "daninet_pipeline": __version__},
              "command": {"argv": resolved_argv(opts, parser, files)},
              "options": options, "seeds": seeds}
    if model:
        tables["model"] = dict(model)
    path.write_text(to_toml(tables, header=f"daninet run {run_id}: replay with "
                                           f"`daninet {REPLAY_OPTION} {path.name}`"))
    return path


def read_replay_argv(path) -> list[str]:
    """The ``argv`` a ``config.toml`` records; :class:`ReplayError` in one line when
    ``path`` is missing, is a model preset (``--config``'s JSON) or is not a run's file."""
    import tomllib

    from ..model.config import PRESETS

    path = Path(path)
    if not path.is_file():
        if str(path) in PRESETS:
            raise ReplayError(f"{path} is a model preset name (give it to --config); {REPLAY_OPTION} "
                              "takes a run's logs/<run id>/config.toml")
        raise ReplayError(f"{path}: no such file (give a run's logs/<run id>/config.toml)")
    text = path.read_text(errors="replace")
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        raise ReplayError(f"{path} is a model preset (a training configuration, given with --config), "
                          f"not a run's logs/<run id>/config.toml, which {REPLAY_OPTION} takes")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ReplayError(f"{path}: not a run's config.toml ({err})") from err
    argv = data.get("command", {}).get("argv")
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise ReplayError(f"{path}: not a run's config.toml (no [command] argv list)")
    return argv
