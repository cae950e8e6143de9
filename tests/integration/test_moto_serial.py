"""The local stack's moto tweaks keep DynamoDB's transaction semantics."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError


@pytest.fixture
def ddb(stack):
    client = boto3.client("dynamodb", endpoint_url=stack, region_name="eu-west-3")
    return client


def item(client, pk):
    return client.get_item(TableName="ar-ledger", Key={"pk": {"S": pk}, "sk": {"S": "X"}}).get("Item")


def test_a_failed_transaction_leaves_every_item_as_it_was(ddb):
    # Given an item with a counter and another one
    ddb.put_item(TableName="ar-ledger", Item={"pk": {"S": "A"}, "sk": {"S": "X"}, "kind": {"S": "t"}, "n": {"N": "1"}})
    ddb.put_item(TableName="ar-ledger", Item={"pk": {"S": "B"}, "sk": {"S": "X"}, "kind": {"S": "t"}, "v": {"S": "b"}})
    # When a transaction overwrites B, ADDs to A, creates C, then fails a condition
    with pytest.raises(ClientError) as err:
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": "ar-ledger", "Item": {"pk": {"S": "B"}, "sk": {"S": "X"}, "kind": {"S": "t"},
                                                        "v": {"S": "changed"}}}},
            {"Put": {"TableName": "ar-ledger", "Item": {"pk": {"S": "C"}, "sk": {"S": "X"}, "kind": {"S": "t"}}}},
            {"Update": {"TableName": "ar-ledger", "Key": {"pk": {"S": "A"}, "sk": {"S": "X"}},
                        "UpdateExpression": "ADD #n :one", "ExpressionAttributeNames": {"#n": "n"},
                        "ExpressionAttributeValues": {":one": {"N": "5"}}}},
            {"Put": {"TableName": "ar-ledger", "Item": {"pk": {"S": "A2"}, "sk": {"S": "X"}, "kind": {"S": "t"}},
                     "ConditionExpression": "attribute_exists(pk)"}},
        ])
    assert err.value.response["Error"]["Code"] == "TransactionCanceledException"
    # Then nothing changed
    assert item(ddb, "A")["n"] == {"N": "1"}
    assert item(ddb, "B")["v"] == {"S": "b"}
    assert item(ddb, "C") is None and item(ddb, "A2") is None
    # And a successful one applies everything
    ddb.transact_write_items(TransactItems=[
        {"Update": {"TableName": "ar-ledger", "Key": {"pk": {"S": "A"}, "sk": {"S": "X"}},
                    "UpdateExpression": "ADD #n :one", "ExpressionAttributeNames": {"#n": "n"},
                    "ExpressionAttributeValues": {":one": {"N": "5"}}}},
        {"Put": {"TableName": "ar-ledger", "Item": {"pk": {"S": "C"}, "sk": {"S": "X"}, "kind": {"S": "t"}}}}])
    assert item(ddb, "A")["n"] == {"N": "6"} and item(ddb, "C") is not None
