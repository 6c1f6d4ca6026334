# Gatehouse's default policy bundle, shipped in the binary.
#
# Rules of package gatehouse (every one a set; an undefined rule is empty):
#   deny, auto_approve, thresholds, max_ttl, notify   at request creation
#   deny_review                                       per review
# The default bundle only adds on-call auto-approval; with nothing else said,
# a request needs one approval from anyone allowed to review it.
package gatehouse

# On-call auto-approve, as Teleport's PagerDuty plugin does it: the requester
# is on call at escalation level 1 for a PagerDuty service named in the
# requested roles' annotations (pagerduty_services). A PagerDuty outage makes
# pagerduty.on_call raise an error: the request then waits for humans.
auto_approve contains sprintf("%s is on call for PagerDuty service %q", [input.user.name, service]) if {
	some service in input.request.annotations.pagerduty_services
	pagerduty.on_call(requester_email, service)
}

# The requester's email, as their identity provider asserts it.
requester_email := input.user.traits.email[0]
