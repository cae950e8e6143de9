"""Render an issued invoice as a Factur-X (EN 16931) document.

    documents = render_invoice(invoice, DocumentContext.for_seller(seller, operation_category="services",
                                                                   pay_url=pay_url))
    documents.pdf       # PDF/A-3 with factur-x.xml attached (what the buyer receives)
    documents.xml       # the CII XML alone
    documents.sha256_pdf, documents.sha256_xml

Same invoice + same context -> byte-identical PDF and XML, so a document can
be re-rendered later instead of stored, and its hash recorded at issue time.

Raises :class:`~chalicelib.domain.errors.ValidationError` with code
``invalid_einvoice`` when no compliant e-invoice can be made (the message names
the EN 16931 rule or the XSD error): the caller refuses to issue.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ...domain.invoice import Invoice
from .cii import cii_from_model
from .context import DocumentContext
from .facturx import check_xsd, embed
from .model import build_model
from .pdf import render_pdf


@dataclass(frozen=True, slots=True)
class RenderedDocuments:
    pdf: bytes
    xml: bytes
    sha256_pdf: str
    sha256_xml: str

    @property
    def filename(self) -> str:
        return "factur-x.xml"


def render_invoice(invoice: Invoice, context: DocumentContext) -> RenderedDocuments:
    """PDF/A-3 + CII XML of an issued invoice; raises ``ValidationError`` (invalid_einvoice)."""
    model = build_model(invoice, context)
    xml = cii_from_model(model)
    check_xsd(xml)
    pdf = embed(render_pdf(model), xml, model)
    return RenderedDocuments(pdf=pdf, xml=xml, sha256_pdf=hashlib.sha256(pdf).hexdigest(),
                             sha256_xml=hashlib.sha256(xml).hexdigest())
