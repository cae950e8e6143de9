"""Invoice documents: Factur-X, profile EN 16931 (PDF/A-3 with the CII XML attached).

Public API: :func:`render_invoice` and :class:`RenderedDocuments` (``render``),
:class:`DocumentContext` and its parts (``context``). Importing this package is
cheap: fpdf2, factur-x, lxml, segno and babel are imported when rendering.
"""

from .context import (GOODS, MIXED, SEPA_CREDIT_TRANSFER, SEPA_DIRECT_DEBIT, SERVICES, DeliverTo, DepositDeduction,
                      DocumentContext, PrecedingInvoice)
from .render import RenderedDocuments, render_invoice

__all__ = ["GOODS", "MIXED", "SERVICES", "SEPA_CREDIT_TRANSFER", "SEPA_DIRECT_DEBIT", "DeliverTo", "DepositDeduction",
           "DocumentContext", "PrecedingInvoice", "RenderedDocuments", "render_invoice"]
