// Package mattermostfake is an in-process Mattermost server for tests.
//
// It serves the REST API v4 routes a bot uses (users/me, users/{id},
// teams/name/{name}, channels by team and name, posts create, update,
// patch, get and list-since, channels/direct, actions/dialogs/open) with
// Mattermost's rules: a bearer token, 26-character ids, create_at and
// update_at in milliseconds, the model's own post and dialog validation,
// AppError JSON bodies on errors, a plain-text 429 with Retry-After and
// X-Ratelimit-Reset headers, button integrations stripped from every post
// it returns, and trigger ids that expire after 3 seconds. It also acts as
// the Mattermost server towards the integration: SlashCommand, ClickButton
// and SubmitDialog send exactly the requests Mattermost sends to a slash
// command's URL, a button's integration URL and a dialog's URL, and apply
// the answers (ephemeral posts, response_url posts, post updates).
//
// A test starts one with New, adds users and channels, points the code
// under test at URL with BotToken, then inspects Messages, DMs, Ephemeral,
// Dialogs and Calls:
//
//	mm := mattermostfake.New(mattermostfake.Options{})
//	defer mm.Close()
//	alice := mm.AddUser("", "alice", "alice@example.com")
//	ch := mm.AddChannel(mm.Team(), "access")
//	// … the code under test posts a card to ch …
//	card := mm.Messages(ch)[0]
//	status, resp, err := mm.ClickButton(card, "Approve", alice)
package mattermostfake

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mattermost/mattermost/server/public/model"
)

// Mattermost's limits that the fake enforces.
const (
	// TriggerTimeout is how long a trigger id may be used to open a dialog
	// (Mattermost's InteractiveDialogTriggerTimeoutMilliseconds).
	TriggerTimeout = 3 * time.Second
	// OutgoingTimeout is how long Mattermost waits for an integration
	// (ServiceSettings.OutgoingIntegrationRequestsTimeout default).
	OutgoingTimeout = 30 * time.Second
	// ResponseURLTTL and ResponseURLUses bound a slash command's
	// response_url, as Mattermost does.
	ResponseURLTTL  = 30 * time.Minute
	ResponseURLUses = 5
	// MaxMessageRunes is a post message's limit (PostMessageMaxRunesV2).
	MaxMessageRunes = model.PostMessageMaxRunesV2
)

// Routes, as the keys of Calls and FailNext (http.ServeMux patterns).
const (
	RouteGetMe            = "GET /api/v4/users/me"
	RouteGetUser          = "GET /api/v4/users/{user_id}"
	RouteGetTeamByName    = "GET /api/v4/teams/name/{team_name}"
	RouteGetChannelByName = "GET /api/v4/teams/name/{team_name}/channels/name/{channel_name}"
	RouteCreatePost       = "POST /api/v4/posts"
	RouteGetPost          = "GET /api/v4/posts/{post_id}"
	RouteUpdatePost       = "PUT /api/v4/posts/{post_id}"
	RoutePatchPost        = "PUT /api/v4/posts/{post_id}/patch"
	RouteChannelPosts     = "GET /api/v4/channels/{channel_id}/posts"
	RouteDirectChannel    = "POST /api/v4/channels/direct"
	RouteOpenDialog       = "POST /api/v4/actions/dialogs/open"
	// RouteCommandResponse is a slash command's response_url.
	RouteCommandResponse = "POST /hooks/commands/{hook_id}"
)

// Options configures a fake; every field has a default.
type Options struct {
	BotToken     string // default "fake-bot-token"
	BotUsername  string // default "gatehouse"
	CommandToken string // the /access command's token; default "fake-command-token"
	Team         string // the first team's name; default "gatehouse"
	// SiteURL is the address the server believes it has
	// (ServiceSettings.SiteURL), which it builds response_url from; a
	// public name may differ from the URL a bot reaches it by. Default:
	// the fake's own URL.
	SiteURL string
}

// User is a Mattermost user as the inbound helpers act for them.
type User struct {
	ID   string
	Name string
	// TeamID is the team the user acts from (SlashCommand's team_id).
	TeamID string
}

// Message is a post as a person sees it, after every edit.
type Message struct {
	ID        string
	ChannelID string
	RootID    string
	UserID    string // the author; for ephemeral posts, the one user who sees it
	// Text is the message followed by its attachments flattened to lines:
	// pretext, title, text, "Field: value" per field, footer.
	Text    string
	Buttons []Button
	Props   map[string]any
	// Edits counts updates and patches.
	Edits     int
	Ephemeral bool
}

// Button is an interactive button with its integration, as stored by
// the server (Mattermost keeps it server-side; clients never see it).
type Button struct {
	ID      string
	Name    string
	URL     string
	Context map[string]any
}

// Dialog is an interactive dialog opened through actions/dialogs/open.
type Dialog struct {
	TriggerID string
	// UserID, ChannelID, TeamID: where the click that made the trigger id
	// happened.
	UserID    string
	ChannelID string
	TeamID    string
	// URL receives the submission.
	URL    string
	Dialog model.Dialog
}

// Server is a fake Mattermost. Its methods are safe for concurrent use.
type Server struct {
	// URL is the site URL (http://127.0.0.1:port), what a bot's
	// mattermost.url points at.
	URL string

	opts       Options
	srv        *httptest.Server
	client     *http.Client
	triggerKey *ecdsa.PrivateKey

	mu         sync.Mutex
	botID      string
	teamID     string
	teams      map[string]*team // by id
	users      map[string]*user // by id
	channels   map[string]*channel
	posts      map[string]*storedPost
	postOrder  []string
	ephemeral  []Message
	dialogs    []Dialog
	triggers   map[string]triggerInfo // client trigger id →
	hooks      map[string]*commandHook
	calls      map[string]int
	failures   map[string][]failure
	lastMillis int64
}

type team struct{ ID, Name string }

type user struct{ ID, Username, Email string }

type channel struct {
	ID, TeamID, Name string
	Type             model.ChannelType
	Members          map[string]bool
}

type storedPost struct {
	post  *model.Post // with integrations, as stored
	edits int
}

type triggerInfo struct{ UserID, ChannelID, TeamID string }

type commandHook struct {
	UserID, ChannelID string
	Created           time.Time
	Uses              int
}

type failure struct {
	status     int
	retryAfter time.Duration
}

// New starts a fake Mattermost with a bot user and one team, which has a
// town-square channel.
func New(opts Options) *Server {
	if opts.BotToken == "" {
		opts.BotToken = "fake-bot-token"
	}
	if opts.BotUsername == "" {
		opts.BotUsername = "gatehouse"
	}
	if opts.CommandToken == "" {
		opts.CommandToken = "fake-command-token"
	}
	if opts.Team == "" {
		opts.Team = "gatehouse"
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(fmt.Sprintf("mattermostfake: trigger key: %v", err))
	}
	// Keep connections to integrations open under concurrent load, as
	// Mattermost's pooled client does.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 100
	s := &Server{
		opts:       opts,
		client:     &http.Client{Timeout: OutgoingTimeout, Transport: transport},
		triggerKey: key,
		teams:      map[string]*team{},
		users:      map[string]*user{},
		channels:   map[string]*channel{},
		posts:      map[string]*storedPost{},
		triggers:   map[string]triggerInfo{},
		hooks:      map[string]*commandHook{},
		calls:      map[string]int{},
		failures:   map[string][]failure{},
	}
	s.botID = model.NewId()
	s.users[s.botID] = &user{ID: s.botID, Username: opts.BotUsername}
	s.teamID = s.AddTeam(opts.Team)
	s.srv = httptest.NewServer(s.routes())
	s.URL = s.srv.URL
	return s
}

// Close stops the server.
func (s *Server) Close() {
	s.srv.Close()
	s.client.CloseIdleConnections()
}

// BotToken is the bot's access token (mattermost.bot_token).
func (s *Server) BotToken() string { return s.opts.BotToken }

// CommandToken is the slash command's token (mattermost.command_token).
func (s *Server) CommandToken() string { return s.opts.CommandToken }

// BotUserID is the bot user's id.
func (s *Server) BotUserID() string { return s.botID }

// Team is the first team's name (mattermost.team).
func (s *Server) Team() string { return s.opts.Team }

// TeamID is the first team's id.
func (s *Server) TeamID() string { return s.teamID }

// AddTeam adds a team with a town-square channel and returns its id.
func (s *Server) AddTeam(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := &team{ID: model.NewId(), Name: name}
	s.teams[t.ID] = t
	s.addChannelLocked(t.ID, "town-square")
	return t.ID
}

// AddUser adds a user of the first team; an empty id gets a new one.
func (s *Server) AddUser(id, username, email string) User {
	if id == "" {
		id = model.NewId()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[id] = &user{ID: id, Username: username, Email: email}
	return User{ID: id, Name: username, TeamID: s.teamID}
}

// AddChannel adds a public channel named name to the team named teamName,
// with the bot as a member, and returns its id. It panics on an unknown
// team.
func (s *Server) AddChannel(teamName, name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.teamByNameLocked(teamName)
	if t == nil {
		panic("mattermostfake: AddChannel: no team " + teamName)
	}
	return s.addChannelLocked(t.ID, name).ID
}

// ChannelID is the id of teamName/name ("" when there is none).
func (s *Server) ChannelID(teamName, name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.channelByNameLocked(teamName, name); c != nil {
		return c.ID
	}
	return ""
}

// RemoveBot takes the bot out of a channel: its posts there fail with 403
// api.context.permissions.app_error, as on Mattermost.
func (s *Server) RemoveBot(channelID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.channels[channelID]; c != nil {
		delete(c.Members, s.botID)
	}
}

// FailNext makes the next call of route (a Route* constant) fail with
// status: 429 as Mattermost's rate limiter answers it (retryAfter in the
// Retry-After and X-Ratelimit-Reset headers), any other status with an
// AppError body. Calls queue up.
func (s *Server) FailNext(route string, status int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures[route] = append(s.failures[route], failure{status: status, retryAfter: retryAfter})
}

// Calls is how many requests route (a Route* constant) has received,
// failed ones included.
func (s *Server) Calls(route string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[route]
}

// Messages are the channel's posts in creation order, as they are now.
func (s *Server) Messages(channelID string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, id := range s.postOrder {
		if sp := s.posts[id]; sp.post.ChannelId == channelID && sp.post.DeleteAt == 0 {
			out = append(out, messageOf(sp.post, sp.edits))
		}
	}
	return out
}

// Message is the post with that id, as it is now.
func (s *Server) Message(postID string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sp, ok := s.posts[postID]
	if !ok {
		return Message{}, false
	}
	return messageOf(sp.post, sp.edits), true
}

// DMs are the posts of the bot's direct channel with userID.
func (s *Server) DMs(userID string) []Message {
	s.mu.Lock()
	c := s.channelByNameLocked("", directName(s.botID, userID))
	s.mu.Unlock()
	if c == nil {
		return nil
	}
	return s.Messages(c.ID)
}

// Ephemeral are the ephemeral posts shown to userID, oldest first: slash
// command answers, posts to response_url and button answers.
func (s *Server) Ephemeral(userID string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.ephemeral {
		if m.UserID == userID {
			out = append(out, m)
		}
	}
	return out
}

// Dialogs are the dialogs opened so far, oldest first.
func (s *Server) Dialogs() []Dialog {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.dialogs)
}

func (s *Server) addChannelLocked(teamID, name string) *channel {
	c := &channel{ID: model.NewId(), TeamID: teamID, Name: name, Type: model.ChannelTypeOpen, Members: map[string]bool{s.botID: true}}
	s.channels[c.ID] = c
	return c
}

func (s *Server) teamByNameLocked(name string) *team {
	for _, t := range s.teams {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// channelByNameLocked finds a channel by team name and channel name; the
// team name "" finds direct channels.
func (s *Server) channelByNameLocked(teamName, name string) *channel {
	teamID := ""
	if teamName != "" {
		t := s.teamByNameLocked(teamName)
		if t == nil {
			return nil
		}
		teamID = t.ID
	}
	for _, c := range s.channels {
		if c.TeamID == teamID && c.Name == name {
			return c
		}
	}
	return nil
}

// directName is Mattermost's name of a direct channel: both ids, sorted,
// joined by "__".
func directName(a, b string) string {
	if a > b {
		a, b = b, a
	}
	return a + "__" + b
}

// nowMillis is the time in ms, strictly increasing so that "since"
// queries are exact.
func (s *Server) nowMillisLocked() int64 {
	now := max(model.GetMillis(), s.lastMillis+1)
	s.lastMillis = now
	return now
}

// messageOf flattens a stored post.
func messageOf(p *model.Post, edits int) Message {
	m := Message{ID: p.Id, ChannelID: p.ChannelId, RootID: p.RootId, UserID: p.UserId, Edits: edits, Props: map[string]any{}}
	if b, err := json.Marshal(p.GetProps()); err == nil {
		_ = json.Unmarshal(b, &m.Props)
	}
	m.Text, m.Buttons = flatten(p.Message, p.Attachments())
	return m
}

func flatten(message string, atts []*model.MessageAttachment) (string, []Button) {
	var lines []string
	var buttons []Button
	add := func(s string) {
		if s != "" {
			lines = append(lines, s)
		}
	}
	add(message)
	for _, a := range atts {
		add(a.Pretext)
		add(a.Title)
		add(a.Text)
		for _, f := range a.Fields {
			if f != nil {
				add(fmt.Sprintf("%s: %v", f.Title, f.Value))
			}
		}
		add(a.Footer)
		for _, act := range a.Actions {
			if act == nil {
				continue
			}
			b := Button{ID: act.Id, Name: act.Name}
			if act.Integration != nil {
				b.URL = act.Integration.URL
				b.Context = cloneMap(act.Integration.Context)
			}
			buttons = append(buttons, b)
		}
	}
	return strings.Join(lines, "\n"), buttons
}

func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := map[string]any{}
	b, err := json.Marshal(m)
	if err == nil {
		_ = json.Unmarshal(b, &out)
	}
	return out
}
