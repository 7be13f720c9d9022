"""DOCX reader: one pass over the body XML; headers, footers, macros and links are never used."""

from __future__ import annotations

from sop_compiler.config import Settings
from sop_compiler.errors import InputError
from sop_compiler.ingest._text_decode import BlockBuilder
from sop_compiler.ingest.base import Reader, Source
from sop_compiler.ingest.docx._package import check_package, external_targets, open_document_part
from sop_compiler.models import Document

__all__ = ["DocxReader"]

_NUMBERING = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/numbering"
_STYLES = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles"


class DocxReader(Reader):
    """Reads .docx files: heading styles, Word list numbers, tables, images, text boxes."""

    format = "docx"
    suffixes = (".docx",)

    def read(self, source: Source, *, settings: Settings) -> Document:
        """Check the zip, open it with python-docx and walk the body in reading order."""
        from sop_compiler.ingest.docx._body import BodyWalker
        from sop_compiler.ingest.docx._styles import Numbering, Styles

        facts = check_package(source, settings.limits)
        part = open_document_part(source)
        builder = BlockBuilder(source, self.format)
        if facts.macros:
            builder.notice("macros", "macros were ignored (never run)")
        if facts.embedded_objects:
            builder.notice(
                "embedded_objects",
                f"{facts.embedded_objects} embedded object(s) or ActiveX control(s) were ignored",
            )
        external = external_targets(part.package)
        if external:
            builder.notice(
                "external_links",
                f"external relationships were ignored (never fetched): {', '.join(external)}",
            )
        styles = Styles(_related_element(part, _STYLES))
        numbering = Numbering(_related_element(part, _NUMBERING), styles)
        walker = BodyWalker(builder, part, styles, numbering)
        # a damaged main part parses as a plain lxml element, without python-docx's `body`
        body = getattr(part.element, "body", None)
        if body is None and not hasattr(part.element, "body"):
            message = "is not a valid .docx: word/document.xml has no body"
            raise InputError(message, path=source.name)
        if body is not None:
            walker.walk(body)
        if walker.linked_images:
            builder.notice(
                "image_not_fetched",
                f"{walker.linked_images} linked image(s) point outside the file; not fetched",
            )
        return builder.document


def _related_element(part: object, reltype: str) -> object | None:
    """The XML root of a related part (styles, numbering), or None when the file has none."""
    for rel in part.rels.values():  # type: ignore[attr-defined]
        if rel.reltype == reltype and not rel.is_external:
            return getattr(rel.target_part, "element", None)
    return None
