package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/api"
	"github.com/gatehouse-dev/gatehouse/cmd/internal/cliui"
	"github.com/gatehouse-dev/gatehouse/profile"
)

// writeSSHKey generates an ed25519 key here, has it certified for request
// id and writes id_ed25519, id_ed25519.pub and id_ed25519-cert.pub into
// dir. Only the public key travels. It returns the path of the private key.
func writeSSHKey(ctx context.Context, c *api.Client, id, dir, ttl string) (api.Credential, string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return api.Credential{}, "", err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return api.Credential{}, "", err
	}
	cred, err := c.IssueCredential(ctx, id, api.CredentialRequest{Kind: "ssh", PublicKey: string(ssh.MarshalAuthorizedKey(sshPub)), TTL: ttl})
	if err != nil {
		return api.Credential{}, "", err
	}
	block, err := ssh.MarshalPrivateKey(priv, "gatehouse "+cred.KeyID)
	if err != nil {
		return api.Credential{}, "", err
	}
	paths, err := writeFiles(dir,
		outFile{"id_ed25519", pem.EncodeToMemory(block), 0o600},
		outFile{"id_ed25519.pub", ssh.MarshalAuthorizedKey(sshPub), 0o644},
		outFile{"id_ed25519-cert.pub", []byte(cred.Certificate + "\n"), 0o644})
	if err != nil {
		return api.Credential{}, "", err
	}
	return cred, paths[0], nil
}

// checkRequestID refuses an id that cannot name a directory under keys/.
func checkRequestID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, `/\`) {
		return cliui.UsageError("--request-id %q: not a request id", id)
	}
	return nil
}

// elevate switches the profile in home to the approved request id: it
// checks the grant is the caller's, approved and in its window, writes its
// SSH credentials (when it has any) into the keys directory and records it
// as the active grant. Rights still come from the standing roles; the
// grant only shapes the credentials minted for it.
func elevate(ctx context.Context, g *globals, id string) error {
	if err := checkRequestID(id); err != nil {
		return err
	}
	home := profile.Home()
	c, p, err := g.client()
	if err != nil {
		return err
	}
	r, err := c.GetRequest(ctx, id)
	if err != nil {
		return fmt.Errorf("request %s: %w", id, err)
	}
	now := time.Now()
	switch {
	case r.User != p.User:
		return fmt.Errorf("request %s is %s's, not yours (%s): only the requester can switch to a grant", id, r.User, p.User)
	case r.State != access.StateApproved:
		msg := fmt.Sprintf("request %s is %s, not APPROVED: cannot switch to it", id, r.State)
		if r.State == access.StatePending {
			msg += fmt.Sprintf(" (needs %s; follow it with: access request show %s)", r.ProgressSummary(), id)
		}
		return errors.New(msg)
	case r.Start != nil && r.Start.After(now):
		return fmt.Errorf("request %s is approved but its access starts at %s: switch to it then", id, r.Start.Local().Format(time.RFC3339))
	case r.AccessExpires != nil && !r.AccessExpires.After(now):
		return fmt.Errorf("request %s expired at %s", id, r.AccessExpires.Local().Format(time.RFC3339))
	}

	// Leave any previous grant first, so its keys do not linger.
	if p.ActiveRequest != "" && p.ActiveRequest != id {
		if err := os.RemoveAll(profile.KeysDir(home, p.ActiveRequest)); err != nil {
			return err
		}
	}
	dir := profile.KeysDir(home, id)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var keyPath, sshNote string
	var cred api.Credential
	cred, keyPath, err = writeSSHKey(ctx, c, id, dir, "")
	if err != nil {
		if api.ErrorCode(err) != string(access.CodeForbidden) {
			_ = os.RemoveAll(dir)
			return fmt.Errorf("SSH credentials for request %s: %w", id, err)
		}
		// The grant gives no SSH login: nothing to write.
		sshNote = fmt.Sprintf("No SSH credentials: %v.", err)
		keyPath = ""
		_ = os.RemoveAll(dir)
	}

	p.ActiveRequest, p.ActiveRoles = id, r.GrantedRoles
	p.ActiveUntil = time.Time{}
	if r.AccessExpires != nil {
		p.ActiveUntil = *r.AccessExpires
	}
	if err := profile.Save(home, p); err != nil {
		return err
	}

	if g.format == "json" {
		out := map[string]any{"active_request": id, "roles": r.GrantedRoles, "until": p.ActiveUntil}
		if keyPath != "" {
			out["ssh"] = map[string]any{"files": []string{keyPath, keyPath + "-cert.pub"}, "principals": cred.Principals, "valid_before": cred.NotAfter}
		}
		return cliui.JSON(os.Stdout, out)
	}
	fmt.Printf("Switched to request %s: %s until %s.\n", id, strings.Join(r.GrantedRoles, ", "), untilText(p.ActiveUntil))
	if keyPath != "" {
		fmt.Printf("SSH: %s (certificate valid until %s for %s).\nConnect with: access ssh LOGIN@HOST, or ssh -i %s LOGIN@HOST\n",
			keyPath, cred.NotAfter.Local().Format(time.RFC3339), strings.Join(cred.Principals, ", "), keyPath)
	} else {
		fmt.Println(sshNote)
	}
	fmt.Println("Return to standing access with: access request drop " + id)
	return nil
}

func untilText(t time.Time) string {
	if t.IsZero() {
		return "the grant ends"
	}
	return t.Local().Format(time.RFC3339)
}

// leaveGrant returns the profile to standing access when the active grant
// is among ids (or all): it forgets it and removes its keys. It reports
// whether it did.
func leaveGrant(home string, p profile.Profile, ids []string, all bool) (bool, error) {
	if p.ActiveRequest == "" {
		return false, nil
	}
	hit := all
	for _, id := range ids {
		hit = hit || id == p.ActiveRequest
	}
	if !hit {
		return false, nil
	}
	if err := os.RemoveAll(profile.KeysDir(home, p.ActiveRequest)); err != nil {
		return false, err
	}
	p.ActiveRequest, p.ActiveRoles, p.ActiveUntil = "", nil, time.Time{}
	return true, profile.Save(home, p)
}

// activeStatus is what `access status` says about the active grant, or ""
// for none. A grant the server no longer approves is named as ended.
func activeStatus(ctx context.Context, c *api.Client, p profile.Profile) (map[string]any, string) {
	if !p.Active() {
		return nil, ""
	}
	info := map[string]any{"id": p.ActiveRequest, "roles": p.ActiveRoles, "until": p.ActiveUntil}
	text := fmt.Sprintf("%s (%s) until %s", p.ActiveRequest, strings.Join(p.ActiveRoles, ", "), untilText(p.ActiveUntil))
	if r, err := c.GetRequest(ctx, p.ActiveRequest); err == nil && r.State != access.StateApproved {
		info["state"] = r.State
		text += fmt.Sprintf(", but it is %s now: run access request drop %s", r.State, p.ActiveRequest)
	}
	if _, err := os.Stat(filepath.Join(profile.KeysDir(profile.Home(), p.ActiveRequest), "id_ed25519-cert.pub")); err == nil {
		info["ssh_dir"] = profile.KeysDir(profile.Home(), p.ActiveRequest)
	}
	return info, text
}
