"""`python -m sop_compiler` is `sopc`."""

from sop_compiler.cli import app

if __name__ == "__main__":
    app(prog_name="sopc")
