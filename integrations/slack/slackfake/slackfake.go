// Package slackfake is an in-process fake of Slack as Gatehouse talks to it,
// for tests of integrations/slack and for end-to-end tests of the service.
// It is built on slack-go's slacktest server (its mux, listener and
// websocket helper) with handlers of its own that keep state.
//
// Outbound, it serves the Web API methods the adapter calls, in Slack's wire
// format (form or JSON bodies, {"ok":true,...} or {"ok":false,"error":CODE}):
//
//	chat.postMessage, chat.update, conversations.history,
//	conversations.replies, conversations.list, conversations.open,
//	views.open, users.info, apps.connections.open (Socket Mode)
//
// Every method checks the token as Slack does (Authorization: Bearer, or a
// token form field): none is not_authed, a wrong one invalid_auth; the
// Socket Mode method wants the app token, the others the bot token. Slack's
// limits are enforced (Block Kit text and count limits, a 3-second
// trigger_id, 5 uses of a response_url), so what passes here is accepted by
// Slack. Failures are injected per method: FailNext (429 with Retry-After,
// or a 5xx), FailNextWith (an ok:false code) and LoseNextResponse (the call
// takes effect but the answer is a 500, as when Slack posted and the
// answer was lost).
//
// Inbound, it plays Slack calling the app: SlashCommand, ClickButton and
// SubmitView POST signed requests (v0 HMAC over "v0:TS:BODY" with the
// signing secret, exactly as Slack signs) with a response_url and a
// trigger_id that point back at the fake; options sign with a wrong secret
// or an old timestamp, and Resend repeats the last request byte for byte.
// Over Socket Mode, SocketSlashCommand, SocketClickButton and
// SocketSubmitView send the same payloads as envelopes and wait for the
// app's ack.
//
// State is read back with Messages, DMs, ThreadReplies, Responses (what the
// app posted to response_urls), Views (opened modals) and Calls. Replies
// arrive after the ack, so tests wait for them with WaitResponses and
// WaitViews.
//
// A typical test:
//
//	fake := slackfake.New(t, slackfake.Options{})
//	ch := fake.AddChannel(slackfake.Channel{Name: "access-requests"})
//	adapter, _ := slack.New(slack.Config{BotToken: fake.BotToken,
//		SigningSecret: fake.SigningSecret, APIURL: fake.APIURL}, handler, nil)
//	... serve adapter.Routes() on an httptest server ...
//	alice := slackfake.User{ID: "U0ALICE", Name: "alice"}
//	status, _, _ := fake.SlashCommand(hooks.URL+"/v1/hooks/slack/commands", alice, "ls")
//	replies, _ := fake.WaitResponses(1, 5*time.Second)
package slackfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	slackgo "github.com/slack-go/slack"
	"github.com/slack-go/slack/slacktest"
)

// Defaults of Options.
const (
	DefaultBotToken      = "xoxb-0000-gatehouse-test"
	DefaultAppToken      = "xapp-1-A0GATEHOUSE-0000-test"
	DefaultSigningSecret = "8f742231b10e8888abcd99yyyzzz85a5"
	DefaultTeamID        = "T0GATEHOUSE"
	DefaultTeamDomain    = "gatehouse-test"
	// AppID is the app's id in payloads; BotUserID and BotID are who posts.
	AppID     = "A0GATEHOUSE"
	BotUserID = "U0GATEBOT"
	BotID     = "B0GATEBOT"
	// Command is the slash command the fake sends.
	Command = "/access"
)

// Slack's limits that the fake enforces.
const (
	// TriggerTTL is how long a trigger_id can open a modal.
	TriggerTTL = 3 * time.Second
	// ResponseURLUses and ResponseURLTTL bound a response_url.
	ResponseURLUses = 5
	ResponseURLTTL  = 30 * time.Minute
	// AckTimeout is how long Slack waits for an ack (Socket Mode envelopes).
	AckTimeout = 3 * time.Second
)

// Options configure a Server; zero values take the defaults above.
type Options struct {
	BotToken      string
	AppToken      string
	SigningSecret string
	TeamID        string
	// PageSize caps every page of conversations.list, conversations.history
	// and conversations.replies below what the caller asked (Slack may
	// return fewer than limit), to make callers paginate. 0: no cap.
	PageSize int
}

// Server is the fake. Its exported fields are what to configure the adapter
// with; they must not be changed.
type Server struct {
	APIURL        string // Web API base URL, with the trailing slash
	BotToken      string
	AppToken      string
	SigningSecret string
	TeamID        string

	t        testing.TB
	srv      *slacktest.Server
	base     string // http://host:port
	pageSize int
	client   *http.Client

	mu        sync.Mutex
	changed   chan struct{} // closed and replaced on every state change
	seq       int
	lastTS    time.Time
	channels  map[string]*channel // by id
	order     []string            // channel ids in creation order
	users     map[string]User
	dmOf      map[string]string // user id -> D… id
	triggers  map[string]*trigger
	respURLs  map[string]*responseURL
	responses []Response
	views     []View
	calls     map[string]int
	failures  map[string][]failure
	last      *sentRequest
	socket    *socketState
}

type channel struct {
	Channel
	dmUser   string
	messages []*message // top level and thread replies, in post order
}

type message struct {
	Message
	metadata *slackgo.SlackMetadata
}

type trigger struct {
	user   User
	issued time.Time
	used   bool
}

type responseURL struct {
	user    User
	channel string
	issued  time.Time
	uses    int
}

type failure struct {
	status     int
	retryAfter time.Duration
	code       string
	afterApply bool
}

// Channel is a conversation the bot can be asked to post in.
type Channel struct {
	ID      string // C… (public) or G… (private); made up when empty
	Name    string // without "#"
	Private bool
	// NotMember: the bot was not invited. It can still post in a public
	// channel (chat:write.public) but not read its history
	// (not_in_channel); a private channel is invisible (channel_not_found).
	NotMember bool
	Archived  bool
}

// User is a Slack user; TeamID defaults to the server's team.
type User struct {
	ID     string
	TeamID string
	Name   string
	Email  string
}

// Message is a message as Slack holds it now (after edits).
type Message struct {
	Channel  string
	TS       string
	ThreadTS string // the parent's ts for a thread reply
	// Text is the message's text field (mrkdwn; the notification and
	// fallback text when there are blocks).
	Text string
	// Blocks is the Block Kit JSON; Rendered is every text in it, one
	// element per line (header, section text and fields, context, button
	// labels in brackets), which is what a person reads.
	Blocks   json.RawMessage
	Rendered string
	// Buttons are the action ids of the buttons, in order.
	Buttons []string
	// OutboxID and RequestID come from the message metadata
	// (event_payload.outbox_id / request_id); MetadataType is event_type.
	OutboxID     string
	RequestID    string
	MetadataType string
	// Edits counts chat.update calls on the message.
	Edits int
	// Ephemeral marks a message that only one user sees (a Response).
	Ephemeral bool
}

// Response is what the app POSTed to a response_url the fake handed out.
type Response struct {
	Message
	URL string
	// UserID is the user the response_url was issued to (who typed the
	// command or clicked).
	UserID          string
	ResponseType    string // "ephemeral" or "in_channel"
	ReplaceOriginal bool
	DeleteOriginal  bool
}

// View is a modal opened with views.open.
type View struct {
	ID              string
	UserID          string // whose trigger opened it
	TriggerID       string
	CallbackID      string
	PrivateMetadata string
	Title           string
	Blocks          json.RawMessage
	Rendered        string
	// Inputs maps each input block's block_id to its element's action_id.
	Inputs map[string]string
}

// New starts a fake Slack, closed when the test ends.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	s := &Server{
		BotToken:      or(opts.BotToken, DefaultBotToken),
		AppToken:      or(opts.AppToken, DefaultAppToken),
		SigningSecret: or(opts.SigningSecret, DefaultSigningSecret),
		TeamID:        or(opts.TeamID, DefaultTeamID),
		t:             t,
		pageSize:      opts.PageSize,
		client:        &http.Client{Timeout: 30 * time.Second},
		changed:       make(chan struct{}),
		channels:      make(map[string]*channel),
		users:         make(map[string]User),
		dmOf:          make(map[string]string),
		triggers:      make(map[string]*trigger),
		respURLs:      make(map[string]*responseURL),
		calls:         make(map[string]int),
		failures:      make(map[string][]failure),
		socket:        newSocketState(),
	}
	s.srv = slacktest.NewTestServer(s.bind)
	s.srv.Start()
	s.base = "http://" + s.srv.ServerAddr
	s.APIURL = s.srv.GetAPIURL()
	t.Cleanup(s.Close)
	return s
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// Close stops the server and its websocket connections.
func (s *Server) Close() {
	s.socket.close()
	s.srv.Stop()
	s.client.CloseIdleConnections()
}

// notify wakes the Wait* calls; s.mu must be held.
func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// nextID is a fresh id with prefix, e.g. "C00000001".
func (s *Server) nextID(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s%08d", prefix, s.seq)
}

// nextTS is a fresh message timestamp: now in Slack's "seconds.micros",
// strictly increasing.
func (s *Server) nextTS() string {
	now := time.Now()
	if !now.After(s.lastTS) {
		now = s.lastTS.Add(time.Microsecond)
	}
	s.lastTS = now
	return fmt.Sprintf("%d.%06d", now.Unix(), now.Nanosecond()/1000)
}

// AddChannel creates a channel and returns its id.
func (s *Server) AddChannel(c Channel) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.Name = strings.TrimPrefix(c.Name, "#")
	if c.ID == "" {
		prefix := "C"
		if c.Private {
			prefix = "G"
		}
		c.ID = s.nextID(prefix)
	}
	s.channels[c.ID] = &channel{Channel: c}
	s.order = append(s.order, c.ID)
	return c.ID
}

// AddUser makes a user known to users.info and conversations.open. The
// inbound helpers add the users they act as.
func (s *Server) AddUser(u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addUser(u)
}

func (s *Server) addUser(u User) User {
	if u.TeamID == "" {
		u.TeamID = s.TeamID
	}
	if u.Name == "" {
		u.Name = strings.ToLower(u.ID)
	}
	if old, ok := s.users[u.ID]; ok && u.Email == "" {
		u.Email = old.Email
	}
	s.users[u.ID] = u
	return u
}

// dmChannel is the DM channel with user, opened on first use; s.mu held.
func (s *Server) dmChannel(userID string) *channel {
	if id, ok := s.dmOf[userID]; ok {
		return s.channels[id]
	}
	id := "D" + strings.TrimLeft(userID, "UW") + fmt.Sprintf("%04d", len(s.dmOf))
	c := &channel{Channel: Channel{ID: id, Private: true}, dmUser: userID}
	s.channels[id] = c
	s.dmOf[userID] = id
	return c
}

// FailNext makes the next call of method fail at the HTTP level. Status
// 429 answers with a Retry-After header of retryAfter (in whole seconds,
// rounded up, as Slack sends it) and {"ok":false,"error":"ratelimited"};
// any other status (500, 503) answers with that status and an HTML body,
// as Slack's edge does. Calls queue up: two FailNext fail two calls.
func (s *Server) FailNext(method string, status int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures[method] = append(s.failures[method], failure{status: status, retryAfter: retryAfter})
}

// FailNextWith makes the next call of method answer HTTP 200
// {"ok":false,"error":code}, e.g. "channel_not_found".
func (s *Server) FailNextWith(method, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures[method] = append(s.failures[method], failure{code: code})
}

// LoseNextResponse makes the next call of method take effect (the message
// is posted) and then answer 500: the caller believes it failed.
func (s *Server) LoseNextResponse(method string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures[method] = append(s.failures[method], failure{status: http.StatusInternalServerError, afterApply: true})
}

// Calls is how many times method was called (failed calls included).
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// Messages are the top-level messages of a channel, in post order, as they
// read now.
func (s *Server) Messages(channelID string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.messages(channelID, "")
}

// DMs are the messages the bot sent to the user in their direct message.
func (s *Server) DMs(userID string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.dmOf[userID]
	if !ok {
		return nil
	}
	return s.messages(id, "")
}

// ThreadReplies are the replies under the message ts of a channel, in post
// order.
func (s *Server) ThreadReplies(channelID, ts string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.messages(channelID, ts)
}

func (s *Server) messages(channelID, threadTS string) []Message {
	c, ok := s.channels[channelID]
	if !ok {
		return nil
	}
	var out []Message
	for _, m := range c.messages {
		if m.ThreadTS == threadTS {
			out = append(out, m.Message)
		}
	}
	return out
}

// Responses are the messages posted to response_urls, in order.
func (s *Server) Responses() []Response {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Response(nil), s.responses...)
}

// Views are the modals opened, in order.
func (s *Server) Views() []View {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]View(nil), s.views...)
}

// WaitResponses waits until at least n responses were posted and returns
// them all; it fails after timeout.
func (s *Server) WaitResponses(n int, timeout time.Duration) ([]Response, error) {
	return waitFor(s, timeout, func() ([]Response, bool) { return append([]Response(nil), s.responses...), len(s.responses) >= n },
		func(got []Response) error {
			return fmt.Errorf("slackfake: %d responses after %s, want %d", len(got), timeout, n)
		})
}

// WaitViews waits until at least n modals were opened.
func (s *Server) WaitViews(n int, timeout time.Duration) ([]View, error) {
	return waitFor(s, timeout, func() ([]View, bool) { return append([]View(nil), s.views...), len(s.views) >= n },
		func(got []View) error {
			return fmt.Errorf("slackfake: %d views after %s, want %d", len(got), timeout, n)
		})
}

// WaitMessages waits until the channel holds at least n top-level messages.
func (s *Server) WaitMessages(channelID string, n int, timeout time.Duration) ([]Message, error) {
	return waitFor(s, timeout, func() ([]Message, bool) { m := s.messages(channelID, ""); return m, len(m) >= n },
		func(got []Message) error {
			return fmt.Errorf("slackfake: %d messages in %s after %s, want %d", len(got), channelID, timeout, n)
		})
}

// waitFor polls check under s.mu on every state change until it holds.
func waitFor[T any](s *Server, timeout time.Duration, check func() (T, bool), fail func(T) error) (T, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		got, ok := check()
		changed := s.changed
		s.mu.Unlock()
		if ok {
			return got, nil
		}
		select {
		case <-changed:
		case <-deadline.C:
			return got, fail(got)
		}
	}
}
