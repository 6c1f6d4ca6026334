// Command accessctl is the Gatehouse admin CLI: roles, users, resources,
// locks, tokens, admin decisions and the audit log.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/api"
	"github.com/gatehouse-dev/gatehouse/cmd/internal/cliui"
	"github.com/gatehouse-dev/gatehouse/manifest"
	"github.com/gatehouse-dev/gatehouse/profile"
)

type globals struct {
	server, identity, format string
}

func main() {
	var g globals
	root := &cobra.Command{
		Use:           "accessctl",
		Short:         "Administer Gatehouse",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.server, "server", os.Getenv("GATEHOUSE_SERVER"), "accessd URL (env GATEHOUSE_SERVER)")
	pf.StringVar(&g.identity, "identity", os.Getenv("GATEHOUSE_IDENTITY"), "identity file, e.g. DATA_DIR/admin.identity (env GATEHOUSE_IDENTITY; default: the access profile)")
	pf.StringVar(&g.format, "format", "text", "output: text, json (and yaml for get)")
	root.AddCommand(createCmd(&g), getCmd(&g), rmCmd(&g), usersCmd(&g), lockCmd(&g), unlockCmd(&g),
		tokensCmd(&g), requestsCmd(&g), auditCmd(&g), statusCmd(&g), policyCmd(&g), caCmd(&g), sshCmd(&g), botsCmd(&g))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := root.ExecuteContext(ctx)
	if ctx.Err() != nil && err != nil {
		err = &cliui.ExitCodeError{Code: cliui.ExitInterrupted, Err: errors.New("interrupted")}
	}
	stop()
	cliui.Exit("accessctl", err)
}

func (g *globals) client() (*api.Client, error) {
	var p profile.Profile
	var err error
	if g.identity != "" {
		p, err = profile.ReadFile(g.identity)
	} else {
		p, err = profile.Load(profile.Home())
	}
	if err != nil {
		return nil, err
	}
	return p.Client(g.server)
}

func (g *globals) checkFormat(allowed ...string) error {
	for _, a := range allowed {
		if g.format == a {
			return nil
		}
	}
	return cliui.UsageError("--format %q: want %s", g.format, strings.Join(allowed, " or "))
}

func createCmd(g *globals) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use: "create -f FILE.yaml", Short: "Create or update roles, users and resources (several documents per file)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return cliui.UsageError("-f FILE is required")
			}
			var b []byte
			var err error
			if file == "-" {
				b, err = io.ReadAll(os.Stdin)
			} else {
				b, err = os.ReadFile(file)
			}
			if err != nil {
				return err
			}
			objs, err := manifest.Decode(b)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			for _, o := range objs {
				if o.User != nil {
					// A new user gets an invite token; an existing one is
					// updated in place.
					if _, err := c.GetObjects(cmd.Context(), "user", o.Name); api.ErrorCode(err) == string(access.CodeNotFound) {
						res, err := c.AddUser(cmd.Context(), *o.User)
						if err != nil {
							return fmt.Errorf("user %q: %w", o.Name, err)
						}
						fmt.Printf("user %q has been created; invite token (valid 24h): %s\n", o.Name, res.InviteToken)
						continue
					}
				}
				if _, err := c.PutObject(cmd.Context(), o.Kind, o.JSON); err != nil {
					return fmt.Errorf("%s %q: %w", o.Kind, o.Name, err)
				}
				fmt.Printf("%s %q has been created or updated\n", o.Kind, o.Name)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "YAML file, - for standard input")
	return cmd
}

// splitRef reads KIND[/NAME]; resources are KIND/NAME themselves
// (resources/node/iot or node/iot).
func splitRef(ref string) (kind, name string, err error) {
	kind, name, _ = strings.Cut(ref, "/")
	switch kind {
	case "role", "roles":
		return "role", name, nil
	case "user", "users":
		return "user", name, nil
	case "request", "requests":
		return "request", name, nil
	case "resource", "resources":
		return "resource", name, nil
	case access.KindNode, access.KindDB, access.KindApp, access.KindKubeCluster, access.KindWindowsDesktop:
		if name == "" {
			return "", "", cliui.UsageError("%q: want %s/NAME", ref, kind)
		}
		return "resource", kind + "/" + name, nil
	}
	return "", "", cliui.UsageError("%q: want roles, users, resources or requests, optionally /NAME", ref)
}

func getCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "get (roles|users|resources|requests)[/NAME]", Short: "Show objects as YAML or JSON", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.checkFormat("text", "yaml", "json"); err != nil {
				return err
			}
			kind, name, err := splitRef(args[0])
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if kind == "request" {
				if name != "" {
					r, err := c.GetRequest(cmd.Context(), name)
					if err != nil {
						return err
					}
					raw, _ = json.Marshal(r)
				} else {
					list, err := c.ListRequests(cmd.Context(), "", "")
					if err != nil {
						return err
					}
					raw, _ = json.Marshal(list)
				}
			} else if raw, err = c.GetObjects(cmd.Context(), kind, name); err != nil {
				return err
			}
			if g.format == "json" {
				return cliui.JSON(os.Stdout, raw)
			}
			return printYAML(raw)
		},
	}
}

// printYAML prints a JSON object or array as YAML documents.
func printYAML(raw json.RawMessage) error {
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		list = []json.RawMessage{raw}
	}
	for i, item := range list {
		y, err := yaml.JSONToYAML(item)
		if err != nil {
			return err
		}
		if i > 0 {
			fmt.Println("---")
		}
		fmt.Print(string(y))
	}
	return nil
}

func rmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "rm KIND/NAME", Short: "Delete a role, user (which also locks it) or resource (node/NAME, db/NAME, ...)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, name, err := splitRef(args[0])
			if err != nil {
				return err
			}
			if name == "" || kind == "request" {
				return cliui.UsageError("%q: want role/NAME, user/NAME or KIND/NAME of a resource", args[0])
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.DeleteObject(cmd.Context(), kind, name); err != nil {
				return err
			}
			fmt.Printf("%s has been deleted\n", args[0])
			return nil
		},
	}
}

func usersCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "users", Short: "Manage users"}
	var roles, logins, traits []string
	add := &cobra.Command{
		Use: "add NAME --roles R,R [--logins L] [--traits k=v,...]", Short: "Add a user and print an invite token", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(roles) == 0 {
				return cliui.UsageError("--roles is required")
			}
			u := access.User{Kind: access.KindUser, Version: "v1", Metadata: access.Metadata{Name: args[0]}, Spec: access.UserSpec{Roles: roles, Traits: map[string][]string{}}}
			if len(logins) > 0 {
				u.Spec.Traits["logins"] = logins
			}
			for _, kv := range traits {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return cliui.UsageError("--traits %q: want key=value", kv)
				}
				u.Spec.Traits[k] = append(u.Spec.Traits[k], v)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			res, err := c.AddUser(cmd.Context(), u)
			if err != nil {
				return err
			}
			if g.format == "json" {
				return cliui.JSON(os.Stdout, res)
			}
			fmt.Printf("User %q has been created. Send them this invite token (valid 24h, single use):\n\n  %s\n\nThey log in with:\n  access login --server %s --user %s --invite %s\n",
				res.User, res.InviteToken, c.Server(), res.User, res.InviteToken)
			return nil
		},
	}
	add.Flags().StringSliceVar(&roles, "roles", nil, "standing roles")
	add.Flags().StringSliceVar(&logins, "logins", nil, "the logins trait")
	add.Flags().StringSliceVar(&traits, "traits", nil, "traits key=value (repeat a key for several values)")
	ls := &cobra.Command{
		Use: "ls", Short: "List users", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			raw, err := c.GetObjects(cmd.Context(), "user", "")
			if err != nil {
				return err
			}
			if g.format == "json" {
				return cliui.JSON(os.Stdout, raw)
			}
			var users []access.User
			if err := json.Unmarshal(raw, &users); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "USER\tROLES")
			for _, u := range users {
				fmt.Fprintf(tw, "%s\t%s\n", u.Metadata.Name, strings.Join(u.Spec.Roles, ","))
			}
			return tw.Flush()
		},
	}
	cmd.AddCommand(add, ls)
	return cmd
}

func lockCmd(g *globals) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use: "lock USER [--reason S]", Short: "Refuse every call of a user at once, session certificates included", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.Lock(cmd.Context(), api.LockRequest{User: args[0], Reason: reason}); err != nil {
				return err
			}
			fmt.Printf("%s is locked\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why")
	return cmd
}

func unlockCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "unlock USER", Short: "Lift a lock", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.Unlock(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Printf("%s is unlocked\n", args[0])
			return nil
		},
	}
}

func tokensCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "tokens", Short: "Machine tokens for automation"}
	var user, ttl string
	add := &cobra.Command{
		Use: "add --user NAME --ttl 1h", Short: "Create a bearer token for a user", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if user == "" {
				return cliui.UsageError("--user is required")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			res, err := c.AddToken(cmd.Context(), api.AddTokenRequest{User: user, TTL: ttl})
			if err != nil {
				return err
			}
			if g.format == "json" {
				return cliui.JSON(os.Stdout, res)
			}
			fmt.Printf("Token for %s, valid until %s (shown once):\n%s\n", res.User, res.Expires.Local().Format(time.RFC3339), res.Token)
			return nil
		},
	}
	add.Flags().StringVar(&user, "user", "", "user the token acts as")
	add.Flags().StringVar(&ttl, "ttl", "1h", "lifetime")
	cmd.AddCommand(add)
	return cmd
}

func requestsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "requests", Short: "List requests and decide them as an admin"}
	var state string
	ls := &cobra.Command{
		Use: "ls", Short: "List requests", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			list, err := c.ListRequests(cmd.Context(), state, "")
			if err != nil {
				return err
			}
			return cliui.PrintRequests(os.Stdout, g.format, list)
		},
	}
	ls.Flags().StringVar(&state, "state", "", "filter by state")
	get := &cobra.Command{
		Use: "get ID", Short: "Show a request", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
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
	decide := func(use string, verdict access.Verdict) *cobra.Command {
		var reason string
		var roles []string
		c := &cobra.Command{
			Use: use + " ID --reason S", Short: use + " a pending request as an admin (recorded as an admin review)", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				if strings.TrimSpace(reason) == "" {
					return cliui.UsageError("--reason is required")
				}
				cl, err := g.client()
				if err != nil {
					return err
				}
				r, err := cl.AdminDecide(cmd.Context(), args[0], api.ReviewRequest{Verdict: verdict, Reason: reason, Roles: roles})
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
		c.Flags().StringVar(&reason, "reason", "", "why (mandatory)")
		if verdict == access.VerdictApprove {
			c.Flags().StringSliceVar(&roles, "roles", nil, "approve only these roles")
		}
		return c
	}
	var revokeReason string
	revoke := &cobra.Command{
		Use: "revoke ID --reason S", Short: "End an approved grant", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(revokeReason) == "" {
				return cliui.UsageError("--reason is required")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			r, err := c.Revoke(cmd.Context(), args[0], revokeReason)
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
	revoke.Flags().StringVar(&revokeReason, "reason", "", "why (mandatory)")
	cmd.AddCommand(ls, get, decide("approve", access.VerdictApprove), decide("deny", access.VerdictDeny), revoke)
	return cmd
}

func auditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read the audit log"}
	var since, typ, request, actor string
	var limit int
	ls := &cobra.Command{
		Use: "ls [--since 1h] [--type request.*] [--request ID]", Short: "List audit events, oldest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := api.AuditQuery{Type: typ, RequestID: request, Actor: actor, Limit: limit}
			if since != "" {
				if d, err := time.ParseDuration(since); err == nil {
					q.Since = time.Now().Add(-d)
				} else if t, err := time.Parse(time.RFC3339, since); err == nil {
					q.Since = t
				} else {
					return cliui.UsageError("--since %q: want a duration (1h) or RFC 3339 time", since)
				}
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			evs, err := c.Audit(cmd.Context(), q)
			if err != nil {
				return err
			}
			if g.format == "json" {
				if evs == nil {
					evs = []api.AuditEvent{}
				}
				return cliui.JSON(os.Stdout, evs)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tTYPE\tACTOR\tREQUEST\tOUTCOME\tDETAIL")
			for _, e := range evs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Local().Format("2006-01-02 15:04:05"), e.Type, e.Actor, e.RequestID, e.Outcome, detail(e))
			}
			return tw.Flush()
		},
	}
	f := ls.Flags()
	f.StringVar(&since, "since", "", "only events since a duration ago (1h) or an RFC 3339 time")
	f.StringVar(&typ, "type", "", "event type; request.* for a prefix")
	f.StringVar(&request, "request", "", "request ID")
	f.StringVar(&actor, "actor", "", "user who acted")
	f.IntVar(&limit, "limit", 0, "at most this many events")
	cmd.AddCommand(ls, auditExportCmd(g))
	return cmd
}

func detail(e api.AuditEvent) string {
	parts := []string{}
	if e.Message != "" {
		parts = append(parts, fmt.Sprintf("%q", e.Message))
	}
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if v := e.Fields[k]; v != nil {
			parts = append(parts, fmt.Sprintf("%s=%v", k, v))
		}
	}
	return strings.Join(parts, " ")
}

func statusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "status", Short: "Cluster name, version and CA pin", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			if g.format == "json" {
				return cliui.JSON(os.Stdout, st)
			}
			fmt.Printf("Cluster  %s\nVersion  %s\nCA pin   %s\nServer   %s\nYou      %s (%s)\n", st.ClusterName, st.Version, st.CAPin, c.Server(), st.User, strings.Join(st.Roles, ", "))
			return nil
		},
	}
}
