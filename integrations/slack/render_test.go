package slack

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	slackgo "github.com/slack-go/slack"

	"github.com/gatehouse-dev/gatehouse/bot"
	"github.com/gatehouse-dev/gatehouse/integrations/slack/slackfake"
)

func TestTruncateCountsCharacters(t *testing.T) {
	cases := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"eleven char", 10, "eleven ch…"},
		{"ééééééééééé", 5, "éééé…"}, // 11 characters, 22 bytes: cut by characters, never mid-rune
	}
	for _, tc := range cases {
		got := truncate(tc.in, tc.n)
		if got != tc.want || !utf8.ValidString(got) || utf8.RuneCountInString(got) > tc.n {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestReplyMessage(t *testing.T) {
	card := pendingCard("r-1")
	cases := []struct {
		name        string
		reply       bot.Reply
		wantText    string
		wantButtons []string
	}{
		{"text", bot.Reply{Text: "No pending requests."}, "No pending requests.", nil},
		{"error", bot.Reply{Error: true, Text: "unknown role `dbx`"}, ":warning: unknown role `dbx`", nil},
		{"card only", bot.Reply{Card: &card}, card.Title(), []string{bot.ActionApprove, bot.ActionDeny}},
		{"login", bot.Reply{Login: &bot.LoginPrompt{Code: "C0DE", User: "alice", Address: "198.51.100.4", KeyHash: "SHA256:k"}},
			"Confirm device login C0DE", []string{bot.ActionConfirmLogin}},
		{"text escaped", bot.Reply{Text: "a <b> & c"}, "a &lt;b&gt; &amp; c", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			text, blocks := replyMessage(tc.reply)
			if text != tc.wantText {
				t.Fatalf("text = %q, want %q", text, tc.wantText)
			}
			var buttons []string
			for _, b := range blocks {
				if ab, ok := b.(*slackgo.ActionBlock); ok {
					for _, e := range ab.Elements.ElementSet {
						buttons = append(buttons, e.(*slackgo.ButtonBlockElement).ActionID)
					}
				}
			}
			if !slices.Equal(buttons, tc.wantButtons) {
				t.Fatalf("buttons = %v, want %v", buttons, tc.wantButtons)
			}
		})
	}
}

// The deny modal carries the request and the clicker's response_url; a
// hand-made view with a bare request id is read too.
func TestDenyState(t *testing.T) {
	view, err := denyModal(denyState{RequestID: "r-1", ResponseURL: "https://hooks.slack.com/actions/T/1/x"})
	if err != nil {
		t.Fatal(err)
	}
	for meta, want := range map[string]denyState{
		view.PrivateMetadata: {RequestID: "r-1", ResponseURL: "https://hooks.slack.com/actions/T/1/x"},
		"r-2":                {RequestID: "r-2"},
	} {
		got, err := parseDenyState(meta)
		if err != nil || got != want {
			t.Fatalf("parseDenyState(%q) = %+v, %v; want %+v", meta, got, err, want)
		}
	}
	if _, err := parseDenyState(`{"response_url":"x"}`); err == nil {
		t.Fatal("metadata without a request accepted")
	}
	b, _ := json.Marshal(view)
	if !strings.Contains(string(b), `"callback_id":"gatehouse_deny"`) || !strings.Contains(string(b), `"block_id":"reason"`) {
		t.Fatalf("modal = %s", b)
	}
}

// BenchmarkSlashCommandAck measures what Slack waits for: from sending a
// signed slash command to the ack, with 50 commands in flight at once, on
// loopback, against a Handler that answers at once (each Reply is also
// posted to the fake's response_url in the background, which shares the two
// cores). Reports p50 and p99.
//
// go test -run '^$' -bench SlashCommandAck -benchtime 2000x ./integrations/slack/
func BenchmarkSlashCommandAck(b *testing.B) {
	const concurrency = 50
	hs := newHarness(b, slackfake.Options{}, nil)
	latencies := make([]time.Duration, b.N)
	var next atomic.Int64
	var busy atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range concurrency {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				start := time.Now()
				status, body, err := hs.fake.SlashCommand(hs.commandsURL, alice, "ls")
				latencies[i] = time.Since(start)
				if err != nil || status != http.StatusOK {
					b.Errorf("ack %d: %d %v", i, status, err)
					return
				}
				if body != "" {
					busy.Add(1)
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	slices.Sort(latencies)
	b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(busy.Load()), "busy-acks")
}
