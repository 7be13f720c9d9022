"""Settings: where paths are relative to, who gets blamed for a bad value, agent grouping."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sop_compiler.cli import app
from sop_compiler.config import AgentSettings, Settings, agent_group_for, load_settings
from sop_compiler.errors import ConfigError


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder with a sopc.toml, and a cwd somewhere else entirely."""
    root = tmp_path / "project"
    (root / "sops").mkdir(parents=True)
    (root / "sopc.toml").write_text(
        'output = "build/routines"\ntools = "catalog/tools.yaml"\ncache_dir = "cache"\njobs = 2\n',
        encoding="utf-8",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return root


def test_file_paths_are_relative_to_the_settings_file(project: Path) -> None:
    settings = load_settings(project / "sops", environ={})
    assert settings.output == project / "build/routines"
    assert settings.tools == project / "catalog/tools.yaml"
    assert settings.cache_dir == project / "cache"


def test_command_line_paths_stay_relative_to_the_cwd(project: Path) -> None:
    settings = load_settings(
        project / "sops",
        overrides={"tools": Path("mytools.yaml"), "output": Path("out")},
        environ={},
    )
    assert settings.tools == Path("mytools.yaml")
    assert settings.output == Path("out")
    assert settings.cache_dir == project / "cache"  # still from the file


def test_environment_paths_stay_relative_to_the_cwd(project: Path) -> None:
    settings = load_settings(
        project / "sops", environ={"SOPC_OUTPUT": "env-out", "SOPC_CACHE_DIR": "env-cache"}
    )
    assert settings.output == Path("env-out")
    assert settings.cache_dir == Path("env-cache")
    assert settings.tools == project / "catalog/tools.yaml"


def test_pyproject_tool_sopc_paths_are_relative_to_pyproject(tmp_path: Path) -> None:
    (tmp_path / "sops").mkdir()
    (tmp_path / "pyproject.toml").write_text('[tool.sopc]\noutput = "gen"\n', encoding="utf-8")
    assert load_settings(tmp_path / "sops", environ={}).output == tmp_path / "gen"


def test_absolute_file_paths_are_kept(tmp_path: Path) -> None:
    target = tmp_path / "abs-out"
    (tmp_path / "sopc.toml").write_text(f"output = {str(target)!r}\n", encoding="utf-8")
    assert load_settings(tmp_path, environ={}).output == target


def test_bad_environment_value_names_the_variable_not_the_file(project: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(project / "sops", environ={"SOPC_JOBS": "abc"})
    message = str(caught.value)
    assert "SOPC_JOBS" in message
    assert "sopc.toml" not in message


def test_bad_command_line_value_names_the_option(project: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(project / "sops", overrides={"jobs": 1000}, environ={"SOPC_JOBS": "3"})
    message = str(caught.value)
    assert "--jobs" in message
    assert "sopc.toml" not in message and "SOPC_JOBS" not in message


def test_bad_file_value_names_the_file_and_setting(tmp_path: Path) -> None:
    (tmp_path / "sopc.toml").write_text('jobs = "many"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path, environ={})
    assert caught.value.path == str(tmp_path / "sopc.toml")
    assert "jobs" in caught.value.message


@pytest.mark.parametrize("url", ["localhost:9/v1", "ftp://example.com/v1", "http://", "127.0.0.1"])
def test_base_url_without_http_scheme_is_rejected(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(Path.cwd(), overrides={"base_url": url}, environ={})
    assert "--base-url" in str(caught.value)
    assert "http://" in str(caught.value)


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/v1", "HTTPS://api.example.com/v1"])
def test_http_base_urls_are_accepted(url: str) -> None:
    assert Settings(base_url=url).base_url == url


def test_base_url_in_settings_file_is_checked(tmp_path: Path) -> None:
    (tmp_path / "sopc.toml").write_text('base_url = "localhost:8000"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path, environ={})
    assert caught.value.path == str(tmp_path / "sopc.toml")
    assert "base_url" in caught.value.message


def test_cli_rejects_base_url_without_scheme_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Refunds\n\n1. Check the order.\n", encoding="utf-8")
    result = CliRunner().invoke(
        app,
        ["compile", str(tmp_path), "-o", str(tmp_path / "out"), "--base-url", "localhost:9/v1"],
    )
    assert result.exit_code == 2, result.output
    assert "--base-url" in result.output
    assert not (tmp_path / "out").exists()


def _groups(**include: list[str]) -> Settings:
    return Settings(agents={name: AgentSettings(include=pats) for name, pats in include.items()})


def test_agent_group_for_matches_globs_relative_to_the_sop_folder() -> None:
    settings = _groups(billing=["finance/*.pdf", "billing/**"], shipping=["logistics/"])
    assert agent_group_for("finance/refunds.pdf", settings) == "billing"
    assert agent_group_for("billing/deep/nested/x.md", settings) == "billing"
    assert agent_group_for("logistics/returns/label.docx", settings) == "shipping"
    # `*` stays within one folder; other suffixes and folders are not matched
    assert agent_group_for("finance/old/refunds.pdf", settings) is None
    assert agent_group_for("finance/refunds.docx", settings) is None
    assert agent_group_for("general.md", settings) is None


def test_agent_group_for_double_star_prefix_and_character_classes() -> None:
    settings = _groups(scans=["**/scan-[0-9].png"], others=["[!a]*.txt"])
    assert agent_group_for("scan-1.png", settings) == "scans"
    assert agent_group_for("a/b/scan-7.png", settings) == "scans"
    assert agent_group_for("a/b/scan-x.png", settings) is None
    assert agent_group_for("notes.txt", settings) == "others"
    assert agent_group_for("about.txt", settings) is None
    assert agent_group_for("x/notes.txt", settings) is None


def test_agent_group_for_first_group_by_name_wins() -> None:
    # declared in the "wrong" order on purpose: the answer must not depend on it
    settings = Settings(
        agents={
            "zeta": AgentSettings(include=["shared/*"]),
            "alpha": AgentSettings(include=["shared/*.md"]),
        }
    )
    assert agent_group_for("shared/a.md", settings) == "alpha"
    assert agent_group_for("shared/a.pdf", settings) == "zeta"


def test_agent_group_for_without_includes_is_none() -> None:
    settings = Settings(agents={"billing": AgentSettings(name="Billing Desk")})
    assert agent_group_for("billing/refunds.pdf", settings) is None


def test_agent_groups_from_the_settings_file(tmp_path: Path) -> None:
    (tmp_path / "sopc.toml").write_text(
        '[agents.billing]\nname = "Billing"\ninclude = ["finance/*.pdf"]\n', encoding="utf-8"
    )
    settings = load_settings(tmp_path, environ={})
    assert agent_group_for("finance/refunds.pdf", settings) == "billing"


@pytest.mark.parametrize("pattern", ["/etc/*.pdf", "../other/*.md", "a/../../b", ""])
def test_include_patterns_must_be_relative(tmp_path: Path, pattern: str) -> None:
    (tmp_path / "sopc.toml").write_text(
        f"[agents.billing]\ninclude = [{pattern!r}]\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path, environ={})
    assert "agents.billing.include" in caught.value.message
    assert "relative to the SOP folder" in caught.value.message


def test_version_comes_from_the_installed_metadata() -> None:
    # pyproject.toml is the one place the version is written: a different installed version
    # must show through, not a second copy in the package
    code = (
        "import importlib.metadata as m; m.version = lambda name: '9.8.7'; "
        "import sop_compiler; print(sop_compiler.__version__)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "9.8.7"


def test_import_does_not_load_importlib_metadata() -> None:
    code = "import sys, sop_compiler; print('importlib.metadata' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
