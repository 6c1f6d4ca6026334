package gatehouse_test

import data.gatehouse

request := {
	"request": {
		"id": "00000000-0000-0000-0000-000000000001",
		"user": "alice",
		"roles": ["prod-responder"],
		"resources": [],
		"reason": "incident #42",
		"duration": "1h",
		"suggested_reviewers": [],
		"annotations": {"pagerduty_services": ["checkout"]},
	},
	"user": {"name": "alice", "roles": ["engineer"], "traits": {"email": ["alice@example.com"]}},
	"now": "2026-11-21T10:00:00Z",
	"source": "cli",
}

# Mocks. Built-ins are mocked with functions (not values), so that stock
# `opa test --capabilities policies/capabilities.json` runs these tests too.
on_call(email, service) if {
	email == "alice@example.com"
	service == "checkout"
}

always_on_call(_, _) := true

never_on_call(_, _) := false

test_on_call_requester_is_auto_approved if {
	gatehouse.auto_approve == {`alice is on call for PagerDuty service "checkout"`} with input as request
		with pagerduty.on_call as on_call
}

test_not_on_call_is_not_auto_approved if {
	count(gatehouse.auto_approve) == 0 with input as request
		with pagerduty.on_call as never_on_call
}

test_other_service_is_not_auto_approved if {
	other := json.patch(request, [{"op": "replace", "path": "/request/annotations/pagerduty_services", "value": ["billing"]}])
	count(gatehouse.auto_approve) == 0 with input as other
		with pagerduty.on_call as on_call
}

test_no_annotation_is_not_auto_approved if {
	plain := json.patch(request, [{"op": "replace", "path": "/request/annotations", "value": {}}])
	count(gatehouse.auto_approve) == 0 with input as plain
		with pagerduty.on_call as always_on_call
}

test_no_email_is_not_auto_approved if {
	anonymous := json.patch(request, [{"op": "replace", "path": "/user/traits", "value": {}}])
	count(gatehouse.auto_approve) == 0 with input as anonymous
		with pagerduty.on_call as always_on_call
}

test_default_bundle_says_nothing_else if {
	not gatehouse.deny with input as request with pagerduty.on_call as always_on_call
	not gatehouse.thresholds with input as request with pagerduty.on_call as always_on_call
	not gatehouse.deny_review with input as request with pagerduty.on_call as always_on_call
}
