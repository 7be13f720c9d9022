"""The emitted network, imported in a fresh interpreter before a run reports success.

Compiling each file (pipeline) catches syntax; only an import catches a name that does not
resolve, an SDK call the installed openai-agents rejects, or a value Python cannot load. It costs
about a second and a half (the SDK's own import), so it runs only when a run (re)wrote files of
`agent_network/`, never on the no-op path.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

__all__ = ["can_import", "check_import"]

_PACKAGE = "agent_network"
_CODE = (
    "import sys; sys.path.insert(0, sys.argv[1]); sys.dont_write_bytecode = True; "
    f"import {_PACKAGE}"
)
# the last traceback frame inside the package names the file at fault
_FRAME = re.compile(r'File "([^"]*' + _PACKAGE + r'[/\\][^"]+\.py)", line (\d+)')


def can_import() -> bool:
    """False when openai-agents is not installed: the network cannot be imported here at all
    (the environment, not the emitted code, is the reason)."""
    return importlib.util.find_spec("agents") is not None


def check_import(out: Path, *, timeout: float = 60.0) -> str | None:
    """Import `out/agent_network` in a subprocess; a one-line error naming the file, or None."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CODE, str(out)],
            cwd=out,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"{_PACKAGE}/__init__.py: importing the package took over {timeout:g}s"
    except OSError as exc:
        return f"{_PACKAGE}/__init__.py: could not start Python to import it ({exc})"
    if done.returncode == 0:
        return None
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    frames = [match for line in lines if (match := _FRAME.search(line))]
    where = "__init__.py"
    if frames:
        path, line = frames[-1].groups()
        where = f"{Path(path).name}, line {line}"
    last = " ".join(lines[-1].split())[:300] if lines else f"exit code {done.returncode}"
    return f"{_PACKAGE}/{where}: the emitted package does not import ({last})"
