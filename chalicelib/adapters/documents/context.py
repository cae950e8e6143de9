"""What a document needs beyond the issued invoice itself.

An issued :class:`~chalicelib.domain.invoice.Invoice` carries its lines, totals
and the frozen ``seller`` / ``buyer`` identities. The Factur-X document also
needs facts the invoice does not hold (yet): how it is paid, the original
invoice a credit note corrects, the deposits a final invoice deducts, the EUR
rate of a foreign-currency invoice, where goods were delivered... The caller
(the issue hook) fills a :class:`DocumentContext` with them.

Seller terms (late-payment penalty rate, early-payment discount, recovery
indemnity, VAT on debits) are read from the invoice's ``seller`` identity when
it carries them and from this context otherwise;
:meth:`DocumentContext.for_seller` copies them from the seller profile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Mapping

from ...domain.money import Money
from ...domain.parties import Address, EarlyPaymentDiscount, SellerProfile

# Payment means (UNTDID 4461, BT-81). One per invoice (CII-SR-467).
SEPA_CREDIT_TRANSFER = "58"
SEPA_DIRECT_DEBIT = "59"
PAYMENT_MEANS = (SEPA_CREDIT_TRANSFER, SEPA_DIRECT_DEBIT)

# Category of the operation (French reform mention, CGI art. 242 nonies A).
GOODS, SERVICES, MIXED = "goods", "services", "mixed"
OPERATION_CATEGORIES = (GOODS, SERVICES, MIXED)


@dataclass(frozen=True, slots=True)
class PrecedingInvoice:
    """An invoice referenced by this document (BG-3: BT-25 number, BT-26 date)."""

    number: str
    issue_date: date | None = None


@dataclass(frozen=True, slots=True)
class DepositDeduction:
    """A deposit invoice (386) already paid and deducted from a final invoice.

    ``amount`` is the amount with VAT that was paid; the sum of the deductions
    is the paid amount BT-113.
    """

    number: str
    issue_date: date
    amount: Money


@dataclass(frozen=True, slots=True)
class DeliverTo:
    """Deliver-to party and address (BG-13 / BG-15); ``country`` alone is enough for BT-80."""

    country: str
    name: str | None = None
    address: Address | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> DeliverTo:
        address = data.get("address")
        return cls(country=str(data.get("country") or (address or {}).get("country") or "").upper(),
                   name=data.get("name"),
                   address=Address.from_dict(address) if isinstance(address, Mapping) else address)


@dataclass(frozen=True, slots=True)
class DocumentContext:
    """Facts a Factur-X document needs that the issued invoice does not carry.

    - ``operation_category``: ``goods``, ``services`` or ``mixed`` (mandatory
      French mention; also gives BT-23, see ``cii.BUSINESS_PROCESS``).
    - ``pay_url``: the stable ``/pay/{token}`` link, printed and QR-encoded
      (BG-24 in the XML). Ignored on credit notes.
    - ``payment_means``: ``"58"`` SEPA credit transfer to the seller's IBAN/BIC
      (BT-84/BT-86) or ``"59"`` SEPA direct debit, which needs
      ``mandate_reference`` (BT-89) and a creditor identifier (BT-90,
      ``creditor_id`` or the seller's ``sepa_creditor_id``); ``debtor_iban``
      (BT-91) when known.
    - ``payment_reference``: remittance information BT-83, e.g. an ISO 11649
      ``RF..`` reference; the invoice number when absent.
    - ``preceding_invoice``: the invoice a credit note corrects (required for
      credit notes).
    - ``deposits``: deposit invoices deducted from this final invoice (BT-113).
    - ``eur_exchange_rate``: EUR value of one unit of the invoice currency;
      required when a French seller invoices in another currency (VAT total in
      EUR, BT-6 / BT-111, VAT directive art. 230). ``exchange_rate_date`` is
      printed with it.
    - ``delivery_date`` (BT-72, defaults to the invoice's ``delivery_date``) and
      ``deliver_to`` (BG-13/BG-15; required for intra-community supplies, K).
    - ``contract_reference``: BT-12.
    - seller terms, when the invoice's seller identity does not carry them:
      ``late_penalty_rate`` (percent a year; None = the legal default ECB rate
      + 10 points), ``early_payment_discount`` (None = "no discount"),
      ``recovery_indemnity`` (None = 40 EUR), ``vat_on_debits``.
    """

    operation_category: str
    pay_url: str | None = None
    payment_means: str = SEPA_CREDIT_TRANSFER
    payment_reference: str | None = None
    mandate_reference: str | None = None
    creditor_id: str | None = None
    debtor_iban: str | None = None
    preceding_invoice: PrecedingInvoice | None = None
    deposits: tuple[DepositDeduction, ...] = ()
    eur_exchange_rate: Decimal | None = None
    exchange_rate_date: date | None = None
    delivery_date: date | None = None
    deliver_to: DeliverTo | None = None
    contract_reference: str | None = None
    late_penalty_rate: Decimal | None = None
    early_payment_discount: EarlyPaymentDiscount | None = None
    recovery_indemnity: Money | None = None
    vat_on_debits: bool | None = None
    extra_notes: tuple[str, ...] = field(default=())

    @classmethod
    def for_seller(cls, seller: SellerProfile, **values: Any) -> DocumentContext:
        """A context whose seller terms come from the seller profile (``values`` win)."""
        terms: dict[str, Any] = {
            "late_penalty_rate": seller.late_penalty_rate,
            "early_payment_discount": seller.early_payment_discount,
            "recovery_indemnity": seller.recovery_indemnity,
            "vat_on_debits": seller.vat_on_debits,
        }
        return cls(**{**terms, **values})
