package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
	"golang.org/x/term"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/api"
	"github.com/gatehouse-dev/gatehouse/cmd/internal/cliui"
)

type sshFlags struct {
	reason     string
	knownHosts string
	acceptNew  bool
	port       int
}

func sshCmd(g *globals) *cobra.Command {
	var f sshFlags
	cmd := &cobra.Command{
		Use:   "ssh [flags] LOGIN@HOST [command...]",
		Short: "Connect with the SSH certificate of an approved grant; without one, offer to request access to the host",
		Long: `Connect to a node with a short-lived SSH certificate issued for one of your
approved grants. The key pair lives in memory only. When no grant covers
LOGIN@HOST, or the host refuses the certificate, access offers to create a
resource request for the node (on a terminal it asks; in a script pass
--request-reason), waits for the review and connects.

The host key is checked against --known-hosts (default ~/.ssh/known_hosts):
an unknown host is refused unless --accept-new-host-key, which records its
key; a changed key is always refused.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSSH(cmd.Context(), g, f, args[0], args[1:])
		},
	}
	// Everything after LOGIN@HOST is the remote command, flags included.
	cmd.Flags().SetInterspersed(false)
	fl := cmd.Flags()
	fl.StringVar(&f.reason, "request-reason", "", "if no grant covers the host, request access with this reason without asking")
	fl.StringVar(&f.knownHosts, "known-hosts", "", "known_hosts file (default ~/.ssh/known_hosts)")
	fl.BoolVar(&f.acceptNew, "accept-new-host-key", false, "trust and record the key of a host not yet in known_hosts")
	fl.IntVar(&f.port, "port", 0, "SSH port (default: the port of the node's addr, else 22)")
	return cmd
}

// sshTarget is the node to connect to.
type sshTarget struct {
	node     access.SearchResult
	login    string
	hostname string // the host part of host-scoped principals
	addr     string // where to dial
}

// sshGrant is a certificate that covers the target.
type sshGrant struct {
	requestID string
	signer    ssh.Signer
	cred      api.Credential
}

// errAuthRefused marks a server refusing the certificate.
var errAuthRefused = errors.New("the host refused the certificate")

// authDetail is the SSH library's words for a refusal.
func authDetail(err error) string {
	return strings.TrimPrefix(err.Error(), errAuthRefused.Error()+": ")
}

func runSSH(ctx context.Context, g *globals, f sshFlags, dest string, command []string) error {
	login, host, ok := strings.Cut(dest, "@")
	if !ok || login == "" || host == "" || strings.Contains(host, "@") {
		return cliui.UsageError("want LOGIN@HOST, not %q", dest)
	}
	if f.port < 0 || f.port > 65535 {
		return cliui.UsageError("--port %d: want 1-65535", f.port)
	}
	hostKeys, err := hostKeyCallback(f.knownHosts, f.acceptNew)
	if err != nil {
		return err
	}
	c, p, err := g.client()
	if err != nil {
		return err
	}
	t, err := findNode(ctx, c, login, host, f.port)
	if err != nil {
		return err
	}

	active := ""
	if p.Active() {
		active = p.ActiveRequest
	}
	grant, covered, err := findSSHGrant(ctx, c, p.User, active, t)
	if err != nil {
		return err
	}
	var why string
	if grant != nil {
		err := connectSSH(ctx, t, grant, hostKeys, command)
		if !errors.Is(err, errAuthRefused) {
			return err
		}
		why = fmt.Sprintf("%s refused the certificate of request %s for %s (%v)", t.addr, grant.requestID, dest, authDetail(err))
	} else {
		why = fmt.Sprintf("no approved grant of yours covers %s", dest)
		if len(covered) > 0 {
			why += fmt.Sprintf(" (your grants give: %s)", strings.Join(covered, ", "))
		}
	}

	// Offer a resource request for the node.
	reason, err := askForRequest(f, why, t)
	if err != nil {
		return err
	}
	req, err := c.CreateRequest(ctx, api.CreateRequest{Resources: []string{t.node.ID}, Reason: reason})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "Request %s created: %s", req.ID, req.State)
	if req.State == access.StatePending {
		fmt.Fprintf(os.Stderr, " (needs %s)", req.ProgressSummary())
		if len(req.SuggestedReviewers) > 0 {
			fmt.Fprintf(os.Stderr, "; suggested reviewers: %s", strings.Join(req.SuggestedReviewers, ", "))
		}
		fmt.Fprintf(os.Stderr, "\nWaiting for review... Ctrl-C stops waiting; the request stays (access request show %s).\n", req.ID)
		tty := cliui.IsTerminal(os.Stderr)
		req, err = cliui.WaitDecided(ctx, c, req, func(r api.Request) {
			if tty && r.State == access.StatePending {
				fmt.Fprintf(os.Stderr, "  progress: %s\n", r.ProgressSummary())
			}
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "Request %s %s", req.ID, req.State)
	}
	if req.StateReason != "" {
		fmt.Fprintf(os.Stderr, ": %s", req.StateReason)
	}
	fmt.Fprintln(os.Stderr)
	if req.State != access.StateApproved {
		err := fmt.Errorf("request %s ended %s: not connecting to %s", req.ID, req.State, dest)
		if code := cliui.OutcomeCode(req); code != cliui.ExitOK {
			return &cliui.ExitCodeError{Code: code, Err: err}
		}
		return err
	}
	grant, principals, err := issueSSH(ctx, c, req.ID)
	if err != nil {
		return fmt.Errorf("credentials for request %s: %w", req.ID, err)
	}
	if grant == nil || !coversSSH(principals, t) {
		return fmt.Errorf("request %s was approved, but its grant does not allow %s (it gives: %s)", req.ID, dest, strings.Join(principals, ", "))
	}
	if err := connectSSH(ctx, t, grant, hostKeys, command); err != nil {
		if errors.Is(err, errAuthRefused) {
			return fmt.Errorf("%s refused the certificate of the new grant %s for %s: does the host trust the Gatehouse SSH CA (accessctl ca export --type ssh) and list %s@%s in its AuthorizedPrincipalsFile (accessctl ssh principals %s)? (%v)",
				t.addr, req.ID, dest, t.login, t.hostname, t.node.Name, authDetail(err))
		}
		return err
	}
	return nil
}

// findNode finds the node named HOST (its name or its spec.hostname).
func findNode(ctx context.Context, c *api.Client, login, host string, port int) (sshTarget, error) {
	results, err := c.Search(ctx, access.KindNode, host, nil)
	if err != nil {
		return sshTarget{}, fmt.Errorf("search nodes: %w", err)
	}
	var match []access.SearchResult
	for _, r := range results {
		if r.Name == host || r.Hostname == host {
			match = append(match, r)
		}
	}
	if len(match) != 1 {
		var names []string
		for _, r := range results {
			n := r.Name
			if r.Hostname != "" && r.Hostname != r.Name {
				n += " (" + r.Hostname + ")"
			}
			names = append(names, n)
		}
		if len(match) > 1 {
			return sshTarget{}, fmt.Errorf("%d nodes are named %q: connect by node name (candidates: %s)", len(match), host, strings.Join(names, ", "))
		}
		if len(names) == 0 {
			return sshTarget{}, fmt.Errorf("no node %q that you may see or request (access request search --kind node)", host)
		}
		return sshTarget{}, fmt.Errorf("no node named %q; candidates: %s", host, strings.Join(names, ", "))
	}
	n := match[0]
	t := sshTarget{node: n, login: login, hostname: n.Hostname}
	if t.hostname == "" {
		t.hostname = n.Name
	}
	t.addr = n.Addr
	if t.addr == "" {
		t.addr = net.JoinHostPort(t.hostname, "22")
	} else if _, _, err := net.SplitHostPort(t.addr); err != nil {
		t.addr = net.JoinHostPort(t.addr, "22")
	}
	if port != 0 {
		h, _, _ := net.SplitHostPort(t.addr)
		t.addr = net.JoinHostPort(h, strconv.Itoa(port))
	}
	return t, nil
}

// findSSHGrant issues a certificate for the approved grant that covers the
// target: the active one (access login --request-id) first, then the
// newest. covered lists the principals the grants give when none covers it.
func findSSHGrant(ctx context.Context, c *api.Client, user, active string, t sshTarget) (*sshGrant, []string, error) {
	reqs, err := c.ListRequests(ctx, string(access.StateApproved), user)
	if err != nil {
		return nil, nil, fmt.Errorf("list your grants: %w", err)
	}
	slices.SortStableFunc(reqs, func(a, b api.Request) int {
		if (a.ID == active) != (b.ID == active) {
			if a.ID == active {
				return -1
			}
			return 1
		}
		return b.Created.Compare(a.Created)
	})
	var covered []string
	now := time.Now()
	for _, r := range reqs {
		if r.State != access.StateApproved || r.User != user {
			continue
		}
		if r.AccessExpires != nil && !r.AccessExpires.After(now) {
			continue
		}
		// A resource grant reaches only the resources it names.
		if len(r.Resources) > 0 && !slices.Contains(r.Resources, t.node.ID) {
			continue
		}
		grant, principals, err := issueSSH(ctx, c, r.ID)
		if err != nil {
			switch api.ErrorCode(err) {
			case string(access.CodeExpired), string(access.CodeConflict), string(access.CodeForbidden), string(access.CodeNotFound):
				// Ended, not started yet, or no SSH in this grant.
				continue
			}
			return nil, nil, fmt.Errorf("credentials for request %s: %w", r.ID, err)
		}
		if coversSSH(principals, t) {
			return grant, nil, nil
		}
		for _, p := range principals {
			if !slices.Contains(covered, p) {
				covered = append(covered, p)
			}
		}
	}
	return nil, covered, nil
}

// issueSSH generates an in-memory key and has it certified for a grant.
func issueSSH(ctx context.Context, c *api.Client, id string) (*sshGrant, []string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, nil, err
	}
	cred, err := c.IssueCredential(ctx, id, api.CredentialRequest{Kind: "ssh", PublicKey: string(ssh.MarshalAuthorizedKey(sshPub))})
	if err != nil {
		return nil, nil, err
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(cred.Certificate))
	if err != nil {
		return nil, nil, fmt.Errorf("the server's certificate: %w", err)
	}
	cert, ok := k.(*ssh.Certificate)
	if !ok {
		return nil, nil, fmt.Errorf("the server returned a %s key, not a certificate", k.Type())
	}
	keySigner, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, nil, err
	}
	signer, err := ssh.NewCertSigner(cert, keySigner)
	if err != nil {
		return nil, nil, fmt.Errorf("the server's certificate: %w", err)
	}
	return &sshGrant{requestID: id, signer: signer, cred: cred}, cert.ValidPrincipals, nil
}

// coversSSH: a host-scoped LOGIN@HOST, or a bare LOGIN (wildcard grant).
func coversSSH(principals []string, t sshTarget) bool {
	return slices.Contains(principals, t.login+"@"+t.hostname) || slices.Contains(principals, t.login)
}

// askForRequest decides whether to request access: --request-reason says
// yes; on a terminal the person is asked; otherwise it is an error with the
// command to run.
func askForRequest(f sshFlags, why string, t sshTarget) (string, error) {
	if f.reason != "" {
		fmt.Fprintf(os.Stderr, "%s.\nRequesting access to %s.\n", upperFirst(why), t.node.ID)
		return f.reason, nil
	}
	hint := fmt.Sprintf("request it with: access request create --resource %s --reason REASON (or rerun with --request-reason REASON)", t.node.ID)
	if !cliui.IsTerminal(os.Stdin) || !cliui.IsTerminal(os.Stderr) {
		return "", fmt.Errorf("%s; %s", why, hint)
	}
	in := bufio.NewReader(os.Stdin)
	fmt.Fprintf(os.Stderr, "%s.\nRequest access to %s now? [y/N] ", upperFirst(why), t.node.ID)
	answer, err := in.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
		return "", fmt.Errorf("not requested; %s", hint)
	}
	for {
		fmt.Fprint(os.Stderr, "Reason: ")
		line, err := in.ReadString('\n')
		if r := strings.TrimSpace(line); r != "" {
			return r, nil
		}
		if err != nil {
			return "", fmt.Errorf("no reason given; %s", hint)
		}
	}
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// hostKeyCallback checks host keys against a known_hosts file. An unknown
// host is refused unless acceptNew, which appends its key; a changed key
// is always refused.
func hostKeyCallback(path string, acceptNew bool) (ssh.HostKeyCallback, error) {
	if path == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("no home directory for ~/.ssh/known_hosts: use --known-hosts FILE: %w", err)
		}
		path = filepath.Join(home, ".ssh", "known_hosts")
	}
	var known ssh.HostKeyCallback
	if _, err := os.Stat(path); err == nil {
		if known, err = knownhosts.New(path); err != nil {
			return nil, fmt.Errorf("known hosts: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("known hosts: %w", err)
	}
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := error(&knownhosts.KeyError{})
		if known != nil {
			err = known(hostname, remote, key)
		}
		var ke *knownhosts.KeyError
		if err == nil || !errors.As(err, &ke) {
			return err
		}
		fp := ssh.FingerprintSHA256(key)
		if len(ke.Want) > 0 {
			var was []string
			for _, w := range ke.Want {
				was = append(was, fmt.Sprintf("%s %s at %s:%d", w.Key.Type(), ssh.FingerprintSHA256(w.Key), w.Filename, w.Line))
			}
			return fmt.Errorf("HOST KEY CHANGED for %s: it presents %s %s, but known hosts has %s. Someone may be intercepting the connection; refusing. If the host key was replaced on purpose, remove the old line and connect again",
				hostname, key.Type(), fp, strings.Join(was, "; "))
		}
		if !acceptNew {
			return fmt.Errorf("unknown host %s (%s key %s) is not in %s: check the fingerprint and rerun with --accept-new-host-key to trust and record it", hostname, key.Type(), fp, path)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		fh, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("record host key: %w", err)
		}
		_, werr := fmt.Fprintln(fh, knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key))
		if cerr := fh.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return fmt.Errorf("record host key: %w", werr)
		}
		fmt.Fprintf(os.Stderr, "Trusting new host %s (%s key %s); recorded in %s.\n", hostname, key.Type(), fp, path)
		return nil
	}, nil
}

// connectSSH logs in and runs the command, or a shell. The remote exit
// status becomes the exit code. An authentication refusal wraps
// errAuthRefused.
func connectSSH(ctx context.Context, t sshTarget, grant *sshGrant, hostKeys ssh.HostKeyCallback, command []string) error {
	d := net.Dialer{Timeout: 15 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return fmt.Errorf("connect to %s (node %s): %w", t.addr, t.node.Name, err)
	}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	cc, chans, reqs, err := ssh.NewClientConn(conn, t.addr, &ssh.ClientConfig{
		User:            t.login,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(grant.signer)},
		HostKeyCallback: hostKeys,
	})
	if err != nil {
		conn.Close()
		if strings.Contains(err.Error(), "unable to authenticate") {
			return fmt.Errorf("%w: %v", errAuthRefused, err)
		}
		return fmt.Errorf("ssh %s@%s: %w", t.login, t.addr, err)
	}
	_ = conn.SetDeadline(time.Time{})
	client := ssh.NewClient(cc, chans, reqs)
	defer client.Close()
	stop := context.AfterFunc(ctx, func() { client.Close() })
	defer stop()

	sess, err := client.NewSession()
	if err != nil {
		return fmt.Errorf("ssh session: %w", err)
	}
	defer sess.Close()
	sess.Stdin, sess.Stdout, sess.Stderr = os.Stdin, os.Stdout, os.Stderr

	if len(command) > 0 {
		err = sess.Run(strings.Join(command, " "))
	} else {
		err = shell(sess)
	}
	return remoteExit(ctx, err)
}

// shell starts a login shell: with a PTY in raw mode when stdin is a
// terminal, else a plain session reading stdin.
func shell(sess *ssh.Session) error {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		if err := sess.Shell(); err != nil {
			return err
		}
		return sess.Wait()
	}
	w, h, err := term.GetSize(fd)
	if err != nil {
		w, h = 80, 24
	}
	termType := os.Getenv("TERM")
	if termType == "" {
		termType = "xterm-256color"
	}
	if err := sess.RequestPty(termType, h, w, ssh.TerminalModes{ssh.ECHO: 1, ssh.TTY_OP_ISPEED: 38400, ssh.TTY_OP_OSPEED: 38400}); err != nil {
		return fmt.Errorf("request a terminal: %w", err)
	}
	old, err := term.MakeRaw(fd)
	if err != nil {
		return err
	}
	defer term.Restore(fd, old)
	if err := sess.Shell(); err != nil {
		return err
	}
	// Follow the window size (polled: portable, no SIGWINCH needed).
	done := make(chan struct{})
	defer close(done)
	go func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if nw, nh, err := term.GetSize(fd); err == nil && (nw != w || nh != h) {
					w, h = nw, nh
					_ = sess.WindowChange(h, w)
				}
			}
		}
	}()
	return sess.Wait()
}

func remoteExit(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		code := ee.ExitStatus()
		if code == 0 {
			code = 255 // killed by a signal
			fmt.Fprintf(os.Stderr, "remote command ended by signal %s\n", ee.Signal())
		}
		return &cliui.ExitCodeError{Code: code}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var missing *ssh.ExitMissingError
	if errors.As(err, &missing) {
		return errors.New("the connection closed without an exit status")
	}
	return err
}
