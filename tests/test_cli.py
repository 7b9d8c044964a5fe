import re
import subprocess
import sys

import pytest

from inspatio_sim.cli import main
from inspatio_sim.config import compose, describe_keys
from inspatio_sim.errors import ConfigError
from tests.helpers import leaf_keys


def test_help_lists_every_config_key(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for key, _, _ in describe_keys():
        assert key in text
    for key in ("render.lod_target_px", "world.time_mode", "scene.oracle.preset", "device"):
        assert key in text


def test_every_leaf_key_of_the_composed_config_is_documented():
    from omegaconf import OmegaConf

    documented = {k for k, _, _ in describe_keys()}
    cfg = OmegaConf.to_container(compose([]))
    missing = sorted(set(leaf_keys(cfg)) - documented)
    assert not missing, f"undocumented config keys: {missing}"


def test_overrides_compose_and_unknown_keys_fail():
    cfg = compose(["scene=courtyard", "render.near=0.2", "world.time_mode=pingpong"])
    assert cfg.scene.oracle.preset == "courtyard" and cfg.render.near == 0.2 and cfg.world.time_mode == "pingpong"
    with pytest.raises(ConfigError, match=r"render\.nope"):
        compose(["render.nope=1"])
    with pytest.raises(ConfigError, match="key=value"):
        compose(["render.near"])


def test_cli_reports_user_errors_without_traceback(capsys):
    assert main(["config", "world.bogus=1"]) == 2
    err = capsys.readouterr().err
    assert "inspatio-sim: error:" in err and "Traceback" not in err
    assert main(["world", "scene.path=/nonexistent/scene"]) == 2
    assert "no Scene at" in capsys.readouterr().err


def test_console_script_runs_config(tmp_path):
    out = subprocess.run([sys.executable, "-m", "inspatio_sim.cli", "config", "scene=tiny"], capture_output=True,
                         text=True, check=True)
    assert "width: 96" in out.stdout


def test_oracle_and_world_commands(tmp_path, capsys):
    assert main(["oracle", "scene=tiny", "-o", str(tmp_path / "s")]) == 0
    assert (tmp_path / "s" / "scene.npz").exists()
    capsys.readouterr()
    assert main(["world", f"scene.path={tmp_path / 's'}"]) == 0
    text = capsys.readouterr().out
    assert "static layer" in text
    assert re.search(r"ground plane: +normal \(-?0\.0\d\d, -?0\.0\d\d, 1\.000\), height of origin -?0\.0", text)


def test_readme_documents_every_config_key_and_command():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    missing = [k for k, _, _ in describe_keys() if not k.startswith("(") and f"`{k}`" not in readme]
    assert not missing, f"README lacks config keys: {missing}"
    for command in ("make demo", "make test", "inspatio-sim oracle", "inspatio-sim world", "inspatio-sim demo",
                    "inspatio-sim bench render", "inspatio-sim config"):
        assert command in readme
