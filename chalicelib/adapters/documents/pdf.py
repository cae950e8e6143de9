"""The human-readable invoice (fpdf2), with the mentions French law requires.

Rendered from the same :class:`DocumentModel` as the XML, in the buyer's
language: seller and buyer identities (legal form, share capital, RCS, SIREN,
SIRET, VAT numbers, addresses), number and dates (issue, due, delivery or
service period), lines with quantities, unit prices, VAT rates and nets,
allowances and charges, VAT per rate, totals, deposits deducted, amount due,
payment terms, penalties, the 40 EUR recovery indemnity, the early-payment
discount (or its absence), exemption mentions, the reform mentions (category of
the operation, VAT on debits), the pay link as text and QR code and, for EUR
invoices paid by transfer, an EPC ("SEPA") QR code.

The PDF is made PDF/A-3 ready: fonts embedded (DejaVu Sans, shipped in
``assets/``), an sRGB output intent, creation date fixed to the issue time so
that the same invoice always gives the same bytes. fpdf2 and segno are imported
lazily. Speed: the Latin subset of DejaVu is used when it covers every
character (the full fonts cost ~60 ms more per document), else the full fonts.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, time, timezone
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from ...domain.creditor_reference import format_reference, is_valid as is_rf_reference
from ...domain.invoice import STANDARD, ZERO
from ...domain.money import Money
from .model import DocumentModel, Party

ASSETS = Path(__file__).resolve().parent / "assets"
FONTS_LATIN = (ASSETS / "DejaVuSans-Latin.ttf", ASSETS / "DejaVuSans-Bold-Latin.ttf")
FONTS_FULL = (ASSETS / "DejaVuSans.ttf", ASSETS / "DejaVuSans-Bold.ttf")
SRGB_PROFILE = ASSETS / "sRGB2014.icc"
FONT = "DejaVu"
PRODUCER = "fpdf2 + factur-x"

MARGIN = 15.0
PAGE_W = 210.0
CONTENT_W = PAGE_W - 2 * MARGIN
BOTTOM = 297.0 - 20.0          # last usable y before the footer
LH = 4.2                       # body line height (mm)
BODY, SMALL, TINY = 8.5, 7.5, 6.5
TEXT = (33, 37, 41)
MUTED = (108, 117, 125)
RULE = (206, 212, 218)
SHADE = (241, 243, 245)
# Lines table: description, quantity, unit price, VAT, net.
COLS = (82.0, 24.0, 28.0, 16.0, 30.0)


def document_date(m: DocumentModel) -> datetime:
    """The creation date written into the PDF: the issue time, so re-rendering gives the same bytes."""
    issued = m.invoice.issued_at
    if issued is None:
        issued = datetime.combine(m.issue_date, time(0, 0), tzinfo=timezone.utc)
    if issued.tzinfo is None:
        issued = issued.replace(tzinfo=timezone.utc)
    return issued.astimezone(timezone.utc).replace(microsecond=0)


def render_pdf(m: DocumentModel) -> bytes:
    """The invoice PDF (before the Factur-X XML is attached)."""
    pdf = _render(m, FONTS_LATIN)
    if any(font.missing_glyphs for font in pdf.fonts.values()):
        # A character outside the Latin subset (e.g. a Cyrillic name): use the full fonts.
        pdf = _render(m, FONTS_FULL)
    return bytes(pdf.output())


def _render(m: DocumentModel, fonts: tuple[Path, Path]) -> Any:
    pdf = _new_pdf(m, fonts)
    pdf.add_page()
    _header(pdf, m)
    _lines(pdf, m)
    _totals_and_payment(pdf, m)
    _legal(pdf, m)
    return pdf


@lru_cache(maxsize=1)
def _pdf_class() -> Any:
    from fpdf import FPDF

    class InvoicePDF(FPDF):  # type: ignore[misc]
        footer_text = ""
        page_label = "{page}/{pages}"
        document_id = ""

        def file_id(self) -> str:
            # fpdf2's default ID hashes the whole output, which includes an XMP ModifyDate taken from the
            # clock: derive it from the document's identity instead, so that re-renders are identical.
            return f"<{self.document_id}><{self.document_id}>"

        def footer(self) -> None:
            self.set_y(-14)
            self.set_draw_color(*RULE)
            self.line(MARGIN, self.get_y(), PAGE_W - MARGIN, self.get_y())
            self.set_font(FONT, "", TINY)
            self.set_text_color(*MUTED)
            y = self.get_y() + 1
            for chunk in _wrap(self, self.footer_text, CONTENT_W - 22):
                self.set_xy(MARGIN, y)
                self.cell(CONTENT_W - 22, 3, chunk)
                y += 3
            self.set_xy(PAGE_W - MARGIN - 22, -13)
            self.cell(22, 3, self.page_label.format(page=self.page_no(), pages="{nb}"), align="R")

    return InvoicePDF


@lru_cache(maxsize=1)
def _srgb_profile() -> bytes:
    return SRGB_PROFILE.read_bytes()


def _new_pdf(m: DocumentModel, fonts: tuple[Path, Path]) -> Any:
    from fpdf.enums import DocumentCompliance, OutputIntentSubType
    from fpdf.output import PDFICCProfile

    pdf = _pdf_class()(orientation="P", unit="mm", format="A4", enforce_compliance=DocumentCompliance.PDFA_3B)
    pdf.add_output_intent(
        OutputIntentSubType.PDFA, output_condition_identifier="sRGB IEC61966-2.1",
        output_condition="sRGB IEC61966-2.1", registry_name="http://www.color.org",
        dest_output_profile=PDFICCProfile(contents=_srgb_profile(), n=3, alternate="DeviceRGB"),
        info="sRGB2014 (v2)")
    pdf.set_creation_date(document_date(m))
    identity = "|".join((m.seller.siren or m.seller.name, m.type_code, m.number, document_date(m).isoformat()))
    pdf.document_id = hashlib.md5(identity.encode("utf-8"), usedforsecurity=False).hexdigest().upper()
    pdf.set_producer(PRODUCER)
    pdf.set_creator(PRODUCER)
    pdf.set_title(f"{m.fmt.t(_title_key(m))} {m.number}")
    pdf.set_author(m.seller.name)
    pdf.set_lang("fr-FR" if m.fmt.language == "fr" else "en-GB")
    pdf.add_font(FONT, "", str(fonts[0]))
    pdf.add_font(FONT, "B", str(fonts[1]))
    for font in pdf.fonts.values():
        # Keep the glyph outlines as they are when fpdf2 saves the subset: recomputing bounding
        # boxes decompiles and recompiles every glyph (~5 ms per document) for no visible change.
        font.ttfont.recalcBBoxes = False
    pdf.set_margins(MARGIN, MARGIN, MARGIN)
    pdf.set_auto_page_break(True, margin=297.0 - BOTTOM)
    pdf.alias_nb_pages()
    pdf.footer_text = _footer_text(m)
    pdf.page_label = m.fmt.t("page", page="{page}", pages="{pages}")
    pdf.set_text_color(*TEXT)
    return pdf


def _title_key(m: DocumentModel) -> str:
    return f"title.{m.invoice.kind}"


def _footer_text(m: DocumentModel) -> str:
    s = m.seller
    parts = [s.name]
    if s.legal_info:
        parts.append(s.legal_info)
    if s.siret:
        parts.append(f"SIRET {s.siret}")
    elif s.siren:
        parts.append(f"SIREN {s.siren}")
    if s.vat_number:
        parts.append(f"{m.fmt.t('vat_number')} {s.vat_number}")
    return " \u2013 ".join(parts)


# -- blocks ----------------------------------------------------------------------------------------

def _text_lines(pdf: Any, x: float, y: float, w: float, rows: list[tuple[str, str, float]]) -> float:
    """Write (text, style, size) rows at x/y, wrapping; returns the y below."""
    for text, style, size in rows:
        pdf.set_font(FONT, style, size)
        h = size * 0.45
        for chunk in _wrap(pdf, text, w):
            pdf.set_xy(x, y)
            pdf.cell(w, h, chunk)
            y += h
    return y


def _wrap(pdf: Any, text: str, width: float) -> list[str]:
    """Greedy word wrap at the current font (fpdf2's multi_cell dry run costs ~1 ms per call)."""
    width -= 1.0
    measure = pdf.get_string_width
    if measure(text) <= width:
        return [text]
    space = measure(" ")
    lines: list[str] = []
    current, current_w = "", 0.0
    for word in text.split(" "):
        word_w = measure(word)
        if current and current_w + space + word_w <= width:
            current, current_w = f"{current} {word}", current_w + space + word_w
            continue
        if current:
            lines.append(current)
        while word_w > width and len(word) > 1:      # a word wider than the column: cut it
            cut = len(word) - 1
            while cut > 1 and measure(word[:cut]) > width:
                cut -= 1
            lines.append(word[:cut])
            word = word[cut:]
            word_w = measure(word)
        current, current_w = word, word_w
    if current:
        lines.append(current)
    return lines or [text]


def _party_rows(m: DocumentModel, p: Party, *, seller: bool) -> list[tuple[str, str, float]]:
    f = m.fmt
    rows: list[tuple[str, str, float]] = [(p.name, "B", 11.0 if seller else 9.5)]
    if p.trade_name:
        rows.append((p.trade_name, "", BODY))
    if p.address:
        rows.append((p.address.line1, "", BODY))
        if p.address.line2:
            rows.append((p.address.line2, "", BODY))
        rows.append((f"{p.address.postal_code} {p.address.city} ({p.address.country})".strip(), "", BODY))
    else:
        rows.append((p.country, "", BODY))
    ids = []
    if p.siren:
        ids.append(f"{f.t('siren')} {p.siren}")
    if p.siret:
        ids.append(f"{f.t('siret')} {p.siret}")
    if ids:
        rows.append((" \u2013 ".join(ids), "", SMALL))
    if p.vat_number:
        rows.append((f"{f.t('vat_number')} {p.vat_number}", "", SMALL))
    if seller and p.legal_info:
        rows.append((p.legal_info, "", SMALL))
    contact = " \u2013 ".join(x for x in (p.email, p.phone) if x)
    if contact:
        rows.append((contact, "", SMALL))
    return rows


def _header(pdf: Any, m: DocumentModel) -> None:
    f = m.fmt
    left_w, right_x = 100.0, 118.0
    right_w = PAGE_W - MARGIN - right_x
    y_left = _text_lines(pdf, MARGIN, MARGIN, left_w, _party_rows(m, m.seller, seller=True))

    # Title and references, top right.
    pdf.set_font(FONT, "B", 18)
    pdf.set_xy(right_x, MARGIN - 1)
    pdf.cell(right_w, 8, f.t(_title_key(m)).upper(), align="R")
    refs: list[tuple[str, str]] = [(f.t("number"), m.number), (f.t("issue_date"), f.date(m.issue_date))]
    if m.due_date and not m.is_credit_note:
        refs.append((f.t("due_date"), f.date(m.due_date)))
    if m.delivery_date:
        refs.append((f.t("delivery_date"), f.date(m.delivery_date)))
    if m.period:
        start, end = m.period
        refs.append((f.t("service_period"), f.t("period", start=f.short_date(start or end),  # type: ignore[arg-type]
                                                    end=f.short_date(end or start))))  # type: ignore[arg-type]
    inv = m.invoice
    if not m.delivery_date and not m.period and not any(l.period_start or l.period_end for l in inv.lines):
        # French law requires the date of the sale or service (CGI art. 242 nonies A): none given means
        # delivered on the day of the invoice, and the invoice says so.
        refs.append((f.t("delivery_or_service_date"), f.date(m.issue_date)))
    if inv.purchase_order:
        refs.append((f.t("purchase_order"), inv.purchase_order))
    if inv.buyer_reference:
        refs.append((f.t("buyer_reference"), inv.buyer_reference))
    if m.context.contract_reference:
        refs.append((f.t("contract"), m.context.contract_reference))
    y = MARGIN + 9
    for label, value in refs:
        pdf.set_xy(right_x, y)
        pdf.set_font(FONT, "", SMALL)
        pdf.set_text_color(*MUTED)
        label_w = pdf.get_string_width(label) + 2
        pdf.cell(label_w, LH, label)
        pdf.set_font(FONT, "B", BODY)
        pdf.set_text_color(*TEXT)
        pdf.cell(right_w - label_w, LH, value, align="R")
        y += LH
    if m.is_credit_note and m.preceding:
        ref = m.preceding[0]
        text = (f.t("credit_note_for_dated", number=ref.number, date=f.date(ref.issue_date)) if ref.issue_date
                else f.t("credit_note_for", number=ref.number))
        y = _text_lines(pdf, right_x, y + 1, right_w, [(text, "B", BODY)])

    # Buyer box, right; deliver-to under the seller, left.
    y_box = max(y, y_left) + 5
    buyer_rows = _party_rows(m, m.buyer, seller=False)
    pdf.set_font(FONT, "", SMALL)
    pdf.set_text_color(*MUTED)
    pdf.set_xy(right_x, y_box)
    pdf.cell(right_w, LH, f.t("buyer").upper())
    pdf.set_text_color(*TEXT)
    y_buyer = _text_lines(pdf, right_x + 2, y_box + LH + 1, right_w - 4, buyer_rows)
    pdf.set_draw_color(*RULE)
    pdf.rect(right_x, y_box + LH, right_w, y_buyer - y_box - LH + 1.5)
    y_deliver = y_box
    if m.deliver_to is not None:
        pdf.set_font(FONT, "", SMALL)
        pdf.set_text_color(*MUTED)
        pdf.set_xy(MARGIN, y_box)
        pdf.cell(left_w, LH, f.t("deliver_to").upper())
        pdf.set_text_color(*TEXT)
        d = m.deliver_to
        rows = [(d.name, "B", BODY)] if d.name else []
        if d.address is not None:
            rows += [(d.address.line1, "", BODY)]
            if d.address.line2:
                rows.append((d.address.line2, "", BODY))
            rows.append((f"{d.address.postal_code} {d.address.city} ({d.address.country})", "", BODY))
        else:
            rows.append((d.country, "", BODY))
        y_deliver = _text_lines(pdf, MARGIN, y_box + LH + 1, left_w, rows)
    pdf.set_y(max(y_buyer, y_deliver) + 6)


def _table_header(pdf: Any, m: DocumentModel) -> None:
    f = m.fmt
    pdf.set_fill_color(*SHADE)
    pdf.set_font(FONT, "B", SMALL)
    pdf.set_x(MARGIN)
    labels = (f.t("col.description"), f.t("col.quantity"), f.t("col.unit_price"), f.t("col.vat"), f.t("col.net"))
    for i, (label, w) in enumerate(zip(labels, COLS)):
        pdf.cell(w, 6, label, align="L" if i == 0 else "R", fill=True)
    pdf.ln(6)


def _vat_label(m: DocumentModel, category: str, rate: Decimal) -> str:
    if category in (STANDARD, ZERO):
        return m.fmt.rate(rate)
    return category


def _row(pdf: Any, m: DocumentModel, desc: list[tuple[str, str, float]], cells: tuple[str, str, str, str]) -> None:
    heights = []
    wrapped: list[tuple[str, str, float]] = []
    for text, style, size in desc:
        pdf.set_font(FONT, style, size)
        for chunk in _wrap(pdf, text, COLS[0] - 2):
            wrapped.append((chunk, style, size))
            heights.append(LH if size >= BODY else 3.4)
    row_h = sum(heights) + 1.6
    if pdf.get_y() + row_h > BOTTOM:
        pdf.add_page()
        _table_header(pdf, m)
    y0 = pdf.get_y() + 0.8
    y = y0
    for (chunk, style, size), h in zip(wrapped, heights):
        pdf.set_font(FONT, style, size)
        pdf.set_text_color(*(TEXT if size >= BODY else MUTED))
        pdf.set_xy(MARGIN + 1, y)
        pdf.cell(COLS[0] - 2, h, chunk)
        y += h
    pdf.set_text_color(*TEXT)
    pdf.set_font(FONT, "", BODY)
    x = MARGIN + COLS[0]
    for value, w in zip(cells, COLS[1:]):
        pdf.set_xy(x, y0)
        pdf.cell(w - 1, LH, value, align="R")
        x += w
    y_end = y0 + row_h - 0.8
    pdf.set_draw_color(*RULE)
    pdf.line(MARGIN, y_end, PAGE_W - MARGIN, y_end)
    pdf.set_y(y_end)


def _lines(pdf: Any, m: DocumentModel) -> None:
    f = m.fmt
    cur = m.currency
    _table_header(pdf, m)
    for line in m.invoice.lines:
        desc = [(line.description, "", BODY)]
        extra = []
        if line.item_id:
            extra.append(line.item_id)
        if line.period_start or line.period_end:
            start, end = line.period_start or line.period_end, line.period_end or line.period_start
            extra.append(f.t("period", start=f.short_date(start), end=f.short_date(end)))  # type: ignore[arg-type]
        if extra:
            desc.append((" \u2013 ".join(extra), "", TINY))
        unit = f.unit(line.unit_code)
        qty = f.decimal(line.quantity) + (f"\u00a0{unit}" if unit else "")
        _row(pdf, m, desc, (qty, f.amount(line.unit_price, cur, max_decimals=4),
                            _vat_label(m, line.vat_category, line.vat_rate), f.money(line.net_amount(cur))))
    for ac in m.invoice.allowances_charges:
        label = f"{f.t('charge' if ac.charge else 'allowance')} : {ac.reason}" if f.language == "fr" \
            else f"{f.t('charge' if ac.charge else 'allowance')}: {ac.reason}"
        value = f.money(ac.amount if ac.charge else -ac.amount)
        _row(pdf, m, [(label, "", BODY)], ("", "", _vat_label(m, ac.vat_category, ac.vat_rate), value))


def _ensure_space(pdf: Any, m: DocumentModel, height: float) -> None:
    if pdf.get_y() + height > BOTTOM:
        pdf.add_page()


def _total_rows(m: DocumentModel) -> list[tuple[str, str, bool]]:
    f = m.fmt
    t = m.invoice.totals
    rows: list[tuple[str, str, bool]] = []
    if not t.allowance_total.is_zero or not t.charge_total.is_zero:
        rows.append((f.t("lines_total"), f.money(t.line_total), False))
        if not t.allowance_total.is_zero:
            rows.append((f.t("allowances_total"), f.money(-t.allowance_total), False))
        if not t.charge_total.is_zero:
            rows.append((f.t("charges_total"), f.money(t.charge_total), False))
    rows.append((f.t("total_excl"), f.money(t.tax_exclusive), True))
    for b in t.vat_breakdown:
        if b.category in (STANDARD, ZERO):
            label = f.t("vat_row", rate=f.rate(b.rate), base=f.money(b.taxable_amount))
        else:
            label = f.t("vat_exempt_row", category=f.t(f"vat_category.{b.category}"), base=f.money(b.taxable_amount))
        rows.append((label, f.money(b.tax_amount), False))
    rows.append((f.t("vat_total"), f.money(t.vat_total), False))
    rows.append((f.t("total_incl"), f.money(t.total), True))
    for d in m.deposits:
        rows.append((f.t("deposit_row", number=d.number, date=f.short_date(d.issue_date)), f.money(-d.amount), False))
    if not m.prepaid.is_zero and not m.deposits:
        rows.append((f.t("prepaid"), f.money(-m.prepaid), False))
    return rows


def _colon(m: DocumentModel, label: str, value: str) -> str:
    return f"{label} : {value}" if m.fmt.language == "fr" else f"{label}: {value}"


def _payment_rows(m: DocumentModel) -> list[tuple[str, str, float]]:
    f = m.fmt
    if m.is_credit_note:
        return [(m.terms_text, "", BODY)]
    rows: list[tuple[str, str, float]] = []
    terms = m.invoice.payment_terms.describe(f.language) if m.invoice.payment_terms else ""
    if m.due_date:
        terms = " \u2013 ".join(x for x in (terms, _colon(m, f.t("due_date"), f.date(m.due_date))) if x)
    rows.append((terms, "B", BODY))
    if m.payment_means == "58":
        rows.append((f.t("means.58"), "", BODY))
        rows.append((f"{f.t('iban')} {_group(m.iban or '')}", "", BODY))
        if m.bic:
            rows.append((f"{f.t('bic')} {m.bic}", "", BODY))
    elif m.payment_means == "59":
        rows.append((f.t("means.59"), "", BODY))
        rows.append((f.t("mandate", mandate=m.mandate_reference, creditor=m.creditor_id), "", SMALL))
        if m.debtor_iban:
            rows.append((f"{f.t('iban')} {_group(m.debtor_iban)}", "", SMALL))
        if m.due_date:
            rows.append((f.t("direct_debit_on", date=f.date(m.due_date)), "", SMALL))
    ref = m.payment_reference
    rows.append((_colon(m, f.t("payment_reference"), format_reference(ref) if is_rf_reference(ref) else ref),
                 "", BODY))
    if m.pay_url:
        rows.append((_colon(m, f.t("pay_online"), ""), "", BODY))
        rows.append((m.pay_url, "", SMALL))
    return rows


QR_SIZE = 24.0
LEFT_W = 86.0
TOTALS_X = 106.0


def _totals_and_payment(pdf: Any, m: DocumentModel) -> None:
    """Totals on the right; notes, exemption mentions, payment details and QR codes on the left."""
    f = m.fmt
    totals_w = PAGE_W - MARGIN - TOTALS_X
    rows = _total_rows(m)
    final = f.t("credit_amount") if m.is_credit_note else f.t("amount_due")
    eur_text = None
    if m.vat_total_eur is not None and m.context.eur_exchange_rate is not None:
        rate_date = (f.t("rate_date", date=f.short_date(m.context.exchange_rate_date))
                     if m.context.exchange_rate_date else "")
        eur_text = f.t("vat_eur", amount=f.money(m.vat_total_eur), currency=m.currency,
                       rate=f.plain_rate(m.context.eur_exchange_rate), rate_date=rate_date)
    notes = [(text, "", SMALL) for text in list(m.exemption_mentions) + _free_notes(m)]
    pay_rows = _payment_rows(m)
    if m.pay_url and pay_rows[-1][0] == m.pay_url:
        # Keep the link on one line (shrinking down to 5.5 pt): a cut URL cannot be copied.
        pdf.set_font(FONT, "", SMALL)
        size = max(5.5, min(SMALL, SMALL * (LEFT_W - 1.5) / pdf.get_string_width(m.pay_url)))
        pay_rows[-1] = (m.pay_url, "", size)
    qrs = _qr_codes(m)

    # Height estimate (wrapped lines are counted generously) to keep the block on one page.
    right_h = len(rows) * 4.4 + 11 + (8 if eur_text else 0)
    left_h = (sum(len(r[0]) // 60 + 1 for r in notes) * 3.4 + sum(len(r[0]) // 55 + 1 for r in pay_rows) * 3.9
              + 9 + (QR_SIZE + 6 if qrs else 0))
    _ensure_space(pdf, m, max(right_h, left_h) + 4)
    y0 = pdf.get_y() + 4

    y = y0
    for label, value, bold in rows:
        pdf.set_font(FONT, "B" if bold else "", BODY if bold else SMALL)
        for i, chunk in enumerate(_wrap(pdf, label, totals_w - 30)):
            pdf.set_xy(TOTALS_X, y)
            pdf.cell(totals_w - 30, 4.4, chunk)
            if i == 0:
                pdf.cell(30, 4.4, value, align="R")
            y += 4.4
    pdf.set_fill_color(*SHADE)
    pdf.set_font(FONT, "B", 10.5)
    pdf.set_xy(TOTALS_X, y + 1)
    pdf.cell(totals_w - 34, 7.5, final, fill=True)
    pdf.cell(34, 7.5, f.money(m.payable), align="R", fill=True)
    y += 9.5
    if eur_text:
        y = _text_lines(pdf, TOTALS_X, y + 1, totals_w, [(eur_text, "", SMALL)])

    y_left = _text_lines(pdf, MARGIN, y0, LEFT_W, notes) + (2 if notes else 0)
    pdf.set_font(FONT, "B", SMALL)
    pdf.set_text_color(*MUTED)
    pdf.set_xy(MARGIN, y_left)
    pdf.cell(LEFT_W, LH, f.t("payment").upper())
    pdf.set_text_color(*TEXT)
    y_pay = _text_lines(pdf, MARGIN, y_left + LH + 0.5, LEFT_W, pay_rows)
    if m.pay_url:
        pdf.link(MARGIN, y_left, LEFT_W, y_pay - y_left, m.pay_url)
    x = MARGIN
    for caption, matrix in qrs:
        _draw_qr(pdf, matrix, x + 2, y_pay + 2, QR_SIZE)
        pdf.set_font(FONT, "", TINY)
        pdf.set_text_color(*MUTED)
        pdf.set_xy(x, y_pay + QR_SIZE + 2.5)
        pdf.cell(QR_SIZE + 4, 3, caption, align="C")
        pdf.set_text_color(*TEXT)
        x += QR_SIZE + 10
    if qrs:
        y_pay += QR_SIZE + 6
    pdf.set_y(max(y, y_pay) + 4)


def _free_notes(m: DocumentModel) -> list[str]:
    texts = [m.invoice.note] if m.invoice.note else []
    return texts + [t for t in m.context.extra_notes if t]


def _legal(pdf: Any, m: DocumentModel) -> None:
    rows = [(t, "", SMALL) for t in m.legal_mentions]
    _ensure_space(pdf, m, len(rows) * 3.6 + 8)
    y = pdf.get_y()
    pdf.set_draw_color(*RULE)
    pdf.line(MARGIN, y, PAGE_W - MARGIN, y)
    pdf.set_text_color(*MUTED)
    y = _text_lines(pdf, MARGIN, y + 1.5, CONTENT_W, rows)
    pdf.set_text_color(*TEXT)
    pdf.set_y(y)


def _group(iban: str) -> str:
    return " ".join(iban[i:i + 4] for i in range(0, len(iban), 4))


# -- QR codes --------------------------------------------------------------------------------------

def _qr_codes(m: DocumentModel) -> list[tuple[str, Any]]:
    out = []
    if m.pay_url:
        out.append((m.fmt.t("pay_online"), qr_matrix(m.pay_url.encode("utf-8"), error="m")))
    epc = epc_payload(m)
    if epc is not None:
        out.append((m.fmt.t("epc_qr"), qr_matrix(epc, error="m")))
    return out


def epc_payload(m: DocumentModel) -> bytes | None:
    """EPC069-12 v2 "SEPA credit transfer" QR payload, the same bytes ``segno.helpers.make_epc_qr`` encodes.

    Only for EUR invoices paid by transfer with something to pay. The remittance
    is the structured RF reference when the payment reference is one, else the
    payment reference (the invoice number by default) as text.
    """
    if m.currency != "EUR" or m.payment_means != "58" or not m.iban or not m.payable.is_positive:
        return None
    if m.payable > Money(99_999_999_999, "EUR"):
        return None
    ref = m.payment_reference.strip()
    structured = ref if is_rf_reference(ref) else ""
    text = "" if structured else ref[:140]
    fields = ["BCD", "002", "", "SCT", (m.bic or "").strip(), m.seller.name.strip()[:70], m.iban.strip(),
              f"EUR{m.payable.to_decimal():.2f}".rstrip("0").rstrip("."), "", structured]
    if text:
        fields.append(text)
    data = "\n".join(fields)
    try:
        data.encode("iso-8859-1")
        charset, encoding = "2", "iso-8859-1"
    except UnicodeEncodeError:
        charset, encoding = "1", "utf-8"
    fields[2] = charset
    return "\n".join(fields).encode(encoding)


# Mask fixed instead of evaluated: segno scores all 8 masks in pure Python (~7 ms per code);
# any mask gives a valid, readable QR code.
QR_MASK = 0


def qr_matrix(data: bytes, *, error: str) -> Any:
    import segno

    return segno.make_qr(data, error=error, boost_error=False, mask=QR_MASK).matrix


def _qr_runs(matrix: Any) -> list[tuple[int, int, int]]:
    """Horizontal runs of dark modules: (row, first column, length)."""
    runs = []
    for r, row in enumerate(matrix):
        n, c = len(row), 0
        while c < n:
            if row[c]:
                start = c
                while c < n and row[c]:
                    c += 1
                runs.append((r, start, c - start))
            else:
                c += 1
    return runs


def _draw_qr(pdf: Any, matrix: Any, x: float, y: float, size: float) -> None:
    """Vector QR code: one filled path of rectangles (a few hundred ``rect`` calls would cost ~4 ms)."""
    module = size / len(matrix)
    pdf.set_fill_color(0, 0, 0)
    runs = _qr_runs(matrix)
    out = getattr(pdf, "_out", None)
    if out is None:  # pragma: no cover - fpdf2 without its content-stream writer
        for r, c, length in runs:
            pdf.rect(x + c * module, y + r * module, length * module, module, style="F")
    else:
        k, h = pdf.k, pdf.h
        ops = [f"{(x + c * module) * k:.2f} {(h - y - r * module) * k:.2f} {length * module * k:.2f} "
               f"{-module * k:.2f} re" for r, c, length in runs]
        out("\n".join(ops) + "\nf")
    pdf.set_fill_color(*SHADE)
