"""Physical layout of the ledger table, shared by the models, the local stack and infra/.

``tests/infra`` checks that the CDK table and the pynamodb models agree with this.
"""

GSI1, GSI2, GSI3 = "gsi1", "gsi2", "gsi3"

TABLE_ATTRS = {
    "default_name": "ar-ledger",
    "partition_key": "pk",
    "sort_key": "sk",
    "ttl_attribute": "expires_at",
    "indexes": {
        GSI1: ("gsi1pk", "gsi1sk"),
        GSI2: ("gsi2pk", "gsi2sk"),
        GSI3: ("gsi3pk", "gsi3sk"),
    },
}
