# Production databases need two approvals from the security team, and one
# denial from them denies. "Production database" is a db resource labelled
# env=prod, or a role that grants production databases (data.prod_db.roles).
package gatehouse

thresholds contains {"name": "security", "approve": 2, "deny": 1, "reviewers": {"roles": ["security"]}} if {
	touches_prod_db
}

# Production database access is capped at four hours.
max_ttl contains "4h" if touches_prod_db

touches_prod_db if {
	some r in input.request.resources
	r.kind == "db"
	r.labels.env == "prod"
}

touches_prod_db if {
	some role in input.request.roles
	role in data.prod_db.roles
}
