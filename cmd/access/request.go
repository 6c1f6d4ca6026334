package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/api"
	"github.com/gatehouse-dev/gatehouse/cmd/internal/cliui"
	"github.com/gatehouse-dev/gatehouse/profile"
)

func requestCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "request", Short: "Create, list, review and search access requests"}
	cmd.AddCommand(requestCreateCmd(g), requestLsCmd(g), requestShowCmd(g), requestReviewCmd(g),
		requestSearchCmd(g), requestCancelCmd(g), requestDropCmd(g))
	return cmd
}

func requestCreateCmd(g *globals) *cobra.Command {
	var roles, reviewers, resources []string
	var reason, duration, start string
	var nowait bool
	cmd := &cobra.Command{
		Use:   "create (--roles R[,R] | --resource ID ...) --reason S",
		Short: "Request roles or resources; waits for the review unless --nowait",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(roles) == 0 && len(resources) == 0 {
				return cliui.UsageError("give --roles or --resource")
			}
			if strings.TrimSpace(reason) == "" {
				return cliui.UsageError("--reason is required")
			}
			in := api.CreateRequest{Roles: roles, Resources: resources, Reason: reason, Reviewers: reviewers, Duration: duration}
			if duration != "" {
				if _, err := time.ParseDuration(duration); err != nil {
					return cliui.UsageError("--duration %q: want a Go duration such as 2h", duration)
				}
			}
			if start != "" {
				t, err := time.Parse(time.RFC3339, start)
				if err != nil {
					return cliui.UsageError("--start %q: want RFC 3339, e.g. 2026-11-21T22:00:00Z", start)
				}
				in.Start = &t
			}
			return createAndWait(cmd.Context(), g, in, nowait)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&roles, "roles", nil, "roles to request")
	f.StringArrayVar(&resources, "resource", nil, "resource ID to request (repeatable), from access request search")
	f.StringVar(&reason, "reason", "", "why you need access")
	f.StringSliceVar(&reviewers, "reviewers", nil, "suggested reviewers")
	f.StringVar(&duration, "duration", "", "how long the access should last (default 1h, capped by max_duration)")
	f.StringVar(&start, "start", "", "schedule the access window to start at this RFC 3339 time")
	f.BoolVar(&nowait, "nowait", false, "do not wait for the review")
	return cmd
}

func requestLsCmd(g *globals) *cobra.Command {
	var state string
	var mine bool
	cmd := &cobra.Command{
		Use: "ls", Short: "List the requests you may see", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, p, err := g.client()
			if err != nil {
				return err
			}
			user := ""
			if mine {
				user = p.User
			}
			list, err := c.ListRequests(cmd.Context(), state, user)
			if err != nil {
				return err
			}
			return cliui.PrintRequests(os.Stdout, g.format, list)
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "pending, approved, denied, expired, cancelled, dropped or revoked")
	cmd.Flags().BoolVar(&mine, "mine", false, "only your own requests")
	return cmd
}

func requestShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "show ID", Short: "Show one request", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := g.client()
			if err != nil {
				return err
			}
			r, err := c.GetRequest(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return cliui.PrintRequest(os.Stdout, g.format, r)
		},
	}
}

func requestReviewCmd(g *globals) *cobra.Command {
	var approve, deny bool
	var reason string
	var roles []string
	cmd := &cobra.Command{
		Use: "review (--approve|--deny) [--reason S] [--roles R] ID", Short: "Approve or deny a request", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if approve == deny {
				return cliui.UsageError("give exactly one of --approve or --deny")
			}
			if deny && len(roles) > 0 {
				return cliui.UsageError("--roles narrows an approval; it does not apply to --deny")
			}
			c, _, err := g.client()
			if err != nil {
				return err
			}
			v := access.VerdictApprove
			if deny {
				v = access.VerdictDeny
			}
			r, err := c.Review(cmd.Context(), args[0], api.ReviewRequest{Verdict: v, Reason: reason, Roles: roles})
			if err != nil {
				return err
			}
			if g.format == "json" {
				return cliui.JSON(os.Stdout, r)
			}
			fmt.Printf("Reviewed request %s: %s (%s)\n", r.ID, r.State, r.ProgressSummary())
			return nil
		},
	}
	cmd.Flags().BoolVar(&approve, "approve", false, "approve")
	cmd.Flags().BoolVar(&deny, "deny", false, "deny")
	cmd.Flags().StringVar(&reason, "reason", "", "reason for the review")
	cmd.Flags().StringSliceVar(&roles, "roles", nil, "approve only these of the requested roles")
	return cmd
}

func requestSearchCmd(g *globals) *cobra.Command {
	var kind, search, labels string
	cmd := &cobra.Command{
		Use:   "search --kind KIND [--search WORDS] [--labels k=v,...]",
		Short: "Find resources you may request, and print the command to request them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if kind == "" {
				return cliui.UsageError("--kind is required: node, db, app, kube_cluster or windows_desktop")
			}
			lm := map[string]string{}
			for _, kv := range splitList(labels) {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return cliui.UsageError("--labels %q: want key=value,...", kv)
				}
				lm[k] = v
			}
			c, _, err := g.client()
			if err != nil {
				return err
			}
			found, err := c.Search(cmd.Context(), kind, search, lm)
			if err != nil {
				return err
			}
			if g.format == "json" {
				if found == nil {
					found = []api.SearchResult{}
				}
				return cliui.JSON(os.Stdout, found)
			}
			if len(found) == 0 {
				fmt.Println("No resources found.")
				return nil
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "Name\tHostname\tLabels\tResource ID")
			for _, r := range found {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, r.Hostname, formatLabels(r.Labels), r.ID)
			}
			_ = tw.Flush()
			ids := make([]string, 0, len(found))
			for _, r := range found {
				ids = append(ids, "--resource "+r.ID)
			}
			fmt.Printf("\nTo request access to these resources, run\n> access request create %s \\\n    --reason <request reason>\n", strings.Join(ids, " "))
			return nil
		},
	}
	cmd.Flags().StringVar(&kind, "kind", "", "node, db, app, kube_cluster or windows_desktop")
	cmd.Flags().StringVar(&search, "search", "", "words that must all appear (name, hostname, labels, description)")
	cmd.Flags().StringVar(&labels, "labels", "", "exact labels k=v,...")
	return cmd
}

func formatLabels(l map[string]string) string {
	parts := make([]string, 0, len(l))
	for k, v := range l {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func requestCancelCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "cancel ID", Short: "Withdraw a pending request", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := g.client()
			if err != nil {
				return err
			}
			r, err := c.Cancel(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if g.format == "json" {
				return cliui.JSON(os.Stdout, r)
			}
			fmt.Printf("Request %s %s\n", r.ID, r.State)
			return nil
		},
	}
}

func requestDropCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "drop [ID|all]", Short: "Give an approved grant back (all: every one); leaving the active grant returns to standing access", Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, p, err := g.client()
			if err != nil {
				return err
			}
			all := len(args) == 0 || args[0] == "all"
			var dropped []api.Request
			if all {
				dropped, err = c.DropAll(cmd.Context())
			} else {
				var r api.Request
				r, err = c.Drop(cmd.Context(), args[0])
				dropped = []api.Request{r}
			}
			// Leave the active grant even when the server could not drop
			// it (already ended, say): less privilege is the safe side.
			left, lerr := leaveGrant(profile.Home(), p, args, all)
			if left {
				w := os.Stdout
				if g.format == "json" {
					w = os.Stderr
				}
				defer fmt.Fprintln(w, "Back to standing access.")
			}
			if err != nil {
				return err
			}
			if lerr != nil {
				return lerr
			}
			if g.format == "json" {
				if dropped == nil {
					dropped = []api.Request{}
				}
				return cliui.JSON(os.Stdout, dropped)
			}
			if len(dropped) == 0 {
				fmt.Println("No approved grants to drop.")
			}
			for _, r := range dropped {
				fmt.Printf("Request %s %s\n", r.ID, r.State)
			}
			return nil
		},
	}
}
