"""POST /exports/fec end to end on the local stack (moto): the job, the outbox steps, the file in S3, the
pre-signed download; the same bytes as GET /exports/fec; idempotent requests; the synchronous bound."""

from __future__ import annotations

import hashlib
import json

import requests

from chalicelib.domain.fec import parse_fec
from tests.cashapp.test_api import customer, invoice, post_statement, today
from tests.conftest import SELLER_INPUT
from tests.unit.bank_samples import camt053, ntry, tx


def drain() -> int:
    from chalicelib import wiring

    runs = 0
    while wiring.outbox().run().processed:
        runs += 1
        assert runs < 100
    return runs


def a_month(api) -> str:
    """Two customers, three invoices, a transfer paying one, an unidentified one; returns the query string."""
    day = today()
    martin = customer(api, "Boulangerie Martin SARL", "compta@martin.example")
    dupont = customer(api, "Transports Dupont SAS", "compta@dupont.example")
    paid = invoice(api, martin["id"], "1000.00")
    invoice(api, dupont["id"], "250.00", vat="10")
    invoice(api, martin["id"], "80.00")
    post_statement(api, camt053([
        ntry("1200.00", booking=day, details=[tx(debtor="BOULANGERIE MARTIN", strd_ref=paid["payment_reference"])]),
        ntry("42.00", booking=day, details=[tx(debtor="INCONNU", ustrd="?")])], day=day))
    return f"from={day.replace(day=1).isoformat()}&to={day.isoformat()}"


def test_an_export_in_the_background_downloads_the_same_bytes_as_the_synchronous_one(api):
    from chalicelib import wiring

    query = a_month(api)
    drain()  # the invoices' own work (documents, mail) first: what follows is the export's
    sync = api.get(f"/exports/fec?{query}")
    assert sync.status_code == 200
    # Given a step budget of one page of one item (the resumable path on the real ledger and bucket)
    service = wiring.fec_exports()
    service.page_sizes = {"sales": 1, "payments": 1, "payouts": 1}
    service.step_budget_s = 0.0
    # When the export is requested
    resp = api.post(f"/exports/fec?{query}", headers={"Idempotency-Key": "export-1"})
    assert resp.status_code == 202, resp.data
    job = resp.data
    assert job["status"] == "queued" and job["period"]["to"] == query.rsplit("=", 1)[1]
    assert job["links"] == {"self": f"/exports/fec/{job['id']}"} and resp.headers["Location"] == job["links"]["self"]
    pending = api.get(job["links"]["self"])
    assert pending.status_code == 200 and pending.data["status"] == "queued" and "download" not in pending.data
    # and the outbox drained: one step per page, then the build
    steps = drain()
    done = api.get(job["links"]["self"]).data
    assert done["status"] == "done" and done["steps"] == steps >= 6, done  # 3 invoices, 2 payments, payouts, build
    # Then the pre-signed URL downloads the synchronous export's bytes, with no credentials
    assert done["links"]["download"] == done["download"]["url"] and done["download"]["expires_in"] == 300
    body = requests.get(done["download"]["url"], timeout=10)
    assert body.status_code == 200 and body.content == sync.body
    assert body.headers["Content-Type"].startswith("text/plain")
    assert done["file"] == {"filename": f"{SELLER_INPUT['siren']}FEC{today():%Y%m%d}.txt",
                            "content_type": "text/plain; charset=utf-8", "size": len(sync.body),
                            "lines": len(parse_fec(sync.body.decode())), "sha256": hashlib.sha256(sync.body).hexdigest()}
    assert done["journal_totals"] == json.loads(sync.headers["X-Journal-Totals"])
    # the work parts and the file are under exports/, which is never locked
    keys = [o["Key"] for o in wiring.documents_store()._client().list_objects_v2(
        Bucket=wiring.documents_store()._bucket, Prefix=f"exports/fec/{job['id']}/").get("Contents", [])]
    assert f"exports/fec/{job['id']}/{done['file']['filename']}" in keys and len(keys) >= steps - 2  # parts of steps that read items
    # And the same request with the same key is the same job, not a second export
    replay = api.post(f"/exports/fec?{query}", headers={"Idempotency-Key": "export-1"})
    assert replay.status_code == 202 and replay.data["id"] == job["id"] and replay.data["status"] == "done"
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert drain() == 0
    other = api.post(f"/exports/fec?{query}&format=csv", headers={"Idempotency-Key": "export-1"})
    assert other.status_code == 422 and other.data["code"] == "idempotency_key_reused"


def test_the_synchronous_export_sends_large_periods_to_post(api):
    from chalicelib import wiring
    from chalicelib.services.books import SyncLimits

    query = a_month(api)
    wiring.books().sync_limits = SyncLimits(max_reads=2)
    refused = api.get(f"/exports/fec?{query}")
    assert refused.status_code == 422 and refused.data["code"] == "export_too_large"
    assert "POST /exports/fec" in refused.data["message"] and refused.data["details"]["use"] == "POST /exports/fec"
    wiring.books().sync_limits = SyncLimits(max_lines=3)
    assert api.get(f"/exports/fec?{query}").data["code"] == "export_too_large"
    # the background export of the same period is not bounded
    job = api.post(f"/exports/fec?{query}").data
    drain()
    done = api.get(f"/exports/fec/{job['id']}").data
    assert done["status"] == "done" and done["file"]["lines"] > 3
    wiring.books().sync_limits = SyncLimits()
    assert requests.get(done["download"]["url"], timeout=10).content == api.get(f"/exports/fec?{query}").body


def test_export_requests_are_checked(api):
    assert api.post("/exports/fec?from=2026-01-01").status_code == 400
    assert api.post("/exports/fec?from=2026-02-01&to=2026-01-01").status_code == 422
    assert api.post("/exports/fec?from=2026-01-01&to=2026-01-31&rates=USD").status_code == 422
    body = api.post("/exports/fec?from=2026-01-01&to=2026-01-31", {"to": "x"})  # the parameters go in the query
    assert body.status_code == 422 and body.data["field"] == "to"
    assert api.get("/exports/fec/fecx_nope").status_code == 404
    assert api.post("/exports/fec?from=2026-01-01&to=2026-01-31", {}).status_code == 202
