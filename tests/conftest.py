"""Shared fixtures. No test can reach a real model: keys are removed and user paths point at tmp."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(autouse=True)
def _isolate(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Remove real keys and endpoints; send cache and settings to a temp folder."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)
    keep = {"SOPC_UPDATE_GOLDEN"}
    for name in [n for n in __import__("os").environ if n.startswith("SOPC_") and n not in keep]:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("SOPC_CACHE_DIR", str(home / "cache"))
    monkeypatch.setenv("NO_COLOR", "1")
