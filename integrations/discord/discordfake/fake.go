// Package discordfake is an in-process fake of the parts of Discord that
// Gatehouse's Discord adapter talks to, in Discord's documented wire format:
//
//   - REST (API v10) under Fake.URL: Get Current User, Create DM, Create /
//     Edit / Get Channel Messages (nonce with enforce_nonce dedupe,
//     message_reference), Edit Original Interaction Response and follow-up
//     messages, and Bulk Overwrite (global and guild) Application Commands.
//     Every call needs "Authorization: Bot TOKEN" and a "DiscordBot (url,
//     version)" User-Agent, except the interaction webhooks, which Discord
//     authenticates by their token. Payloads are checked against Discord's
//     limits (validate.go); errors come back as Discord sends them,
//     {"code":50001,"message":"Missing Access"}, and a 429 carries
//     Retry-After, X-RateLimit-* and {"message":"You are being rate
//     limited.","retry_after":1.5,"global":false}.
//   - Interactions: the fake plays Discord posting to an application's
//     interactions endpoint, signed with its own Ed25519 key exactly as
//     Discord signs (X-Signature-Ed25519 = hex(sign(timestamp + body)),
//     X-Signature-Timestamp = unix seconds). See inbound.go.
//
// Typical use:
//
//	f := discordfake.New(t)
//	ch := f.AddChannel(guild)
//	cfg := discord.Config{ApplicationID: f.ApplicationID, PublicKey: f.PublicKeyHex(),
//		BotToken: f.Token, APIURL: f.URL, GuildIDs: []string{guild}}
//	... post through the adapter; read f.Messages(ch)
//	status, body, err := f.SlashCommand(hookURL, discordfake.User{ID: alice, GuildID: guild}, "ls", nil)
//	reply, err := f.WaitOriginal(f.LastDelivery().Token, 5*time.Second)
package discordfake

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
)

// Defaults of a new Fake.
const (
	DefaultToken         = "fake-bot-token.Gatehouse"
	DefaultApplicationID = "1100000000000000001"
	DefaultBotUserID     = "1100000000000000002"
	// DefaultNonceWindow is how long enforce_nonce dedupes; Discord
	// documents "the past few minutes".
	DefaultNonceWindow = 5 * time.Minute
	// InteractionTokenTTL is how long an interaction token can edit its
	// responses, as Discord documents.
	InteractionTokenTTL = 15 * time.Minute
	// InteractionDeadline is how long Discord waits for the endpoint's
	// answer to an interaction.
	InteractionDeadline = 3 * time.Second

	apiPrefix      = "/api/v10"
	discordEpochMS = 1420070400000
)

// Routes as Discord's documentation writes them, for FailNext and Calls.
const (
	RouteGetMe          = "GET /users/@me"
	RouteCreateDM       = "POST /users/@me/channels"
	RouteCreateMessage  = "POST /channels/{channel.id}/messages"
	RouteListMessages   = "GET /channels/{channel.id}/messages"
	RouteEditMessage    = "PATCH /channels/{channel.id}/messages/{message.id}"
	RouteEditOriginal   = "PATCH /webhooks/{application.id}/{interaction.token}/messages/@original"
	RouteFollowup       = "POST /webhooks/{application.id}/{interaction.token}"
	RouteGlobalCommands = "PUT /applications/{application.id}/commands"
	RouteGuildCommands  = "PUT /applications/{application.id}/guilds/{guild.id}/commands"
	RouteGetGlobalCmds  = "GET /applications/{application.id}/commands"
	RouteGetGuildCmds   = "GET /applications/{application.id}/guilds/{guild.id}/commands"
)

// Discord JSON error codes the fake answers with.
const (
	CodeUnknownChannel      = 10003
	CodeUnknownMessage      = 10008
	CodeUnknownWebhook      = 10015
	CodeMissingAccess       = 50001
	CodeCannotEditOthers    = 50005
	CodeCannotSendToUser    = 50007
	CodeInvalidFormBody     = 50035
	CodeUnknownApplication  = 10002
	CodeUnauthorized        = 0
	CodeRateLimited         = 0
	CodeInternalServerError = 0
)

// Message is a message as the fake holds it now (after edits).
type Message struct {
	ID        string
	ChannelID string
	AuthorID  string
	Content   string
	// EmbedText is every embed flattened: title, description, one
	// "name: value" line per field, footer text.
	EmbedText string
	Embeds    []*discordgo.MessageEmbed
	// Buttons are the custom ids of the message's buttons, in order.
	Buttons []string
	// Mentions are the user ids the message pings: <@id> in the content
	// that allowed_mentions lets through.
	Mentions []string
	Nonce    string
	// ReferenceID is the message this one replies to (message_reference).
	ReferenceID string
	Ephemeral   bool
	// Edits counts the edits after creation.
	Edits   int
	Created time.Time
}

type message struct {
	Message
	components []wireComponent
	rawComps   json.RawMessage
	ref        *discordgo.MessageReference
	edited     *time.Time
}

type channel struct {
	id, guildID string
	dmUser      string // set for DM channels
	denied      bool   // the bot lost access: 403 Missing Access
	messages    []*message
}

type interaction struct {
	typ      discordgo.InteractionType
	created  time.Time
	ackType  discordgo.InteractionResponseType // 0: not acknowledged yet
	original *message
	followup []*message
	modal    *discordgo.InteractionResponseData
}

type failure struct {
	status     int
	retryAfter time.Duration
}

// Fake is a fake Discord. Its methods are safe for concurrent use.
type Fake struct {
	// URL is the REST base URL with a trailing slash, for
	// discord.Config.APIURL: http://127.0.0.1:PORT/api/v10/.
	URL string
	// Token is the bot token accepted (without "Bot ").
	Token string
	// ApplicationID is the application the fake's commands and interaction
	// webhooks belong to.
	ApplicationID string
	// BotUserID is the bot user: the author of everything the adapter posts.
	BotUserID string

	srv  *httptest.Server
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey

	mu           sync.Mutex
	offset       time.Duration
	nonceWindow  time.Duration
	seq          uint64
	channels     map[string]*channel
	messages     map[string]*message // by id
	dmByUser     map[string]string   // user id -> DM channel id
	blockedDMs   map[string]bool
	guildChannel map[string]string // guild id -> a channel interactions come from
	calls        map[string]int
	failures     map[string][]failure
	commands     map[string][]discordgo.ApplicationCommand // guild id ("" global) -> commands
	interactions map[string]*interaction                   // by token
	last         *Delivery
}

// New starts a fake Discord, closed when the test ends.
func New(tb testing.TB) *Fake {
	tb.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	f := &Fake{
		Token: DefaultToken, ApplicationID: DefaultApplicationID, BotUserID: DefaultBotUserID,
		pub: pub, priv: priv,
		nonceWindow:  DefaultNonceWindow,
		channels:     map[string]*channel{},
		messages:     map[string]*message{},
		dmByUser:     map[string]string{},
		blockedDMs:   map[string]bool{},
		guildChannel: map[string]string{},
		calls:        map[string]int{},
		failures:     map[string][]failure{},
		commands:     map[string][]discordgo.ApplicationCommand{},
		interactions: map[string]*interaction{},
	}
	mux := http.NewServeMux()
	f.handle(mux, RouteGetMe, true, f.getMe)
	f.handle(mux, RouteCreateDM, true, f.createDM)
	f.handle(mux, RouteCreateMessage, true, f.createMessage)
	f.handle(mux, RouteListMessages, true, f.listMessages)
	f.handle(mux, RouteEditMessage, true, f.editMessage)
	f.handle(mux, RouteEditOriginal, false, f.editOriginal)
	f.handle(mux, RouteFollowup, false, f.followup)
	f.handle(mux, RouteGlobalCommands, true, f.putCommands)
	f.handle(mux, RouteGuildCommands, true, f.putCommands)
	f.handle(mux, RouteGetGlobalCmds, true, f.getCommands)
	f.handle(mux, RouteGetGuildCmds, true, f.getCommands)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, 0, "404: Not Found")
	})
	f.srv = httptest.NewServer(mux)
	f.URL = f.srv.URL + apiPrefix + "/"
	tb.Cleanup(f.srv.Close)
	return f
}

// PublicKeyHex is the application's public key, for discord.Config.PublicKey.
func (f *Fake) PublicKeyHex() string { return hex.EncodeToString(f.pub) }

// Now is the fake's clock: the real time plus what Advance added.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now()
}

func (f *Fake) now() time.Time { return time.Now().Add(f.offset) }

// Advance moves the fake's clock forward (message timestamps, the
// enforce_nonce window, interaction token expiry). Signatures of inbound
// interactions keep using the real time.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.offset += d
}

// SetNonceWindow changes how long enforce_nonce dedupes.
func (f *Fake) SetNonceWindow(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nonceWindow = d
}

// AddChannel creates a text channel in guild and returns its id.
func (f *Fake) AddChannel(guildID string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.nextID()
	f.channels[id] = &channel{id: id, guildID: guildID}
	return id
}

// AddChannelWithID creates a text channel with a given id (for configs
// written before the fake started).
func (f *Fake) AddChannelWithID(channelID, guildID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.channels[channelID]; !ok {
		f.channels[channelID] = &channel{id: channelID, guildID: guildID}
	}
}

// RevokeAccess makes the bot lose access to the channel: every call on it
// answers 403 {"code":50001,"message":"Missing Access"}.
func (f *Fake) RevokeAccess(channelID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ch, ok := f.channels[channelID]; ok {
		ch.denied = true
	}
}

// BlockDMs makes messages to the user's DM channel answer 403
// {"code":50007,"message":"Cannot send messages to this user"}, as when
// the user turned off DMs from server members.
func (f *Fake) BlockDMs(userID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.blockedDMs[userID] = true
}

// FailNext makes the next call of route (a Route* constant) fail with
// status and Discord's body for it: 429 with Retry-After and retry_after
// = retryAfter (the header rounded up to whole seconds, as Discord sends
// it), 403 Missing Access, 404 Unknown Channel / Message / Webhook, 401,
// 5xx. Calls queue up: FailNext twice fails the next two calls.
func (f *Fake) FailNext(route string, status int, retryAfter time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures[route] = append(f.failures[route], failure{status: status, retryAfter: retryAfter})
}

// Calls is how many requests route received (failed ones included).
func (f *Fake) Calls(route string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[route]
}

// Messages are the channel's messages, oldest first, as they are now.
func (f *Fake) Messages(channelID string) []Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch, ok := f.channels[channelID]
	if !ok {
		return nil
	}
	out := make([]Message, 0, len(ch.messages))
	for _, m := range ch.messages {
		out = append(out, m.view())
	}
	return out
}

// DMs are the messages in the DM channel with the user, oldest first.
func (f *Fake) DMs(userID string) []Message {
	f.mu.Lock()
	id := f.dmByUser[userID]
	f.mu.Unlock()
	if id == "" {
		return nil
	}
	return f.Messages(id)
}

// DMChannel is the id of the DM channel with the user, "" if none was opened.
func (f *Fake) DMChannel(userID string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dmByUser[userID]
}

// Commands are the commands registered in guild ("" for global ones).
func (f *Fake) Commands(guildID string) []discordgo.ApplicationCommand {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]discordgo.ApplicationCommand(nil), f.commands[guildID]...)
}

// Original is the interaction's original response as it is now: the type 4
// message, or the deferred (type 5) one after the application edited it.
// ok is false before the interaction was answered with a message.
func (f *Fake) Original(token string) (Message, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, ok := f.interactions[token]
	if !ok || in.original == nil {
		return Message{}, false
	}
	return in.original.view(), true
}

// WaitOriginal waits until the interaction's original response has
// content: a type 4 answer, or a deferred answer the application has
// edited at least once.
func (f *Fake) WaitOriginal(token string, timeout time.Duration) (Message, error) {
	deadline := time.Now().Add(timeout)
	for {
		f.mu.Lock()
		in := f.interactions[token]
		var m *message
		var ack discordgo.InteractionResponseType
		if in != nil {
			m, ack = in.original, in.ackType
		}
		var view Message
		done := m != nil && (ack == discordgo.InteractionResponseChannelMessageWithSource || m.Edits > 0)
		if done {
			view = m.view()
		}
		f.mu.Unlock()
		if done {
			return view, nil
		}
		if time.Now().After(deadline) {
			return Message{}, fmt.Errorf("discordfake: the original response of the interaction was not edited within %s (acknowledged with type %d)", timeout, ack)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Followups are the follow-up messages sent for the interaction.
func (f *Fake) Followups(token string) []Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Message
	if in, ok := f.interactions[token]; ok {
		for _, m := range in.followup {
			out = append(out, m.view())
		}
	}
	return out
}

// nextID makes a snowflake from the fake clock. Callers hold f.mu.
func (f *Fake) nextID() string {
	f.seq++
	ms := uint64(f.now().UnixMilli() - discordEpochMS)
	return strconv.FormatUint(ms<<22|(f.seq&(1<<22-1)), 10)
}

// handle registers route with the checks every call gets: counting,
// injected failures, then (auth) the bot token and User-Agent.
func (f *Fake) handle(mux *http.ServeMux, route string, auth bool, h func(http.ResponseWriter, *http.Request)) {
	method, path, _ := strings.Cut(route, " ")
	pattern := method + " " + apiPrefix + muxPath(path)
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.calls[route]++
		var fail *failure
		if q := f.failures[route]; len(q) > 0 {
			fail = &q[0]
			f.failures[route] = q[1:]
		}
		f.mu.Unlock()
		if fail != nil {
			writeFailure(w, route, *fail)
			return
		}
		if auth {
			if r.Header.Get("Authorization") != "Bot "+f.Token {
				writeError(w, http.StatusUnauthorized, CodeUnauthorized, "401: Unauthorized")
				return
			}
			if !userAgentRe.MatchString(r.Header.Get("User-Agent")) {
				writeError(w, http.StatusBadRequest, 0, "User-Agent must be DiscordBot ($url, $versionNumber)")
				return
			}
		}
		if r.Body != nil && r.ContentLength != 0 && r.Method != http.MethodGet {
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				writeError(w, http.StatusBadRequest, CodeInvalidFormBody, "Invalid Form Body: Content-Type must be application/json, not "+ct)
				return
			}
		}
		w.Header().Set("X-RateLimit-Limit", "5")
		w.Header().Set("X-RateLimit-Remaining", "4")
		w.Header().Set("X-RateLimit-Reset-After", "1.000")
		w.Header().Set("X-RateLimit-Bucket", bucketOf(route))
		h(w, r)
	})
}

var userAgentRe = regexp.MustCompile(`^DiscordBot \(\S+, \S+\)`)

// muxPath turns {channel.id} into the ServeMux wildcard {channel_id}.
func muxPath(p string) string {
	return strings.NewReplacer("{channel.id}", "{channel}", "{message.id}", "{message}", "{application.id}", "{app}",
		"{interaction.token}", "{token}", "{guild.id}", "{guild}").Replace(p)
}

func bucketOf(route string) string {
	return hex.EncodeToString([]byte(route))[:16]
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeError answers Discord's error JSON.
func writeError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, map[string]any{"code": code, "message": msg})
}

func formError(w http.ResponseWriter, err error) {
	writeJSON(w, http.StatusBadRequest, map[string]any{"code": CodeInvalidFormBody, "message": "Invalid Form Body",
		"errors": map[string]any{"_errors": []map[string]string{{"code": "BASE_TYPE_INVALID", "message": err.Error()}}}})
}

func writeFailure(w http.ResponseWriter, route string, fl failure) {
	switch {
	case fl.status == http.StatusTooManyRequests:
		secs := fl.retryAfter.Seconds()
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(secs))))
		w.Header().Set("X-RateLimit-Limit", "5")
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset", strconv.FormatFloat(float64(time.Now().Add(fl.retryAfter).UnixMilli())/1000, 'f', 3, 64))
		w.Header().Set("X-RateLimit-Reset-After", strconv.FormatFloat(secs, 'f', 3, 64))
		w.Header().Set("X-RateLimit-Bucket", bucketOf(route))
		w.Header().Set("X-RateLimit-Scope", "user")
		writeJSON(w, fl.status, map[string]any{"message": "You are being rate limited.", "retry_after": secs, "global": false})
	case fl.status == http.StatusForbidden:
		writeError(w, fl.status, CodeMissingAccess, "Missing Access")
	case fl.status == http.StatusNotFound:
		switch route {
		case RouteEditMessage:
			writeError(w, fl.status, CodeUnknownMessage, "Unknown Message")
		case RouteEditOriginal, RouteFollowup:
			writeError(w, fl.status, CodeUnknownWebhook, "Unknown Webhook")
		default:
			writeError(w, fl.status, CodeUnknownChannel, "Unknown Channel")
		}
	case fl.status == http.StatusUnauthorized:
		writeError(w, fl.status, CodeUnauthorized, "401: Unauthorized")
	case fl.status >= 500:
		writeError(w, fl.status, CodeInternalServerError, fmt.Sprintf("%d: %s", fl.status, http.StatusText(fl.status)))
	default:
		writeError(w, fl.status, 0, fmt.Sprintf("%d: %s", fl.status, http.StatusText(fl.status)))
	}
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		formError(w, fmt.Errorf("body: %v", err))
		return false
	}
	return true
}

func (f *Fake) getMe(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"id": f.BotUserID, "username": "Gatehouse", "discriminator": "0000",
		"global_name": nil, "avatar": nil, "bot": true, "flags": 0, "verified": true})
}

func (f *Fake) createDM(w http.ResponseWriter, r *http.Request) {
	var body struct {
		RecipientID string `json:"recipient_id"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	if !snowflakeRe.MatchString(body.RecipientID) {
		formError(w, fmt.Errorf("recipient_id: Value %q is not snowflake", body.RecipientID))
		return
	}
	f.mu.Lock()
	id, ok := f.dmByUser[body.RecipientID]
	if !ok {
		id = f.nextID()
		f.channels[id] = &channel{id: id, dmUser: body.RecipientID}
		f.dmByUser[body.RecipientID] = id
	}
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "type": 1, "last_message_id": nil, "flags": 0,
		"recipients": []map[string]any{{"id": body.RecipientID, "username": "user" + body.RecipientID[len(body.RecipientID)-4:], "discriminator": "0"}}})
}

var snowflakeRe = regexp.MustCompile(`^[0-9]{17,20}$`)

// messageBody is Create Message's JSON (and, by presence, Edit Message's).
type messageBody struct {
	Content          *string                           `json:"content"`
	Embeds           *[]*discordgo.MessageEmbed        `json:"embeds"`
	Components       json.RawMessage                   `json:"components"`
	AllowedMentions  *discordgo.MessageAllowedMentions `json:"allowed_mentions"`
	MessageReference *discordgo.MessageReference       `json:"message_reference"`
	Nonce            json.RawMessage                   `json:"nonce"`
	EnforceNonce     bool                              `json:"enforce_nonce"`
	Flags            int                               `json:"flags"`
	TTS              bool                              `json:"tts"`
	StickerIDs       []string                          `json:"sticker_ids"`
}

// channelFor finds a channel the bot may use; it writes the error itself.
func (f *Fake) channelFor(w http.ResponseWriter, id string) (*channel, bool) {
	ch, ok := f.channels[id]
	if !ok {
		writeError(w, http.StatusNotFound, CodeUnknownChannel, "Unknown Channel")
		return nil, false
	}
	if ch.denied {
		writeError(w, http.StatusForbidden, CodeMissingAccess, "Missing Access")
		return nil, false
	}
	return ch, true
}

func (f *Fake) createMessage(w http.ResponseWriter, r *http.Request) {
	var body messageBody
	if !readJSON(w, r, &body) {
		return
	}
	nonce, err := parseNonce(body.Nonce)
	if err != nil {
		formError(w, err)
		return
	}
	comps, err := decodeComponents(body.Components)
	if err == nil {
		err = checkMessage(deref(body.Content), derefEmbeds(body.Embeds), comps, true)
	}
	if err != nil {
		formError(w, err)
		return
	}
	if body.Flags&^(int(discordgo.MessageFlagsSuppressEmbeds)|int(discordgo.MessageFlagsSuppressNotifications)) != 0 {
		formError(w, fmt.Errorf("flags %d: only SUPPRESS_EMBEDS and SUPPRESS_NOTIFICATIONS can be set", body.Flags))
		return
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	ch, ok := f.channelFor(w, r.PathValue("channel"))
	if !ok {
		return
	}
	if ch.dmUser != "" && f.blockedDMs[ch.dmUser] {
		writeError(w, http.StatusForbidden, CodeCannotSendToUser, "Cannot send messages to this user")
		return
	}
	if body.EnforceNonce && nonce != "" {
		// "If another message was created by the same author with the same
		// nonce, that message will be returned and no new message will be
		// created" — within the window.
		for _, m := range f.messages {
			if m.AuthorID == f.BotUserID && m.Nonce == nonce && f.now().Sub(m.Created) < f.nonceWindow {
				writeJSON(w, http.StatusOK, m.wire(true))
				return
			}
		}
	}
	if ref := body.MessageReference; ref != nil {
		target, ok := f.messages[ref.MessageID]
		if (!ok || target.ChannelID != ch.id) && (ref.FailIfNotExists == nil || *ref.FailIfNotExists) {
			formError(w, fmt.Errorf("message_reference: Unknown message"))
			return
		}
	}
	m := &message{Message: Message{ID: f.nextID(), ChannelID: ch.id, AuthorID: f.BotUserID, Nonce: nonce, Created: f.now()}}
	m.set(body, comps)
	if ref := body.MessageReference; ref != nil {
		m.ref = ref
		m.ReferenceID = ref.MessageID
	}
	ch.messages = append(ch.messages, m)
	f.messages[m.ID] = m
	writeJSON(w, http.StatusOK, m.wire(true))
}

func (f *Fake) listMessages(w http.ResponseWriter, r *http.Request) {
	limit := 50
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			formError(w, fmt.Errorf("limit: %q, want 1-100", s))
			return
		}
		limit = n
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ch, ok := f.channelFor(w, r.PathValue("channel"))
	if !ok {
		return
	}
	out := []any{}
	for i := len(ch.messages) - 1; i >= 0 && len(out) < limit; i-- {
		// Fetched messages carry no nonce: Discord documents it for the
		// Create Message answer and the MESSAGE_CREATE event only.
		out = append(out, ch.messages[i].wire(false))
	}
	writeJSON(w, http.StatusOK, out)
}

func (f *Fake) editMessage(w http.ResponseWriter, r *http.Request) {
	var body messageBody
	if !readJSON(w, r, &body) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ch, ok := f.channelFor(w, r.PathValue("channel"))
	if !ok {
		return
	}
	m, ok := f.messages[r.PathValue("message")]
	if !ok || m.ChannelID != ch.id {
		writeError(w, http.StatusNotFound, CodeUnknownMessage, "Unknown Message")
		return
	}
	if m.AuthorID != f.BotUserID {
		writeError(w, http.StatusForbidden, CodeCannotEditOthers, "Cannot edit a message authored by another user")
		return
	}
	if err := m.edit(body, f.now()); err != nil {
		formError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, m.wire(false))
}

// interactionFor finds the interaction of a webhook call: the application
// must be ours and the token live.
func (f *Fake) interactionFor(w http.ResponseWriter, r *http.Request) (*interaction, bool) {
	in, ok := f.interactions[r.PathValue("token")]
	if r.PathValue("app") != f.ApplicationID || !ok || f.now().Sub(in.created) > InteractionTokenTTL {
		writeError(w, http.StatusNotFound, CodeUnknownWebhook, "Unknown Webhook")
		return nil, false
	}
	return in, true
}

func (f *Fake) editOriginal(w http.ResponseWriter, r *http.Request) {
	var body messageBody
	if !readJSON(w, r, &body) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	in, ok := f.interactionFor(w, r)
	if !ok {
		return
	}
	// Before the answer arrived (or after a modal) there is no original.
	if in.original == nil {
		writeError(w, http.StatusNotFound, CodeUnknownMessage, "Unknown Message")
		return
	}
	if err := in.original.edit(body, f.now()); err != nil {
		formError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, in.original.wire(false))
}

func (f *Fake) followup(w http.ResponseWriter, r *http.Request) {
	var body messageBody
	if !readJSON(w, r, &body) {
		return
	}
	comps, err := decodeComponents(body.Components)
	if err == nil {
		err = checkMessage(deref(body.Content), derefEmbeds(body.Embeds), comps, true)
	}
	if err != nil {
		formError(w, err)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	in, ok := f.interactionFor(w, r)
	if !ok {
		return
	}
	if in.ackType == 0 || in.ackType == discordgo.InteractionResponsePong {
		writeError(w, http.StatusNotFound, CodeUnknownWebhook, "Unknown Webhook")
		return
	}
	m := &message{Message: Message{ID: f.nextID(), AuthorID: f.BotUserID, Created: f.now(),
		Ephemeral: body.Flags&int(discordgo.MessageFlagsEphemeral) != 0}}
	m.set(body, comps)
	in.followup = append(in.followup, m)
	writeJSON(w, http.StatusOK, m.wire(false))
}

func (f *Fake) putCommands(w http.ResponseWriter, r *http.Request) {
	var cmds []*discordgo.ApplicationCommand
	if !readJSON(w, r, &cmds) {
		return
	}
	if r.PathValue("app") != f.ApplicationID {
		writeError(w, http.StatusForbidden, CodeMissingAccess, "Missing Access")
		return
	}
	guild := r.PathValue("guild")
	if len(cmds) > 100 {
		formError(w, fmt.Errorf("at most 100 commands, got %d", len(cmds)))
		return
	}
	names := map[string]bool{}
	for i, c := range cmds {
		if err := ValidateCommand(c); err != nil {
			formError(w, fmt.Errorf("%d: %w", i, err))
			return
		}
		if names[c.Name] {
			formError(w, fmt.Errorf("%d: command name %q used twice", i, c.Name))
			return
		}
		names[c.Name] = true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	old := map[string]string{}
	for _, c := range f.commands[guild] {
		old[c.Name] = c.ID
	}
	var stored []discordgo.ApplicationCommand
	for _, c := range cmds {
		s := *c
		s.ID = old[c.Name]
		if s.ID == "" {
			s.ID = f.nextID()
		}
		s.ApplicationID, s.GuildID, s.Version = f.ApplicationID, guild, f.nextID()
		if s.Type == 0 {
			s.Type = discordgo.ChatApplicationCommand
		}
		stored = append(stored, s)
	}
	f.commands[guild] = stored
	writeJSON(w, http.StatusOK, stored)
}

func (f *Fake) getCommands(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("app") != f.ApplicationID {
		writeError(w, http.StatusForbidden, CodeMissingAccess, "Missing Access")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.commands[r.PathValue("guild")]
	if out == nil {
		out = []discordgo.ApplicationCommand{}
	}
	writeJSON(w, http.StatusOK, out)
}

// parseNonce reads a nonce: a string or an integer, up to 25 characters.
func parseNonce(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		var n json.Number
		if err := json.Unmarshal(raw, &n); err != nil {
			return "", fmt.Errorf("nonce: must be a string or an integer")
		}
		s = n.String()
	}
	if runes(s) > MaxNonce {
		return "", fmt.Errorf("nonce: %d characters, at most %d", runes(s), MaxNonce)
	}
	return s, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func derefEmbeds(e *[]*discordgo.MessageEmbed) []*discordgo.MessageEmbed {
	if e == nil {
		return nil
	}
	return *e
}

// set fills a new message from a create body.
func (m *message) set(body messageBody, comps []wireComponent) {
	m.Content = deref(body.Content)
	m.Embeds = derefEmbeds(body.Embeds)
	m.components, m.rawComps = comps, body.Components
	m.Mentions = mentions(m.Content, body.AllowedMentions)
}

// edit applies an edit body: only the fields present change.
func (m *message) edit(body messageBody, now time.Time) error {
	content, embeds, comps, raw := m.Content, m.Embeds, m.components, m.rawComps
	if body.Content != nil {
		content = *body.Content
	}
	if body.Embeds != nil {
		embeds = *body.Embeds
	}
	if len(body.Components) > 0 {
		var err error
		if comps, err = decodeComponents(body.Components); err != nil {
			return err
		}
		raw = body.Components
	}
	if err := checkMessage(content, embeds, comps, true); err != nil {
		return err
	}
	m.Content, m.Embeds, m.components, m.rawComps = content, embeds, comps, raw
	if body.Content != nil {
		m.Mentions = mentions(content, body.AllowedMentions)
	}
	m.Edits++
	m.edited = &now
	return nil
}

var mentionRe = regexp.MustCompile(`<@!?([0-9]{17,20})>`)

// mentions are the users content pings under allowed_mentions: without
// allowed_mentions every <@id>; with it, the ids in users, or every <@id>
// when parse holds "users".
func mentions(content string, allowed *discordgo.MessageAllowedMentions) []string {
	var out []string
	for _, m := range mentionRe.FindAllStringSubmatch(content, -1) {
		id := m[1]
		ok := allowed == nil
		if allowed != nil {
			for _, p := range allowed.Parse {
				ok = ok || p == discordgo.AllowedMentionTypeUsers
			}
			for _, u := range allowed.Users {
				ok = ok || u == id
			}
		}
		if ok {
			out = append(out, id)
		}
	}
	return out
}

// view is the public copy of m.
func (m *message) view() Message {
	v := m.Message
	v.Embeds = append([]*discordgo.MessageEmbed(nil), m.Embeds...)
	v.Mentions = append([]string(nil), m.Mentions...)
	v.Buttons = nil
	for _, row := range m.components {
		for _, c := range row.Components {
			if c.CustomID != "" {
				v.Buttons = append(v.Buttons, c.CustomID)
			}
		}
	}
	var lines []string
	for _, e := range m.Embeds {
		for _, s := range []string{e.Title, e.Description} {
			if s != "" {
				lines = append(lines, s)
			}
		}
		for _, fl := range e.Fields {
			lines = append(lines, fl.Name+": "+fl.Value)
		}
		if e.Footer != nil && e.Footer.Text != "" {
			lines = append(lines, e.Footer.Text)
		}
	}
	v.EmbedText = strings.Join(lines, "\n")
	return v
}

// wire is the message object as Discord answers it; withNonce for the
// Create Message answer only.
func (m *message) wire(withNonce bool) map[string]any {
	embeds := []*discordgo.MessageEmbed{}
	for _, e := range m.Embeds {
		c := *e
		c.Type = discordgo.EmbedTypeRich
		embeds = append(embeds, &c)
	}
	comps := json.RawMessage("[]")
	if len(m.rawComps) > 0 && string(m.rawComps) != "null" {
		comps = m.rawComps
	}
	typ := 0
	if m.ref != nil {
		typ = 19 // REPLY
	}
	mentioned := []map[string]any{}
	for _, id := range m.Mentions {
		mentioned = append(mentioned, map[string]any{"id": id, "username": "user" + id[len(id)-4:], "discriminator": "0"})
	}
	out := map[string]any{
		"id": m.ID, "type": typ, "channel_id": m.ChannelID, "content": m.Content,
		"author":           map[string]any{"id": m.AuthorID, "username": "Gatehouse", "discriminator": "0000", "bot": true},
		"timestamp":        m.Created.UTC().Format("2006-01-02T15:04:05.000000+00:00"),
		"edited_timestamp": nil,
		"tts":              false, "mention_everyone": false, "mentions": mentioned, "mention_roles": []string{},
		"attachments": []any{}, "embeds": embeds, "components": comps, "pinned": false, "flags": 0,
	}
	if m.Ephemeral {
		out["flags"] = int(discordgo.MessageFlagsEphemeral)
	}
	if m.edited != nil {
		out["edited_timestamp"] = m.edited.UTC().Format("2006-01-02T15:04:05.000000+00:00")
	}
	if withNonce && m.Nonce != "" {
		out["nonce"] = m.Nonce
	}
	if m.ref != nil {
		out["message_reference"] = map[string]any{"type": 0, "message_id": m.ref.MessageID, "channel_id": m.ChannelID}
	}
	return out
}
