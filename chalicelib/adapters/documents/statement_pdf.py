"""Customer account statement as PDF (fpdf2, imported lazily), in French or English.

Deterministic: the creation date is the statement's end date, so the same
statement gives the same bytes. DejaVu Sans (the invoice fonts) covers accents.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping

from ...domain.money import Money, minor_units
from ...domain.statement import Statement
from .pdf import FONTS_FULL

LABELS: Mapping[str, Mapping[str, str]] = {
    "fr": {"title": "Relevé de compte", "customer": "Client", "period": "Période", "from_to": "du {a} au {b}",
           "currency": "Devise", "date": "Date", "entry": "Écriture", "reference": "Référence", "debit": "Débit",
           "credit": "Crédit", "balance": "Solde", "opening": "Solde d'ouverture au {d}",
           "closing": "Solde de clôture au {d}", "totals": "Totaux de la période", "page": "Page {n}",
           "due_note": "Un solde positif est dû par le client ; un solde négatif est un crédit en sa faveur.",
           "invoice": "Facture", "credit_note": "Avoir", "discount": "Escompte", "write_off": "Passage en perte",
           "reversal": "Paiement annulé (remboursement, rejet)", "adjustment": "Régularisation",
           "payment": "Règlement", "refund": "Remboursement d'un trop-perçu",
           "bank_transfer": "virement", "cheque": "chèque", "card": "carte", "sepa_debit": "prélèvement SEPA",
           "cash": "espèces", "other": "autre"},
    "en": {"title": "Account statement", "customer": "Customer", "period": "Period", "from_to": "{a} to {b}",
           "currency": "Currency", "date": "Date", "entry": "Entry", "reference": "Reference", "debit": "Debit",
           "credit": "Credit", "balance": "Balance", "opening": "Opening balance on {d}",
           "closing": "Closing balance on {d}", "totals": "Totals for the period", "page": "Page {n}",
           "due_note": "A positive balance is owed by the customer; a negative one is a credit in their favour.",
           "invoice": "Invoice", "credit_note": "Credit note", "discount": "Early-payment discount",
           "write_off": "Write-off", "reversal": "Payment reversed (refund, chargeback)",
           "adjustment": "Adjustment", "payment": "Payment", "refund": "Refund of overpayment",
           "bank_transfer": "bank transfer", "cheque": "cheque", "card": "card", "sepa_debit": "SEPA debit",
           "cash": "cash", "other": "other"},
}


def labels(language: str) -> Mapping[str, str]:
    return LABELS.get(language, LABELS["en"])


def format_date(d: Any, language: str) -> str:
    return d.strftime("%d/%m/%Y") if language == "fr" else d.isoformat()


def format_amount(minor: int, currency: str, language: str) -> str:
    value = Money(minor, currency).to_decimal()
    text = f"{abs(value):,.{minor_units(currency)}f}"
    if language == "fr":
        text = text.replace(",", "\u202f").replace(".", ",")
    return ("-" if minor < 0 else "") + text


def entry_label(kind: str, detail: str | None, language: str) -> str:
    t = labels(language)
    label = t.get(kind, kind)
    if detail:
        label += f" ({t.get(detail, detail)})"
    return label


def render_statement_pdf(st: Statement, *, customer_name: str, seller_name: str, language: str) -> bytes:
    from fpdf import FPDF

    t = labels(language)
    money = lambda minor: format_amount(minor, st.currency, language)  # noqa: E731
    day = lambda d: format_date(d, language)  # noqa: E731

    class StatementPDF(FPDF):  # type: ignore[misc]
        def footer(self) -> None:
            self.set_y(-12)
            self.set_font("DejaVu", "", 7)
            self.cell(0, 5, t["page"].format(n=self.page_no()), align="R")

    pdf = StatementPDF(format="A4")
    pdf.set_creation_date(datetime(st.end.year, st.end.month, st.end.day, tzinfo=timezone.utc))
    pdf.add_font("DejaVu", "", str(FONTS_FULL[0]))
    pdf.add_font("DejaVu", "B", str(FONTS_FULL[1]))
    pdf.set_title(f"{t['title']} {customer_name}")
    pdf.set_author(seller_name)
    pdf.set_auto_page_break(True, margin=18)
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 14)
    pdf.cell(0, 8, t["title"], new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 9)
    pdf.cell(0, 5, seller_name, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    for label, value in ((t["customer"], customer_name),
                         (t["period"], t["from_to"].format(a=day(st.start), b=day(st.end))),
                         (t["currency"], st.currency)):
        pdf.set_font("DejaVu", "B", 9)
        pdf.cell(30, 5, label)
        pdf.set_font("DejaVu", "", 9)
        pdf.cell(0, 5, value, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    widths = (22, 62, 34, 24, 24, 24)
    heads = (t["date"], t["entry"], t["reference"], t["debit"], t["credit"], t["balance"])

    def head() -> None:
        pdf.set_font("DejaVu", "B", 8)
        for w, h in zip(widths, heads):
            pdf.cell(w, 6, h, border="B", align="R" if w == 24 else "L")
        pdf.ln()
        pdf.set_font("DejaVu", "", 8)

    head()
    pdf.cell(sum(widths[:5]), 5, t["opening"].format(d=day(st.start)))
    pdf.cell(widths[5], 5, money(st.opening), align="R", new_x="LMARGIN", new_y="NEXT")
    for row, balance in st.running():
        if pdf.will_page_break(5):
            pdf.add_page()
            head()
        cells = (day(row.on), entry_label(row.kind, row.detail, language)[:48], row.reference[:24],
                 money(row.amount) if row.amount > 0 else "", money(-row.amount) if row.amount < 0 else "",
                 money(balance))
        for w, value in zip(widths, cells):
            pdf.cell(w, 5, value, align="R" if w == 24 else "L")
        pdf.ln()
    pdf.set_font("DejaVu", "B", 8)
    pdf.cell(sum(widths[:3]), 6, t["totals"], border="T")
    pdf.cell(widths[3], 6, money(st.debits), border="T", align="R")
    pdf.cell(widths[4], 6, money(st.credits), border="T", align="R")
    pdf.cell(widths[5], 6, "", border="T", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(sum(widths[:5]), 6, t["closing"].format(d=day(st.end)))
    pdf.cell(widths[5], 6, money(st.closing), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("DejaVu", "", 7)
    pdf.multi_cell(0, 4, t["due_note"])
    return bytes(pdf.output())
