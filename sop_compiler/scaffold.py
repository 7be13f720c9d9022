"""`sopc init`: the files a new project starts from, written once and never overwritten.

sopc.toml, a starter tool catalog in the SOP folder, the `.gitignore` lines for what sopc keeps
beside its outputs, and a GitHub Actions workflow that checks the outputs on pull requests.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from sop_compiler.errors import ConfigError, OutputError
from sop_compiler.files import replace_file

__all__ = ["init_project"]

_STARTER = Path(__file__).resolve().parent / "starter"
_FOLDER = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.\-/]*")


def _folder(name: str, what: str) -> str:
    """A relative folder name as sopc.toml and the workflow may quote it unescaped."""
    clean = name.strip().rstrip("/")
    path = PurePosixPath(clean)
    if not _FOLDER.fullmatch(clean) or path.is_absolute() or ".." in path.parts:
        raise ConfigError(
            f"{what} must be a relative folder of letters, digits, `_`, `-`, `.` and `/`, "
            f"not {name!r}"
        )
    return clean


def init_project(
    folder: Path, *, sops: str = "sops", output: str = "generated_routines"
) -> list[str]:
    """Write the starter files into `folder`; one line per file says what was done.

    Existing files are kept as they are (`.gitignore` gets only the lines it lacks).
    """
    sops = _folder(sops, "--sops")
    output = _folder(output, "--output")
    if sops == output:
        raise ConfigError("the SOP folder and the output folder must differ")

    def fill(name: str) -> bytes:
        text = (_STARTER / name).read_text(encoding="utf-8")
        return text.replace("@SOPS@", sops).replace("@OUTPUT@", output).encode()

    lines: list[str] = []
    for rel, data in (
        ("sopc.toml", fill("sopc.toml")),
        (f"{sops}/tools.yaml", fill("tools.yaml")),
        (".github/workflows/sopc.yml", fill("sopc-workflow.yml")),
    ):
        path = folder / rel
        if path.exists():
            lines.append(f"kept {rel} (it exists)")
            continue
        _write(path, data)
        lines.append(f"wrote {rel}")
    lines.append(_gitignore(folder / ".gitignore", [f"{output}/.sopc-run.lock"]))
    lines.append(
        f"next: put SOP files in {sops}/ (one folder per agent), edit {sops}/tools.yaml, then "
        f"run: sopc compile {sops} -o {output}"
    )
    return lines


def _gitignore(path: Path, wanted: list[str]) -> str:
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise OutputError(f"cannot read .gitignore: {exc}", path=path) from None
    have = {line.strip() for line in text.splitlines()}
    missing = [line for line in wanted if line not in have]
    if not missing:
        return "kept .gitignore (it has sopc's lines)"
    head = text if not text or text.endswith("\n") else text + "\n"
    added = "# sopc: the run lock in the output folder\n" + "\n".join(missing) + "\n"
    _write(path, (head + added).encode())
    return f"{'added to' if text else 'wrote'} .gitignore: {', '.join(missing)}"


def _write(path: Path, data: bytes) -> None:
    try:
        replace_file(path, data)
    except OSError as exc:
        raise OutputError(f"cannot write: {exc.strerror or exc}", path=path) from None
