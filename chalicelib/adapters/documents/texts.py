"""Wording of the documents in French and English, and locale formatting (babel).

Babel is imported lazily: its locale data costs ~30 ms the first time.
"""

from __future__ import annotations

import unicodedata
from datetime import date
from decimal import Decimal
from functools import lru_cache
from typing import Any

from ...domain.money import Money

LANGUAGES = ("fr", "en")
LOCALES = {"fr": "fr_FR", "en": "en_GB"}

TEXTS: dict[str, dict[str, str]] = {
    "fr": {
        "title.invoice": "Facture",
        "title.credit_note": "Avoir",
        "title.deposit": "Facture d'acompte",
        "number": "N°",
        "issue_date": "Date d'émission",
        "due_date": "Date d'échéance",
        "delivery_date": "Date de livraison",
        "delivery_or_service_date": "Livraison / prestation",
        "service_period": "Période de prestation",
        "period": "du {start} au {end}",
        "purchase_order": "Bon de commande",
        "buyer_reference": "Référence acheteur",
        "contract": "Contrat",
        "credit_note_for": "Avoir sur la facture n° {number}",
        "credit_note_for_dated": "Avoir sur la facture n° {number} du {date}",
        "seller": "Vendeur",
        "buyer": "Client",
        "deliver_to": "Livraison",
        "siren": "SIREN",
        "siret": "SIRET",
        "vat_number": "N° TVA",
        "capital": "au capital de {amount}",
        "col.description": "Désignation",
        "col.quantity": "Qté",
        "col.unit_price": "PU HT",
        "col.vat": "TVA",
        "col.net": "Montant HT",
        "allowance": "Remise",
        "charge": "Frais",
        "lines_total": "Total des lignes HT",
        "allowances_total": "Remises",
        "charges_total": "Frais",
        "total_excl": "Total HT",
        "vat_row": "TVA {rate} sur {base}",
        "vat_exempt_row": "{category} sur {base}",
        "vat_total": "Total TVA",
        "total_incl": "Total TTC",
        "deposit_row": "Acompte n° {number} du {date}",
        "prepaid": "Acomptes déduits",
        "amount_due": "Net à payer",
        "credit_amount": "Montant de l'avoir",
        "vat_eur": "TVA en euros : {amount} (1 {currency} = {rate} EUR{rate_date})",
        "rate_date": " au {date}",
        "payment": "Paiement",
        "terms.net": "{days} jours net",
        "terms.receipt": "Paiement à réception",
        "terms.eom": "{days} jours fin de mois",
        "means.58": "Virement SEPA",
        "means.59": "Prélèvement SEPA",
        "iban": "IBAN",
        "bic": "BIC",
        "payment_reference": "Référence de paiement",
        "mandate": "Mandat de prélèvement {mandate}, créancier {creditor}",
        "direct_debit_on": "Montant prélevé le {date} au plus tôt",
        "pay_online": "Payer en ligne",
        "epc_qr": "QR code virement SEPA",
        "credit_note_terms": "Avoir à imputer sur la facture n° {number}",
        "credit_note_terms_plain": "Avoir à imputer sur les prochaines factures ou à rembourser",
        "penalty.rate": "Pénalités de retard : {rate} % l'an, exigibles dès le lendemain de l'échéance",
        "penalty.legal": ("Pénalités de retard : taux d'intérêt appliqué par la BCE à son opération de "
                          "refinancement la plus récente majoré de 10 points (taux BCE + 10 points), exigibles "
                          "dès le lendemain de l'échéance"),
        "indemnity": "Indemnité forfaitaire pour frais de recouvrement : {amount}",
        "indemnity.legal": "Indemnité forfaitaire pour frais de recouvrement : 40 €",
        "discount": "Escompte de {rate} % pour paiement sous {days} jours",
        "no_discount": "Pas d'escompte pour paiement anticipé",
        "category.goods": "Catégorie de l'opération : livraison de biens",
        "category.services": "Catégorie de l'opération : prestation de services",
        "category.mixed": "Catégorie de l'opération : livraison de biens et prestation de services",
        "vat_on_debits": "Option pour le paiement de la taxe d'après les débits",
        "legal": "Mentions légales",
        "page": "Page {page}/{pages}",
        "vat_category.E": "Exonéré",
        "vat_category.AE": "Autoliquidation",
        "vat_category.K": "Exonéré (intracommunautaire)",
        "vat_category.G": "Exonéré (export)",
        "vat_category.O": "Non soumis à la TVA",
        "vat_category.Z": "Taux zéro",
        "unit.C62": "",
        "unit.HUR": "h",
        "unit.DAY": "j",
        "unit.MON": "mois",
        "unit.KGM": "kg",
        "unit.MTR": "m",
        "unit.LTR": "l",
        "unit.MIN": "min",
        "unit.WEE": "sem.",
        "unit.ANN": "an",
        "unit.XPP": "pièce",
    },
    "en": {
        "title.invoice": "Invoice",
        "title.credit_note": "Credit note",
        "title.deposit": "Deposit invoice",
        "number": "No.",
        "issue_date": "Issue date",
        "due_date": "Due date",
        "delivery_date": "Delivery date",
        "delivery_or_service_date": "Delivery / service",
        "service_period": "Service period",
        "period": "from {start} to {end}",
        "purchase_order": "Purchase order",
        "buyer_reference": "Buyer reference",
        "contract": "Contract",
        "credit_note_for": "Credit note for invoice no. {number}",
        "credit_note_for_dated": "Credit note for invoice no. {number} of {date}",
        "seller": "Seller",
        "buyer": "Bill to",
        "deliver_to": "Deliver to",
        "siren": "SIREN",
        "siret": "SIRET",
        "vat_number": "VAT no.",
        "capital": "with a share capital of {amount}",
        "col.description": "Description",
        "col.quantity": "Qty",
        "col.unit_price": "Unit price",
        "col.vat": "VAT",
        "col.net": "Net amount",
        "allowance": "Discount",
        "charge": "Charge",
        "lines_total": "Lines total (excl. VAT)",
        "allowances_total": "Discounts",
        "charges_total": "Charges",
        "total_excl": "Total excl. VAT",
        "vat_row": "VAT {rate} on {base}",
        "vat_exempt_row": "{category} on {base}",
        "vat_total": "Total VAT",
        "total_incl": "Total incl. VAT",
        "deposit_row": "Deposit invoice no. {number} of {date}",
        "prepaid": "Deposits deducted",
        "amount_due": "Amount due",
        "credit_amount": "Credit amount",
        "vat_eur": "VAT in euros: {amount} (1 {currency} = {rate} EUR{rate_date})",
        "rate_date": " on {date}",
        "payment": "Payment",
        "terms.net": "Net {days} days",
        "terms.receipt": "Due on receipt",
        "terms.eom": "{days} days end of month",
        "means.58": "SEPA credit transfer",
        "means.59": "SEPA direct debit",
        "iban": "IBAN",
        "bic": "BIC",
        "payment_reference": "Payment reference",
        "mandate": "Direct debit mandate {mandate}, creditor {creditor}",
        "direct_debit_on": "Amount debited on or after {date}",
        "pay_online": "Pay online",
        "epc_qr": "SEPA transfer QR code",
        "credit_note_terms": "To be offset against invoice no. {number}",
        "credit_note_terms_plain": "To be offset against future invoices or refunded",
        "penalty.rate": "Late payment penalties: {rate}% a year, due from the day after the due date",
        "penalty.legal": ("Late payment penalties: the ECB main refinancing rate plus 10 percentage points "
                          "(ECB rate + 10 points), due from the day after the due date"),
        "indemnity": "Fixed compensation for recovery costs: {amount}",
        "indemnity.legal": "Fixed compensation for recovery costs: €40",
        "discount": "{rate}% early payment discount for payment within {days} days",
        "no_discount": "No discount for early payment",
        "category.goods": "Category of the operation: supply of goods",
        "category.services": "Category of the operation: supply of services",
        "category.mixed": "Category of the operation: supply of goods and services",
        "vat_on_debits": "VAT payable on debits (option for the payment of VAT on debits)",
        "legal": "Legal notices",
        "page": "Page {page}/{pages}",
        "vat_category.E": "Exempt",
        "vat_category.AE": "Reverse charge",
        "vat_category.K": "Exempt (intra-community)",
        "vat_category.G": "Exempt (export)",
        "vat_category.O": "Not subject to VAT",
        "vat_category.Z": "Zero rated",
        "unit.C62": "",
        "unit.HUR": "h",
        "unit.DAY": "d",
        "unit.MON": "mo",
        "unit.KGM": "kg",
        "unit.MTR": "m",
        "unit.LTR": "l",
        "unit.MIN": "min",
        "unit.WEE": "wk",
        "unit.ANN": "yr",
        "unit.XPP": "pc",
    },
}


def language_of(buyer: dict[str, Any] | None) -> str:
    lang = (buyer or {}).get("language")
    return lang if lang in LANGUAGES else "fr"


def nfc(text: str) -> str:
    """One code point per accented letter, so every character maps to one glyph."""
    return unicodedata.normalize("NFC", text)


class Formatter:
    """Texts and numbers in one language (babel patterns of fr_FR / en_GB)."""

    def __init__(self, language: str) -> None:
        self.language = language if language in LANGUAGES else "fr"
        self._texts = TEXTS[self.language]

    def t(self, key: str, **values: Any) -> str:
        text = self._texts[key]
        return text.format(**values) if values else text

    def unit(self, code: str) -> str:
        return self._texts.get(f"unit.{code}", code)

    def money(self, amount: Money) -> str:
        return self.amount(amount.to_decimal(), amount.currency)

    def money_compact(self, amount: Money) -> str:
        """Whole amounts without decimals (40 €, 50 000 €), others as :meth:`money`."""
        value = amount.to_decimal()
        if value != value.to_integral_value():
            return self.money(amount)
        from babel.numbers import format_currency

        pattern = _currency_pattern(self.language).replace("0.00", "0")
        return format_currency(value, amount.currency, format=pattern, locale=_locale(self.language),
                               currency_digits=False)

    def amount(self, value: Decimal, currency: str, *, max_decimals: int | None = None) -> str:
        """A currency amount; ``max_decimals`` keeps up to that many (unit prices have 4)."""
        from babel.numbers import format_currency

        if max_decimals is None:
            return format_currency(value, currency, locale=_locale(self.language))
        pattern = _currency_pattern(self.language).replace("0.00", "0.00" + "#" * max(0, max_decimals - 2))
        return format_currency(value, currency, format=pattern, locale=_locale(self.language),
                               currency_digits=False)

    def decimal(self, value: Decimal, max_decimals: int = 6) -> str:
        from babel.numbers import format_decimal

        return format_decimal(value, format="#,##0." + "#" * max_decimals, locale=_locale(self.language))

    def rate(self, value: Decimal) -> str:
        sep = "\u00a0" if self.language == "fr" else ""
        return f"{self.decimal(value, 2)}{sep}%"

    def plain_rate(self, value: Decimal) -> str:
        return self.decimal(value, 4)

    def date(self, value: date) -> str:
        from babel.dates import format_date

        return format_date(value, format="long", locale=_locale(self.language))

    def short_date(self, value: date) -> str:
        from babel.dates import format_date

        return format_date(value, format="short", locale=_locale(self.language))


@lru_cache(maxsize=4)
def _locale(language: str) -> Any:
    from babel import Locale

    return Locale.parse(LOCALES[language])


@lru_cache(maxsize=4)
def _currency_pattern(language: str) -> str:
    pattern = _locale(language).currency_formats["standard"].pattern
    return str(pattern.split(";")[0])
