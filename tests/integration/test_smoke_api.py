from tests.conftest import CUSTOMER_INPUT, line


def test_create_issue_pay(api):
    # Given a customer and a draft
    customer = api.post("/customers", CUSTOMER_INPUT)
    assert customer.status_code == 201, customer.data
    draft = api.post("/invoices", {"customer_id": customer.data["id"], "lines": [line(quantity="2")]})
    assert draft.status_code == 201, draft.data
    assert draft.data["total"] == "240.00"
    # When it is issued and paid
    issued = api.post(f"/invoices/{draft.data['id']}/issue")
    assert issued.status_code == 200, issued.data
    assert issued.data["number"].endswith("-000001")
    paid = api.post(f"/invoices/{draft.data['id']}/payments", {"method": "bank_transfer",
                                                               "received_on": issued.data["issue_date"]})
    assert paid.status_code == 201, paid.data
    # Then it is paid
    assert api.get(f"/invoices/{draft.data['id']}").data["status"] == "paid"
