"""Use cases against the in-memory ledger: Given / When / Then, no sockets."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.domain.auth import CLERK, Actor
from chalicelib.domain.errors import (IdempotencyKeyReused, InvalidTransition, NotFound, ValidationError)
from chalicelib.services.access import AccessService
from chalicelib.services.common import IdempotencyRequest
from chalicelib.services.customers import CustomerService
from chalicelib.services.invoices import InvoiceService
from chalicelib.services.outbox import OutboxDrain
from chalicelib.services.payments import PaymentService
from chalicelib.services.ports import FixedClock, InvoiceQuery, PaymentQuery
from chalicelib.services.settings import SettingsService
from tests.conftest import CUSTOMER_INPUT, SELLER_INPUT, line
from tests.fakes import FakeLedger, RecordingPublisher

ALICE = Actor("alice", CLERK)


class World:
    def __init__(self, now: datetime = datetime(2026, 3, 10, 8, 0, tzinfo=timezone.utc)) -> None:
        self.ledger = FakeLedger()
        self.clock = FixedClock(now)
        self.settings = SettingsService(self.ledger, self.clock)
        self.settings.put_seller(SELLER_INPUT, Actor.system("test"))
        self.customers = CustomerService(self.ledger, self.clock, self.settings)
        self.invoices = InvoiceService(self.ledger, self.clock, self.settings)
        self.payments = PaymentService(self.ledger, self.clock, self.settings)

    def customer(self, **extra):
        return self.customers.create({**CUSTOMER_INPUT, **extra}, ALICE)[0]

    def issued(self, customer_id: str, *lines):
        draft, _ = self.invoices.create_draft({"customer_id": customer_id, "lines": list(lines) or [line()]}, ALICE)
        return self.invoices.issue(draft.id, ALICE)


@pytest.fixture
def world() -> World:
    return World()


def test_issue_numbers_are_gapless_per_series_and_year(world):
    c = world.customer()
    numbers = [world.issued(c.id).number for _ in range(3)]
    assert numbers == ["F2026-000001", "F2026-000002", "F2026-000003"]
    world.clock.set(datetime(2027, 1, 2, 9, tzinfo=timezone.utc))
    assert world.issued(c.id).number == "F2027-000001"


def test_a_refused_issue_leaves_no_gap(world):
    # Given a draft whose explicit due date breaks the legal cap
    c = world.customer()
    bad, _ = world.invoices.create_draft({"customer_id": c.id, "lines": [line()], "due_date": "2026-12-31"}, ALICE)
    # When issuing it fails
    with pytest.raises(ValidationError):
        world.invoices.issue(bad.id, ALICE)
    # Then the next invoice still gets number 1
    assert world.issued(c.id).number == "F2026-000001"
    assert world.ledger.get_invoice(bad.id).status == "draft"


def test_issue_copies_identities_and_later_edits_do_not_change_it(world):
    c = world.customer()
    inv = world.issued(c.id)
    world.customers.update(c.id, {"name": "Nouveau Nom SAS"}, ALICE)
    again = world.invoices.get(inv.id)
    assert again.buyer["name"] == "Boulangerie Martin SARL"
    assert again.seller["siren"] == "812345676" and again.due_date.isoformat() == "2026-04-09"


def test_issuing_twice_is_refused_but_a_retried_key_returns_the_invoice(world):
    c = world.customer()
    draft, _ = world.invoices.create_draft({"customer_id": c.id, "lines": [line()]}, ALICE)
    key = IdempotencyRequest("alice", "k-1", "h")
    first = world.invoices.issue(draft.id, ALICE, key)
    assert world.invoices.issue(draft.id, ALICE, key).number == first.number
    with pytest.raises(InvalidTransition, match="already open as F2026-000001"):
        world.invoices.issue(draft.id, ALICE)


def test_idempotent_creation(world):
    key = IdempotencyRequest("alice", "same-key", "hash-1")
    first, replayed1 = world.customers.create(CUSTOMER_INPUT, ALICE, key)
    second, replayed2 = world.customers.create(CUSTOMER_INPUT, ALICE, key)
    assert first.id == second.id and (replayed1, replayed2) == (False, True)
    assert len([k for k in world.ledger.entities if k[0] == "customer"]) == 1
    with pytest.raises(IdempotencyKeyReused):
        world.customers.create(CUSTOMER_INPUT, ALICE, IdempotencyRequest("alice", "same-key", "hash-2"))
    other_client, replayed = world.customers.create(CUSTOMER_INPUT, ALICE, IdempotencyRequest("bob", "same-key",
                                                                                                "hash-1"))
    assert other_client.id != first.id and not replayed


def test_payment_settles_several_invoices_and_keeps_excess_only_when_asked(world):
    c = world.customer()
    a, b = world.issued(c.id, line(unit_price="100.00")), world.issued(c.id, line(unit_price="50.00"))
    body = {"customer_id": c.id, "amount": "200.00", "method": "bank_transfer", "received_on": "2026-03-10",
            "allocations": [{"invoice_id": a.id, "amount": "120.00"}, {"invoice_id": b.id, "amount": "60.00"}]}
    with pytest.raises(ValidationError) as err:
        world.payments.record(body, ALICE)
    assert err.value.code == "overpayment" and "20.00" in err.value.message
    payment, _ = world.payments.record({**body, "keep_excess_as_credit": True}, ALICE)
    assert str(payment.unapplied) == "20.00"
    assert {world.invoices.get(i).status for i in (a.id, b.id)} == {"paid"}
    unapplied = world.payments.list(PaymentQuery(unapplied=True))
    assert [p.id for p in unapplied.items] == [payment.id]


def test_unapplied_cash_is_allocated_later(world):
    c = world.customer()
    payment, _ = world.payments.record({"customer_id": c.id, "amount": "500.00", "method": "cheque",
                                        "received_on": "2026-03-09", "keep_excess_as_credit": True}, ALICE)
    inv = world.issued(c.id, line(unit_price="100.00"))
    with pytest.raises(ValidationError, match="exceed"):
        world.payments.allocate(payment.id, {"allocations": [{"invoice_id": inv.id, "amount": "130.00"}]}, ALICE)
    updated = world.payments.allocate(payment.id, {"allocations": [{"invoice_id": inv.id, "amount": "120.00"}]},
                                      ALICE)
    assert str(updated.unapplied) == "380.00" and world.invoices.get(inv.id).status == "paid"


def test_payment_rules(world):
    c, other = world.customer(), world.customer(name="Autre")
    inv = world.issued(other.id)
    base = {"customer_id": c.id, "amount": "120.00", "method": "bank_transfer", "received_on": "2026-03-10"}
    with pytest.raises(ValidationError, match="another customer"):
        world.payments.record({**base, "allocations": [{"invoice_id": inv.id, "amount": "120.00"}]}, ALICE)
    with pytest.raises(ValidationError, match="future"):
        world.payments.record({**base, "received_on": "2026-03-11", "keep_excess_as_credit": True}, ALICE)
    with pytest.raises(ValidationError, match="method"):
        world.payments.record({**base, "method": "bitcoin"}, ALICE)
    with pytest.raises(NotFound):
        world.payments.record({**base, "customer_id": "cus_nope"}, ALICE)
    with pytest.raises(ValidationError, match="nothing due"):
        draft, _ = world.invoices.create_draft({"customer_id": c.id, "lines": [line()]}, ALICE)
        paid = world.invoices.issue(draft.id, ALICE)
        world.payments.record_for_invoice(paid.id, {"method": "card", "received_on": "2026-03-10"}, ALICE)
        world.payments.record_for_invoice(paid.id, {"method": "card", "received_on": "2026-03-10"}, ALICE)


def test_every_change_is_audited_with_its_actor(world):
    c = world.customer()
    inv = world.issued(c.id)
    trail = world.ledger.list_audit(entity_type="invoice", entity_id=inv.id).items
    assert [e.action for e in trail] == ["invoice.issue", "invoice.create"]
    issue = trail[0]
    assert issue.actor == "alice" and issue.before["status"] == "draft" and issue.after["status"] == "open"
    assert "lines" not in issue.after  # only what changed


def test_listing_open_and_overdue(world):
    c = world.customer()
    early = world.issued(c.id)
    world.clock.advance(days=20)
    later = world.issued(c.id)
    world.clock.advance(days=15)  # early is due 2026-04-09, today is 2026-04-14
    today = world.invoices.today()
    overdue = world.invoices.list(InvoiceQuery(status="open", due_before=today))
    assert [i.id for i in overdue.items] == [early.id]
    assert world.invoices.get(early.id).days_overdue(today) == 5
    by_customer = world.invoices.list(InvoiceQuery(customer_id=c.id))
    assert [i.id for i in by_customer.items] == [later.id, early.id]


def test_outbox_runs_each_message_and_retries_failures():
    world = World()
    c = world.customer()
    world.issued(c.id)
    publisher = RecordingPublisher(fail_times=1)
    drain = OutboxDrain(world.ledger, world.clock, {"event": lambda p: publisher.publish([p])})
    first = drain.run()
    assert (first.processed, first.failed) == (0, 1) and publisher.events == []
    assert drain.run().processed == 0  # backing off
    world.clock.advance(seconds=10)
    assert drain.run().processed == 1
    assert [e["type"] for e in publisher.events] == ["invoice.issued"]
    assert world.ledger.pending_outbox(world.clock.now() + timedelta(days=1)) == []


def test_outbox_dead_letters_after_max_attempts():
    world = World()
    world.customer()
    world.issued(world.customer().id)
    drain = OutboxDrain(world.ledger, world.clock, {"event": lambda p: 1 / 0}, max_attempts=2)
    drain.run()
    world.clock.advance(hours=1)
    assert drain.run().dead == 1
    assert world.ledger.list_dead_letters()[0].last_error.startswith("ZeroDivisionError")


def test_outbox_errors_are_stored_without_personal_data():
    world = World()
    world.issued(world.customer().id)

    def refuse(payload):
        raise RuntimeError("MessageRejected: jean.dupont@martin-sarl.fr / +33 6 12 34 56 78 / "
                           "FR76 3000 6000 0112 3456 7890 189 (invoice F2026-000123 due 2026-11-25)")

    drain = OutboxDrain(world.ledger, world.clock, {"event": refuse}, max_attempts=1)
    assert drain.run().dead == 1
    error = world.ledger.list_dead_letters()[0].last_error
    assert error == ("RuntimeError: MessageRejected: <email> / <phone> / <iban> "
                     "(invoice F2026-000123 due 2026-11-25)")


def test_api_keys_authenticate_cache_and_revoke(world):
    access = AccessService(world.ledger, world.clock, ttl_s=0)
    key, secret = access.create_key("erp", "reader", Actor.system("t"))
    assert len(secret) >= 40 and secret not in str(world.ledger.entities)  # only the hash is stored
    assert access.authenticate(secret) == Actor("erp", "reader")
    assert access.authenticate("ark_wrong") is None and access.authenticate(None) is None
    access.revoke(key.key_hash[:16], Actor.system("t"))
    assert access.authenticate(secret) is None
    with pytest.raises(ValidationError):
        access.create_key("x", "superuser", Actor.system("t"))


def test_reversal_plan_takes_back_latest_first_within_what_each_invoice_can_give():
    from datetime import datetime, timezone

    from chalicelib.domain.money import Money
    from chalicelib.domain.payment import Allocation, reversal_plan

    def alloc(invoice_id: str, amount: int) -> Allocation:
        return Allocation(invoice_id=invoice_id, amount=Money(amount, "EUR"),
                          allocated_at=datetime(2026, 3, 10, tzinfo=timezone.utc))

    allocations = [alloc("inv_b", 3000), alloc("inv_a", 5000), alloc("inv_b", 2000)]  # latest first
    # inv_b brought 5,000 in two allocations but has only 4,000 left to give; inv_a 5,000
    assert reversal_plan(allocations, {"inv_a": 5000, "inv_b": 4000}, 8000) == [("inv_b", 3000), ("inv_a", 5000)]
    assert reversal_plan(allocations, {"inv_a": 5000, "inv_b": 4000}, 20000) == [("inv_b", 4000), ("inv_a", 5000)]
    assert reversal_plan(allocations, {"inv_a": 5000}, 2000) == [("inv_a", 2000)]        # inv_b not found
    assert reversal_plan(allocations, {"inv_a": 5000, "inv_b": 0}, 0) == []
