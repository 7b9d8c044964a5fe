"""The typed configuration: one schema, checked at compose time, documented from the dataclasses."""

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from inspatio_sim.cli import main
from inspatio_sim.config import (
    CONFIG_DIR_ENV,
    compose,
    config_dir,
    describe_keys,
    field_doc,
    schema_keys,
    to_dataclass,
    type_name,
)
from inspatio_sim.config_schema import InSpatioConfig, RenderSection
from inspatio_sim.errors import ConfigError
from inspatio_sim.render import RenderConfig
from inspatio_sim.simulator import CameraConfig
from tests.helpers import leaf_keys

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("override", "message"), [
    ("render.camera.width=abc", "render.camera.width=abc: expected an integer"),
    ("recon.max_size=abc", "recon.max_size=abc: expected an integer"),
    ("render.camera.width=3.5", "render.camera.width=3.5: expected an integer"),
    ("ros.rate=fast", "ros.rate=fast: expected a number"),
    ("recon.fps=x", "recon.fps=x: expected a number or null"),
    ("render.near=null", "render.near=null: expected a number"),
    ("world.sky=maybe", "world.sky=maybe: expected true or false"),
    ("bench.render.resolutions=[64,big]", "bench.render.resolutions=[64,big]: expected a list of integers"),
])
def test_a_value_of_the_wrong_type_names_key_value_and_type(override, message):
    with pytest.raises(ConfigError) as e:
        compose([override])
    assert str(e.value) == message


@pytest.mark.parametrize(("override", "message"), [
    ("render.camara.width=3", "unknown configuration key 'render.camara.width'; did you mean 'render.camera.width'?"),
    ("world.voxelsize=0.1", "unknown configuration key 'world.voxelsize'; did you mean 'world.voxel_size'?"),
    ("+render.foo=1", "unknown configuration key 'render.foo'"),
    ("nothing.like.this=1", "unknown configuration key 'nothing.like.this'; `inspatio-sim --help` lists the keys"),
    ("scene=tyni",
     "unknown scene preset 'tyni' (choose one of courtyard, plain, room, small, tiny); did you mean 'tiny'?"),
])
def test_an_unknown_key_or_preset_is_named_with_the_closest_one(override, message):
    with pytest.raises(ConfigError) as e:
        compose([override])
    assert str(e.value).startswith(message)


@pytest.mark.parametrize(("override", "pattern"), [
    ("render.near=-1", r"render\.near/far must satisfy 0 < near < far"),
    ("render.camera.hfov_deg=200", r"render\.camera\.hfov_deg must be within \(0, 180\)"),
    ("control.action_model=walk", r"control\.action_model must be one of fly, ground, discrete, robot, got 'walk'"),
    ("world.time_mode=rewind", r"world\.time_mode must be one of"),
    ("recon.mvs.window=4", r"recon\.mvs\.window must be odd"),
    ("recon.mapper=magic", r"recon\.mapper must be"),
    ("recon.dynamic.flow_preset=slow", r"recon\.dynamic\.flow_preset must be one of"),
    ("ros.depth_no_data=inf", r"ros\.depth_no_data must be one of nan, zero"),
    ("ros.bench.seconds=0", r"ros\.bench\.seconds must be > 0"),
    ("bench.env.batch_sizes=[]", r"bench\.env\.batch_sizes must be a non-empty list"),
    ("scene.oracle.supersample=2", r"scene\.oracle\.supersample must be an odd integer"),
    ("device=gpu", r"device 'gpu' is not a torch device"),
])
def test_every_section_is_validated_at_compose_time(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        compose([override])


def test_malformed_overrides_are_one_line_errors():
    with pytest.raises(ConfigError, match="key=value"):
        compose(["render.near"])
    with pytest.raises(ConfigError, match="must be quoted"):
        compose(["recon.intrinsics=500,500,320,240"])
    with pytest.raises(ConfigError, match="fixed by the schema"):
        compose(["++render.near=1"])


def test_compose_returns_typed_sections_that_refuse_bad_assignments():
    cfg = compose(["scene=tiny", "render.camera.width=96", "recon.mvs.num_planes=32", "recon.intrinsics='1,2,3,4'"])
    assert OmegaConf.get_type(cfg) is InSpatioConfig and OmegaConf.get_type(cfg.render) is RenderSection
    assert OmegaConf.get_type(cfg.render.camera) is CameraConfig
    assert cfg.render.camera.width == 96 and cfg.recon.mvs.num_planes == 32 and cfg.recon.intrinsics == "1,2,3,4"
    assert (cfg.scene.oracle.num_frames, cfg.scene.oracle.width, cfg.scene.oracle.height) == (12, 96, 72)
    with pytest.raises(ValidationError):
        cfg.render.camera.width = "abc"
    assert to_dataclass(RenderConfig, cfg.render, "render") == RenderConfig()
    assert to_dataclass(CameraConfig, cfg.render.camera, "render.camera").width == 96


def test_defaults_come_from_the_dataclasses_and_presets_only_hold_differences():
    cfg = OmegaConf.to_object(compose([]))
    assert cfg == InSpatioConfig()  # the default preset (room) changes nothing
    tree = config_dir()
    assert set(OmegaConf.load(tree / "config.yaml")) == {"defaults"}
    assert {p.relative_to(tree).as_posix() for p in tree.rglob("*.yaml")} == {
        "config.yaml", "scene/room.yaml", "scene/courtyard.yaml", "scene/plain.yaml", "scene/small.yaml",
        "scene/tiny.yaml"}
    keys = schema_keys()
    for preset in tree.glob("scene/*.yaml"):
        leaves = list(leaf_keys(OmegaConf.to_container(OmegaConf.load(preset)), "scene."))
        assert leaves and all(k in keys for k in leaves), preset


@pytest.mark.parametrize(("command", "extra"), [
    ("config", []), ("world", []), ("oracle", []), ("demo", []), ("ros", []), ("record", ["--bag", "x.mcap"]),
    ("bench", ["env"]), ("reconstruct", ["clip.mp4", "-o", "OUT"]),
])
def test_every_command_refuses_a_bad_value_in_one_line(command, extra, tmp_path, capsys):
    extra = [str(tmp_path / "out") if a == "OUT" else a for a in extra]
    assert main([command, *extra, "render.camera.width=abc"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "inspatio-sim: error: render.camera.width=abc: expected an integer"
    assert not (tmp_path / "out").exists()


def test_cli_config_prints_the_value_or_refuses_it(capsys):
    assert main(["config", "render.camera.width=200"]) == 0
    assert "width: 200" in capsys.readouterr().out
    assert main(["config", "nonsense"]) == 2
    assert "unexpected argument(s) nonsense" in capsys.readouterr().err


@dataclass
class _Documented:
    """A test class.

    Attributes:
        plain: From the docstring,
            continued on a second line.
        both: Docstring text that the inline comment overrides.
        a, b: Shared entry.
    """

    plain: int = 1
    both: float = 2.0  # inline wins
    a: int = 0
    b: int = 0
    inline_only: list[int] = field(default_factory=list)  # a ``list`` of :class:`~x.y.Thing`; None is fine
    missing: str = ""


def test_field_docs_come_from_inline_comments_or_the_attributes_section():
    assert field_doc(_Documented, "plain") == "From the docstring, continued on a second line."
    assert field_doc(_Documented, "both") == "inline wins"
    assert field_doc(_Documented, "a") == field_doc(_Documented, "b") == "Shared entry."
    assert field_doc(_Documented, "inline_only") == "a `list` of `Thing`; None is fine"
    assert field_doc(_Documented, "missing") == ""
    sub = dataclasses.make_dataclass("Sub", [("z", int, 0)], bases=(_Documented,))
    assert field_doc(sub, "both") == "inline wins"


def test_type_names():
    assert type_name(int) == "an integer" and type_name(float | None) == "a number or null"
    assert type_name(list[float]) == "a list of numbers" and type_name(bool) == "true or false"


def test_every_schema_key_has_a_doc_and_a_row_with_its_default_in_the_readme():
    rows = describe_keys()
    undocumented = [k for k, _, doc in rows if not doc.strip()]
    assert not undocumented, f"schema keys without a doc (add a # comment or an Attributes entry): {undocumented}"
    values = [k for k, v in schema_keys().items() if not v.is_node]
    assert [k for k, _, _ in rows[1:]] == values
    readme = (ROOT / "README.md").read_text()
    table = dict(re.findall(r"^\| `([^`]+)` \| `([^`]*)` \|", readme, flags=re.M))
    stale = [(k, v, table.get(k)) for k, v, _ in rows if table.get(k) != v]
    assert not stale, ("README's key table is stale (regenerate it with `inspatio-sim config --keys`): "
                       f"(key, default, README) {stale}")


def test_config_dir_env_points_at_another_tree(tmp_path, monkeypatch):
    tree = tmp_path / "configs"
    shutil.copytree(config_dir(), tree)
    (tree / "scene" / "wide.yaml").write_text("oracle:\n  width: 400\n")
    (tree / "scene" / "typo.yaml").write_text("oracle:\n  widht: 400\n")
    (tree / "scene" / "text.yaml").write_text("oracle:\n  width: wide\n")
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tree))
    assert compose(["scene=wide"]).scene.oracle.width == 400
    with pytest.raises(ConfigError, match=r"unknown configuration key 'scene\.oracle\.widht'; did you mean "
                                          r"'scene\.oracle\.width'\? \(in the config tree "):
        compose(["scene=typo"])
    with pytest.raises(ConfigError, match=r"^scene\.oracle\.width in the config tree .*: expected an integer$"):
        compose(["scene=text"])
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=f"config tree not found.*{CONFIG_DIR_ENV}"):
        compose([])


def test_composing_loads_neither_gymnasium_nor_rclpy_nor_pycolmap():
    code = ("import sys, types; from inspatio_sim.config import compose; compose(['scene=tiny']); "
            "loaded = [m for m in ('gymnasium', 'rclpy', 'pycolmap', 'envs') "
            "if type(sys.modules.get(m)) is types.ModuleType]; print(loaded)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_a_non_editable_install_composes_its_config_and_prints_help(tmp_path):
    src = tmp_path / "src"  # a copy, so the build writes nothing into the repository
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for package in ("inspatio_sim", "envs", "policies"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(src)], check=True, capture_output=True, cwd=tmp_path)
    assert (target / "inspatio_sim" / "configs" / "scene" / "tiny.yaml").is_file()
    assert (target / "inspatio_sim" / "py.typed").is_file()
    env = {k: v for k, v in os.environ.items() if k != CONFIG_DIR_ENV} | {"PYTHONPATH": str(target)}
    run = [str(target / "bin" / "inspatio-sim")]  # the console script, run by this interpreter (its shebang)
    out = subprocess.run([*run, "config", "scene=tiny"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert "width: 96" in out.stdout
    where = subprocess.run([sys.executable, "-c", "import inspatio_sim; print(inspatio_sim.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, env=env, check=True).stdout
    assert Path(where.strip()).is_relative_to(target)
    help_ = subprocess.run([*run, "--help"], capture_output=True, text=True, cwd=tmp_path, env=env, check=True)
    assert re.search(r"render\.camera\.width +128 +output image width in pixels", help_.stdout)


UNDECLARED_OK = {"tf2_msgs": "no PyPI wheel; imported in a try block, /tf is skipped without it"}


def test_every_third_party_import_is_declared_in_pyproject():
    import ast
    import importlib.metadata

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]

    def norm(name):
        return re.sub(r"[-_.]+", "-", name).lower()

    declared = {norm(re.match(r"[A-Za-z0-9_.\-]+", r)[0]) for r in requirements}
    own = {"inspatio_sim", "envs", "policies"}
    imported = set()
    for package in own:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    imported |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    imported.add(node.module.split(".")[0])
    third_party = imported - own - set(sys.stdlib_module_names) - set(UNDECLARED_OK)
    dists = importlib.metadata.packages_distributions()
    missing = {m: dists.get(m) for m in third_party if not {norm(d) for d in dists.get(m, [])} & declared}
    assert not missing, f"imported but not declared in pyproject.toml (module: installed distributions): {missing}"
