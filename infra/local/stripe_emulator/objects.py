"""Builders of Stripe-shaped objects (top-level keys as in Stripe's fixtures3.json).

Defaults are what Stripe returns for a fresh test-mode object; the engine fills in the
parameters it was given and mutates the dicts as the object's life goes on.
"""

from __future__ import annotations

import secrets
import string
from typing import Any

ALNUM = string.ascii_letters + string.digits
CARD_FEE_PERMILLE = 15  # 1.5 %
CARD_FEE_FIXED = 25  # + 0.25 in the currency's minor unit
SEPA_FEE_FIXED = 35  # 0.35 per SEPA Direct Debit
DISPUTE_FEE = 1500  # 15.00 per dispute


def rand(n: int, alphabet: str = ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def new_id(prefix: str) -> str:
    if prefix == "cs_test_":
        return prefix + "a1" + rand(56)
    return prefix + "1" + rand(5, string.ascii_uppercase + string.digits) + "EmuLoc" + rand(13)


def card_fee(amount: int) -> int:
    return (amount * CARD_FEE_PERMILLE + 500) // 1000 + CARD_FEE_FIXED


def list_object(data: list[dict[str, Any]], url: str, has_more: bool = False) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def _null_address() -> dict[str, Any]:
    return {"city": None, "country": None, "line1": None, "line2": None, "postal_code": None, "state": None}


def customer(cid: str, created: int) -> dict[str, Any]:
    return {
        "id": cid, "object": "customer", "address": None, "balance": 0, "business_name": None, "created": created,
        "currency": None, "customer_account": None, "default_source": None, "delinquent": False,
        "description": None, "discount": None, "email": None, "individual_name": None,
        "invoice_prefix": rand(8, string.ascii_uppercase + string.digits),
        "invoice_settings": {"custom_fields": None, "default_payment_method": None, "footer": None,
                             "rendering_options": None},
        "livemode": False, "metadata": {}, "name": None, "next_invoice_sequence": 1, "phone": None,
        "preferred_locales": [], "shipping": None, "tax_exempt": "none", "test_clock": None,
    }


def product(pid: str, created: int, name: str) -> dict[str, Any]:
    return {
        "id": pid, "object": "product", "active": True, "created": created, "default_price": None,
        "description": None, "images": [], "livemode": False, "marketing_features": [], "metadata": {},
        "name": name, "package_dimensions": None, "shippable": None, "statement_descriptor": None,
        "tax_code": None, "type": "service", "unit_label": None, "updated": created, "url": None,
    }


def price(pid: str, created: int, currency: str, unit_amount: int | None, product_id: str) -> dict[str, Any]:
    return {
        "id": pid, "object": "price", "active": True, "billing_scheme": "per_unit", "created": created,
        "currency": currency, "custom_unit_amount": None, "livemode": False, "lookup_key": None, "metadata": {},
        "nickname": None, "product": product_id, "recurring": None, "tax_behavior": "unspecified",
        "tiers_mode": None, "transform_quantity": None, "type": "one_time", "unit_amount": unit_amount,
        "unit_amount_decimal": None if unit_amount is None else str(unit_amount),
    }


def line_item(item_id: str, price_obj: dict[str, Any], product_obj: dict[str, Any], quantity: int) -> dict[str, Any]:
    amount = (price_obj["unit_amount"] or 0) * quantity
    return {
        "id": item_id, "object": "item", "adjustable_quantity": None, "amount_discount": 0,
        "amount_subtotal": amount, "amount_tax": 0, "amount_total": amount, "currency": price_obj["currency"],
        "description": product_obj["name"], "discounts": [], "metadata": {}, "price": price_obj,
        "quantity": quantity, "taxes": [],
    }


def payment_link(lid: str, url: str, currency: str) -> dict[str, Any]:
    return {
        "id": lid, "object": "payment_link", "active": True,
        "after_completion": {"hosted_confirmation": {"custom_message": None}, "type": "hosted_confirmation"},
        "allow_promotion_codes": False, "application": None, "application_fee_amount": None,
        "application_fee_percent": None, "automatic_tax": {"enabled": False, "liability": None},
        "billing_address_collection": "auto", "consent_collection": None, "currency": currency,
        "custom_fields": [], "custom_text": {"after_submit": None, "shipping_address": None, "submit": None,
                                             "terms_of_service_acceptance": None},
        "customer_creation": "if_required", "inactive_message": None,
        "invoice_creation": {"enabled": False, "invoice_data": {
            "account_tax_ids": None, "custom_fields": None, "description": None, "footer": None, "issuer": None,
            "metadata": {}, "rendering_options": None}},
        "livemode": False, "managed_payments": {"enabled": False}, "metadata": {}, "name_collection": None,
        "on_behalf_of": None, "optional_items": None, "payment_intent_data": None,
        "payment_method_collection": "always", "payment_method_options": None, "payment_method_types": None,
        "phone_number_collection": {"enabled": False}, "restrictions": None, "shipping_address_collection": None,
        "shipping_options": [], "submit_type": "auto", "subscription_data": None,
        "tax_id_collection": {"enabled": False, "required": "never"}, "transfer_data": None, "url": url,
    }


def checkout_session(sid: str, created: int, expires_at: int, mode: str, url: str) -> dict[str, Any]:
    return {
        "id": sid, "object": "checkout.session", "adaptive_pricing": {"enabled": False},
        "after_expiration": None, "allow_promotion_codes": None, "allowed_payment_method_types": None,
        "amount_subtotal": None, "amount_total": None,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_address_collection": None, "branding_settings": None, "cancel_url": None,
        "client_reference_id": None, "client_secret": None, "collected_information": None, "consent": None,
        "consent_collection": None, "created": created, "currency": None, "currency_conversion": None,
        "custom_fields": [], "custom_text": {"after_submit": None, "shipping_address": None, "submit": None,
                                             "terms_of_service_acceptance": None},
        "customer": None, "customer_account": None, "customer_creation": None, "customer_details": None,
        "customer_email": None, "discounts": [], "excluded_payment_method_types": None, "expires_at": expires_at,
        "integration_identifier": None, "invoice": None,
        "invoice_creation": None, "livemode": False, "locale": None, "managed_payments": {"enabled": False},
        "metadata": {}, "mode": mode, "name_collection": None, "optional_items": None, "origin_context": None,
        "payment_intent": None, "payment_link": None, "payment_method_collection": None,
        "payment_method_configuration_details": None, "payment_method_options": {}, "payment_method_types": [],
        "payment_status": "no_payment_required" if mode == "setup" else "unpaid",
        "permissions": None, "phone_number_collection": {"enabled": False}, "presentment_details": None,
        "recovered_from": None, "redirect_on_completion": None, "return_url": None,
        "saved_payment_method_options": None, "setup_intent": None, "shipping_address_collection": None,
        "shipping_cost": None, "shipping_options": [], "status": "open", "submit_type": None,
        "subscription": None, "success_url": None, "tax_id_collection": {"enabled": False, "required": "never"},
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted_page", "url": url, "wallet_options": None,
    }


def customer_details(email: str | None, name: str | None) -> dict[str, Any]:
    return {"address": {**_null_address(), "country": "FR"}, "business_name": None, "email": email,
            "individual_name": None, "name": name, "phone": None, "tax_exempt": "none", "tax_ids": []}


def payment_intent(pid: str, created: int, amount: int, currency: str) -> dict[str, Any]:
    return {
        "id": pid, "object": "payment_intent", "allowed_payment_method_types": None, "amount": amount,
        "amount_capturable": 0, "amount_details": {"tip": {}}, "amount_received": 0, "application": None,
        "application_fee_amount": None, "automatic_payment_methods": None, "canceled_at": None,
        "cancellation_reason": None, "capture_method": "automatic",
        "client_secret": f"{pid}_secret_{rand(25)}", "confirmation_method": "automatic", "created": created,
        "currency": currency, "customer": None, "customer_account": None, "description": None,
        "excluded_payment_method_types": None, "last_payment_error": None, "latest_charge": None,
        "livemode": False, "managed_payments": {"enabled": False}, "metadata": {}, "next_action": None,
        "on_behalf_of": None, "payment_details": None, "payment_method": None,
        "payment_method_configuration_details": None, "payment_method_options": {}, "payment_method_types": [],
        "presentment_details": None, "processing": None, "receipt_email": None, "review": None,
        "setup_future_usage": None, "shipping": None, "source": None, "statement_descriptor": None,
        "statement_descriptor_suffix": None, "status": "requires_payment_method", "transfer_data": None,
        "transfer_group": None,
    }


def setup_intent(sid: str, created: int) -> dict[str, Any]:
    return {
        "id": sid, "object": "setup_intent", "allowed_payment_method_types": None, "application": None,
        "automatic_payment_methods": None, "cancellation_reason": None,
        "client_secret": f"{sid}_secret_{rand(25)}", "created": created, "customer": None,
        "customer_account": None, "description": None, "excluded_payment_method_types": None,
        "flow_directions": None, "last_setup_error": None, "latest_attempt": None, "livemode": False,
        "mandate": None, "metadata": {}, "next_action": None, "on_behalf_of": None, "payment_method": None,
        "payment_method_configuration_details": None, "payment_method_options": {}, "payment_method_types": [],
        "single_use_mandate": None, "status": "requires_payment_method", "usage": "off_session",
    }


def sepa_details(iban: str) -> dict[str, Any]:
    iban = iban.replace(" ", "").upper()
    return {"bank_code": iban[4:9], "branch_code": iban[9:14], "country": iban[:2],
            "fingerprint": rand(16), "generated_from": {"charge": None, "setup_attempt": None},
            "last4": iban[-4:]}


def card_details() -> dict[str, Any]:
    return {
        "brand": "visa", "checks": {"address_line1_check": None, "address_postal_code_check": None,
                                    "cvc_check": "pass"},
        "country": "FR", "display_brand": "visa", "exp_month": 12, "exp_year": 2034, "fingerprint": rand(16),
        "funding": "credit", "generated_from": None, "last4": "4242",
        "networks": {"available": ["visa"], "preferred": None}, "regulated_status": "unregulated",
        "three_d_secure_usage": {"supported": True}, "wallet": None,
    }


def payment_method(pid: str, created: int, kind: str, email: str | None, name: str | None,
                   iban: str = "FR1420041010050500013M02606") -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": pid, "object": "payment_method", "allow_redisplay": "unspecified",
        "billing_details": {"address": {**_null_address(), "country": "FR"}, "email": email, "name": name,
                            "phone": None, "tax_id": None},
        "created": created, "customer": None, "customer_account": None, "livemode": False, "metadata": {},
        "radar_options": {}, "type": kind,
    }
    # Like Stripe, only the sub-hash named after ``type`` is present (``card`` or ``sepa_debit``).
    obj[kind] = card_details() if kind == "card" else sepa_details(iban)
    return obj


def mandate(mid: str, pm_id: str, accepted_at: int, multi_use: bool, amount: int | None = None,
            currency: str | None = None) -> dict[str, Any]:
    reference = rand(16, string.ascii_uppercase + string.digits)
    return {
        "id": mid, "object": "mandate",
        "customer_acceptance": {"accepted_at": accepted_at, "online": {"ip_address": "127.0.0.1",
                                                                        "user_agent": "stripe-emulator"},
                                "type": "online"},
        "livemode": False, "multi_use": {} if multi_use else None, "on_behalf_of": None, "payment_method": pm_id,
        "payment_method_details": {"sepa_debit": {"reference": reference,
                                                  "url": f"https://emulator.invalid/mandates/{mid}"},
                                   "type": "sepa_debit"},
        "single_use": None if multi_use else {"amount": amount, "currency": currency},
        "status": "active", "type": "multi_use" if multi_use else "single_use",
    }


def charge(cid: str, created: int, pi: dict[str, Any], pm: dict[str, Any], status: str) -> dict[str, Any]:
    kind = pm["type"]
    if kind == "card":
        card = pm["card"]
        details: dict[str, Any] = {"card": {
            "amount_authorized": pi["amount"], "authorization_code": rand(6, string.digits), "brand": card["brand"],
            "checks": card["checks"], "country": card["country"], "exp_month": card["exp_month"],
            "exp_year": card["exp_year"], "extended_authorization": {"status": "disabled"},
            "fingerprint": card["fingerprint"], "funding": card["funding"],
            "incremental_authorization": {"status": "unavailable"}, "installments": None,
            "last4": card["last4"], "mandate": None, "multicapture": {"status": "unavailable"},
            "network": "visa", "network_token": {"used": False}, "network_transaction_id": rand(15, string.digits),
            "overcapture": {"maximum_amount_capturable": pi["amount"], "status": "unavailable"},
            "regulated_status": "unregulated", "three_d_secure": None, "transaction_link_id": None,
            "wallet": None}, "type": "card"}
    else:
        sepa = pm["sepa_debit"]
        details = {"sepa_debit": {"bank_code": sepa["bank_code"], "branch_code": sepa["branch_code"],
                                  "country": sepa["country"], "expected_debit_date": None,
                                  "fingerprint": sepa["fingerprint"], "last4": sepa["last4"], "mandate": None},
                   "type": "sepa_debit"}
    succeeded = status == "succeeded"
    return {
        "id": cid, "object": "charge", "amount": pi["amount"], "amount_captured": pi["amount"] if succeeded else 0,
        "amount_refunded": 0, "application": None, "application_fee": None, "application_fee_amount": None,
        "authorization_code": None, "balance_transaction": None,
        "billing_details": dict(pm["billing_details"]), "calculated_statement_descriptor": "EMULATOR",
        "captured": succeeded, "created": created, "currency": pi["currency"], "customer": pi["customer"],
        "description": pi["description"], "disputed": False, "failure_balance_transaction": None,
        "failure_code": None, "failure_message": None, "fraud_details": {}, "level3": None, "livemode": False,
        "metadata": dict(pi["metadata"]), "on_behalf_of": None,
        "outcome": {"advice_code": None, "network_advice_code": None, "network_decline_code": None,
                    "network_status": "approved_by_network", "reason": None, "risk_level": "normal",
                    "seller_message": "Payment complete.", "type": "authorized"},
        "paid": succeeded, "payment_intent": pi["id"], "payment_method": pm["id"],
        "payment_method_details": details, "presentment_details": None, "radar_options": {},
        "receipt_email": None, "receipt_number": None,
        "receipt_url": f"https://emulator.invalid/receipts/{cid}", "refunded": False,
        "refunds": list_object([], f"/v1/charges/{cid}/refunds"), "review": None, "shipping": None,
        "source": None, "source_transfer": None, "statement_descriptor": None,
        "statement_descriptor_suffix": None, "status": status, "transfer": None, "transfer_data": None,
        "transfer_group": None,
    }


def balance_transaction(tid: str, created: int, amount: int, currency: str, fee: int, source: str, kind: str,
                        category: str, description: str | None, fee_description: str = "Stripe processing fees"
                        ) -> dict[str, Any]:
    return {
        "id": tid, "object": "balance_transaction", "amount": amount, "available_on": created,
        "balance_type": "payments", "created": created, "currency": currency, "description": description,
        "exchange_rate": None, "fee": fee,
        "fee_details": [{"amount": fee, "application": None, "currency": currency, "description": fee_description,
                         "type": "stripe_fee"}] if fee else [],
        "net": amount - fee, "reporting_category": category, "source": source, "status": "available",
        "type": kind,
    }


def refund(rid: str, created: int, charge_obj: dict[str, Any], amount: int) -> dict[str, Any]:
    kind = charge_obj["payment_method_details"]["type"]
    return {
        "id": rid, "object": "refund", "amount": amount, "balance_transaction": None, "charge": charge_obj["id"],
        "created": created, "currency": charge_obj["currency"], "customer": charge_obj["customer"],
        "customer_account": None, "description": None,
        "destination_details": {"card": {"reference_status": "available", "reference_type": "acquirer_reference_number",
                                         "type": "refund", "reference": rand(23, string.digits)},
                                "type": "card"} if kind == "card" else {"sepa_debit": {}, "type": "sepa_debit"},
        "failure_balance_transaction": None, "failure_reason": None, "instructions_email": None, "metadata": {},
        "next_action": None, "payment_intent": charge_obj["payment_intent"],
        "payment_method": charge_obj["payment_method"], "pending_reason": None, "presentment_details": None,
        "reason": None, "receipt_number": None, "source_transfer_reversal": None, "status": "succeeded",
        "transfer_reversal": None,
    }


def dispute(did: str, created: int, charge_obj: dict[str, Any], amount: int, reason: str) -> dict[str, Any]:
    kind = charge_obj["payment_method_details"]["type"]
    details: dict[str, Any] = ({"card": {"brand": "visa", "case_type": "chargeback", "network": "visa",
                                         "network_reason_code": "10.4"}, "type": "card"}
                               if kind == "card" else {"sepa_debit": {}, "type": "sepa_debit"})
    evidence_keys = (
        "access_activity_log billing_address cancellation_policy cancellation_policy_disclosure "
        "cancellation_rebuttal customer_communication customer_email_address customer_name customer_purchase_ip "
        "customer_signature duplicate_charge_documentation duplicate_charge_explanation duplicate_charge_id "
        "product_description receipt refund_policy refund_policy_disclosure refund_refusal_explanation "
        "service_date service_documentation shipping_address shipping_carrier shipping_date "
        "shipping_documentation shipping_tracking_number uncategorized_file uncategorized_text").split()
    return {
        "id": did, "object": "dispute", "amount": amount, "balance_transactions": [], "charge": charge_obj["id"],
        "created": created, "currency": charge_obj["currency"], "enhanced_eligibility_types": [],
        "evidence": {**{k: None for k in evidence_keys}, "enhanced_evidence": {}},
        "evidence_details": {"due_by": created + 7 * 86400, "enhanced_eligibility": {}, "has_evidence": False,
                             "past_due": False, "submission_count": 0},
        "intended_submission_method": None, "is_charge_refundable": False, "livemode": False, "metadata": {},
        "network_reason_code": "10.4" if kind == "card" else None, "payment_intent": charge_obj["payment_intent"],
        "payment_method_details": details, "reason": reason, "status": "needs_response",
    }


def payout(pid: str, created: int, amount: int, currency: str, txn_id: str) -> dict[str, Any]:
    return {
        "id": pid, "object": "payout", "amount": amount, "application_fee": None, "application_fee_amount": None,
        "arrival_date": created + 86400, "automatic": True, "balance_transaction": txn_id, "created": created,
        "currency": currency, "description": "STRIPE PAYOUT", "destination": "ba_1EmuLocBankAccount0001",
        "failure_balance_transaction": None, "failure_code": None, "failure_message": None, "livemode": False,
        "metadata": {}, "method": "standard", "original_payout": None, "payout_method": None,
        "reconciliation_status": "completed", "reversed_by": None, "source_type": "card",
        "statement_descriptor": "STRIPE EMULATOR", "status": "in_transit", "trace_id": {
            "status": "supported", "value": "EMU" + rand(12, string.ascii_uppercase + string.digits)},
        "type": "bank_account",
    }


def event(eid: str, created: int, kind: str, obj: dict[str, Any], api_version: str, pending: int,
          request_id: str | None, idempotency_key: str | None,
          previous_attributes: dict[str, Any] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"object": obj}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    return {
        "id": eid, "object": "event", "api_version": api_version, "created": created, "data": data,
        "livemode": False, "pending_webhooks": pending,
        "request": {"id": request_id, "idempotency_key": idempotency_key}, "type": kind,
    }
