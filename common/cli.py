"""Turning a command line into a typed, validated config, with bad input as one line + exit 2."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, TypeVar

from common.errors import EXIT_BAD_INPUT, EXIT_RUN_LOCKED, ConfigError, RunLocked

CONF_DIR = Path(__file__).resolve().parent.parent / "experiments" / "conf"
T = TypeVar("T")


def _hydra_reason(exc: BaseException) -> str:
    """The innermost message of a Hydra/OmegaConf error, on one line."""
    messages = []
    while exc is not None:
        text = str(exc).strip().splitlines()
        if text and text[0].strip() != "None":  # antlr's innermost parse error has no message
            messages.append(text[0].strip())
        exc = exc.__cause__ or exc.__context__
    # OmegaConf's own message ("Key 'foo' not in 'ModelConfig'") is the most specific.
    return messages[-1] if messages else "invalid configuration"


def compose(config_name: str, overrides: list[str], register: Callable[[], None], schema: type[T]) -> T:
    """Compose experiments/conf/<config_name>.yaml with overrides into a typed `schema` object."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    register()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = hydra_compose(config_name=config_name, overrides=overrides)
        _refuse_added_fields(cfg)
        obj = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "config"
        raise ConfigError(str(key), _hydra_reason(e)) from None
    except Exception as e:  # Hydra wraps override/composition errors in its own types
        if e.__class__.__module__.startswith(("hydra", "omegaconf")):
            raise ConfigError(_override_field(e, overrides), _hydra_reason(e)) from None
        unset = (_override_of_unset_group(config_name, overrides)
                 if isinstance(e, AssertionError) and "NoneType" in str(e) else None)
        if unset is not None:  # OmegaConf asserts on a key under a group left null
            group, key = unset
            raise ConfigError(group, f"{key} needs a {group} first: add {group}=<name>") from None
        raise
    finally:
        GlobalHydra.instance().clear()
    assert isinstance(obj, schema), type(obj)
    return obj


def _refuse_added_fields(node, path: str = "") -> None:
    """A `+key=value` override adds a key even to a typed node (Hydra lifts the struct flag
    for it), and OmegaConf then sets it on the dataclass as a stray attribute nobody reads:
    `+model.d_modl=64` would train the default model. Every key must be a field of its schema."""
    import dataclasses

    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(node, (DictConfig, ListConfig)) and (node._is_none() or node._is_missing()):
        return
    if isinstance(node, DictConfig):
        schema = OmegaConf.get_type(node)
        fields = ({f.name for f in dataclasses.fields(schema)}
                  if schema is not None and dataclasses.is_dataclass(schema) else None)
        for key in node.keys():
            full = f"{path}.{key}" if path else str(key)
            if fields is not None and key not in fields:
                raise ConfigError(full, f"unknown field: {schema.__name__} has no {key!r}")
            _refuse_added_fields(node._get_node(key), full)
    elif isinstance(node, ListConfig):
        for i, item in enumerate(node._iter_ex(resolve=False)):
            _refuse_added_fields(item, f"{path}[{i}]")


def _override_of_unset_group(config_name: str, overrides: list[str]) -> tuple[str, str] | None:
    """(group, key) for an override like grid.sizes=... of a group whose default is null in
    <config_name>.yaml (`- grid: null`) when no grid=... is among the overrides."""
    import yaml

    defaults = yaml.safe_load((CONF_DIR / f"{config_name}.yaml").read_text()).get("defaults", [])
    null_groups = {group for entry in defaults if isinstance(entry, dict)
                   for group, value in entry.items() if value is None}
    keys = [item.lstrip("+~").split("=", 1)[0] for item in overrides]
    for key in keys:
        group = key.split(".", 1)[0]
        if "." in key and group in null_groups and group not in keys:
            return group, key
    return None


def _override_field(exc: BaseException, overrides: list[str]) -> str:
    text = str(exc)
    for item in overrides:
        key = item.lstrip("+~").split("=", 1)[0]
        if f"'{key}'" in text or f"'{item}'" in text:
            return key
    while exc is not None:
        key = getattr(exc, "full_key", None)
        if key:
            return str(key)
        exc = exc.__cause__ or exc.__context__
    return "overrides"


def main_guard(fn: Callable[[], int | None]) -> None:
    """Run an entry point: ConfigError -> one line on stderr and exit 2; a run another process
    holds -> one line and exit 3 (as the grid worker); Ctrl-C -> exit 130."""
    try:
        code = fn()
    except ConfigError as e:
        print(f"error: {e.field}: {e.reason}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except RunLocked as e:  # another process is training this run: not a crash, nothing to do here
        print(f"skipped: {e}", file=sys.stderr)
        sys.exit(EXIT_RUN_LOCKED)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to continue where it stopped", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
