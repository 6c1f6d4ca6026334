package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/api"
	"github.com/gatehouse-dev/gatehouse/cmd/internal/cliui"
	"github.com/gatehouse-dev/gatehouse/policies"
)

// Outcomes as the service records them (service.Outcome*).
const (
	outcomeReview      = "review"
	outcomeApprove     = "approve"
	outcomeDeny        = "deny"
	outcomePolicyError = "policy_error"
)

// replayPage is how many audit events one round trip asks for.
const replayPage = 1000

// replayCmd is `accessctl policy replay`: the recorded inputs of past
// requests (request.create audit events) decided again by a candidate
// bundle, with the recorded results of http.send and pagerduty.* fed back
// instead of calling out, and the outcomes that would change printed.
func replayCmd(g *globals) *cobra.Command {
	var since string
	cmd := &cobra.Command{
		Use:   "replay [--since 7d] DIR",
		Short: "Re-decide past requests with the bundle in DIR and show which outcomes would change",
		Long: `Replay reads the request.create audit events of the window, decides each
recorded policy input again with the candidate bundle in DIR, answering
http.send and pagerduty.* from the results recorded with the decision (it
never calls them), and prints the requests whose outcome (deny, approve,
review), thresholds or max_ttl would change. A decision that cannot be
replayed (a call that was not recorded, a policy error) is reported on
stderr and counted. The exit code is 0 whatever would change.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.checkFormat("text", "json"); err != nil {
				return err
			}
			from, err := parseWindow(since, time.Now())
			if err != nil {
				return cliui.UsageError("--since %q: %v", since, err)
			}
			b, err := policies.LoadDir(args[0])
			if err != nil {
				return err
			}
			if len(b.Files) == 0 {
				return cliui.UsageError("%s holds no .rego files", args[0])
			}
			engine, err := policies.New(b)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			evs, err := fetchCreates(cmd.Context(), c, from)
			if err != nil {
				return fmt.Errorf("reading the audit log: %w", err)
			}
			// The thresholds and max_ttl in force are on the requests; a
			// request no longer readable is compared on its outcome only.
			reqs := map[string]api.Request{}
			if list, err := c.ListRequests(cmd.Context(), "", ""); err != nil {
				fmt.Fprintf(os.Stderr, "accessctl: warning: cannot list requests (%v): thresholds and max_ttl are not compared\n", err)
			} else {
				for _, r := range list {
					reqs[r.ID] = r
				}
			}
			rep := replayAll(cmd.Context(), engine, evs, reqs)
			for _, f := range rep.failures {
				fmt.Fprintf(os.Stderr, "accessctl: request %s could not be replayed: %s\n", f.id, f.err)
			}
			return rep.print(os.Stdout, g.format, args[0], from)
		},
	}
	cmd.Flags().StringVar(&since, "since", "7d", "window of past requests: a duration back from now (7d, 36h, 1d12h) or an RFC 3339 time")
	return cmd
}

var dayPrefix = regexp.MustCompile(`^([0-9]+)d(.*)$`)

// parseWindow reads --since: a Go duration with an optional leading day
// count ("7d", "1d12h"), or an RFC 3339 time.
func parseWindow(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	var d time.Duration
	rest := s
	if m := dayPrefix.FindStringSubmatch(s); m != nil {
		days, err := strconv.Atoi(m[1])
		if err != nil || days > 100000 {
			return time.Time{}, fmt.Errorf("want a duration (7d, 36h) or RFC 3339 time")
		}
		d, rest = time.Duration(days)*24*time.Hour, m[2]
	}
	if rest != "" {
		more, err := time.ParseDuration(rest)
		if err != nil {
			return time.Time{}, fmt.Errorf("want a duration (7d, 36h) or RFC 3339 time")
		}
		d += more
	}
	if d <= 0 {
		return time.Time{}, fmt.Errorf("want a positive duration")
	}
	return now.Add(-d), nil
}

// fetchCreates reads every request.create event since from, paging
// forward (Since is inclusive, so a page's last instant is read again and
// deduplicated by ID).
func fetchCreates(ctx context.Context, c *api.Client, from time.Time) ([]api.AuditEvent, error) {
	var out []api.AuditEvent
	seen := map[string]bool{}
	for {
		page, err := c.Audit(ctx, api.AuditQuery{Since: from, Type: "request.create", Limit: replayPage})
		if err != nil {
			return nil, err
		}
		added := 0
		for _, ev := range page {
			if !seen[ev.ID] {
				seen[ev.ID] = true
				out = append(out, ev)
				added++
			}
		}
		if len(page) < replayPage || added == 0 {
			return out, nil
		}
		from = page[len(page)-1].Time
	}
}

// replayDecision is one side of a comparison.
type replayDecision struct {
	Outcome        string             `json:"outcome"`
	Reasons        []string           `json:"reasons,omitempty"`
	Thresholds     []access.Threshold `json:"thresholds,omitempty"`
	MaxTTL         string             `json:"max_ttl,omitempty"`
	BundleRevision *int64             `json:"bundle_revision,omitempty"`
}

// replayChange is a request whose decision would change.
type replayChange struct {
	Type      string         `json:"type"` // "change"
	RequestID string         `json:"request_id"`
	Time      time.Time      `json:"time"`
	User      string         `json:"user"`
	Roles     []string       `json:"roles"`
	Changed   []string       `json:"changed"` // outcome, thresholds, max_ttl
	Recorded  replayDecision `json:"recorded"`
	Candidate replayDecision `json:"candidate"`
}

type replayFailure struct{ id, err string }

type replayReport struct {
	replayed int
	changes  []replayChange
	failures []replayFailure
}

// replayAll decides each recorded input again and compares.
func replayAll(ctx context.Context, e *policies.Engine, evs []api.AuditEvent, reqs map[string]api.Request) replayReport {
	var rep replayReport
	for _, ev := range evs {
		rawIn, ok := ev.Fields["policy_input"]
		if !ok {
			continue // created without a policy engine
		}
		id := ev.RequestID
		fail := func(format string, args ...any) {
			rep.failures = append(rep.failures, replayFailure{id: id, err: fmt.Sprintf(format, args...)})
		}
		var in access.PolicyInput
		if err := remarshal(rawIn, &in); err != nil {
			fail("recorded policy_input: %v", err)
			continue
		}
		if id == "" {
			id = in.Request.ID
		}
		recorded, _ := ev.Fields["decision"].(string)
		if recorded == "" {
			fail("no recorded decision")
			continue
		}
		var nd json.RawMessage
		if v, ok := ev.Fields["nd_cache"]; ok && v != nil {
			b, err := json.Marshal(v)
			if err != nil {
				fail("recorded nd_cache: %v", err)
				continue
			}
			nd = b
		}
		d, err := e.DecideReplay(ctx, in, nd)
		if err != nil {
			fail("%v", err)
			continue
		}
		rep.replayed++

		rec := replayDecision{Outcome: recorded, Reasons: stringList(ev.Fields["policy_reasons"])}
		if v, ok := ev.Fields["bundle_revision"].(float64); ok {
			r := int64(v)
			rec.BundleRevision = &r
		}
		if recorded == outcomePolicyError {
			if msg, ok := ev.Fields["policy_error"].(string); ok {
				rec.Reasons = []string{msg}
			}
		}
		r, known := reqs[id]
		if known {
			rec.Thresholds = stripProgress(r.Thresholds)
			if r.Decision != nil && r.Decision.MaxTTL > 0 {
				rec.MaxTTL = r.Decision.MaxTTL.String()
			}
		}
		cand := replayDecision{Outcome: outcomeReview, Thresholds: stripProgress(d.Thresholds)}
		if len(cand.Thresholds) == 0 {
			cand.Thresholds = access.DefaultThresholds()
		}
		if d.MaxTTL > 0 {
			cand.MaxTTL = access.Duration(d.MaxTTL).String()
		}
		rev := d.BundleRevision
		cand.BundleRevision = &rev
		switch {
		case len(d.Deny) > 0:
			cand.Outcome, cand.Reasons = outcomeDeny, d.Deny
		case len(d.AutoApprove) > 0:
			cand.Outcome, cand.Reasons = outcomeApprove, d.AutoApprove
		}

		var changed []string
		if rec.Outcome != cand.Outcome {
			changed = append(changed, "outcome")
		} else if known {
			// Same outcome: thresholds matter while it waits for reviewers,
			// max_ttl whenever access may be granted.
			if cand.Outcome == outcomeReview && !sameThresholds(rec.Thresholds, cand.Thresholds) {
				changed = append(changed, "thresholds")
			}
			if cand.Outcome != outcomeDeny && rec.MaxTTL != cand.MaxTTL {
				changed = append(changed, "max_ttl")
			}
		}
		if len(changed) == 0 {
			continue
		}
		if !known {
			rec.Thresholds = nil
		}
		rep.changes = append(rep.changes, replayChange{
			Type: "change", RequestID: id, Time: ev.Time, User: in.Request.User, Roles: in.Request.Roles,
			Changed: changed, Recorded: rec, Candidate: cand,
		})
	}
	return rep
}

func (rep replayReport) print(w io.Writer, format, dir string, from time.Time) error {
	if format == "json" {
		for _, c := range rep.changes {
			if err := cliui.JSON(w, c); err != nil {
				return err
			}
		}
		return cliui.JSON(w, map[string]any{
			"type": "summary", "bundle": dir, "since": from.UTC().Format(time.RFC3339),
			"replayed": rep.replayed, "changed": len(rep.changes), "failed": len(rep.failures),
		})
	}
	for _, c := range rep.changes {
		fmt.Fprintf(w, "%s  %s  %s  %s  %s → %s\n", c.Time.Local().Format("2006-01-02 15:04"), c.RequestID, c.User,
			strings.Join(c.Roles, ","), c.Recorded.Outcome, c.Candidate.Outcome)
		if len(c.Recorded.Reasons) > 0 {
			fmt.Fprintf(w, "    was:  %s\n", strings.Join(c.Recorded.Reasons, "; "))
		}
		if len(c.Candidate.Reasons) > 0 {
			fmt.Fprintf(w, "    now:  %s\n", strings.Join(c.Candidate.Reasons, "; "))
		}
		if slices.Contains(c.Changed, "thresholds") {
			fmt.Fprintf(w, "    thresholds: %s → %s\n", thresholdsText(c.Recorded.Thresholds), thresholdsText(c.Candidate.Thresholds))
		}
		if slices.Contains(c.Changed, "max_ttl") {
			fmt.Fprintf(w, "    max_ttl: %s → %s\n", orNone(c.Recorded.MaxTTL), orNone(c.Candidate.MaxTTL))
		}
	}
	_, err := fmt.Fprintf(w, "%d decisions replayed, %d would change, %d could not be replayed\n", rep.replayed, len(rep.changes), len(rep.failures))
	return err
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func thresholdsText(ts []access.Threshold) string {
	if len(ts) == 0 {
		return "unknown"
	}
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = thresholdKey(t)
	}
	return strings.Join(parts, ", ")
}

// stripProgress keeps what the policy decides of each threshold: its
// name, counts and reviewers, in a canonical order.
func stripProgress(ts []access.Threshold) []access.Threshold {
	out := make([]access.Threshold, 0, len(ts))
	for _, t := range ts {
		t.Approvals, t.Denials = 0, 0
		t.Reviewers.Roles = slices.Sorted(slices.Values(t.Reviewers.Roles))
		t.Reviewers.Users = slices.Sorted(slices.Values(t.Reviewers.Users))
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return thresholdKey(out[i]) < thresholdKey(out[j]) })
	return out
}

func thresholdKey(t access.Threshold) string {
	s := fmt.Sprintf("%s %d/%d", t.Name, t.Approve, t.Deny)
	if len(t.Reviewers.Roles) > 0 {
		s += " roles=" + strings.Join(t.Reviewers.Roles, ",")
	}
	if len(t.Reviewers.Users) > 0 {
		s += " users=" + strings.Join(t.Reviewers.Users, ",")
	}
	return s
}

func sameThresholds(a, b []access.Threshold) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if thresholdKey(a[i]) != thresholdKey(b[i]) {
			return false
		}
	}
	return true
}

func stringList(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// remarshal converts a decoded JSON value (an audit field) into dst.
func remarshal(v any, dst any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, dst)
}
