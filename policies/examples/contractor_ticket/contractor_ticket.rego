# Contractors must cite an open ticket ("#123") in the reason. The ticket is
# looked up with http.send in the ticket API of data.tickets.api_url.
#
# A network error makes http.send raise an error, so the evaluation fails and
# the request waits for the fallback reviewers: an outage never approves nor
# denies. A ticket the API does not know (404), or one that is not open,
# denies the request with the reason shown to the requester.
package gatehouse

deny contains "contractors must cite a ticket (\"#123\") in the reason" if {
	requester_is_contractor
	count(cited_tickets) == 0
}

deny contains sprintf("ticket #%s does not exist", [id]) if {
	requester_is_contractor
	some id in cited_tickets
	ticket_lookup(id).status_code == 404
}

deny contains sprintf("ticket #%s is %s, not open", [id, resp.body.status]) if {
	requester_is_contractor
	some id in cited_tickets
	resp := ticket_lookup(id)
	resp.status_code == 200
	resp.body.status != "open"
}

requester_is_contractor if "contractor" in input.user.traits.team

cited_tickets contains m[1] if {
	some m in regex.find_all_string_submatch_n(`#([0-9]+)`, input.request.reason, -1)
}

ticket_lookup(id) := http.send({
	"method": "GET",
	"url": sprintf("%s/tickets/%s", [data.tickets.api_url, id]),
	"timeout": "2s",
	"headers": {"accept": "application/json"},
})
