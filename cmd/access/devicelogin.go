package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/api"
	"github.com/gatehouse-dev/gatehouse/cmd/internal/cliui"
	"github.com/gatehouse-dev/gatehouse/pki"
)

// Redeem loop of the chat login. The server holds each redeem until the
// code is confirmed (about 20 s), so the loop mostly waits there;
// minRedeemInterval keeps a server that answers at once (an old one, a
// proxy cutting long requests) from being hammered.
const (
	minRedeemInterval = time.Second
	// redeemSlack lets the loop outlive the code a little, so the server,
	// not this machine's clock, says when it expired.
	redeemSlack = 30 * time.Second
)

// checkChatFlags refuses --chat together with a password source.
func checkChatFlags(chat, passwordStdin bool, invite string) error {
	switch {
	case !chat:
		return nil
	case passwordStdin:
		return cliui.UsageError("--chat does not go with --password-stdin: the chat confirmation replaces the password")
	case invite != "":
		return cliui.UsageError("--chat does not go with --invite: an invite sets a password; log in with it first")
	}
	return nil
}

// chatLogin is `access login --chat`: it starts a device login for the
// key of csrPEM, tells the user which code to send in chat, and waits
// until the code is confirmed and redeemed, it expires, or ctx ends
// (Ctrl-C).
func chatLogin(ctx context.Context, c *api.Client, user string, csrPEM []byte, instructions io.Writer) (api.LoginResponse, error) {
	fingerprint, err := keyFingerprint(csrPEM)
	if err != nil {
		return api.LoginResponse{}, err
	}
	started, err := c.StartDeviceLogin(ctx, api.DeviceLoginRequest{User: user, CSR: string(csrPEM)})
	if err != nil {
		return api.LoginResponse{}, fmt.Errorf("start chat login: %w", err)
	}
	if started.KeyHash != fingerprint {
		return api.LoginResponse{}, fmt.Errorf("the server would certify key %s, not this device's %s", started.KeyHash, fingerprint)
	}
	fmt.Fprintf(instructions, "To finish logging in as %s, send this in Slack, Discord or Mattermost within %d minutes:\n    /access login %s\nThis device: key %s (the chat prompt shows the same)\n",
		user, int(access.DeviceLoginTTL.Minutes()), started.Code, fingerprint)
	fmt.Fprintln(instructions, "Waiting for the confirmation... Ctrl-C aborts.")

	deadline := time.Now().Add(access.DeviceLoginTTL + redeemSlack)
	for {
		asked := time.Now()
		res, err := c.RedeemDeviceLogin(ctx, api.DeviceLoginRedeemRequest{Code: started.Code, CSR: string(csrPEM)})
		switch {
		case err == nil:
			return res, nil
		case ctx.Err() != nil:
			return api.LoginResponse{}, ctx.Err()
		case errors.Is(err, api.ErrDeviceLoginPending), retryable(err):
			// ask again
		default:
			return api.LoginResponse{}, fmt.Errorf("chat login: %w", err)
		}
		if time.Now().After(deadline) {
			return api.LoginResponse{}, fmt.Errorf("chat login: code %s was not confirmed within %s", started.Code, access.DeviceLoginTTL)
		}
		select {
		case <-ctx.Done():
			return api.LoginResponse{}, ctx.Err()
		case <-time.After(minRedeemInterval - time.Since(asked)):
		}
	}
}

// retryable: the server could not be reached or was unavailable; the
// code may still be confirmed, so the wait goes on.
func retryable(err error) bool {
	var apiErr *api.Error
	if errors.As(err, &apiErr) {
		return apiErr.Code == string(access.CodeUnavailable)
	}
	return true // transport error
}

// keyFingerprint is "SHA256:<base64>" of the CSR's public key (PKIX DER),
// as the server computes it and the chat prompt shows it.
func keyFingerprint(csrPEM []byte) (string, error) {
	csr, err := pki.ParseCSR(csrPEM)
	if err != nil {
		return "", err
	}
	return pki.KeyFingerprint(csr.PublicKey)
}
