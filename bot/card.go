package bot

import (
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
)

// CardFor builds the card of r. publicURL (config public_url) makes the
// card's link; empty leaves it out.
func CardFor(r access.Request, publicURL string) Card {
	c := Card{
		RequestID:          r.ID,
		User:               r.User,
		Roles:              r.Roles,
		Resources:          r.Resources,
		Reason:             r.Reason,
		Duration:           access.FormatDuration(time.Duration(r.Duration)),
		State:              r.State,
		StateReason:        r.StateReason,
		SuggestedReviewers: r.SuggestedReviewers,
		Created:            r.Created,
		PendingExpires:     r.PendingExpires,
		AccessExpires:      r.AccessExpires,
		ShowCommand:        "access request show " + r.ID,
		Actionable:         r.State == access.StatePending,
	}
	if len(r.GrantedRoles) > 0 && r.State == access.StateApproved {
		c.Roles = r.GrantedRoles
	}
	for _, t := range r.Thresholds {
		c.Progress = append(c.Progress, fmt.Sprintf("%s %d/%d", t.Name, t.Approvals, t.Approve))
	}
	if r.Decision != nil {
		c.PolicyOutcome = r.Decision.Outcome
		c.PolicyReasons = r.Decision.Reasons
	}
	for _, rv := range r.Reviews {
		c.Reviews = append(c.Reviews, CardReview{Author: rv.Author, Verdict: rv.Verdict, Reason: rv.Reason, Time: rv.Time})
	}
	if publicURL != "" {
		c.Link = strings.TrimRight(publicURL, "/") + "/v1/requests/" + r.ID
	}
	return c
}

// What is "roles dba, ops; resources /prod/node/db-1".
func (c Card) What() string { return joinWhat(c.Roles, c.Resources) }

func joinWhat(roles, resources []string) string {
	var parts []string
	if len(roles) > 0 {
		parts = append(parts, strings.Join(roles, ", "))
	}
	if len(resources) > 0 {
		parts = append(parts, strings.Join(resources, ", "))
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, " and ")
}

// Lines renders the card as plain lines (the fallback text of every
// platform's rich card, and what tests read). Markup: `code` spans only.
func (c Card) Lines() []string {
	lines := []string{
		fmt.Sprintf("Access request `%s`", c.RequestID),
		"Requester: " + c.User,
	}
	if len(c.Roles) > 0 {
		lines = append(lines, "Roles: "+strings.Join(c.Roles, ", "))
	}
	if len(c.Resources) > 0 {
		lines = append(lines, "Resources: "+strings.Join(c.Resources, ", "))
	}
	lines = append(lines, "Reason: "+c.Reason, "Duration: "+c.Duration)
	state := "State: " + string(c.State)
	if c.StateReason != "" {
		state += " (" + c.StateReason + ")"
	}
	lines = append(lines, state)
	if len(c.Progress) > 0 {
		lines = append(lines, "Approvals: "+strings.Join(c.Progress, ", "))
	}
	if len(c.PolicyReasons) > 0 {
		lines = append(lines, "Policy: "+strings.Join(c.PolicyReasons, "; "))
	}
	for _, rv := range c.Reviews {
		l := fmt.Sprintf("%s by %s", ReviewVerb(rv.Verdict), rv.Author)
		if rv.Reason != "" {
			l += ": " + rv.Reason
		}
		lines = append(lines, l)
	}
	if c.AccessExpires != nil && c.State == access.StateApproved {
		lines = append(lines, "Access until "+c.AccessExpires.UTC().Format("2006-01-02 15:04 MST"))
	}
	lines = append(lines, "See: `"+c.ShowCommand+"`")
	return lines
}

// Text is Lines joined by newlines.
func (c Card) Text() string { return strings.Join(c.Lines(), "\n") }

// ReviewVerb is "Approved" or "Denied".
func ReviewVerb(v access.Verdict) string {
	if v == access.VerdictDeny {
		return "Denied"
	}
	return "Approved"
}
