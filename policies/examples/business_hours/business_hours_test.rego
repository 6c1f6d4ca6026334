package gatehouse_business_hours_test

import data.gatehouse

request(roles, now) := {
	"request": {"id": "1", "user": "dan", "roles": roles, "resources": [], "reason": "r", "duration": "1h", "suggested_reviewers": [], "annotations": {}},
	"user": {"name": "dan", "roles": ["support"], "traits": {}},
	"now": now,
	"source": "slack",
}

# 2026-11-23 is a Monday, 2026-11-21 a Saturday.
test_low_risk_on_monday_morning_is_auto_approved if {
	count(gatehouse.auto_approve) == 1 with input as request(["viewer"], "2026-11-23T10:30:00Z")
	gatehouse.max_ttl == {"4h"} with input as request(["viewer"], "2026-11-23T10:30:00Z")
}

test_low_risk_at_night_is_not_auto_approved if {
	count(gatehouse.auto_approve) == 0 with input as request(["viewer"], "2026-11-23T18:00:00Z")
	count(gatehouse.auto_approve) == 0 with input as request(["viewer"], "2026-11-23T08:59:59Z")
}

test_low_risk_on_saturday_is_not_auto_approved if {
	count(gatehouse.auto_approve) == 0 with input as request(["viewer"], "2026-11-21T10:30:00Z")
}

test_one_risky_role_spoils_the_request if {
	count(gatehouse.auto_approve) == 0 with input as request(["viewer", "admin"], "2026-11-23T10:30:00Z")
}

test_timezone_is_honoured if {
	count(gatehouse.auto_approve) == 1 with input as request(["viewer"], "2026-11-23T17:30:00Z")
		with data.business_hours.timezone as "UTC"
	count(gatehouse.auto_approve) == 0 with input as request(["viewer"], "2026-11-23T17:30:00Z")
		with data.business_hours.start as 18
}
