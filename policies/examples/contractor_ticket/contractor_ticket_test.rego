package gatehouse_contractor_test

import data.gatehouse

contractor := {
	"request": {"id": "1", "user": "carol", "roles": ["dba"], "resources": [], "reason": "fix #123", "duration": "1h", "suggested_reviewers": [], "annotations": {}},
	"user": {"name": "carol", "roles": ["contractor"], "traits": {"team": ["contractor"]}},
	"now": "2026-11-21T10:00:00Z",
	"source": "cli",
}

with_reason(reason) := json.patch(contractor, [{"op": "replace", "path": "/request/reason", "value": reason}])

# The mocked ticket API: #123 is open, #7 is closed, nothing else exists.
tickets(req) := {"status_code": 200, "body": {"status": "open"}} if {
	req.url == "https://tickets.example.com/api/tickets/123"
} else := {"status_code": 200, "body": {"status": "closed"}} if {
	req.url == "https://tickets.example.com/api/tickets/7"
} else := {"status_code": 404, "body": null}

test_contractor_without_ticket_is_denied if {
	gatehouse.deny == {"contractors must cite a ticket (\"#123\") in the reason"} with input as with_reason("just because")
		with http.send as tickets
}

test_contractor_with_open_ticket_is_not_denied if {
	count(gatehouse.deny) == 0 with input as contractor with http.send as tickets
}

test_contractor_with_unknown_ticket_is_denied if {
	gatehouse.deny == {"ticket #999 does not exist"} with input as with_reason("see #999")
		with http.send as tickets
}

test_contractor_with_closed_ticket_is_denied if {
	gatehouse.deny == {"ticket #7 is closed, not open"} with input as with_reason("reopen #7")
		with http.send as tickets
}

test_employee_needs_no_ticket if {
	employee := json.patch(contractor, [
		{"op": "replace", "path": "/user/traits/team", "value": ["sre"]},
		{"op": "replace", "path": "/request/reason", "value": "no ticket"},
	])
	count(gatehouse.deny) == 0 with input as employee with http.send as tickets
}
