"""Document rendering benchmarks: Factur-X (fpdf2 + factur-x) vs HTML (WeasyPrint), and a batch.

    python -m benchmarks.bench_documents

Figures (printed, not asserted): median time to render one invoice (PDF + CII
XML + XSD check + Factur-X embedding) with 10 and 100 lines after a warm-up;
the same 10-line invoice rendered from HTML by WeasyPrint, measured in the same
run, with the ratio; a batch of 1,000 invoices (invoices per second) and its
memory (peak traced Python allocations over a 200-invoice sample, and the
process's max RSS).
"""

from __future__ import annotations

import gc
import html
import resource
import statistics
import sys
import time
import tracemalloc
from dataclasses import replace
from typing import Any

from benchmarks.common import PROJECT_DIR, ms

sys.path.insert(0, str(PROJECT_DIR))


def timed(fn: Any, n: int, warmup: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds of ``n`` calls after ``warmup`` calls (CPU time is steadier on a busy host)."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(n):
        t, c = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - t)
    return wall, cpu


def _invoice(lines: int, number: str = "F2026-000042") -> Any:
    from tests.documents.builders import issued, line

    rates = ("20", "10", "5.5", "20", "2.1")
    return issued([line(f"Prestation {i + 1} : intervention sur site", f"{1 + i % 4}.5", f"{80 + i}.25",
                        rates[i % len(rates)]) for i in range(lines)], number=number,
                  purchase_order="PO-778", note="Merci de votre confiance")


def _html(model: Any) -> str:
    """The same content as the PDF, as a simple HTML page (what a WeasyPrint renderer would print)."""
    from chalicelib.adapters.documents.pdf import FONTS_FULL

    f = model.fmt
    inv = model.invoice
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(ln.description)}</td><td class=n>{e(f.decimal(ln.quantity))}</td>"
        f"<td class=n>{e(f.amount(ln.unit_price, model.currency, max_decimals=4))}</td>"
        f"<td class=n>{e(f.rate(ln.vat_rate))}</td><td class=n>{e(f.money(ln.net_amount(model.currency)))}</td></tr>"
        for ln in inv.lines)
    vat = "".join(f"<tr><td>{e(f.t('vat_row', rate=f.rate(b.rate), base=f.money(b.taxable_amount)))}</td>"
                  f"<td class=n>{e(f.money(b.tax_amount))}</td></tr>" for b in inv.totals.vat_breakdown)
    legal = "".join(f"<p>{e(t)}</p>" for t in model.legal_mentions)
    s = model.seller
    return f"""<!doctype html><html lang="{f.language}"><head><meta charset="utf-8"><style>
@font-face {{ font-family: DejaVu; src: url("file://{FONTS_FULL[0]}"); }}
@font-face {{ font-family: DejaVu; font-weight: bold; src: url("file://{FONTS_FULL[1]}"); }}
@page {{ size: A4; margin: 15mm; }}
body {{ font-family: DejaVu; font-size: 8.5pt; color: #212529; }}
table {{ width: 100%; border-collapse: collapse; }} td, th {{ padding: 1mm; border-bottom: 0.2mm solid #ced4da; }}
.n {{ text-align: right; }} h1 {{ text-align: right; font-size: 18pt; }} .legal {{ font-size: 7.5pt; color: #6c757d; }}
</style></head><body>
<h1>{e(f.t('title.invoice').upper())} {e(model.number)}</h1>
<p><b>{e(s.name)}</b><br>{e(s.address.line1 if s.address else '')}<br>SIREN {e(s.siren or '')} –
{e(f.t('vat_number'))} {e(s.vat_number or '')}<br>{e(s.legal_info or '')}</p>
<p>{e(f.t('buyer'))}: <b>{e(model.buyer.name)}</b></p>
<p>{e(f.t('issue_date'))}: {e(f.date(model.issue_date))} – {e(f.t('due_date'))}: {e(f.date(model.due_date))}</p>
<table><tr><th>{e(f.t('col.description'))}</th><th>{e(f.t('col.quantity'))}</th><th>{e(f.t('col.unit_price'))}</th>
<th>{e(f.t('col.vat'))}</th><th>{e(f.t('col.net'))}</th></tr>{rows}</table>
<table>{vat}<tr><td><b>{e(f.t('total_incl'))}</b></td><td class=n><b>{e(f.money(inv.totals.total))}</b></td></tr>
<tr><td><b>{e(f.t('amount_due'))}</b></td><td class=n><b>{e(f.money(model.payable))}</b></td></tr></table>
<p>{e(model.terms_text)}</p><div class=legal>{legal}</div></body></html>"""


def _weasyprint(model: Any) -> bytes:
    from weasyprint import HTML

    return HTML(string=_html(model)).write_pdf()  # type: ignore[no-any-return]


def run() -> list[tuple[str, str]]:
    started = time.perf_counter()
    from chalicelib.adapters.documents.model import build_model
    from chalicelib.adapters.documents.render import render_invoice
    from tests.documents.builders import context

    import_start = time.perf_counter()
    import facturx  # noqa: F401
    import fpdf  # noqa: F401
    imports = time.perf_counter() - import_start

    ctx = context()
    ten, hundred = _invoice(10), _invoice(100)
    r10, c10 = timed(lambda: render_invoice(ten, ctx), n=40, warmup=5)
    r100, c100 = timed(lambda: render_invoice(hundred, ctx), n=15, warmup=2)
    model10 = build_model(ten, ctx)
    weasy_import = time.perf_counter()
    import weasyprint  # noqa: F401
    weasy_import = time.perf_counter() - weasy_import
    w10, cw10 = timed(lambda: _weasyprint(model10), n=15, warmup=3)
    med10, med100, medw = statistics.median(r10), statistics.median(r100), statistics.median(w10)
    size10 = len(render_invoice(ten, ctx).pdf)
    sizew = len(_weasyprint(model10))

    # Batch: 1,000 distinct 10-line invoices (numbers differ), rendered one after the other.
    batch = [replace(ten, number=f"F2026-{i:06d}", id=f"inv_{i}") for i in range(1, 1001)]
    gc.collect()
    t, c = time.perf_counter(), time.process_time()
    total_bytes = 0
    for invoice in batch:
        total_bytes += len(render_invoice(invoice, ctx).pdf)
    elapsed, cpu = time.perf_counter() - t, time.process_time() - c
    gc.collect()
    tracemalloc.start()
    for invoice in batch[:200]:
        render_invoice(invoice, ctx)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    max_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    return [
        ("import fpdf2 + factur-x (once)", ms(imports)),
        ("Factur-X, 10 lines (median of 40)", f"{ms(med10)} wall, {ms(statistics.median(c10))} CPU "
                                              f"(p10 wall {ms(sorted(r10)[4])}, {size10 // 1024} KiB)"),
        ("Factur-X, 100 lines (median of 15)", f"{ms(med100)} wall, {ms(statistics.median(c100))} CPU"),
        ("WeasyPrint HTML->PDF, same 10 lines (median of 15)",
         f"{ms(medw)} wall, {ms(statistics.median(cw10))} CPU ({sizew // 1024} KiB, import {ms(weasy_import)}, "
         "no XML)"),
        ("speed ratio WeasyPrint / Factur-X (10 lines)",
         f"{medw / med10:.1f}x wall, {statistics.median(cw10) / statistics.median(c10):.1f}x CPU"),
        ("batch 1,000 x 10 lines", f"{1000 / elapsed:.0f} invoices/s wall, {1000 / cpu:.0f}/s of CPU "
                                   f"({elapsed:.1f} s, {total_bytes / 1000 / 1024:.0f} KiB per PDF)"),
        ("peak traced Python memory (200 of the batch)", f"{peak / 1024 / 1024:.1f} MiB"),
        ("max RSS of this process (incl. WeasyPrint)", f"{max_rss_mb:.0f} MiB"),
        ("benchmark wall time", f"{time.perf_counter() - started:.0f} s"),
    ]


if __name__ == "__main__":
    for label, figure in run():
        print(f"{label:<52} {figure}")
