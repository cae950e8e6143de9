"""Finance reports: aging, DSO, collection KPIs, disputes, cash-in forecast.

What each report reads (``items_read`` in every response counts the DynamoDB
items it read; docs/finance.md has the table):

- **aging** (portfolio or one customer, as of any date, with month-end
  snapshots): the report aggregates only, in one BatchGetItem: the year items
  of the (currency, scope) up to the as-of year and the <= 8 month and
  late-detail items around the as-of date: *years + 8 items*, whatever the
  number of invoices. Month-end snapshots add the month items of their windows.
- **aging by customer**: a page of customers (the name index) and, per
  customer, its own aggregate scope (years + 8 items each): O(page size).
- **dso**: the aggregates: years + the month items of the period's ends and of
  the 36 months the 12-point series and its countback need (<= years + 38).
- **collection**: the aggregates for CEI, rates and amounts (collected,
  refunded, written off: the loss, like the DSO's ``written_off``); the payments
  received in the period (payment index by received date) and the invoices
  they were allocated to (one batch read) for days to pay, on-time share and
  the breakdowns: O(payments of the period), capped at
  :data:`COLLECTION_PAYMENT_CAP` (``truncated`` says so).
- **disputes**: the open disputes (their sparse queue) and their invoices.
- **forecast**: the open invoices (sparse OPEN index), the active promises,
  plans and open disputes (their queues), and for each customer with an open
  invoice its invoices paid in the forecast window (customer index, issue dates
  in the key): O(open invoices + recent invoices of the customers who owe).

Raises ``ValidationError`` (bad period, currency), ``NotFound`` (customer).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any, Callable, Iterable, Sequence

from ..domain.aggregates import (PAYMENT, PORTFOLIO, AggregateKey, AggregateView, aging_read_keys,
                                 aging_read_keys_many, monthly_read_keys, period_read_keys)
from ..domain.collections import DISPUTE_OPEN, PLAN_ACTIVE, PROMISE_ACTIVE, Dispute as DisputeRecord
from ..domain.errors import ValidationError
from ..domain.forecast import (Commitments, Dispute, Installment, OpenInvoice, PaymentObservation, Prediction,
                               Promise, SepaCollection, forecast, predict)
from ..domain.invoice import OPEN, PAID, Invoice
from ..domain.kpis import (Aging, MonthSales, PaidInvoice, PaymentPart, add_months, collection_report,
                           dso_report, dso_series, month_end, month_start)
from ..domain.money import Money, check_currency
from ..domain.payer_profile import PaidInvoiceRecord, derive_profile
from ..domain.statement import paid_on
from .credit import LEDGER_FIRST_YEAR, FinanceSettingsService, all_pages, history_of, local_day
from .ports import Clock, InvoiceQuery, Ledger, PaymentQuery
from .settings import SettingsService

COLLECTION_PAYMENT_CAP = 20_000
COUNTBACK_MONTHS = 24
SERIES_POINTS = 12
DISPUTE_AGES = ((0, 7), (8, 30), (31, 60), (61, 90), (91, None))
BEFORE_PERIOD = "before_period"


@dataclass(frozen=True)
class Loaded:
    view: AggregateView
    items_read: int


class ReportService:
    def __init__(self, ledger: Ledger, clock: Clock, settings: SettingsService,
                 finance: FinanceSettingsService) -> None:
        self._ledger = ledger
        self._clock = clock
        self._settings = settings
        self._finance = finance

    def today(self) -> date:
        return self._clock.today(self._settings.timezone())

    # -- aggregates -----------------------------------------------------------------------------
    def _load(self, currency: str, scope: str, upto: date, plan: Callable[[int], Iterable[AggregateKey]],
              first_year: int = 0) -> Loaded:
        """One BatchGetItem for the whole read plan, year keys from :data:`LEDGER_FIRST_YEAR` on.

        Only the year items that exist come back (absent keys cost a key, not an item), so the items
        read stay *years of history + the plan's month items*; asking for every year from the floor
        saves the Query that would find the first one (one round trip instead of two)."""
        if upto.year < LEDGER_FIRST_YEAR:
            raise ValidationError(f"reports start on {LEDGER_FIRST_YEAR}-01-01", field="as_of")
        first = first_year or LEDGER_FIRST_YEAR
        keys = frozenset(plan(first))
        items = self._ledger.get_aggregates(sorted(keys))
        return Loaded(AggregateView(currency, scope, first, items, keys), len(items))

    def _scope(self, customer_id: str | None) -> str:
        if customer_id:
            self._ledger.get_customer(customer_id)  # 404 for an unknown customer
            return customer_id
        return PORTFOLIO

    # -- aging ----------------------------------------------------------------------------------
    def aging(self, *, as_of: date, currency: str, customer_id: str | None = None,
              month_ends: int = 0) -> tuple[Aging, list[Aging], int]:
        """Aging as of ``as_of`` and at the ``month_ends`` last month ends before it."""
        currency = check_currency(currency)
        scope = self._scope(customer_id)
        dates = [as_of]
        d = month_start(as_of) - timedelta(days=1)
        for _ in range(month_ends):
            dates.append(d)
            d = month_start(d) - timedelta(days=1)
        loaded = self._load(currency, scope, as_of, lambda first: aging_read_keys_many(currency, scope, dates, first))
        agings = [loaded.view.aging(x) for x in dates]
        return agings[0], agings[1:], loaded.items_read + (1 if customer_id else 0)

    def aging_by_customer(self, *, as_of: date, currency: str, limit: int = 50, cursor: str | None = None,
                          include_zero: bool = False) -> dict[str, Any]:
        """The portfolio total and one page of customers, each from its own aggregate scope."""
        currency = check_currency(currency)
        portfolio = self._load(currency, PORTFOLIO, as_of,
                               lambda first: aging_read_keys(currency, PORTFOLIO, as_of, first))
        # a customer's history cannot start before the portfolio's: its year keys start there
        first = min((int(k.period) for k in portfolio.view.items if k.grain == "y"), default=as_of.year)
        page = self._ledger.list_customers(limit=limit, cursor=cursor)
        plans = {c.id: aging_read_keys(currency, c.id, as_of, first) for c in page.items}
        items = self._ledger.get_aggregates([k for keys in plans.values() for k in keys])
        rows = []
        for c in page.items:
            view = AggregateView(currency, c.id, first, {k: items[k] for k in plans[c.id] if k in items},
                                 frozenset(plans[c.id]))
            aging = view.aging(as_of)
            if aging.total or aging.count or include_zero:
                rows.append({"customer_id": c.id, "name": c.name, "on_hold": c.on_hold, **_buckets(aging)})
        return {"object": "aging_by_customer", "currency": currency, "as_of": as_of.isoformat(),
                "portfolio": portfolio.view.aging(as_of).to_dict(), "data": rows,
                "has_more": page.next_cursor is not None, "next_cursor": page.next_cursor,
                "customers_read": len(page.items),
                "items_read": portfolio.items_read + len(items) + (page.scanned or len(page.items))}

    # -- DSO ------------------------------------------------------------------------------------
    def dso(self, *, as_of: date, currency: str, days: int = 90, customer_id: str | None = None) -> dict[str, Any]:
        """DSO of the ``days`` days ending ``as_of`` (three methods) and the 12 last complete months."""
        currency = check_currency(currency)
        scope = self._scope(customer_id)
        start = as_of - timedelta(days=days - 1)
        last_month = month_start(as_of) if as_of == month_end(as_of) else add_months(as_of, -1)
        months_back = SERIES_POINTS + COUNTBACK_MONTHS

        def plan(first: int) -> set[AggregateKey]:
            return {*period_read_keys(currency, scope, start, as_of, first),
                    *monthly_read_keys(currency, scope, last_month, months_back, first)}

        # the series and its countback look 36 months back: plan (absent) years before the floor too
        loaded = self._load(currency, scope, as_of, plan, first_year=LEDGER_FIRST_YEAR - 3)
        view = loaded.view
        figures = view.period_figures(start, as_of)
        this_month = month_start(as_of)
        sales = [MonthSales(this_month, view.between("inv", this_month, as_of) - view.between("cre", this_month, as_of))]
        for i in range(1, COUNTBACK_MONTHS):
            m = add_months(this_month, -i)
            sales.append(MonthSales(m, view.in_month("inv", m) - view.in_month("cre", m)))
        period = dso_report(figures, sales)
        # each month's write-offs come from its year item, already read (no extra item)
        months = [replace(m, written_off=view.in_month("wof", m.month))
                  for m in view.monthly_figures(last_month, months_back)]
        series = dso_series(months, points=SERIES_POINTS, currency=currency)
        return {"object": "dso", "currency": currency, "as_of": as_of.isoformat(), "scope": scope,
                "period": period.to_dict(),
                "series": [{"month": r.start.isoformat()[:7], **r.to_dict()} for r in series],
                "items_read": loaded.items_read + (1 if customer_id else 0)}

    # -- collection -------------------------------------------------------------------------------
    def collection(self, *, start: date, end: date, currency: str) -> dict[str, Any]:
        currency = check_currency(currency)
        if end < start:
            raise ValidationError(f"end {end.isoformat()} is before start {start.isoformat()}", field="end")
        loaded = self._load(currency, PORTFOLIO, end, lambda first: period_read_keys(currency, PORTFOLIO, start,
                                                                                      end, first))
        figures = loaded.view.period_figures(start, end)
        payments, read = all_pages(lambda c: self._ledger.query_payments(PaymentQuery(
            received_from=start, received_to=end, currency=currency, limit=200, cursor=c)),
            cap=COLLECTION_PAYMENT_CAP)
        truncated = len(payments) >= COLLECTION_PAYMENT_CAP
        parts: dict[str, list[PaymentPart]] = defaultdict(list)
        for p in payments:
            for a in p.allocations:
                parts[a.invoice_id].append(PaymentPart(p.received_on, a.amount.amount, p.method))
        invoices = self._ledger.get_invoices(parts)
        paid = []
        for inv in invoices.values():
            h = history_of(inv)
            if h is None or h.currency != currency:
                continue
            settled = paid_on(h, end)
            if settled is None or not start <= settled <= end:
                continue
            earlier = sum(e.amount for e in h.entries if e.kind == PAYMENT and e.on < start)
            invoice_parts = list(parts[inv.id])
            if earlier:
                invoice_parts.append(PaymentPart(start - timedelta(days=1), earlier, BEFORE_PERIOD))
            paid.append(PaidInvoice(invoice_id=inv.id, customer_id=inv.customer_id, currency=currency,
                                    issue_date=h.issue_date, due_date=h.due_date, paid_on=settled,
                                    amount=sum(e.amount for e in h.entries if e.kind == "issue"),
                                    payments=tuple(invoice_parts), dunning_step=inv.dunning_step))
        report = collection_report(figures, paid)
        return {"object": "collection", **report.to_dict(),
                "credit_sales": str(Money(figures.credit_sales, currency)),
                "beginning_receivables": str(Money(figures.beginning_receivables, currency)),
                "ending_receivables": str(Money(figures.ending_receivables, currency)),
                "ending_current_receivables": str(Money(figures.ending_current_receivables, currency)),
                "payments_read": len(payments), "truncated": truncated,
                "items_read": loaded.items_read + read + len(invoices)}

    # -- disputes -----------------------------------------------------------------------------------
    def disputes(self, *, as_of: date, currency: str) -> dict[str, Any]:
        """Open disputes (opened on or before ``as_of``) by reason and by age, with the amount blocked."""
        currency = check_currency(currency)
        tz = self._settings.timezone()
        disputes, read = all_pages(lambda c: self._ledger.list_disputes(status=DISPUTE_OPEN, limit=200, cursor=c))
        disputes = [d for d in disputes if local_day(d.created_at, tz) <= as_of]
        invoices = self._ledger.get_invoices(d.invoice_id for d in disputes)
        by_reason: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        by_age = [[0, 0] for _ in DISPUTE_AGES]
        rows = []
        total = 0
        for d in sorted(disputes, key=lambda d: (d.created_at, d.id)):
            inv = invoices.get(d.invoice_id)
            if inv is None or inv.currency != currency:
                continue
            blocked = inv.amount_due.amount if inv.status == OPEN else 0
            age = (as_of - local_day(d.created_at, tz)).days
            total += blocked
            by_reason[d.reason][0] += 1
            by_reason[d.reason][1] += blocked
            for i, (lo, hi) in enumerate(DISPUTE_AGES):
                if age >= lo and (hi is None or age <= hi):
                    by_age[i][0] += 1
                    by_age[i][1] += blocked
            rows.append({"dispute_id": d.id, "invoice_id": inv.id, "invoice_number": inv.number,
                         "customer_id": d.customer_id, "reason": d.reason,
                         "opened_on": local_day(d.created_at, tz).isoformat(), "age_days": age,
                         "amount_blocked": str(Money(blocked, currency))})
        money = lambda minor: str(Money(minor, currency))  # noqa: E731
        return {"object": "disputes_report", "currency": currency, "as_of": as_of.isoformat(),
                "open_disputes": len(rows), "amount_blocked": money(total),
                "by_reason": [{"reason": r, "count": v[0], "amount_blocked": money(v[1])}
                              for r, v in sorted(by_reason.items(), key=lambda kv: (-kv[1][1], kv[0]))],
                "by_age": [{"bucket": f"{lo}_{hi}" if hi is not None else f"over_{lo - 1}", "min_days": lo,
                            "max_days": hi, "count": v[0], "amount_blocked": money(v[1])}
                           for (lo, hi), v in zip(DISPUTE_AGES, by_age)],
                "disputes": rows, "items_read": read + len(invoices)}

    # -- forecast -----------------------------------------------------------------------------------
    def _observations(self, customer_id: str, as_of: date, window_days: int) -> tuple[list[PaymentObservation], int]:
        since = as_of - timedelta(days=window_days + 366)  # invoices issued long before were paid before the window
        invoices, read = all_pages(lambda c: self._ledger.query_invoices(InvoiceQuery(
            customer_id=customer_id, status=PAID, issued_from=since, issued_to=as_of, limit=200, cursor=c),
            as_of))
        out = []
        for inv in invoices:
            h = history_of(inv)
            settled = paid_on(h, as_of) if h is not None else None
            if h is not None and settled is not None:
                out.append(PaymentObservation(h.due_date, settled, sum(e.amount for e in h.entries
                                                                        if e.kind == "issue")))
        return out, read

    @staticmethod
    def _profile(observations: Sequence[PaymentObservation], currency: str, as_of: date) -> str:
        return derive_profile([PaidInvoiceRecord(o.due_date, o.paid_on, Money(o.amount, currency))
                               for o in observations], today=as_of).profile

    def _commitments(self, open_invoices: Sequence[Invoice], promises: Sequence[Any], plans: Sequence[Any],
                     disputes: Sequence[DisputeRecord]) -> dict[str, Commitments]:
        tz = self._settings.timezone()
        by_id = {i.id: i for i in open_invoices}
        promise_of: dict[str, Promise] = {}
        for p in sorted(promises, key=lambda p: p.created_at):
            covered = sorted((by_id[i] for i in p.invoice_ids if i in by_id), key=lambda i: (i.due_date, i.id))
            left = p.amount.amount
            for inv in covered:
                amount = min(left, inv.amount_due.amount)
                if amount > 0:
                    promise_of[inv.id] = Promise(p.promised_on, amount)
                    left -= amount
        installments_of: dict[str, list[Installment]] = defaultdict(list)
        for plan in plans:
            covered = sorted((by_id[i] for i in plan.invoice_ids if i in by_id), key=lambda i: (i.due_date, i.id))
            need = {inv.id: inv.amount_due.amount for inv in covered}
            queue = [(i.due_on, i.amount.amount - i.paid) for i in plan.installments if i.status != "paid"]
            for inv in covered:
                while need[inv.id] > 0 and queue:
                    due_on, left = queue[0]
                    take = min(left, need[inv.id])
                    installments_of[inv.id].append(Installment(due_on, take))
                    need[inv.id] -= take
                    if take == left:
                        queue.pop(0)
                    else:
                        queue[0] = (due_on, left - take)
        dispute_of = {d.invoice_id: Dispute(local_day(d.created_at, tz), d.reason) for d in disputes}
        out = {}
        for inv in open_invoices:
            sepa = (SepaCollection(inv.due_date) if inv.collection_status in ("scheduled", "processing")
                    and inv.due_date else None)
            out[inv.id] = Commitments(promise=promise_of.get(inv.id), installments=tuple(installments_of[inv.id]),
                                      sepa=sepa, dispute=dispute_of.get(inv.id) if inv.dispute_status == "open"
                                      else None)
        return out

    def forecast(self, *, currency: str, as_of: date | None = None, customer_id: str | None = None,
                 with_invoices: bool = True) -> dict[str, Any]:
        """13-week cash-in forecast of the open invoices (now: ``as_of`` only shifts "today")."""
        currency = check_currency(currency)
        as_of = as_of or self.today()
        config = self._finance.get().forecast
        query = (InvoiceQuery(customer_id=customer_id, status=OPEN, currency=currency, limit=200) if customer_id
                 else InvoiceQuery(status=OPEN, currency=currency, limit=200))
        if customer_id:
            self._ledger.get_customer(customer_id)
        open_invoices, read = all_pages(lambda c: self._ledger.query_invoices(replace(query, cursor=c), as_of))
        open_invoices = [i for i in open_invoices if i.due_date and i.issue_date and i.issue_date <= as_of]
        promises, n1 = all_pages(lambda c: self._ledger.list_promises(status=PROMISE_ACTIVE, limit=200, cursor=c))
        plans, n2 = all_pages(lambda c: self._ledger.list_plans(status=PLAN_ACTIVE, limit=200, cursor=c))
        disputes, n3 = all_pages(lambda c: self._ledger.list_disputes(status=DISPUTE_OPEN, limit=200, cursor=c))
        read += n1 + n2 + n3
        histories: dict[str, list[PaymentObservation]] = {}
        profiles: dict[str, str] = {}
        for cid in sorted({i.customer_id for i in open_invoices}):
            histories[cid], n = self._observations(cid, as_of, config.window_days)
            profiles[cid] = self._profile(histories[cid], currency, as_of)
            read += n
        result = forecast([_open(i) for i in open_invoices], as_of=as_of, currency=currency, histories=histories,
                          profiles=profiles, commitments=self._commitments(open_invoices, promises, plans, disputes),
                          config=config)
        return {"object": "forecast", **result.to_dict(with_invoices=with_invoices),
                "open_invoices": len(result.predictions), "items_read": read}

    def predict(self, invoice: Invoice) -> Prediction | None:
        """The predicted payment of one open invoice (GET /invoices/{id}): reads the customer's paid
        invoices of the window and its active promises, plans and open disputes only."""
        if invoice.status != OPEN or invoice.due_date is None or invoice.issue_date is None:
            return None
        as_of = self.today()
        config = self._finance.get().forecast
        observations, _ = self._observations(invoice.customer_id, as_of, config.window_days)
        cid = invoice.customer_id
        promises = self._ledger.list_promises(customer_id=cid, status=PROMISE_ACTIVE, limit=200).items
        plans = self._ledger.list_plans(customer_id=cid, status=PLAN_ACTIVE, limit=200).items
        disputes = (self._ledger.list_disputes(customer_id=cid, status=DISPUTE_OPEN, limit=200).items
                    if invoice.dispute_status == "open" else [])
        others = self._ledger.get_invoices({i for p in [*promises, *plans] for i in p.invoice_ids} - {invoice.id})
        related = [invoice, *(i for i in others.values() if i.status == OPEN and i.due_date)]
        commitments = self._commitments(related, promises, plans, disputes)
        return predict(_open(invoice), as_of=as_of, history=observations,
                       profile=self._profile(observations, invoice.currency, as_of),
                       commitments=commitments[invoice.id], config=config)


def _open(inv: Invoice) -> OpenInvoice:
    assert inv.issue_date is not None and inv.due_date is not None
    return OpenInvoice(inv.id, inv.customer_id, inv.currency, inv.issue_date, inv.due_date, inv.amount_due.amount)


def _buckets(aging: Aging) -> dict[str, Any]:
    d = aging.to_dict()
    return {"buckets": d["buckets"], "total": d["total"], "count": d["count"], "past_due": d["past_due"]}
