package api_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/gatehouse-dev/gatehouse/api"
)

// A custom approval bot: follow the event stream and approve requests for
// the "staging" role whose reason cites a ticket. It authenticates with a
// machine token from `accessctl tokens add --user approver-bot --ttl 24h`;
// the bot's user needs a role whose review_requests covers "staging".
func Example_approvalBot() {
	caPEM, err := os.ReadFile("ca.pem") // `accessctl status` prints the CA pin; /v1/ca/tls serves the CA
	if err != nil {
		log.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	c, err := api.New(api.Config{Server: "https://127.0.0.1:3025", RootCAs: roots, Token: os.Getenv("GATEHOUSE_TOKEN")})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	var since int64 // resume from the last revision after a restart
	events, streamErr, err := c.Events(ctx, since)
	if err != nil {
		log.Fatal(err)
	}
	for ev := range events {
		since = ev.Revision
		r := ev.Request
		if ev.Type != "request" || r.State != "PENDING" || !strings.Contains(r.Reason, "#") {
			continue
		}
		if len(r.Roles) != 1 || r.Roles[0] != "staging" {
			continue
		}
		if _, err := c.Review(ctx, r.ID, api.ReviewRequest{Verdict: "APPROVE", Reason: "ticket cited"}); err != nil {
			fmt.Println("review:", err, api.ErrorCode(err))
		}
	}
	log.Printf("stream ended at revision %d: %v", since, streamErr())
}
