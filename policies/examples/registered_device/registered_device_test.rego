package gatehouse_device_test

import data.gatehouse

request(roles, traits) := {
	"request": {"id": "1", "user": "bob", "roles": roles, "resources": [], "reason": "r", "duration": "1h", "suggested_reviewers": [], "annotations": {}},
	"user": {"name": "bob", "roles": ["engineer"], "traits": traits},
	"now": "2026-11-21T10:00:00Z",
	"source": "cli",
}

test_admin_from_unregistered_device_is_denied if {
	gatehouse.deny == {`role "admin" may only be requested from a registered device`} with input as request(["admin", "viewer"], {})
}

test_admin_from_device_registered_false_is_denied if {
	count(gatehouse.deny) == 1 with input as request(["root"], {"device_registered": ["false"]})
}

test_admin_from_registered_device_is_allowed if {
	count(gatehouse.deny) == 0 with input as request(["admin"], {"device_registered": ["true"]})
}

test_other_roles_need_no_registered_device if {
	count(gatehouse.deny) == 0 with input as request(["viewer"], {})
}
