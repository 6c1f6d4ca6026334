package gatehouse_prod_db_test

import data.gatehouse

request(roles, resources) := {
	"request": {"id": "1", "user": "alice", "roles": roles, "resources": resources, "reason": "r", "duration": "1h", "suggested_reviewers": [], "annotations": {}},
	"user": {"name": "alice", "roles": ["engineer"], "traits": {}},
	"now": "2026-11-21T10:00:00Z",
	"source": "cli",
}

security := {"name": "security", "approve": 2, "deny": 1, "reviewers": {"roles": ["security"]}}

orders_prod := {"id": "/main/db/orders", "kind": "db", "name": "orders", "labels": {"env": "prod"}}

orders_stage := {"id": "/main/db/orders-stage", "kind": "db", "name": "orders-stage", "labels": {"env": "stage"}}

web_prod := {"id": "/main/node/web1", "kind": "node", "name": "web1", "labels": {"env": "prod"}}

test_prod_db_resource_needs_two_security_approvals if {
	gatehouse.thresholds == {security} with input as request([], [orders_prod, orders_stage])
	gatehouse.max_ttl == {"4h"} with input as request([], [orders_prod])
}

test_dba_role_needs_two_security_approvals if {
	gatehouse.thresholds == {security} with input as request(["dba"], [])
}

test_stage_db_uses_default_threshold if {
	count(gatehouse.thresholds) == 0 with input as request([], [orders_stage])
}

test_prod_node_is_not_a_database if {
	count(gatehouse.thresholds) == 0 with input as request([], [web_prod])
}
