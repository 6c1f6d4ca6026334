// Package cliui is what the two CLIs show people and scripts: tables,
// JSON lines, exit codes, and waiting for a request to be decided.
package cliui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/api"
)

// Exit codes of the scripting contract.
const (
	ExitOK          = 0
	ExitError       = 1
	ExitUsage       = 2
	ExitDenied      = 3 // the request ended DENIED or EXPIRED
	ExitInterrupted = 130
)

// ExitError carries an exit code through cobra.
type ExitCodeError struct {
	Code int
	Err  error
}

func (e *ExitCodeError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitCodeError) Unwrap() error { return e.Err }

// UsageError marks a usage mistake (exit 2).
func UsageError(format string, args ...any) error {
	return &ExitCodeError{Code: ExitUsage, Err: fmt.Errorf(format, args...)}
}

// Exit prints err and exits with its code.
func Exit(prog string, err error) {
	if err == nil {
		os.Exit(ExitOK)
	}
	var ec *ExitCodeError
	code := ExitError
	if errors.As(err, &ec) {
		code = ec.Code
		if ec.Err == nil {
			os.Exit(code)
		}
	} else if errors.Is(err, context.Canceled) {
		code = ExitInterrupted
	} else if isUsage(err) {
		code = ExitUsage
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", prog, err)
	os.Exit(code)
}

// isUsage recognises cobra's flag and argument errors.
func isUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown flag", "unknown shorthand", "unknown command", "accepts ", "requires at least", "flag needs an argument", "invalid argument", "required flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// JSON prints v as one JSON document on one line.
func JSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// RequestTable prints requests as a table.
func RequestTable(w io.Writer, reqs []api.Request) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSER\tROLES\tRESOURCES\tSTATE\tPROGRESS\tCREATED\tREASON")
	for _, r := range reqs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.User, join(r.Roles), join(r.Resources), r.State,
			r.ProgressSummary(), r.Created.Local().Format("2006-01-02 15:04"), clip(r.Reason, 40))
	}
	_ = tw.Flush()
}

// RequestDetail prints one request for a person.
func RequestDetail(w io.Writer, r api.Request) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	row("Request ID", r.ID)
	row("User", r.User)
	row("Roles", join(r.Roles))
	row("Resources", join(r.Resources))
	row("Reason", r.Reason)
	row("Duration", r.Duration.String())
	if r.Start != nil {
		row("Start", r.Start.Local().Format(time.RFC3339))
	}
	row("State", string(r.State))
	row("State reason", r.StateReason)
	row("Progress", r.ProgressSummary())
	row("Suggested", join(r.SuggestedReviewers))
	row("Created", r.Created.Local().Format(time.RFC3339))
	if r.State == access.StatePending {
		row("Pending until", r.PendingExpires.Local().Format(time.RFC3339))
	}
	if r.AccessExpires != nil {
		row("Access until", r.AccessExpires.Local().Format(time.RFC3339))
	}
	row("Granted roles", join(r.GrantedRoles))
	if r.Decision != nil && len(r.Decision.Reasons) > 0 {
		row("Policy", strings.Join(r.Decision.Reasons, "; "))
	}
	row("Source", r.Source)
	_ = tw.Flush()
	if len(r.Reviews) > 0 {
		fmt.Fprintln(w, "Reviews:")
		for _, rv := range r.Reviews {
			line := fmt.Sprintf("  %s %s %s", rv.Time.Local().Format("2006-01-02 15:04:05"), rv.Author, rv.Verdict)
			if rv.Kind != access.ReviewKindReview {
				line += " (" + string(rv.Kind) + ")"
			}
			if len(rv.Roles) > 0 {
				line += " roles=" + join(rv.Roles)
			}
			if rv.Reason != "" {
				line += fmt.Sprintf(": %q", rv.Reason)
			}
			fmt.Fprintln(w, line)
		}
	}
}

func join(s []string) string { return strings.Join(s, ",") }

func clip(s string, n int) string {
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

// maxStreamRetries bounds reconnects of a broken event stream while
// waiting.
const maxStreamRetries = 30

// WaitDecided follows the event stream from the request's revision until
// the request leaves PENDING. It does not poll: it resumes the stream from
// the last revision seen when the connection breaks. progress is called on
// each change (for a terminal display) and may be nil.
func WaitDecided(ctx context.Context, c *api.Client, req api.Request, progress func(api.Request)) (api.Request, error) {
	rev := req.Revision
	for attempt := 0; req.State == access.StatePending; attempt++ {
		events, errf, err := c.Events(ctx, rev)
		if err != nil {
			if ctx.Err() != nil || attempt >= maxStreamRetries || api.ErrorCode(err) == string(access.CodeUnauthorized) {
				return req, err
			}
			sleep(ctx, backoff(attempt))
			continue
		}
		for ev := range events {
			rev = ev.Revision
			var cur *api.Request
			switch ev.Type {
			case "request":
				if ev.Request != nil && ev.Request.ID == req.ID {
					cur = ev.Request
				}
			case "reset":
				for i := range ev.Snapshot {
					if ev.Snapshot[i].ID == req.ID {
						cur = &ev.Snapshot[i]
					}
				}
			}
			if cur == nil {
				continue
			}
			req = *cur
			if progress != nil {
				progress(req)
			}
			if req.State != access.StatePending {
				return req, nil
			}
		}
		if ctx.Err() != nil {
			return req, ctx.Err()
		}
		if attempt >= maxStreamRetries {
			return req, fmt.Errorf("event stream: %w", errf())
		}
		sleep(ctx, backoff(attempt))
	}
	return req, nil
}

func backoff(attempt int) time.Duration {
	d := 200 * time.Millisecond << min(attempt, 5)
	return d
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// OutcomeCode is the exit code for a request's final state.
func OutcomeCode(r api.Request) int {
	if r.State == access.StateDenied || r.State == access.StateExpired {
		return ExitDenied
	}
	return ExitOK
}

// PrintRequests prints a list as a table or, with format json, as one JSON
// array (empty, never null).
func PrintRequests(w io.Writer, format string, list []api.Request) error {
	if format == "json" {
		if list == nil {
			list = []api.Request{}
		}
		return JSON(w, list)
	}
	RequestTable(w, list)
	return nil
}

// PrintRequest prints one request in detail or as one JSON line.
func PrintRequest(w io.Writer, format string, r api.Request) error {
	if format == "json" {
		return JSON(w, r)
	}
	RequestDetail(w, r)
	return nil
}
