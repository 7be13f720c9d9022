"""Hostile and broken SOP files, seen as a user sees them: through `sopc compile` on a folder.

One folder holds a good SOP beside every kind of bad file (issue 6). Each bad file must give one
clear line naming it and the problem, leave no output of its own, and not stop the good SOP; odd
but readable files (a lying suffix, legacy encodings, a scan) compile with a note. Nothing in the
folder may make sopc open a connection or start a process.
"""

from __future__ import annotations

import io
import json
import socket
import subprocess
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docx_factory
import pdf_factory
import pytest
from typer.testing import CliRunner

from sop_compiler.cli import app

REPO = Path(__file__).resolve().parents[1]
HOSTILE = Path(__file__).resolve().parent / "data" / "hostile"
CATALOG = REPO / "sample_sops" / "tools.yaml"

GOOD = """# Refunds

## Issue a refund

1. Ask the customer for the order number.
2. Look up the order with `lookup_order`.
3. If the order is older than 30 days, escalate to the billing team.
4. Otherwise, issue the refund with `issue_refund`.
"""

LATIN1 = "Remboursement\n\n1. Demandez le num\xe9ro de commande \xe0 la cliente.\n"
LOOPS = ("self-loop.md", "ping.md", "pong.md")
SECRET_OUTSIDE = "root:x:0:0:OUTSIDE-SECRET:/root:/bin/bash"


def _zip_bomb(megabytes: int) -> bytes:
    """A small zip whose main part inflates to `megabytes` MiB of zeros."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            for _ in range(megabytes):
                member.write(bytes(1 << 20))
    return buffer.getvalue()


def _docx_with_macros_and_remote_template() -> bytes:
    template = (
        '<Relationship Id="rIdT" TargetMode="External" Target="http://127.0.0.1:9/t.dotm" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
        'attachedTemplate"/>'
    )
    base = docx_factory.sop_docx(1)
    rels = zipfile.ZipFile(io.BytesIO(base)).read("word/_rels/document.xml.rels").decode()
    return docx_factory.with_extra_parts(
        base,
        {"word/vbaProject.bin": b'\xd0\xcf\x11\xe0 Sub AutoOpen(): Shell "rm -rf /": End Sub'},
        {
            "word/_rels/document.xml.rels": rels.replace(
                "</Relationships>", template + "</Relationships>"
            )
        },
    )


# source -> what the one line says about it (the file is unreadable; exit code 4)
UNREADABLE = {
    "billing/zero.md": "file is empty",
    "billing/blank.txt": "file is empty",
    "billing/binary.md": "binary data",
    "billing/nul-heading.md": "binary data",
    "billing/truncated.pdf": "truncated",
    "billing/corrupt.pdf": "not a readable PDF",
    "billing/encrypted.pdf": "a password is needed",
    "billing/long.pdf": "limits.max_pages",
    "billing/not-a-zip.docx": "not a zip",
    "billing/bomb.docx": "zip bomb",
    "billing/huge.txt": "limits.max_file_mb",
}

# source -> what its note says (the file compiles)
NOTED = {
    "billing/pdf-named.txt": "named .txt but the content is pdf",
    "billing/docx-named.md": "named .md but the content is docx",
    "billing/html-named.txt": "named .txt but the content is html",
    "billing/latin1.txt": "decoded as cp1252",
    "billing/mixed.txt": "invalid byte(s) replaced",
    "billing/scanned.pdf": "scanned image without a text layer",
    "billing/macros.docx": "macros were ignored (never run)",
    "billing/scripts.html": "(never run, fetched or shown)",
}

# readable files that need no note, with a phrase the routine must keep
READABLE = {
    "billing/utf16.txt": "order number \u2014 always",
    "billing/raw-html.md": "invoice number",
    "billing/good.md": "order number",
}


def build_folder(sops: Path) -> None:
    """The SOP folder: a good SOP, every bad file, symlinks out and in loops; limits lowered."""
    billing = sops / "billing"
    billing.mkdir(parents=True)
    (sops / "tools.yaml").write_bytes(CATALOG.read_bytes())
    (sops / "sopc.toml").write_text(
        'ocr = "off"\n\n[limits]\nmax_pages = 3\nmax_file_mb = 1\nmax_unzipped_mb = 20\n'
    )
    files: dict[str, bytes] = {
        "good.md": GOOD.encode(),
        "zero.md": b"",
        "blank.txt": b"  \n\t\n \r\n\xc2\xa0\n",
        "binary.md": bytes(range(256)) * 8,
        "nul-heading.md": b"# Refunds\n\n## Re\x00fund\n\n1. Ask for the order number.\n",
        "truncated.pdf": pdf_factory.header_footer()[:3000],
        "corrupt.pdf": b"%PDF-1.7\n" + b"\x00garbage" * 50,
        "encrypted.pdf": pdf_factory.encrypted(),
        "long.pdf": pdf_factory.header_footer(pages=4),
        "not-a-zip.docx": b"This is plain text pretending to be a Word file.\n" * 3,
        "bomb.docx": _zip_bomb(30),
        "huge.txt": b"1. Ask the customer for the order number.\n" * 40_000,
        "pdf-named.txt": pdf_factory.numbered_steps(),
        "docx-named.md": docx_factory.sop_docx(1),
        "html-named.txt": (
            b"<!DOCTYPE html><html><body><h1>Exchanges</h1><ol>"
            b"<li>Ask the customer for the order number.</li></ol></body></html>"
        ),
        "latin1.txt": LATIN1.encode("latin-1"),
        "utf16.txt": "Refunds\n\n1. Ask for the order number \u2014 always.\n".encode("utf-16"),
        "mixed.txt": "Caf\u00e9 refunds\n\n1. Ask for the order number.\n".encode()
        + "2. Na\xefve customers get a call back.\n".encode("latin-1"),
        "scanned.pdf": pdf_factory.scanned_page(),
        "macros.docx": _docx_with_macros_and_remote_template(),
        "scripts.html": (HOSTILE / "scripts.html").read_bytes(),
        "raw-html.md": (HOSTILE / "raw-html.md").read_bytes(),
    }
    for name, data in files.items():
        (billing / name).write_bytes(data)
    outside = sops.parent / "outside"
    outside.mkdir()
    (outside / "passwd.md").write_text(f"{SECRET_OUTSIDE}\n\n1. Read the outside secret.\n")
    (billing / "passwd.md").symlink_to(outside / "passwd.md")
    (billing / "etc").symlink_to(outside, target_is_directory=True)
    (billing / "loop").symlink_to(billing, target_is_directory=True)
    (billing / "self-loop.md").symlink_to(billing / "self-loop.md")
    (billing / "ping.md").symlink_to(billing / "pong.md")
    (billing / "pong.md").symlink_to(billing / "ping.md")


@dataclass
class Run:
    """One `sopc compile` of the hostile folder, with what it tried to reach."""

    sops: Path
    out: Path
    exit_code: int
    stdout: str
    stderr: str
    connects: list[object] = field(default_factory=list)
    spawned: list[object] = field(default_factory=list)
    imported: bool = False

    def lines(self, prefix: str, source: str) -> list[str]:
        """stdout lines that start with `prefix` and name `source`."""
        return [line for line in self.stdout.splitlines() if line.startswith(f"{prefix}{source}:")]

    def routines(self) -> dict[str, list[dict[str, object]]]:
        """SOP source -> the routine JSON files made from it."""
        found: dict[str, list[dict[str, object]]] = {}
        for path in sorted((self.out / "routines").rglob("*.json")):
            routine = json.loads(path.read_text())
            found.setdefault(routine["source"]["file"], []).append(routine)
        return found

    def all_output_text(self) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in sorted(self.out.rglob("*")) if p.is_file()
        )


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    root = tmp_path_factory.mktemp("hostile")
    sops, out = root / "sops", root / "out"
    build_folder(sops)
    run = Run(sops=sops, out=out, exit_code=-1, stdout="", stderr="")
    real_execute = subprocess.Popen._execute_child  # type: ignore[attr-defined]

    def no_connect(sock: socket.socket, address: object) -> None:
        run.connects.append(address)
        raise OSError("tests forbid network access")

    def no_spawn(self: subprocess.Popen[bytes], args: object, *rest: object) -> None:
        if isinstance(args, list) and args[-1:] == [str(out)] and "import agent_network" in args[2]:
            # the one process sopc starts: its own emitted package, imported to check it (and
            # run.imported says it did: the network of hostile SOPs must import too)
            run.imported = True
            return real_execute(self, args, *rest)  # type: ignore[no-any-return]
        run.spawned.append(args)
        raise OSError("tests forbid starting processes")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", no_connect)
        mp.setattr(socket.socket, "connect_ex", no_connect)
        mp.setattr(socket, "getaddrinfo", lambda *a, **k: run.connects.append(a) or [])
        mp.setattr(subprocess.Popen, "_execute_child", no_spawn)
        for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "SOPC_CHECK_IMPORT"):
            mp.delenv(name, raising=False)
        mp.setenv("SOPC_CACHE_DIR", str(root / "cache"))
        mp.setenv("NO_COLOR", "1")
        result = CliRunner().invoke(app, ["compile", str(sops), "-o", str(out)])
    assert subprocess.Popen._execute_child is real_execute  # type: ignore[attr-defined]
    run.exit_code, run.stdout, run.stderr = result.exit_code, result.stdout, result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    yield run


def test_the_good_sop_still_compiles_and_the_run_exits_4(hostile: Run) -> None:
    assert hostile.exit_code == 4, hostile.stdout
    (good,) = hostile.routines()["billing/good.md"]
    tools = {step["tool_call"]["tool"] for step in good["steps"] if step.get("tool_call")}  # type: ignore[union-attr]
    assert "lookup_order" in tools
    assert "Traceback" not in hostile.stdout + hostile.stderr
    # the file symlink loops are unreadable too (named, never followed)
    assert f"{len(UNREADABLE) + len(LOOPS)} unreadable" in hostile.stdout


@pytest.mark.parametrize(("source", "problem"), sorted(UNREADABLE.items()))
def test_bad_file_gives_one_line_and_no_output(hostile: Run, source: str, problem: str) -> None:
    (line,) = hostile.lines("unreadable: ", source)
    assert problem in line
    assert source not in hostile.routines()
    lock = json.loads((hostile.out / "sopc.lock").read_text())
    assert problem in lock["sops"][source]["error"] and not lock["sops"][source]["procedures"]
    stem = source.rpartition("/")[2].rpartition(".")[0]
    assert not [p for p in hostile.out.rglob(f"{stem}*")], "partial output of a bad file"


@pytest.mark.parametrize(("source", "note"), sorted(NOTED.items()))
def test_odd_file_compiles_with_a_note(hostile: Run, source: str, note: str) -> None:
    assert any(note in line for line in hostile.lines("note: ", source)), hostile.stdout
    assert hostile.routines()[source], f"{source} gave no routine"
    assert not hostile.lines("unreadable: ", source)


@pytest.mark.parametrize(("source", "phrase"), sorted(READABLE.items()))
def test_readable_file_keeps_its_text(hostile: Run, source: str, phrase: str) -> None:
    (routine,) = hostile.routines()[source]
    assert phrase in json.dumps(routine, ensure_ascii=False)
    assert not hostile.lines("unreadable: ", source)


def test_latin1_text_is_decoded_not_mangled(hostile: Run) -> None:
    (routine,) = hostile.routines()["billing/latin1.txt"]
    assert "numéro de commande à la cliente" in json.dumps(routine, ensure_ascii=False)


def test_scanned_pdf_is_a_note_not_an_error(hostile: Run) -> None:
    (line,) = hostile.lines("note: ", "billing/scanned.pdf")
    assert "page 2" in line and "not read" in line


def test_nothing_is_fetched_or_run(hostile: Run) -> None:
    assert hostile.connects == []
    assert hostile.spawned == []
    assert hostile.imported  # the emitted network was imported, in a process of its own
    text = hostile.all_output_text()
    for marker in (
        "127.0.0.1:9",
        "document.cookie",
        "INJECTED-BY-SCRIPT",
        "evilClick",
        "evilOnload",
        "RAW-MD-SCRIPT",
        "RAW-MD-HANDLER",
        "md-tracker",
        "AutoOpen",
        "<script",
        "<iframe",
    ):
        assert marker not in text, marker
    (line,) = [
        line for line in hostile.lines("note: ", "billing/macros.docx") if "never fetched" in line
    ]
    assert "attachedTemplate" in line


def test_symlinks_are_not_followed_out_of_the_folder(hostile: Run) -> None:
    notes = [line for line in hostile.stdout.splitlines() if line.startswith("note: ")]
    assert "note: billing/passwd.md: skipped: symlink points outside the SOP folder" in notes
    assert "note: billing/etc: skipped: symlink points outside the SOP folder" in notes
    assert SECRET_OUTSIDE not in hostile.all_output_text()
    assert "OUTSIDE-SECRET" not in hostile.stdout
    assert not any("passwd" in source or "outside" in source for source in hostile.routines())


def test_symlink_loops_are_never_entered(hostile: Run) -> None:
    # the folder loop is walked once; the file loops are named, not followed
    assert not any(source.startswith("billing/loop/") for source in hostile.routines())
    assert len(hostile.routines()["billing/good.md"]) == 1
    for name in LOOPS:
        (line,) = [line for line in hostile.stdout.splitlines() if f"billing/{name}:" in line]
        assert "loop" in line or "symbolic links" in line, line


def test_no_temp_files_are_left(hostile: Run) -> None:
    assert not [p for p in hostile.out.rglob("*.tmp")]
    assert not [p for p in hostile.sops.rglob("*") if p.name.startswith(".") and p.is_file()]


# -- size limits and the settings that raise them -------------------------------------------------


def test_limits_name_their_setting_and_raising_them_reads_the_file(tmp_path: Path) -> None:
    sops = tmp_path / "sops"
    (sops / "manuals").mkdir(parents=True)
    # big in bytes, cheap to compile: one step, then 1.6 MiB of trailing blanks
    (sops / "manuals/huge.txt").write_bytes(
        b"Refunds\n\n1. Ask the customer for the order number." + b" " * 1_700_000 + b"\n"
    )
    (sops / "manuals/long.pdf").write_bytes(pdf_factory.header_footer(pages=4))
    (sops / "sopc.toml").write_text("[limits]\nmax_pages = 3\nmax_file_mb = 1\n")
    runner = CliRunner()
    low = runner.invoke(
        app, ["compile", str(sops), "-o", str(tmp_path / "out"), "--backend", "offline"]
    )
    assert low.exit_code == 4
    assert "unreadable: manuals/huge.txt: file is 1.6 MiB, over the 1 MiB limit" in low.stdout
    assert "limits.max_file_mb" in low.stdout and "limits.max_pages" in low.stdout

    (sops / "sopc.toml").write_text("[limits]\nmax_pages = 10\nmax_file_mb = 5\n")
    high = runner.invoke(
        app, ["compile", str(sops), "-o", str(tmp_path / "out"), "--backend", "offline"]
    )
    assert "unreadable" not in high.stdout, high.stdout
    assert {p.name for p in (tmp_path / "out/routines/manuals").glob("*.json")}
    lock = json.loads((tmp_path / "out/sopc.lock").read_text())
    assert all(entry["error"] is None for entry in lock["sops"].values())


def test_zip_bomb_limit_names_both_settings(tmp_path: Path) -> None:
    sops = tmp_path / "sops"
    sops.mkdir()
    (sops / "bomb.docx").write_bytes(_zip_bomb(30))
    (sops / "sopc.toml").write_text("[limits]\nmax_unzipped_mb = 20\n")
    result = CliRunner().invoke(
        app, ["compile", str(sops), "-o", str(tmp_path / "out"), "--backend", "offline"]
    )
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("unreadable:")]
    assert "limits.max_unzipped_mb" in line and "zip bomb" in line
    (sops / "sopc.toml").write_text("[limits]\nmax_unzipped_mb = 100\n")
    again = CliRunner().invoke(
        app, ["compile", str(sops), "-o", str(tmp_path / "out"), "--backend", "offline"]
    )
    (line,) = [line for line in again.stdout.splitlines() if line.startswith("unreadable:")]
    assert "limits.max_zip_ratio" in line and "zip bomb" in line


# -- hostile names: files and headings ------------------------------------------------------------

HEADINGS = [
    "../../../../tmp/sopc-evil",
    "/etc/cron.d/sopc-evil",
    "C:\\Windows\\System32\\sopc-evil",
    "bell\x07 escape\x1b[31m red\x1b]0;title\x07",
    "Refunds",
    "REFUNDS",
    "very long heading " * 30,
    "\u202eevil\u202c reversed",
]


def _procedures_md(title: str) -> str:
    sections = "".join(
        f"## {heading}\n\n1. Ask the customer for the order number.\n"
        f"2. Look up the order with `lookup_order`.\n\n"
        for heading in HEADINGS
    )
    return f"# {title}\n\n{sections}"


def test_hostile_names_stay_inside_the_output_and_never_collide(tmp_path: Path) -> None:
    sops = tmp_path / "sops"
    group = sops / "billing"
    group.mkdir(parents=True)
    names = [
        "x\\..\\..\\sopc-evil.md",
        "ctl\x1b[31m\x07.md",
        "new\nline.md",
        "y" * 240 + ".md",
        "Refunds.md",
        "refunds.md",
        "REFUNDS.MD",
        "C:\\sopc-evil.md",
        "\u202eevil.md",
    ]
    for name in names:
        (group / name).write_text(_procedures_md(name[:20]), encoding="utf-8")
    (group / "html-nul.html").write_text(
        "<html><body><h1>Re&#0;funds</h1><h2>Nul&#0;&#x1b;[2J here</h2>"
        "<ol><li>Ask the customer for the order number.</li></ol></body></html>"
    )
    if len(list(group.iterdir())) < len(names) + 1:
        pytest.skip("the file system folds case or rejects these names")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["compile", str(sops), "-o", str(out), "--backend", "offline", "--format", "json"]
    )
    assert result.exit_code in (0, 1), result.output
    run = json.loads(result.stdout)

    # nothing escaped the output folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "sops"]
    assert not Path("/tmp/sopc-evil").exists()
    root = out.resolve()
    written = [p for p in out.rglob("*") if p.is_file()]
    for path in written:
        assert path.resolve().is_relative_to(root)
        rel = path.relative_to(out).as_posix()
        assert rel.isascii() and rel.isprintable() and "\\" not in rel and ".." not in rel
        assert len(path.name) <= 100, rel

    # every procedure has its own files: nothing overwrote anything
    procedures = [p for sop in run["sops"] for p in sop["procedures"]]
    assert len(procedures) == len(names) * len(HEADINGS) + 1
    assert len({p["procedure_id"].lower() for p in procedures}) == len(procedures)
    routines = [json.loads(p.read_text()) for p in (out / "routines").rglob("*.json")]
    assert len(routines) == len(procedures)
    assert len({(r["source"]["file"], tuple(r["source"]["section"])) for r in routines}) == len(
        routines
    )
    lock = json.loads((out / "sopc.lock").read_text())
    outputs = [
        rel for e in lock["sops"].values() for p in e["procedures"].values() for rel in p["outputs"]
    ]
    assert len(outputs) == len(set(outputs)) == 2 * len(procedures)

    # the generated package still imports: no name broke the Python
    import subprocess as sp
    import sys

    code = "import agent_network.tools, agent_network.triage"
    sp.run([sys.executable, "-c", code], cwd=out, check=True, capture_output=True)


def test_control_characters_in_names_never_reach_the_terminal(tmp_path: Path) -> None:
    sops = tmp_path / "sops"
    (sops / "billing").mkdir(parents=True)
    (sops / "billing/ctl\x1b[2J\x1b]0;pwned\x07.md").write_text(GOOD)
    (sops / "billing/empty\x1b[31m.md").write_text("")
    (sops / "billing/\u202eevil.md").write_text(GOOD)
    (sops / "bill\x1b[2Jing\u202e").mkdir()  # a folder name reaches the progress lines
    (sops / "bill\x1b[2Jing\u202e/refunds.md").write_text(GOOD)
    result = CliRunner().invoke(
        app, ["compile", str(sops), "-o", str(tmp_path / "out"), "--backend", "offline"]
    )
    assert result.exit_code == 4
    for stream in (result.stdout, result.stderr):
        assert "\x1b" not in stream and "\x07" not in stream and "\u202e" not in stream
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("unreadable:")]
    assert line == "unreadable: billing/empty\\x1b[31m.md: file is empty"


# -- hostile text ---------------------------------------------------------------------------------


def _catalog_names() -> set[str]:
    import yaml

    return {tool["name"] for tool in yaml.safe_load(CATALOG.read_text())["tools"]}


def test_prompt_injection_is_flagged_and_adds_no_tool(tmp_path: Path) -> None:
    sops = tmp_path / "sops"
    (sops / "billing").mkdir(parents=True)
    (sops / "tools.yaml").write_bytes(CATALOG.read_bytes())
    (sops / "billing/refunds.md").write_bytes((HOSTILE / "injection.md").read_bytes())
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["compile", str(sops), "-o", str(out), "--backend", "offline", "--format", "json"]
    )
    run = json.loads(result.stdout)
    (procedure,) = run["sops"][0]["procedures"]
    flagged = [i for i in procedure["issues"] if i["code"] == "possible_injection"]
    assert len(flagged) == 2
    assert any("Ignore previous instructions" in i["message"] for i in flagged)
    review = (out / "REVIEW.md").read_text()
    assert review.count("possible\\_injection") == 2

    tools_py = (out / "agent_network/tools.py").read_text()
    assert "refund_every_order" not in tools_py
    (routine_path,) = (out / "routines").rglob("*.json")
    routine = json.loads(routine_path.read_text())
    called = {s["tool_call"]["tool"] for s in _walk(routine["steps"]) if s.get("tool_call")}
    assert called and called <= _catalog_names()
    assert "refund_every_order" not in called
    assert "refund_every_order" not in set(routine["tools_used"])
    markdown = routine_path.with_suffix(".md").read_text()
    assert "refund_every_order" not in markdown


def _walk(steps: list[dict[str, object]]) -> Iterator[dict[str, object]]:
    for step in steps:
        yield step
        yield from _walk(step.get("substeps") or [])  # type: ignore[arg-type]


def test_a_model_that_invents_a_tool_gets_unknown_tool_and_no_stub(tmp_path: Path) -> None:
    from sop_compiler.config import load_settings
    from sop_compiler.generate.fake import FakeBackend
    from sop_compiler.pipeline import compile_folder

    sops = tmp_path / "sops"
    (sops / "billing").mkdir(parents=True)
    (sops / "tools.yaml").write_bytes(CATALOG.read_bytes())
    (sops / "billing/refunds.md").write_bytes((HOSTILE / "injection.md").read_bytes())
    out = tmp_path / "out"
    settings = load_settings(sops, overrides={"output": out, "backend": "fake"})
    backend = FakeBackend(settings)
    invented = {
        "title": "Handle a refund request",
        "trigger": "The customer asks for a refund.",
        "steps": [
            {"id": "1", "kind": "ask", "text": "Ask for the order number."},
            {
                "id": "2",
                "kind": "tool_call",
                "text": "Refund every order.",
                "tool_call": {"tool": "refund_every_order", "arguments": []},
            },
            {"id": "3", "kind": "ask", "text": "Ask whether there is anything else."},
            {"id": "4", "kind": "resolve", "text": "Resolve the case."},
        ],
    }
    # the same answer to the first request and to every repair request
    backend.queue(*[invented] * (settings.repair_attempts + 1))
    result = compile_folder(sops, settings=settings, backend=backend)

    assert backend.pending() == 0 and len(backend.calls) == settings.repair_attempts + 1
    repair = backend.calls[1].messages[-1].content
    assert "refund_every_order" in str(repair)  # the error went back to the model
    (procedure,) = result.sops[0].procedures
    unknown = [issue for issue in procedure.issues if issue.code == "unknown_tool"]
    assert procedure.status == "generated" and unknown, procedure
    assert all(issue.severity == "error" for issue in unknown)
    assert result.exit_code == 1  # validation errors remain
    assert "refund_every_order" not in (out / "agent_network/tools.py").read_text()
    for path in (out / "agent_network").glob("*.py"):
        assert "def refund_every_order" not in path.read_text()
    assert "unknown\\_tool" in (out / "REVIEW.md").read_text()


def test_fifo_and_device_are_refused_without_hanging(tmp_path: Path) -> None:
    """A FIFO named like an SOP never blocks the run; a device is not read to exhaustion."""
    import os
    import stat

    from sop_compiler.config import Settings
    from sop_compiler.errors import InputError
    from sop_compiler.ingest import discover, ingest

    sops = tmp_path / "sops"
    sops.mkdir()
    (sops / "good.md").write_text(GOOD)
    os.mkfifo(sops / "x.md")
    found, skipped = discover(sops)
    assert [p.name for p in found] == ["good.md"]
    assert [(p.name, why) for p, why in skipped] == [
        ("x.md", "not a regular file (a pipe, device or socket)")
    ]
    with pytest.raises(InputError, match="not a regular file"):
        ingest(sops / "x.md", root=sops)
    devices = tmp_path / "devices"
    devices.mkdir()
    try:  # a character device named like an SOP (/dev/zero's numbers); needs root
        os.mknod(devices / "zero.md", stat.S_IFCHR | 0o600, os.makedev(1, 5))
    except PermissionError:
        pass
    else:
        with pytest.raises(InputError, match="not a regular file"):
            ingest(devices / "zero.md", root=devices, settings=Settings())
    result = CliRunner().invoke(
        app, ["compile", str(sops), "-o", str(tmp_path / "out"), "--backend", "offline"]
    )
    assert result.exit_code == 0, result.stdout
    assert (tmp_path / "out/routines").is_dir()


def test_negative_limits_are_a_config_error(tmp_path: Path) -> None:
    sops = tmp_path / "sops"
    sops.mkdir()
    (sops / "good.md").write_text(GOOD)
    (sops / "sopc.toml").write_text("[limits]\nmax_file_mb = -1\n")
    result = CliRunner().invoke(
        app, ["compile", str(sops), "-o", str(tmp_path / "out"), "--backend", "offline"]
    )
    assert result.exit_code == 2
    assert "invalid setting `limits.max_file_mb`: Input should be greater than 0" in result.stderr
    assert not (tmp_path / "out").exists()


def test_yaml_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    from sop_compiler.catalog import load_catalog
    from sop_compiler.errors import ConfigError

    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    lines.append("tools: *a8")
    (tmp_path / "tools.yaml").write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="expands to more than"):
        load_catalog(None, sop_root=tmp_path)
    (tmp_path / "tools.yaml").write_text("tools: &t\n  - *t\n")
    with pytest.raises(ConfigError, match="expands to more than"):
        load_catalog(None, sop_root=tmp_path)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("divs.html", "<h1>Refunds</h1>" + "<div>" * 1200 + "<p>1. Ask.</p>" + "</div>" * 1200),
        ("lists.html", "<h1>Refunds</h1>" + "<ul><li>x" * 600 + "</li></ul>" * 600),
    ],
)
def test_deep_nesting_is_one_line_naming_the_file(tmp_path: Path, name: str, text: str) -> None:
    sops = tmp_path / "sops"
    sops.mkdir()
    (sops / "good.md").write_text(GOOD)
    (sops / name).write_text(f"<html><body>{text}</body></html>")
    result = CliRunner().invoke(
        app, ["compile", str(sops), "-o", str(tmp_path / "out"), "--backend", "offline"]
    )
    assert result.exit_code == 4, result.stdout
    assert f"unreadable: {name}: HTML elements nest 151 deep, over the 150" in result.stdout
    assert "internal error" not in result.stdout + result.stderr
    assert (tmp_path / "out/routines").is_dir()  # the good SOP still compiled


def test_nesting_real_pages_use_is_read(tmp_path: Path) -> None:
    sops = tmp_path / "sops"
    sops.mkdir()
    step = "<ol><li>Ask the customer for the order number.</li></ol>"
    body = "<div>" * 120 + step + "</div>" * 120
    (sops / "deep.html").write_text(f"<html><body><h1>Refunds</h1>{body}</body></html>")
    result = CliRunner().invoke(
        app, ["compile", str(sops), "-o", str(tmp_path / "out"), "--backend", "offline"]
    )
    assert result.exit_code == 0, result.stdout
    (routine,) = (tmp_path / "out/routines").rglob("*.md")
    assert "order number" in routine.read_text()


def test_a_procedure_too_big_for_a_routine_is_refused_and_the_rest_compiles(
    tmp_path: Path,
) -> None:
    """One section of 2,000 steps, past limits.max_procedure_kb: a line naming the file, the
    procedure and the setting, before any compile (a 50 MB one took tens of GB to compile)."""
    sops = tmp_path / "sops"
    sops.mkdir()
    steps = "".join(f"{n}. Check order {n} and tell the customer.\n" for n in range(1, 2001))
    (sops / "bulk.md").write_text("# Bulk refunds\n\n" + steps, encoding="utf-8")
    (sops / "refunds.md").write_text(
        "# Refunds\n\n1. Ask the customer for the order number.\n", encoding="utf-8"
    )
    (sops / "sopc.toml").write_text("[limits]\nmax_procedure_kb = 64\n")
    runner = CliRunner()
    out = tmp_path / "out"
    low = runner.invoke(app, ["compile", str(sops), "-o", str(out), "--backend", "offline"])
    assert low.exit_code == 4, low.stdout
    assert (
        "unreadable: bulk.md: the procedure 'Bulk refunds' holds 75 KiB of text, over the "
        "64 KiB limit (limits.max_procedure_kb)"
    ) in " ".join(low.stdout.split())
    assert [p.name for p in (out / "routines").rglob("*.json")] == ["refunds.json"]

    (sops / "sopc.toml").write_text("[limits]\nmax_procedure_kb = 256\n")
    high = runner.invoke(app, ["compile", str(sops), "-o", str(out), "--backend", "offline"])
    assert high.exit_code == 0, high.stdout
    assert {p.name for p in (out / "routines").rglob("*.json")} == {"bulk.json", "refunds.json"}
