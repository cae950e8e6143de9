"""Server-rendered hosted Checkout pages (plain HTML forms, real buttons, labelled inputs)."""

from __future__ import annotations

from html import escape
from typing import Any

from .core import CHECKOUT_ACTIONS, DEFAULT_IBAN, fmt_amount

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f6f8fa;color:#1a1f36}
main{max-width:34rem;margin:2rem auto;background:#fff;padding:1.5rem 2rem;border-radius:8px;
     box-shadow:0 1px 3px rgba(0,0,0,.15)}
h1{font-size:1.5rem}.test{display:inline-block;background:#ffde92;color:#5e3a00;padding:.1rem .5rem;
border-radius:4px;font-size:.8rem;font-weight:600}table{width:100%;border-collapse:collapse;margin:1rem 0}
th,td{text-align:left;padding:.35rem;border-bottom:1px solid #e3e8ee}td.num,th.num{text-align:right}
label{display:block;font-weight:600;margin-top:.75rem}input{width:100%;box-sizing:border-box;padding:.5rem;
font-size:1rem;border:1px solid #8792a2;border-radius:4px}fieldset{border:1px solid #e3e8ee;border-radius:6px;
margin-top:1rem}button{font-size:1rem;padding:.6rem 1rem;margin:.4rem .4rem .4rem 0;border-radius:6px;
border:1px solid #635bff;background:#635bff;color:#fff;cursor:pointer}button.secondary{background:#fff;
color:#3c4257;border-color:#8792a2}button:focus-visible,input:focus-visible{outline:3px solid #0055d4;
outline-offset:2px}.alert{background:#fde8e8;color:#8a1c1c;border:1px solid #df1b41;padding:.75rem;
border-radius:6px}.notice{background:#e6f4ea;color:#0d5524;padding:.75rem;border-radius:6px}
small{color:#4f566b}
"""


def _document(title: str, body: str) -> str:
    return (f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
            f'<main id="main" aria-labelledby="page-title">\n{body}\n</main>\n</body>\n</html>\n')


def message_page(title: str, message: str, link: tuple[str, str] | None = None) -> str:
    extra = f'<p><a href="{escape(link[0])}">{escape(link[1])}</a></p>' if link else ""
    return _document(title, f'<h1 id="page-title">{escape(title)}</h1>\n<p>{escape(message)}</p>\n{extra}'
                            f'\n<p><span class="test">TEST MODE</span> <small>Stripe emulator</small></p>')


def _button(action: str, secondary: bool = False) -> str:
    css = ' class="secondary"' if secondary else ""
    return f'<button type="submit" name="action" value="{action}"{css}>{escape(CHECKOUT_ACTIONS[action])}</button>'


def checkout_page(session: dict[str, Any], items: list[dict[str, Any]], error: str | None = None,
                  email: str | None = None, name: str | None = None) -> str:
    sid = session["id"]
    currency = session["currency"]
    types = session["payment_method_types"]
    parts: list[str] = []
    if session["mode"] == "payment":
        total = fmt_amount(session["amount_total"], currency)
        parts.append(f'<h1 id="page-title">Pay {escape(total)}</h1>')
    else:
        parts.append('<h1 id="page-title">Set up SEPA Direct Debit</h1>')
    parts.append('<p><span class="test">TEST MODE</span> <small>Stripe emulator: no real money moves.</small></p>')
    if error:
        parts.append(f'<div class="alert" role="alert" id="checkout-error">{escape(error)}</div>')
    if session["mode"] == "payment":
        rows = "".join(
            f'<tr><td>{escape(li["description"] or "")}</td><td class="num">{li["quantity"]}</td>'
            f'<td class="num">{escape(fmt_amount(li["amount_total"], li["currency"]))}</td></tr>' for li in items)
        parts.append(
            '<table><caption>Order summary</caption><thead><tr><th scope="col">Item</th>'
            '<th scope="col" class="num">Quantity</th><th scope="col" class="num">Amount</th></tr></thead>'
            f'<tbody>{rows}</tbody><tfoot><tr><th scope="row" colspan="2">Total due</th>'
            f'<td class="num" id="amount-total" data-amount="{session["amount_total"]}" '
            f'data-currency="{escape(currency)}">{escape(fmt_amount(session["amount_total"], currency))} '
            f'{escape(currency.upper())}</td></tr></tfoot></table>')
    form = [f'<form method="post" action="/checkout/{escape(sid)}" aria-describedby="form-help">',
            '<p id="form-help"><small>Pick an outcome to simulate. Each button behaves like the named test '
            'payment.</small></p>',
            '<label for="email">Email</label>',
            f'<input id="email" name="email" type="email" autocomplete="email" value="{escape(email or "")}">',
            '<label for="name">Full name</label>',
            f'<input id="name" name="name" type="text" autocomplete="name" value="{escape(name or "")}">']
    if "sepa_debit" in types:
        form += ['<label for="iban">IBAN</label>',
                 f'<input id="iban" name="iban" type="text" autocomplete="off" value="{DEFAULT_IBAN}" '
                 'aria-describedby="iban-help">',
                 '<p id="iban-help"><small>By providing your IBAN and confirming, you authorise the merchant and '
                 'Stripe, its payment service provider, to send instructions to your bank to debit your account '
                 '(SEPA Direct Debit mandate).</small></p>']
    if session["mode"] == "payment":
        if "card" in types:
            form.append(f'<fieldset><legend>Card</legend>{_button("card_success")}'
                        f'{_button("card_declined", True)}</fieldset>')
        if "sepa_debit" in types:
            form.append(f'<fieldset><legend>SEPA Direct Debit</legend>{_button("sepa_success")}'
                        f'{_button("sepa_fail", True)}</fieldset>')
        if session["cancel_url"]:
            form.append(_button("cancel", True))
    else:
        if "sepa_debit" in types:
            form.append(_button("setup_sepa"))
        form.append(_button("cancel", True))
    form.append("</form>")
    parts.append("\n".join(form))
    title = "Checkout" if session["mode"] == "payment" else "Set up a SEPA mandate"
    return _document(f"{title} – Stripe emulator", "\n".join(parts))
