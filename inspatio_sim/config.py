"""Hydra configuration: compose the typed schema with the packaged config tree and ``key=value`` overrides.

The schema (:mod:`inspatio_sim.config_schema`, registered in hydra's ConfigStore) holds every key, its type, its
default and its doc. The YAML tree shipped in ``inspatio_sim/configs/`` (or the copy ``INSPATIO_CONFIG_DIR`` points
at) holds only data: the defaults list (``config.yaml``) and the scene presets (``scene/*.yaml``, chosen with
``scene=NAME``). :func:`compose` rejects an unknown key (suggesting the closest one), a value of the wrong type
(naming the key, the value and the expected type) and a value out of range (each section's ``validate()``), always
as one :class:`~inspatio_sim.errors.ConfigError` line.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import inspect
import io
import json
import os
import re
import textwrap
import tokenize
import types
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf

from inspatio_sim.errors import ConfigError

CONFIG_DIR_ENV = "INSPATIO_CONFIG_DIR"
SCENE_GROUP = "scene"
T = TypeVar("T")


def config_dir() -> Path:
    """Directory of the YAML config tree: ``$INSPATIO_CONFIG_DIR`` if set, else the one inside the package."""
    env = os.environ.get(CONFIG_DIR_ENV)
    path = Path(env) if env else Path(__file__).resolve().parent / "configs"
    if not (path / "config.yaml").is_file():
        raise ConfigError(f"config tree not found: {path / 'config.yaml'} does not exist"
                          + (f"; point {CONFIG_DIR_ENV} at a copy of inspatio_sim/configs/ or unset it" if env else
                             "; the installation is incomplete, reinstall inspatio-sim"))
    return path


def scene_presets() -> list[str]:
    """Names of the scene presets (``scene=NAME``): the YAML files of the config tree's ``scene/`` folder."""
    return sorted(p.stem for p in (config_dir() / SCENE_GROUP).glob("*.yaml"))


# ----------------------------------------------------------------------------------------------------------- schema


@dataclasses.dataclass(frozen=True)
class SchemaKey:
    """One key of the schema: its dotted ``path``, the dataclass ``owner`` and field ``name``, its type ``hint``."""

    path: str
    owner: type
    name: str
    hint: Any

    @property
    def is_node(self) -> bool:
        """True for a section (a dataclass) rather than a value."""
        return dataclasses.is_dataclass(self.hint)


def _walk(cls: type, prefix: str = "") -> Iterator[SchemaKey]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        key = SchemaKey(prefix + f.name, cls, f.name, hints[f.name])
        yield key
        if key.is_node:
            yield from _walk(key.hint, key.path + ".")


@functools.cache
def schema_keys() -> dict[str, SchemaKey]:
    """Every key path of the schema (sections and values), in schema order."""
    from inspatio_sim.config_schema import InSpatioConfig

    return {k.path: k for k in _walk(InSpatioConfig)}


def type_name(hint: Any) -> str:
    """What a value of type ``hint`` must be, for messages: ``an integer``, ``a number or null``, ..."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        text = " or ".join(type_name(a) for a in inner)
        return text + " or null" if len(inner) < len(args) else text
    if origin in (list, tuple, Sequence):
        item = type_name(args[0]) if args else "a value"
        plural = {"an integer": "integers", "a number": "numbers", "a string": "strings",
                  "true or false": "booleans"}.get(item, "values")
        return f"a list of {plural}"
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    if hint in names:
        return names[hint]
    if dataclasses.is_dataclass(hint):
        return "a node of keys (" + ", ".join(f.name for f in dataclasses.fields(hint)) + ")"
    return getattr(hint, "__name__", str(hint))


# ----------------------------------------------------------------------------------------------------------- compose


def _parse(overrides: Sequence[str]) -> list[Any]:
    """hydra ``Override`` objects of ``overrides``, each checked against the schema and the scene presets."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ConfigError(f"overrides must look like key=value, got {bad}; see --help for the keys")
    parser = OverridesParser.create()
    parsed = []
    for text in overrides:
        try:
            (override,) = parser.parse_overrides([text])
        except OverrideParseException as e:
            raise ConfigError(f"cannot parse the override '{text}': {str(e).strip().splitlines()[0]}") from e
        parsed.append(override)
    keys = schema_keys()
    for o in parsed:
        key = o.key_or_group
        if key == SCENE_GROUP and o.package is None:
            presets = scene_presets()
            if o.value() not in presets:
                close = difflib.get_close_matches(str(o.value()), presets, n=1, cutoff=0.5)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise ConfigError(f"unknown scene preset '{o.value()}' (choose one of {', '.join(presets)}){hint}")
        elif key not in keys:
            raise ConfigError(_unknown_key(key))
        elif o.is_add() or o.is_delete() or o.is_force_add():
            raise ConfigError(f"'{o.input_line}': the keys are fixed by the schema; set a value with {key}=VALUE")
        elif o.is_sweep_override():
            raise ConfigError(f"{o.input_line}: a value with commas must be quoted inside the shell quotes, e.g. "
                              f"'{key}=\"{o.get_value_string()}\"'")
    return parsed


def _unknown_key(key: str) -> str:
    leaves = [k for k, v in schema_keys().items() if not v.is_node]
    close = difflib.get_close_matches(key, leaves, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else "; `inspatio-sim --help` lists the keys"
    return f"unknown configuration key '{key}'{hint}"


def _merge_error(e: BaseException, parsed: list[Any]) -> ConfigError:
    """One line for a hydra/OmegaConf composition error: the override, its value and the expected type."""
    from omegaconf.errors import OmegaConfBaseException

    cause: BaseException | None = e
    while cause is not None and not (isinstance(cause, OmegaConfBaseException) and getattr(cause, "full_key", None)):
        cause = cause.__cause__ or cause.__context__
    first = str(cause or e).strip().splitlines()[0]
    if cause is None:
        return ConfigError(f"invalid configuration: {first}")
    full_key = re.sub(r"\[\d+\]", "", str(cause.full_key))
    if full_key not in schema_keys():  # only the YAML tree can name one: overrides were checked
        return ConfigError(f"{_unknown_key(full_key)} (in the config tree {config_dir()})")
    expected = f"expected {type_name(schema_keys()[full_key].hint)}"
    for o in parsed:
        if o.key_or_group == SCENE_GROUP and o.package is None:
            continue  # a preset choice: the value comes from the YAML tree
        if full_key == o.key_or_group or full_key.startswith(o.key_or_group + "."):
            return ConfigError(f"{o.input_line}: {expected}")
    return ConfigError(f"{full_key} in the config tree {config_dir()}: {expected}")


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """The validated configuration for hydra overrides such as ``scene=courtyard`` or ``render.near=0.1``.

    Returns:
        A DictConfig typed by :class:`~inspatio_sim.config_schema.InSpatioConfig` (struct mode: unknown keys and
        wrongly typed values are refused on assignment too).

    Raises:
        ConfigError: An override is malformed, names an unknown key or scene preset, has a value of the wrong type,
            or a value fails its section's ``validate()``.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from inspatio_sim.config_schema import register

    register()
    overrides = [_shorthand(o) for o in overrides]
    parsed = _parse(overrides)
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=list(overrides))
        obj = OmegaConf.to_object(cfg)
    except (HydraException, OmegaConfBaseException) as e:
        raise _merge_error(e, parsed) from e
    obj.validate()  # type: ignore[union-attr]
    return cfg


MODEL_SHORTHAND = "model="
"""``model=NAME`` is short for ``model.name=NAME`` (the completer: ``none``, ``classical`` or ``star``)."""


def _shorthand(override: str) -> str:
    return "model.name=" + override[len(MODEL_SHORTHAND):] if override.startswith(MODEL_SHORTHAND) else override


def to_dataclass(cls: type[T], node: DictConfig | dict[str, Any], prefix: str) -> T:
    """Build and validate dataclass ``cls`` from a config node; sub-nodes that are not fields of ``cls`` (e.g.
    ``render.camera`` for :class:`RenderConfig`) are left out. ``prefix`` is the node's key path, for messages."""
    data = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = [k for k, v in data.items() if k not in names and not isinstance(v, dict)]
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(prefix + '.' + k for k in unknown)}")
    obj = cls(**{k: v for k, v in data.items() if k in names})
    validate = getattr(obj, "validate", None)
    if validate is not None:
        validate()
    return obj


# -------------------------------------------------------------------------------------------------------------- docs


@functools.cache
def _class_docs(cls: type) -> dict[str, str]:
    """Docs of the fields written in ``cls``'s own source: inline ``# comment`` first, else ``Attributes:`` entry."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    node = ast.parse(source).body[0]
    if not isinstance(node, ast.ClassDef):
        return {}
    docs = _attribute_docs(ast.get_docstring(node) or "")
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    for stmt in node.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            inline = [comments[n] for n in range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1) if n in comments]
            if inline:
                docs[stmt.target.id] = " ".join(inline)
    return docs


def _attribute_docs(docstring: str) -> dict[str, str]:
    """``name -> text`` of a Google-style ``Attributes:`` section (continuation lines joined)."""
    docs: dict[str, str] = {}
    lines = docstring.splitlines()
    if "Attributes:" not in (line.strip() for line in lines):
        return docs
    start = [line.strip() for line in lines].index("Attributes:") + 1
    indent: int | None = None
    names: list[str] = []
    for line in lines[start:]:
        if not line.strip():
            break
        depth = len(line) - len(line.lstrip())
        indent = depth if indent is None else indent
        if depth < indent:
            break
        m = re.match(r"\s*([\w, ]+?):\s+(.*)$", line) if depth == indent else None
        if m:
            names = [n.strip() for n in m[1].split(",")]
            for n in names:
                docs[n] = m[2].strip()
        else:
            for n in names:
                docs[n] += " " + line.strip()
    return docs


def field_doc(cls: type, name: str) -> str:
    """One-line doc of field ``name`` of dataclass ``cls`` (searching its bases and ``__doc_sources__``); ``""``
    when it has none. Sphinx roles and double backquotes become Markdown code spans, ``None`` becomes ``null``."""
    for klass in (*cls.__mro__, *getattr(cls, "__doc_sources__", ())):
        doc = _class_docs(klass).get(name)
        if doc:
            doc = re.sub(r":\w+:`~?(?:[\w.]*\.)?([^`]+)`", r"`\1`", doc)
            return doc.replace("``", "`").replace("`None`", "`null`")
    return ""


def _format(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def default_scene_preset() -> str:
    """The scene preset chosen by the defaults list of ``config.yaml``."""
    defaults = OmegaConf.load(config_dir() / "config.yaml").get("defaults", [])
    for entry in defaults:
        if isinstance(entry, DictConfig) and SCENE_GROUP in entry:
            return str(entry[SCENE_GROUP])
    raise ConfigError(f"{config_dir() / 'config.yaml'} does not choose a scene preset in its defaults list")


def describe_keys() -> list[tuple[str, str, str]]:
    """``(key, default, doc)`` of every value key of the schema (defaults as composed without overrides), after a
    first row for the scene preset group (``scene=NAME``)."""
    defaults = OmegaConf.to_container(compose([]), resolve=True)
    rows = [(SCENE_GROUP, default_scene_preset(),
             f"scene preset (`scene=NAME`): {', '.join(scene_presets())}; sets the scene.* keys from "
             f"inspatio_sim/configs/scene/NAME.yaml")]
    for path, key in schema_keys().items():
        if key.is_node:
            continue
        value: Any = defaults
        for part in path.split("."):
            value = value[part]
        rows.append((path, _format(value), field_doc(key.owner, key.name)))
    return rows


def keys_markdown() -> str:
    """The README's configuration-keys table (``| key | default | meaning |``), from :func:`describe_keys`."""
    lines = ["| key | default | meaning |", "|---|---|---|"]
    for key, default, doc in describe_keys():
        cell = doc.replace("|", "\\|")
        lines.append(f"| `{key}` | `{default}` | {cell} |")
    return "\n".join(lines)
