// Command access is the Gatehouse CLI for engineers: log in, request
// access, review, search. It talks to accessd through the api client only.
package main

import (
	"bufio"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/api"
	"github.com/gatehouse-dev/gatehouse/cmd/internal/cliui"
	"github.com/gatehouse-dev/gatehouse/pki"
	"github.com/gatehouse-dev/gatehouse/profile"
)

type globals struct {
	server string
	format string
}

func main() {
	var g globals
	root := &cobra.Command{
		Use:           "access",
		Short:         "Request and review just-in-time access with Gatehouse",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if g.format != "text" && g.format != "json" {
				return cliui.UsageError("--format %q: want text or json", g.format)
			}
			return nil
		},
	}
	root.PersistentFlags().StringVar(&g.server, "server", os.Getenv("GATEHOUSE_SERVER"), "accessd URL (env GATEHOUSE_SERVER)")
	root.PersistentFlags().StringVar(&g.format, "format", "text", "output: text or json")
	root.AddCommand(loginCmd(&g), logoutCmd(), statusCmd(&g), requestCmd(&g), credsCmd(&g), sshCmd(&g))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := root.ExecuteContext(ctx)
	if ctx.Err() != nil && err != nil {
		stop()
		err = &cliui.ExitCodeError{Code: cliui.ExitInterrupted, Err: errors.New("interrupted")}
	}
	stop()
	cliui.Exit("access", err)
}

// client builds an API client from the profile.
func (g *globals) client() (*api.Client, profile.Profile, error) {
	p, err := profile.Load(profile.Home())
	if err != nil {
		return nil, p, err
	}
	c, err := p.Client(g.server)
	return c, p, err
}

func loginCmd(g *globals) *cobra.Command {
	var user, invite, pin, reqRoles, reqReason, requestID string
	var passwordStdin, insecure, reqNowait, chat bool
	cmd := &cobra.Command{
		Use:   "login --server URL --user NAME [--chat | --invite TOKEN | --password-stdin] [--request-id ID]",
		Short: "Log in and keep a session certificate in $GATEHOUSE_HOME",
		Long: `Log in and keep a session certificate in $GATEHOUSE_HOME.

With --chat, or an empty answer at the password prompt, no password is
used: access prints a code to send as "/access login CODE" in Slack,
Discord or Mattermost within 5 minutes, from the chat account mapped to
NAME, and waits for that confirmation (Ctrl-C aborts).

With --request-id ID, switch the profile to an approved request of yours:
its SSH credentials are written to $GATEHOUSE_HOME/keys/ID and access ssh
uses it first; access request drop ID returns to standing access. A still
valid session needs no password for that; with --password-stdin,
--invite or --chat, that login comes first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			home := profile.Home()
			old, _ := profile.Load(home)
			if err := checkChatFlags(chat, passwordStdin, invite); err != nil {
				return err
			}
			if requestID != "" {
				if reqRoles != "" {
					return cliui.UsageError("--request-id switches to an existing grant; it does not go with --request-roles")
				}
				if err := checkRequestID(requestID); err != nil {
					return err
				}
				// A valid session of the same user at the same server is
				// enough: no password needed.
				sameServer := g.server == "" || strings.TrimRight(g.server, "/") == strings.TrimRight(old.Server, "/")
				if !passwordStdin && invite == "" && !chat && (user == "" || user == old.User) && sameServer && sessionValid(old) {
					return elevate(ctx, g, requestID)
				}
			}
			server := g.server
			if server == "" {
				server = old.Server
			}
			if server == "" {
				return cliui.UsageError("--server is required (or GATEHOUSE_SERVER)")
			}
			if user == "" {
				user = old.User
			}
			if user == "" {
				return cliui.UsageError("--user is required")
			}
			if invite != "" {
				_, invitePin, err := pki.ParseInvite(invite)
				if err != nil {
					return cliui.UsageError("%v", err)
				}
				if pin != "" && pin != invitePin {
					return fmt.Errorf("--ca-pin %s differs from the pin in the invite token %s", pin, invitePin)
				}
				pin = invitePin
			}
			cfg, err := trustConfig(server, pin, insecure, old)
			if err != nil {
				return err
			}
			var password string
			if !chat {
				if password, err = readPassword(passwordStdin, invite != ""); err != nil {
					return err
				}
				// An empty password at the prompt asks for the chat login.
				chat = password == "" && !passwordStdin && invite == ""
			}
			c, err := api.New(cfg)
			if err != nil {
				return err
			}
			// With a pin, learn the CA first; the pin was checked on the
			// TLS handshake of this very call.
			caPEM := old.CAPEM
			if cfg.RootCAs == nil {
				ca, err := c.ClusterCA(ctx)
				if err != nil {
					return fmt.Errorf("fetch cluster CA: %w", err)
				}
				caPEM = ca.CertPEM
				if pin != "" {
					cert, err := pki.ParseCertificate([]byte(ca.CertPEM))
					if err != nil || pki.PinOf(cert) != pin {
						return fmt.Errorf("server CA does not match pin %s", pin)
					}
				}
			}
			keyPEM, csrPEM, err := pki.NewKeyAndCSR(user)
			if err != nil {
				return err
			}
			var res api.LoginResponse
			if chat {
				res, err = chatLogin(ctx, c, user, csrPEM, os.Stderr)
			} else {
				res, err = c.Login(ctx, api.LoginRequest{User: user, Password: password, InviteToken: invite, CSR: string(csrPEM)})
			}
			if err != nil {
				return err
			}
			if caPEM == "" {
				caPEM = res.CAPEM
			}
			p := profile.Profile{Server: c.Server(), User: res.User, CAPEM: caPEM, CertPEM: res.CertPEM, KeyPEM: string(keyPEM), Expires: res.Expires}
			if old.User == p.User && strings.TrimRight(old.Server, "/") == strings.TrimRight(p.Server, "/") {
				// A new session keeps the grant it was switched to.
				p.ActiveRequest, p.ActiveRoles, p.ActiveUntil = old.ActiveRequest, old.ActiveRoles, old.ActiveUntil
			} else if old.ActiveRequest != "" {
				_ = os.RemoveAll(profile.KeysDir(home, old.ActiveRequest))
			}
			if err := profile.Save(home, p); err != nil {
				return err
			}
			if g.format == "json" {
				if err := cliui.JSON(os.Stdout, map[string]any{"user": p.User, "server": p.Server, "expires": p.Expires}); err != nil {
					return err
				}
			} else {
				fmt.Printf("Logged in as %s at %s, valid until %s.\n", p.User, p.Server, p.Expires.Local().Format(time.RFC3339))
			}
			if requestID != "" {
				return elevate(ctx, g, requestID)
			}
			if reqRoles == "" {
				return nil
			}
			return createAndWait(ctx, g, api.CreateRequest{Roles: splitList(reqRoles), Reason: reqReason}, reqNowait)
		},
	}
	f := cmd.Flags()
	f.StringVar(&user, "user", "", "user name")
	f.StringVar(&invite, "invite", "", "invite token from accessctl users add (sets the password)")
	f.StringVar(&pin, "ca-pin", "", "server CA pin sha256:HEX (accessctl status)")
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input")
	f.BoolVar(&chat, "chat", false, "confirm the login in Slack, Discord or Mattermost instead of a password")
	f.BoolVar(&insecure, "insecure", false, "skip server verification (loopback servers only)")
	f.StringVar(&reqRoles, "request-roles", "", "after login, request these roles")
	f.StringVar(&reqReason, "request-reason", "", "reason for --request-roles")
	f.BoolVar(&reqNowait, "request-nowait", false, "do not wait for the review of --request-roles")
	f.StringVar(&requestID, "request-id", "", "switch to this approved request of yours (after the login, if there is one)")
	return cmd
}

// trustConfig decides how the first call verifies the server: the
// profile's CA for the same server, else the pin, else --insecure on
// loopback only. There is no trust on first use.
func trustConfig(server, pin string, insecure bool, old profile.Profile) (api.Config, error) {
	cfg := api.Config{Server: server}
	switch {
	case pin != "":
		cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error { return pki.VerifyPin(pin, raw) }
	case old.CAPEM != "" && strings.TrimRight(old.Server, "/") == strings.TrimRight(server, "/"):
		pool, err := old.Pool()
		if err != nil {
			return cfg, err
		}
		cfg.RootCAs = pool
	case insecure:
		if !isLoopback(server) {
			return cfg, fmt.Errorf("--insecure only works against a loopback address, not %s", server)
		}
		cfg.VerifyPeerCertificate = func([][]byte, [][]*x509.Certificate) error { return nil }
	default:
		return cfg, errors.New("no CA pin for this server: use the invite token, --ca-pin sha256:HEX (accessctl status), or --insecure on loopback")
	}
	return cfg, nil
}

func isLoopback(server string) bool {
	u, err := url.Parse(server)
	if err != nil {
		return false
	}
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func readPassword(fromStdin, newPassword bool) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read password: %w", err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return "", cliui.UsageError("no terminal to ask for the password: use --password-stdin")
	}
	prompt := "Password: "
	if newPassword {
		prompt = "New password: "
	}
	fmt.Fprint(os.Stderr, prompt)
	b, err := term.ReadPassword(int(os.Stdin.Fd()))
	fmt.Fprintln(os.Stderr)
	return string(b), err
}

// sessionValid: the profile holds a session certificate that has not
// expired.
func sessionValid(p profile.Profile) bool {
	return p.CertPEM != "" && p.KeyPEM != "" && (p.Expires.IsZero() || time.Now().Before(p.Expires))
}

func logoutCmd() *cobra.Command {
	return &cobra.Command{
		Use: "logout", Short: "Forget the session certificate", Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return profile.Remove(profile.Home()) },
	}
}

func statusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "status", Short: "Show who you are logged in as", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, p, err := g.client()
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			active, activeText := activeStatus(cmd.Context(), c, p)
			if g.format == "json" {
				out := map[string]any{"server": p.Server, "user": st.User, "roles": st.Roles, "cluster_name": st.ClusterName, "ca_pin": st.CAPin, "expires": p.Expires}
				if active != nil {
					out["active_request"] = active
				}
				return cliui.JSON(os.Stdout, out)
			}
			fmt.Printf("Server:   %s\nCluster:  %s\nUser:     %s\nRoles:    %s\nValid to: %s\n", p.Server, st.ClusterName, st.User, strings.Join(st.Roles, ", "), p.Expires.Local().Format(time.RFC3339))
			if activeText != "" {
				fmt.Printf("Grant:    %s\n", activeText)
			} else {
				fmt.Println("Grant:    none (standing access)")
			}
			return nil
		},
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// createAndWait creates a request and, unless nowait, waits for its
// review, printing it again in its final state.
func createAndWait(ctx context.Context, g *globals, in api.CreateRequest, nowait bool) error {
	c, _, err := g.client()
	if err != nil {
		return err
	}
	req, err := c.CreateRequest(ctx, in)
	if err != nil {
		return err
	}
	tty := cliui.IsTerminal(os.Stderr)
	if g.format == "json" {
		if err := cliui.JSON(os.Stdout, req); err != nil {
			return err
		}
	} else {
		fmt.Printf("Request %s created: %s", req.ID, req.State)
		if req.State != access.StatePending && req.StateReason != "" {
			fmt.Printf(": %s", req.StateReason)
		} else if req.State == access.StatePending {
			fmt.Printf(" (needs %s)", req.ProgressSummary())
		}
		fmt.Println()
		printGrant(req)
		if len(req.SuggestedReviewers) > 0 && req.State == access.StatePending {
			fmt.Printf("Suggested reviewers: %s\n", strings.Join(req.SuggestedReviewers, ", "))
		}
	}
	if nowait || req.State != access.StatePending {
		if g.format != "json" && req.State == access.StatePending {
			fmt.Printf("Not waiting. Follow it with: access request show %s\n", req.ID)
		}
		return exitFor(req)
	}
	if g.format != "json" {
		fmt.Fprintf(os.Stderr, "Waiting for review (%s)... Ctrl-C stops waiting; the request stays.\n", req.ProgressSummary())
	}
	final, err := cliui.WaitDecided(ctx, c, req, func(r api.Request) {
		if tty && g.format != "json" && r.State == access.StatePending {
			fmt.Fprintf(os.Stderr, "  progress: %s\n", r.ProgressSummary())
		}
	})
	if err != nil {
		return err
	}
	if g.format == "json" {
		if err := cliui.JSON(os.Stdout, final); err != nil {
			return err
		}
	} else {
		fmt.Printf("Request %s %s", final.ID, final.State)
		if final.StateReason != "" {
			fmt.Printf(": %s", final.StateReason)
		}
		fmt.Println()
		printGrant(final)
	}
	return exitFor(final)
}

// printGrant tells the requester of an approved request what they got and
// how to use it, so nobody has to look up the next command.
func printGrant(r api.Request) {
	if r.State != access.StateApproved || r.AccessExpires == nil {
		return
	}
	fmt.Printf("Access to %s until %s.\n", strings.Join(r.GrantedRoles, ", "), r.AccessExpires.Local().Format(time.RFC3339))
	fmt.Printf("Use it:  access login --request-id %s   (then access ssh LOGIN@HOST)\n", r.ID)
	fmt.Printf("         access creds %s --help         (database, Kubernetes, app and desktop credentials)\n", r.ID)
}

func exitFor(r api.Request) error {
	if code := cliui.OutcomeCode(r); code != cliui.ExitOK {
		return &cliui.ExitCodeError{Code: code}
	}
	return nil
}
