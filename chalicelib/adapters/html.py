"""Server-rendered HTML for the customer's pages (/pay/{token}, /portal/{token}).

Jinja2, Babel and segno are imported inside the functions that use them, never
at module import: the webhook and JSON routes share this package and must not
pay for template, locale or QR libraries on a cold start.

- :func:`render` renders a template of ``chalicelib/templates`` in French or
  English, with a :class:`Formatter` (``f``) for money, dates and strings;
- :func:`epc_payload` builds the EPC069-12 "SEPA credit transfer" QR payload
  (segno's own builder), a pure function tests can assert on;
- :func:`qr_svg` turns a payload into an inline, labelled SVG.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import date
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..domain.money import Money

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "templates"
LANGUAGES = ("fr", "en")
DEFAULT_LANGUAGE = "fr"
_LOCALES = {"fr": "fr_FR", "en": "en_GB"}

# -- strings --------------------------------------------------------------------------------------
# One dict per language, same keys. ``{name}`` placeholders are filled by str.format with values
# that are already formatted (money, dates); the template escapes the result.
STRINGS: dict[str, dict[str, str]] = {
    "fr": {
        "skip": "Aller au contenu principal",
        "invoice_title": "Facture {number}",
        "credit_note_title": "Avoir {number}",
        "deposit_title": "Facture d'acompte {number}",
        "issued_by": "Émise par",
        "billed_to": "Adressée à",
        "issue_date": "Date d'émission",
        "due_date": "Échéance",
        "total": "Montant TTC",
        "already_paid": "Déjà réglé",
        "credited": "Avoirs déduits",
        "discounted": "Escompte accordé",
        "amount_due": "Reste à payer",
        "status": "Statut",
        "summary": "Résumé",
        "lines": "Détail de la facture",
        "line_description": "Désignation",
        "line_quantity": "Quantité",
        "line_unit_price": "Prix unitaire HT",
        "line_vat": "TVA",
        "line_net": "Montant HT",
        "subtotal": "Total HT",
        "vat_total": "Total TVA",
        "download_pdf": "Télécharger la facture (PDF)",
        "download_pdf_of": "Télécharger {number} (PDF)",
        "status_open": "À régler avant le {due}",
        "status_overdue": "En retard de {days} jour",
        "status_overdue_plural": "En retard de {days} jours",
        "status_partial": "Partiellement réglée : il reste {amount} à payer",
        "status_paid": "Payée",
        "status_paid_on": "Payée le {date}",
        "status_void": "Annulée",
        "status_uncollectible": "Clôturée",
        "status_credit_note": "Avoir",
        "status_debit_scheduled": "Sera prélevée par prélèvement SEPA le {date}",
        "status_debit_processing": "Prélèvement SEPA en cours",
        "status_disputed": "Contestée : notre équipe examine votre demande",
        "short_open": "À régler",
        "short_partial": "Partiellement réglée",
        "short_paid": "Payée",
        "short_debit_scheduled": "Prélèvement prévu",
        "short_disputed": "Contestée",
        "debit_failed": "Le prélèvement SEPA n'a pas abouti ({reason}). Merci de régler par carte ou par virement.",
        "debit_scheduled_note": "Vous n'avez rien à faire : le montant de {amount} sera prélevé sur votre compte "
                                "le {date} au titre de votre mandat SEPA.",
        "debit_processing_note": "Un paiement par prélèvement SEPA est en cours. Sa confirmation peut prendre "
                                 "jusqu'à 14 jours ouvrés ; cette page l'indiquera.",
        "discount_offer": "Réglez {amount} au plus tard le {date} (escompte de {rate} pour paiement anticipé).",
        "done_paid": "Merci : votre paiement a bien été reçu.",
        "done_processing": "Merci : votre paiement est en cours de traitement. Cette page indiquera « Payée » dès "
                           "sa confirmation (quelques secondes par carte, jusqu'à quelques jours ouvrés par "
                           "prélèvement SEPA).",
        "done_mandate": "Merci : votre mandat de prélèvement SEPA est enregistré. Vos prochaines factures seront "
                        "prélevées à leur échéance.",
        "done_mandate_pending": "Merci : votre mandat de prélèvement SEPA est en cours d'enregistrement.",
        "pay_online": "Payer en ligne",
        "pay_online_help": "Par carte bancaire ou prélèvement SEPA, sur la page sécurisée de notre prestataire "
                           "de paiement.",
        "pay_button": "Payer {amount}",
        "transfer": "Payer par virement",
        "transfer_help": "Indiquez la référence pour que votre paiement soit rapproché automatiquement.",
        "beneficiary": "Bénéficiaire",
        "iban": "IBAN",
        "bic": "BIC",
        "reference": "Référence",
        "amount": "Montant",
        "qr_caption": "QR code de virement SEPA (EPC) : scannez-le avec l'application de votre banque.",
        "qr_label": "QR code de virement SEPA de {amount} vers {name}, référence {reference}",
        "debit": "Prélèvement automatique",
        "debit_help": "Autorisez le prélèvement SEPA : vos prochaines factures seront prélevées à leur échéance, "
                      "après un préavis par e-mail. Vous pouvez révoquer le mandat à tout moment.",
        "debit_button": "Mettre en place le prélèvement automatique",
        "debit_active": "Prélèvement automatique actif (mandat {reference}).",
        "promise": "Besoin d'un délai ?",
        "promise_help": "Dites-nous quand vous réglerez cette facture : les relances sont suspendues jusqu'à "
                        "cette date.",
        "promise_link": "Indiquer une date de paiement",
        "contest": "Contester cette facture",
        "contest_help": "Un problème avec cette facture ? Dites-le-nous : les relances sont suspendues pendant "
                        "l'examen de votre demande.",
        "contest_invoice": "Facture contestée",
        "reason": "Motif",
        "reason_choose": "Choisissez un motif",
        "reason_price": "Prix incorrect",
        "reason_quantity": "Quantité incorrecte",
        "reason_quality": "Problème de qualité",
        "reason_not_received": "Produit ou service non reçu",
        "reason_already_paid": "Facture déjà payée",
        "reason_other": "Autre",
        "message": "Votre message",
        "message_help": "Expliquez ce qui ne va pas (4000 caractères au plus).",
        "contest_button": "Envoyer la contestation",
        "contest_sent_title": "Contestation envoyée",
        "contest_sent": "Nous avons bien reçu votre contestation de la facture {number}. Notre équipe vous "
                        "répondra rapidement ; les relances sont suspendues d'ici là.",
        "back_to_invoice": "Retour à la facture",
        "back_to_portal": "Retour à votre espace client",
        "form_errors": "Le formulaire contient une erreur :",
        "error_reason": "Choisissez un motif dans la liste.",
        "error_message": "Écrivez un message (4000 caractères au plus) pour expliquer ce qui ne va pas.",
        "error_nothing_to_pay": "Il n'y a rien à payer sur cette facture pour le moment.",
        "error_not_open": "Cette facture ne peut plus être contestée.",
        "error_already_disputed": "Cette facture est déjà contestée : notre équipe examine votre demande.",
        "error_gateway": "Le service de paiement est momentanément indisponible. Réessayez dans quelques minutes "
                         "ou réglez par virement.",
        "error_gateway_title": "Service de paiement indisponible",
        "error_title": "Une erreur est survenue",
        "bad_request": "Cette demande n'a pas pu être lue. Revenez à la page précédente et réessayez.",
        "error_text": "Une erreur inattendue est survenue. Réessayez dans quelques minutes. Référence : {ref}.",
        "contact": "Contact\u00a0:",
        "status_prefix": "Statut\u00a0:",
        "amount_due_prefix": "Reste à payer\u00a0:",
        "legal": "Mentions légales",
        "share_capital": "{form} au capital de {amount}",
        "siren": "SIREN {value}",
        "vat_number": "TVA intracommunautaire {value}",
        "page_portal": "Espace client",
        "portal_title": "Espace client de {name}",
        "portal_intro": "Vos factures et avoirs émis par {seller}.",
        "portal_balance": "Solde à régler : {amount}",
        "portal_documents": "Factures et avoirs",
        "portal_no_documents": "Aucune facture pour le moment.",
        "col_number": "Numéro",
        "col_kind": "Type",
        "col_issue": "Émise le",
        "col_due": "Échéance",
        "col_total": "Montant TTC",
        "col_due_amount": "Reste à payer",
        "col_status": "Statut",
        "col_documents": "Documents",
        "col_select": "Sélection",
        "kind_invoice": "Facture",
        "kind_credit_note": "Avoir",
        "kind_deposit": "Acompte",
        "select_invoice": "Sélectionner {number} ({amount})",
        "open_invoice": "Voir {number}",
        "copy_button": "Recevoir une copie",
        "copy_button_of": "Recevoir une copie de {number} par e-mail",
        "copy_sent_title": "Copie demandée",
        "copy_sent": "Une copie de la facture {number} va vous être envoyée par e-mail.",
        "pay_selected": "Régler plusieurs factures",
        "pay_selected_help": "Cochez les factures à régler dans le tableau, puis payez-les en une seule fois.",
        "pay_selected_button": "Payer les factures sélectionnées",
        "error_select": "Cochez au moins une facture à payer.",
        "error_select_invalid": "Ces factures ne peuvent pas être payées ensemble : choisissez des factures "
                                "à régler, dans une même devise (30 au plus).",
        "statement": "Relevé de compte",
        "statement_caption": "Relevé de compte : écritures et solde cumulé",
        "col_date": "Date",
        "col_entry": "Écriture",
        "col_debit": "Débit",
        "col_credit": "Crédit",
        "col_balance": "Solde",
        "entry_invoice": "Facture {number}",
        "entry_deposit": "Facture d'acompte {number}",
        "entry_credit_note": "Avoir {number}",
        "entry_payment": "Paiement reçu ({method})",
        "entry_refund": "Remboursement",
        "entry_discount": "Escompte sur {number}",
        "entry_write_off": "Abandon de créance sur {number}",
        "entry_reversal": "Paiement annulé sur {number}",
        "statement_empty": "Aucune écriture.",
        "statement_total": "Solde",
        "method_card": "carte",
        "method_sepa_debit": "prélèvement SEPA",
        "method_bank_transfer": "virement",
        "method_cheque": "chèque",
        "method_cash": "espèces",
        "method_other": "autre",
        "mandate": "Prélèvement SEPA",
        "mandate_active": "Votre mandat de prélèvement SEPA est actif (référence {reference}) : vos factures "
                          "sont prélevées à leur échéance.",
        "mandate_none": "Aucun mandat de prélèvement actif. Autorisez le prélèvement pour que vos factures "
                        "soient réglées automatiquement à leur échéance.",
        "disputes": "Vos contestations en cours",
        "disputes_none": "Aucune contestation en cours.",
        "dispute_item": "{number} : {reason}, le {date}",
        "contest_from_portal": "Contester une facture",
        "choose_invoice": "Choisissez une facture",
        "error_invoice": "Choisissez la facture à contester.",
        "not_found_title": "Page introuvable",
        "not_found": "Ce lien n'est pas valide.",
        "gone_title": "Ce lien a été remplacé",
        "gone": "Ce lien de paiement a été remplacé par un nouveau. Utilisez le lien du dernier e-mail reçu "
                "au sujet de cette facture, ou votre espace client.",
        "currency_note": "Montants en {currency}.",
    },
    "en": {
        "skip": "Skip to main content",
        "invoice_title": "Invoice {number}",
        "credit_note_title": "Credit note {number}",
        "deposit_title": "Deposit invoice {number}",
        "issued_by": "Issued by",
        "billed_to": "Billed to",
        "issue_date": "Issue date",
        "due_date": "Due date",
        "total": "Total (incl. VAT)",
        "already_paid": "Already paid",
        "credited": "Credit notes",
        "discounted": "Early-payment discount",
        "amount_due": "Amount due",
        "status": "Status",
        "summary": "Summary",
        "lines": "Invoice details",
        "line_description": "Description",
        "line_quantity": "Quantity",
        "line_unit_price": "Unit price (excl. VAT)",
        "line_vat": "VAT",
        "line_net": "Amount (excl. VAT)",
        "subtotal": "Total excl. VAT",
        "vat_total": "VAT",
        "download_pdf": "Download the invoice (PDF)",
        "download_pdf_of": "Download {number} (PDF)",
        "status_open": "Due by {due}",
        "status_overdue": "Overdue by {days} day",
        "status_overdue_plural": "Overdue by {days} days",
        "status_partial": "Partially paid: {amount} remaining",
        "status_paid": "Paid",
        "status_paid_on": "Paid on {date}",
        "status_void": "Cancelled",
        "status_uncollectible": "Closed",
        "status_credit_note": "Credit note",
        "status_debit_scheduled": "Will be collected by SEPA direct debit on {date}",
        "status_debit_processing": "SEPA direct debit in progress",
        "status_disputed": "Contested: our team is reviewing your request",
        "short_open": "Open",
        "short_partial": "Partially paid",
        "short_paid": "Paid",
        "short_debit_scheduled": "Direct debit scheduled",
        "short_disputed": "Contested",
        "debit_failed": "The SEPA direct debit failed ({reason}). Please pay by card or bank transfer.",
        "debit_scheduled_note": "Nothing to do: {amount} will be debited from your account on {date} under your "
                                "SEPA mandate.",
        "debit_processing_note": "A SEPA direct debit payment is in progress. Its confirmation can take up to "
                                 "14 business days; this page will show it.",
        "discount_offer": "Pay {amount} by {date} ({rate} early-payment discount).",
        "done_paid": "Thank you: your payment was received.",
        "done_processing": "Thank you: your payment is being processed. This page will show \u201cPaid\u201d once "
                           "it is confirmed (seconds by card, up to a few business days by SEPA direct debit).",
        "done_mandate": "Thank you: your SEPA direct debit mandate is in place. Your next invoices will be "
                        "debited on their due date.",
        "done_mandate_pending": "Thank you: your SEPA direct debit mandate is being registered.",
        "pay_online": "Pay online",
        "pay_online_help": "By card or SEPA direct debit, on our payment provider's secure page.",
        "pay_button": "Pay {amount}",
        "transfer": "Pay by bank transfer",
        "transfer_help": "Quote the reference so that your payment is matched automatically.",
        "beneficiary": "Beneficiary",
        "iban": "IBAN",
        "bic": "BIC",
        "reference": "Reference",
        "amount": "Amount",
        "qr_caption": "SEPA credit transfer QR code (EPC): scan it with your banking app.",
        "qr_label": "SEPA credit transfer QR code for {amount} to {name}, reference {reference}",
        "debit": "Automatic debit",
        "debit_help": "Authorise SEPA direct debit: your next invoices are debited on their due date, after "
                      "an email notice. You can revoke the mandate at any time.",
        "debit_button": "Set up automatic debit",
        "debit_active": "Automatic debit is active (mandate {reference}).",
        "promise": "Need more time?",
        "promise_help": "Tell us when you will pay this invoice: reminders are paused until that date.",
        "promise_link": "Give a payment date",
        "contest": "Contest this invoice",
        "contest_help": "Something wrong with this invoice? Tell us: reminders are paused while we review "
                        "your request.",
        "contest_invoice": "Invoice contested",
        "reason": "Reason",
        "reason_choose": "Choose a reason",
        "reason_price": "Wrong price",
        "reason_quantity": "Wrong quantity",
        "reason_quality": "Quality problem",
        "reason_not_received": "Goods or service not received",
        "reason_already_paid": "Already paid",
        "reason_other": "Other",
        "message": "Your message",
        "message_help": "Explain what is wrong (at most 4000 characters).",
        "contest_button": "Send the dispute",
        "contest_sent_title": "Dispute sent",
        "contest_sent": "We have received your dispute about invoice {number}. Our team will get back to you "
                        "soon; reminders are paused meanwhile.",
        "back_to_invoice": "Back to the invoice",
        "back_to_portal": "Back to your customer portal",
        "form_errors": "The form has an error:",
        "error_reason": "Choose a reason from the list.",
        "error_message": "Write a message (at most 4000 characters) saying what is wrong.",
        "error_nothing_to_pay": "There is nothing to pay on this invoice right now.",
        "error_not_open": "This invoice can no longer be contested.",
        "error_already_disputed": "This invoice is already contested: our team is reviewing your request.",
        "error_gateway": "The payment service is temporarily unavailable. Try again in a few minutes or pay by "
                         "bank transfer.",
        "error_gateway_title": "Payment service unavailable",
        "error_title": "Something went wrong",
        "bad_request": "This request could not be read. Go back to the previous page and try again.",
        "error_text": "An unexpected error occurred. Please try again in a few minutes. Reference: {ref}.",
        "contact": "Contact:",
        "status_prefix": "Status:",
        "amount_due_prefix": "Amount due:",
        "legal": "Legal information",
        "share_capital": "{form} with a share capital of {amount}",
        "siren": "SIREN {value}",
        "vat_number": "VAT number {value}",
        "page_portal": "Customer portal",
        "portal_title": "Customer portal of {name}",
        "portal_intro": "Your invoices and credit notes from {seller}.",
        "portal_balance": "Balance due: {amount}",
        "portal_documents": "Invoices and credit notes",
        "portal_no_documents": "No invoices yet.",
        "col_number": "Number",
        "col_kind": "Type",
        "col_issue": "Issued",
        "col_due": "Due",
        "col_total": "Total",
        "col_due_amount": "Amount due",
        "col_status": "Status",
        "col_documents": "Documents",
        "col_select": "Select",
        "kind_invoice": "Invoice",
        "kind_credit_note": "Credit note",
        "kind_deposit": "Deposit",
        "select_invoice": "Select {number} ({amount})",
        "open_invoice": "View {number}",
        "copy_button": "Email me a copy",
        "copy_button_of": "Email me a copy of {number}",
        "copy_sent_title": "Copy requested",
        "copy_sent": "A copy of invoice {number} will be emailed to you.",
        "pay_selected": "Pay several invoices",
        "pay_selected_help": "Tick the invoices to pay in the table, then pay them at once.",
        "pay_selected_button": "Pay the selected invoices",
        "error_select": "Tick at least one invoice to pay.",
        "error_select_invalid": "These invoices cannot be paid together: choose open invoices in one currency "
                                "(at most 30).",
        "statement": "Account statement",
        "statement_caption": "Account statement: entries and running balance",
        "col_date": "Date",
        "col_entry": "Entry",
        "col_debit": "Debit",
        "col_credit": "Credit",
        "col_balance": "Balance",
        "entry_invoice": "Invoice {number}",
        "entry_deposit": "Deposit invoice {number}",
        "entry_credit_note": "Credit note {number}",
        "entry_payment": "Payment received ({method})",
        "entry_refund": "Refund",
        "entry_discount": "Early-payment discount on {number}",
        "entry_write_off": "Written off on {number}",
        "entry_reversal": "Payment reversed on {number}",
        "statement_empty": "No entries.",
        "statement_total": "Balance",
        "method_card": "card",
        "method_sepa_debit": "SEPA direct debit",
        "method_bank_transfer": "bank transfer",
        "method_cheque": "cheque",
        "method_cash": "cash",
        "method_other": "other",
        "mandate": "SEPA direct debit",
        "mandate_active": "Your SEPA direct debit mandate is active (reference {reference}): your invoices are "
                          "debited on their due date.",
        "mandate_none": "No active direct debit mandate. Authorise direct debit to have your invoices paid "
                        "automatically on their due date.",
        "disputes": "Your open disputes",
        "disputes_none": "No open disputes.",
        "dispute_item": "{number}: {reason}, on {date}",
        "contest_from_portal": "Contest an invoice",
        "choose_invoice": "Choose an invoice",
        "error_invoice": "Choose the invoice to contest.",
        "not_found_title": "Page not found",
        "not_found": "This link is not valid.",
        "gone_title": "This link was replaced",
        "gone": "This payment link was replaced by a newer one. Use the link in the latest email about this "
                "invoice, or your customer portal.",
        "currency_note": "Amounts in {currency}.",
    },
}


def pick_language(override: str | None, preferred: str | None) -> str:
    """``?lang=`` wins when valid, then the customer's language, then French."""
    for candidate in (override, preferred):
        if candidate in LANGUAGES:
            return str(candidate)
    return DEFAULT_LANGUAGE


class Formatter:
    """Locale-aware formatting for one language (Babel, imported on first use)."""

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGUAGES else DEFAULT_LANGUAGE
        self.locale = _LOCALES[self.lang]

    def t(self, key: str, **values: Any) -> str:
        text = STRINGS[self.lang][key]
        return text.format(**values) if values else text

    def money(self, money: Money) -> str:
        from babel.numbers import format_currency

        return str(format_currency(money.to_decimal(), money.currency, locale=self.locale))

    def price(self, value: Decimal, currency: str) -> str:
        """A unit price: at least the currency's decimals, more when the price has them (12.3456)."""
        from babel.numbers import format_currency

        return str(format_currency(value, currency, locale=self.locale, decimal_quantization=False))

    def date(self, value: date | None) -> str:
        if value is None:
            return ""
        from babel.dates import format_date

        return str(format_date(value, format="long", locale=self.locale))

    def short_date(self, value: date | None) -> str:
        """For tables: "25 nov. 2026" / "25 Nov 2026"."""
        if value is None:
            return ""
        from babel.dates import format_date

        return str(format_date(value, format="medium", locale=self.locale))

    def percent(self, rate: Decimal) -> str:
        """A rate given in percent (``Decimal("2")``) as "2 %" / "2%"."""
        from babel.numbers import format_decimal

        number = format_decimal(rate.normalize() if rate == rate.to_integral_value() else rate, locale=self.locale)
        return f"{number}\u00a0%" if self.lang == "fr" else f"{number}%"

    def decimal(self, value: Decimal) -> str:
        from babel.numbers import format_decimal

        return str(format_decimal(value, locale=self.locale))

    def plural(self, key: str, count: int, **values: Any) -> str:
        # French treats 0 and 1 as singular, English only 1.
        singular = count <= 1 if self.lang == "fr" else count == 1
        return self.t(key if singular else key + "_plural", **values)


@lru_cache(maxsize=1)
def environment() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env


@lru_cache(maxsize=1)
def stylesheet() -> tuple[str, str]:
    """The pages' CSS (inlined) and its CSP source expression ('sha256-...')."""
    css = (TEMPLATES_DIR / "style.css").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode("ascii")
    return css, f"'sha256-{digest}'"


def content_security_policy() -> str:
    """Nothing but our own inline stylesheet (by hash) and inline SVG; no scripts, no framing.

    ``form-action`` is left out on purpose: the Pay and mandate buttons post to us and we
    answer 303 to the payment provider's page, and Chromium applies ``form-action`` to
    that redirect too.
    """
    _, style_hash = stylesheet()
    return (f"default-src 'none'; style-src {style_hash}; img-src 'self' data:; base-uri 'none'; "
            "frame-ancestors 'none'")


def render(template: str, lang: str, /, **context: Any) -> str:
    """Render ``template`` in ``lang`` with the formatter ``f``, the CSS and ``lang`` in its context."""
    css, _ = stylesheet()
    return str(environment().get_template(template).render(f=Formatter(lang), lang=lang, css=css, **context))


# -- EPC QR code (SEPA credit transfer) ----------------------------------------------------------

def epc_payload(*, name: str, iban: str, amount: Money, reference: str, bic: str | None = None) -> bytes | None:
    """The EPC069-12 v2 "SEPA credit transfer" QR payload (``BCD`` ... lines), as segno builds it
    for :func:`segno.helpers.make_epc_qr`; ``None`` when no such code can be offered (not EUR,
    nothing to pay, or more than the 999,999,999.99 EUR the format allows).

    The reference (the invoice number) goes in the unstructured remittance text, as on the PDF.
    Raises ValueError if the name, IBAN or BIC do not fit the format.
    """
    if amount.currency != "EUR" or not amount.is_positive or amount.amount > 99_999_999_999:
        return None
    # segno keeps its payload builder separate from make_epc_qr precisely so that it can be
    # tested on its own; the version is pinned in requirements.txt.
    from segno.helpers import _make_epc_qr_data

    data: bytes = _make_epc_qr_data(name.strip()[:70], iban.replace(" ", ""), amount.to_decimal(),
                                    text=reference.strip()[:140], bic=(bic or "").replace(" ", "") or None)
    return data


def qr_svg(payload: bytes, label: str) -> str:
    """An inline SVG QR code (error level M, as the EPC requires) with an accessible name."""
    import segno
    from markupsafe import escape

    qr = segno.make_qr(payload, error="m", boost_error=False)
    if qr.version > 13:  # the EPC caps the symbol at version 13
        raise ValueError(f"EPC QR payload too large for version 13 (needs {qr.designator})")
    svg = str(qr.svg_inline(scale=4, border=4, omitsize=True, dark="#000", light="#fff", svgclass="qr",
                            lineclass=None))
    return svg.replace("<svg ", f'<svg role="img" aria-label="{escape(label)}" focusable="false" ', 1)
