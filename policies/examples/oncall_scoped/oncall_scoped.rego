# On-call auto-approve, scoped. Teleport approves anyone on call at any
# escalation level; here the requester must be on call
#   - for a PagerDuty service named in the requested roles' annotations
#     (pagerduty_services),
#   - at an escalation level no higher than data.oncall.max_escalation_level,
#   - on one of the schedules of data.oncall.schedules (not a shadow rotation),
# and only roles of data.oncall.roles may ever be approved this way. The
# access ends with the on-call shift (max_ttl). A PagerDuty outage makes
# pagerduty.oncalls raise an error: the request waits for humans.
package gatehouse

auto_approve contains sprintf("%s is on call for %s (schedule %s, level %d)", [input.user.name, oc.service, oc.schedule, oc.escalation_level]) if {
	some oc in qualifying_oncalls
}

# The access lasts until the end of the latest qualifying shift.
max_ttl contains sprintf("%ds", [seconds]) if {
	count(qualifying_oncalls) > 0
	last_end := max({time.parse_rfc3339_ns(oc.end) | some oc in qualifying_oncalls})
	seconds := floor((last_end - time.parse_rfc3339_ns(input.now)) / 1000000000)
	seconds > 0
}

qualifying_oncalls contains oc if {
	oncall_roles_only
	some oc in pagerduty.oncalls(input.user.traits.email[0])
	oc.service in input.request.annotations.pagerduty_services
	oc.escalation_level <= data.oncall.max_escalation_level
	oc.schedule in data.oncall.schedules
	now := time.parse_rfc3339_ns(input.now)
	time.parse_rfc3339_ns(oc.start) <= now
	now < time.parse_rfc3339_ns(oc.end)
}

# Every requested role is allowed for on-call approval, and no resources are
# requested (those are reviewed by people).
oncall_roles_only if {
	count(input.request.roles) > 0
	count(input.request.resources) == 0
	count(input.request.annotations.pagerduty_services) > 0
	every role in input.request.roles {
		role in data.oncall.roles
	}
}
