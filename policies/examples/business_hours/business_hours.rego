# Low-risk roles are approved at once during business hours (Monday to
# Friday, data.business_hours.start to .end o'clock in .timezone), for at
# most four hours. Outside business hours they go to review as usual.
package gatehouse

auto_approve contains "low-risk roles are approved automatically during business hours" if {
	low_risk_request
	business_hours
}

max_ttl contains "4h" if {
	low_risk_request
	business_hours
}

low_risk_request if {
	count(input.request.roles) > 0
	count(input.request.resources) == 0
	every role in input.request.roles {
		role in data.business_hours.low_risk_roles
	}
}

business_hours if {
	now := [time.parse_rfc3339_ns(input.now), data.business_hours.timezone]
	not time.weekday(now) in {"Saturday", "Sunday"}
	[hour, _, _] := time.clock(now)
	hour >= data.business_hours.start
	hour < data.business_hours.end
}
