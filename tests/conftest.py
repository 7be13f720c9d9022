"""Shared fixtures. No test can reach a real model: keys are removed, user paths point at tmp, and
sockets may only connect to loopback addresses (servers the tests start themselves)."""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

# CI explores the same examples on every run, so a landing never depends on the draw; locally
# each run draws new ones (and a failure prints the example to reproduce it).
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"

_GUARD = "tests may only reach loopback hosts (127.0.0.0/8, ::1)"


def _loopback_ip(host: str) -> bool | None:
    """True or False for an IP literal, None for a host name."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _allowed(host: str) -> bool:
    """A loopback IP literal, or `localhost` (which resolves without leaving the machine)."""
    loopback = _loopback_ip(host)
    if loopback is not None:
        return loopback
    name = host.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


def _guard_connect(real: Callable[..., Any]) -> Callable[..., Any]:
    def connect(self: socket.socket, address: Any, *args: Any, **kwargs: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = str(address[0])
            if not _allowed(host):
                # An OSError subclass, so clients (httpx, openai) report a connection error.
                raise ConnectionRefusedError(
                    errno.ECONNREFUSED, f"{_GUARD}: refused a connection to {host}:{address[1]}"
                )
        return real(self, address, *args, **kwargs)

    return connect


def _guard_getaddrinfo(real: Callable[..., Any]) -> Callable[..., Any]:
    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        # IP literals resolve without the network (connect refuses non-loopback ones); a name
        # other than localhost would be a DNS query, so it fails like an unknown host.
        if name and _loopback_ip(name) is None and not _allowed(name):
            raise socket.gaierror(socket.EAI_NONAME, f"{_GUARD}: refused to resolve {name!r}")
        return real(host, *args, **kwargs)

    return getaddrinfo


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse every connection and name lookup outside loopback, so no test reaches a model."""
    monkeypatch.setattr(socket.socket, "connect", _guard_connect(socket.socket.connect))
    monkeypatch.setattr(socket.socket, "connect_ex", _guard_connect(socket.socket.connect_ex))
    monkeypatch.setattr(socket, "getaddrinfo", _guard_getaddrinfo(socket.getaddrinfo))


@pytest.fixture(autouse=True)
def _isolate(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Remove real keys and endpoints; send cache and settings to a temp folder."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)
    keep = {"SOPC_UPDATE_GOLDEN"}
    for name in [n for n in os.environ if n.startswith("SOPC_") and n not in keep]:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("SOPC_CACHE_DIR", str(home / "cache"))
    monkeypatch.setenv("NO_COLOR", "1")
    # Importing the emitted network costs ~1.5 s a compile; tests/test_hostile_import.py turns
    # the check back on (a user can also set `check_import = false`).
    monkeypatch.setenv("SOPC_CHECK_IMPORT", "false")
