package gatehouse_oncall_test

import data.gatehouse

request(roles) := {
	"request": {"id": "1", "user": "alice", "roles": roles, "resources": [], "reason": "incident", "duration": "1h", "suggested_reviewers": [], "annotations": {"pagerduty_services": ["checkout"]}},
	"user": {"name": "alice", "roles": ["engineer"], "traits": {"email": ["alice@example.com"]}},
	"now": "2026-11-21T10:00:00Z",
	"source": "cli",
}

shift(service, level, schedule) := {
	"service": service,
	"escalation_policy": "Checkout EP",
	"escalation_level": level,
	"schedule": schedule,
	"start": "2026-11-21T08:00:00Z",
	"end": "2026-11-21T16:00:00Z",
}

# Built-ins are mocked with functions (not values), so that stock
# `opa test --capabilities policies/capabilities.json` runs these tests too.
primary(_) := [shift("checkout", 1, "Primary rotation")]

level_2(_) := [shift("checkout", 2, "Primary rotation")]

shadow(_) := [shift("checkout", 1, "Shadow")]

billing(_) := [shift("billing", 1, "Primary rotation")]

nothing(_) := []

test_primary_level_1_is_auto_approved_until_shift_end if {
	gatehouse.auto_approve == {"alice is on call for checkout (schedule Primary rotation, level 1)"} with input as request(["prod-responder"])
		with pagerduty.oncalls as primary
	gatehouse.max_ttl == {"21600s"} with input as request(["prod-responder"])
		with pagerduty.oncalls as primary
}

test_level_2_is_not_auto_approved if {
	count(gatehouse.auto_approve) == 0 with input as request(["prod-responder"])
		with pagerduty.oncalls as level_2
}

test_shadow_schedule_is_not_auto_approved if {
	count(gatehouse.auto_approve) == 0 with input as request(["prod-responder"])
		with pagerduty.oncalls as shadow
}

test_other_service_is_not_auto_approved if {
	count(gatehouse.auto_approve) == 0 with input as request(["prod-responder"])
		with pagerduty.oncalls as billing
}

test_role_outside_allow_list_is_never_auto_approved if {
	count(gatehouse.auto_approve) == 0 with input as request(["prod-responder", "admin"])
		with pagerduty.oncalls as primary
}

test_ended_shift_is_not_auto_approved if {
	later := json.patch(request(["prod-responder"]), [{"op": "replace", "path": "/now", "value": "2026-11-21T16:00:00Z"}])
	count(gatehouse.auto_approve) == 0 with input as later with pagerduty.oncalls as primary
}

test_not_on_call_is_not_auto_approved if {
	count(gatehouse.auto_approve) == 0 with input as request(["prod-responder"])
		with pagerduty.oncalls as nothing
}
