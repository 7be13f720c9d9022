"""Run one converter users would pick instead of sopc, in its own interpreter (the `bench` venv).

Usage: python competitors.py NAME FILE  ->  prints {"seconds": ..., "markdown": ...} as JSON.
Runs in a separate virtualenv because pymupdf4llm needs pymupdf 2.0, whose import changes a global
text setting; sopc pins pymupdf 1.28 and must be measured without that interference.
"""

from __future__ import annotations

import json
import sys
import time


def main() -> None:
    name, path = sys.argv[1], sys.argv[2]
    if name == "pymupdf4llm":
        import pymupdf4llm

        start = time.perf_counter()
        markdown = pymupdf4llm.to_markdown(path)
    elif name == "markitdown":
        from markitdown import MarkItDown

        converter = MarkItDown()
        start = time.perf_counter()
        markdown = converter.convert(path).text_content
    elif name == "docling":
        from docling.document_converter import DocumentConverter

        converter = DocumentConverter()
        start = time.perf_counter()
        markdown = converter.convert(path).document.export_to_markdown()
    else:
        raise SystemExit(f"unknown converter {name}")
    print(json.dumps({"seconds": time.perf_counter() - start, "markdown": markdown}))


if __name__ == "__main__":
    main()
