"""The ledger table in the stacks is the table the pynamodb models query (a drift check)."""

from __future__ import annotations

from typing import Any

from infra_synth import Synth

from chalicelib.adapters.dynamodb import models
from chalicelib.adapters.dynamodb.schema import TABLE_ATTRS


def _table(synth: Synth) -> dict[str, Any]:
    (table,) = synth.resources("AWS::DynamoDB::Table").values()
    return table


def _model_schema() -> dict[str, Any]:
    # What pynamodb itself would create (TableItem.create_table is what the local stack runs).
    return models.TableItem._get_schema()


def _key_schema(entries: list[dict[str, str]]) -> dict[str, str]:
    return {e["KeyType"]: e["AttributeName"] for e in entries}


def test_table_keys_are_the_models_keys(stage: Synth) -> None:
    # Given the pynamodb models, When the stack is synthesized, Then the table has their keys
    props = _table(stage)["Properties"]
    schema = _model_schema()
    assert _key_schema(props["KeySchema"]) == _key_schema(schema["key_schema"]) == {"HASH": "pk", "RANGE": "sk"}
    defined = {d["AttributeName"]: d["AttributeType"] for d in props["AttributeDefinitions"]}
    assert defined == {d["AttributeName"]: d["AttributeType"] for d in schema["attribute_definitions"]}


def test_table_indexes_are_the_models_indexes(stage: Synth) -> None:
    props = _table(stage)["Properties"]
    in_stack = {g["IndexName"]: (_key_schema(g["KeySchema"]), g["Projection"]["ProjectionType"])
                for g in props["GlobalSecondaryIndexes"]}
    in_models = {g["index_name"]: (_key_schema(g["key_schema"]), g["projection"]["ProjectionType"])
                 for g in _model_schema()["global_secondary_indexes"]}
    assert in_stack == in_models
    assert set(in_stack) == {"gsi1", "gsi2", "gsi3"}
    assert not props.get("LocalSecondaryIndexes") and not _model_schema()["local_secondary_indexes"]


def test_every_model_lives_in_the_one_table() -> None:
    # A model that declared its own keys or indexes would need a table infra/ does not create.
    for model in models.ALL_MODELS:
        assert issubclass(model, models.TableItem)
        assert model._hash_keyname == "pk" and model._range_keyname == "sk", model.__name__
        assert set(model._indexes) == set(models.TableItem._indexes), model.__name__


def test_ttl_attribute_is_the_one_the_models_write(stage: Synth) -> None:
    props = _table(stage)["Properties"]
    assert props["TimeToLiveSpecification"] == {"AttributeName": TABLE_ATTRS["ttl_attribute"], "Enabled": True}
    ttl_attrs = [m for m in models.ALL_MODELS if TABLE_ATTRS["ttl_attribute"] in m.get_attributes()]
    assert ttl_attrs, "no model writes the TTL attribute"
    for model in ttl_attrs:
        assert model.get_attributes()[TABLE_ATTRS["ttl_attribute"]].attr_type == "N"  # epoch seconds


def test_table_is_on_demand_with_pitr_stream_and_encryption(stage: Synth) -> None:
    stage.template.has_resource_properties("AWS::DynamoDB::Table", {
        "BillingMode": "PAY_PER_REQUEST",
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "StreamSpecification": {"StreamViewType": "NEW_IMAGE"},
        "SSESpecification": {"SSEEnabled": True},
    })


def test_prod_table_is_protected_and_retained(synthesized: dict[str, Synth]) -> None:
    prod, dev = _table(synthesized["prod"]), _table(synthesized["dev"])
    assert prod["Properties"]["DeletionProtectionEnabled"] is True
    assert prod["DeletionPolicy"] == "Retain" and prod["UpdateReplacePolicy"] == "Retain"
    assert dev["Properties"].get("DeletionProtectionEnabled") in (False, None)
    synthesized["prod"].template.has_resource("AWS::DynamoDB::Table", {"DeletionPolicy": "Retain"})
