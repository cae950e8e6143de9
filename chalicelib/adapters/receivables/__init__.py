"""Import files of receivables issued elsewhere: the CSV layout, CII XML, Factur-X PDF.

``read_file(name, content)`` picks the reader from the content (a PDF, XML, or CSV)
and returns ``(invoices, problems)``: rows it could read, and rows (or a whole file)
it could not, each with where and why.
"""

from __future__ import annotations

from ...domain.errors import ValidationError
from ...domain.receivable_import import ImportedInvoice, Problem

KINDS = ("csv", "cii", "facturx")


def sniff(content: bytes) -> str:
    head = content.lstrip(b"\xef\xbb\xbf \t\r\n")[:5]
    if head.startswith(b"%PDF"):
        return "facturx"
    if head.startswith(b"<"):
        return "cii"
    return "csv"


def read_file(name: str, content: bytes, kind: str | None = None) -> tuple[list[ImportedInvoice], list[Problem]]:
    """Read one file; a file that cannot be read at all is one problem (not an exception)."""
    from .cii import extract_from_pdf, read_cii
    from .csv_layout import read_csv

    kind = kind or sniff(content)
    try:
        if kind == "csv":
            return read_csv(content, name)
        xml = extract_from_pdf(content, name) if kind == "facturx" else content
        return [read_cii(xml, name)], []
    except ValidationError as exc:
        return [], [Problem(name, None, exc.field or "file", exc.message)]
