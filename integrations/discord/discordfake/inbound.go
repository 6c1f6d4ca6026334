package discordfake

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/bwmarrin/discordgo"
)

// User is who performs an interaction. GuildID "" makes it a DM
// interaction (the JSON has "user" and no guild); otherwise the JSON has
// "member" and "guild_id".
type User struct {
	ID      string
	Name    string
	GuildID string
}

// Interaction is one interaction as Discord would post it.
type Interaction struct {
	ID    string
	Token string
	Type  discordgo.InteractionType
	// JSON is the body posted.
	JSON []byte
}

// Delivery is one POST of an interaction to the endpoint and its answer.
type Delivery struct {
	Interaction
	// Status and Body are the endpoint's HTTP answer.
	Status int
	Body   []byte
	// Response is Body parsed, when Status is 200.
	Response *discordgo.InteractionResponse
	// Elapsed is how long the endpoint took to answer.
	Elapsed time.Duration

	url       string
	timestamp string
	signature string
}

// SignOption changes how Deliver signs, to play a forger or a replayer.
type SignOption func(*signing)

type signing struct {
	key ed25519.PrivateKey
	at  time.Time
}

// WithWrongKey signs with a key that is not the application's.
func WithWrongKey() SignOption {
	return func(s *signing) {
		_, k, _ := ed25519.GenerateKey(rand.Reader)
		s.key = k
	}
}

// SignedAt signs with timestamp t instead of now (a stale timestamp:
// time.Now().Add(-10*time.Minute)).
func SignedAt(t time.Time) SignOption { return func(s *signing) { s.at = t } }

// SlashCommand delivers /access SUB with opts (string, int, float64 or
// bool values) from u, and returns the endpoint's answer. When /access is
// registered (guild or global), the subcommand and options must match the
// registration, as Discord only sends what it offered. The token for
// Original is LastDelivery().Token.
func (f *Fake) SlashCommand(hookURL string, u User, sub string, opts map[string]any) (status int, body []byte, err error) {
	in, err := f.SlashCommandInteraction(u, sub, opts)
	if err != nil {
		return 0, nil, err
	}
	return result(f.Deliver(hookURL, in))
}

// ClickButton delivers a click on the button customID of msg (a channel
// message or an interaction's original response); the button must be on it.
func (f *Fake) ClickButton(hookURL string, u User, msg Message, customID string) (status int, body []byte, err error) {
	if !slices.Contains(msg.Buttons, customID) {
		return 0, nil, fmt.Errorf("discordfake: message %s has no button %q (it has %v)", msg.ID, customID, msg.Buttons)
	}
	in, err := f.ButtonInteraction(u, msg, customID)
	if err != nil {
		return 0, nil, err
	}
	return result(f.Deliver(hookURL, in))
}

// SubmitModal delivers the submission of a modal the endpoint showed
// (answered with type 9) with custom id customID; values are by text
// input custom id, and required inputs must be filled within their
// lengths, as Discord's client enforces.
func (f *Fake) SubmitModal(hookURL string, u User, customID string, values map[string]string) (status int, body []byte, err error) {
	f.mu.Lock()
	var modal *discordgo.InteractionResponseData
	for _, in := range f.interactions {
		if in.modal != nil && in.modal.CustomID == customID {
			modal = in.modal
		}
	}
	f.mu.Unlock()
	if modal == nil {
		return 0, nil, fmt.Errorf("discordfake: no modal %q was shown", customID)
	}
	if err := checkModalValues(modal, values); err != nil {
		return 0, nil, err
	}
	in, err := f.ModalSubmitInteraction(u, customID, values)
	if err != nil {
		return 0, nil, err
	}
	return result(f.Deliver(hookURL, in))
}

// Ping delivers a PING, as Discord does when the endpoint URL is saved.
func (f *Fake) Ping(hookURL string) (status int, body []byte, err error) {
	return result(f.Deliver(hookURL, f.PingInteraction()))
}

// LastDelivery is the latest delivery, nil before the first.
func (f *Fake) LastDelivery() *Delivery {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

// ReplayLast sends the latest delivery again, byte for byte with the same
// signature headers, as an attacker replaying a captured request would.
func (f *Fake) ReplayLast() (status int, body []byte, err error) {
	last := f.LastDelivery()
	if last == nil {
		return 0, nil, errors.New("discordfake: nothing delivered yet")
	}
	return result(f.Replay(last))
}

func result(d *Delivery, err error) (int, []byte, error) {
	if d == nil {
		return 0, nil, err
	}
	return d.Status, d.Body, err
}

// PingInteraction builds a PING.
func (f *Fake) PingInteraction() Interaction {
	id, token := f.newInteractionIDs()
	body := map[string]any{"id": id, "application_id": f.ApplicationID, "type": discordgo.InteractionPing, "token": token, "version": 1,
		"user": map[string]any{"id": "1", "username": "discord", "discriminator": "0000"}}
	return f.interactionJSON(id, token, discordgo.InteractionPing, body)
}

// SlashCommandInteraction builds /access SUB with opts from u.
func (f *Fake) SlashCommandInteraction(u User, sub string, opts map[string]any) (Interaction, error) {
	if err := f.checkRegistered(u.GuildID, sub, opts); err != nil {
		return Interaction{}, err
	}
	names := make([]string, 0, len(opts))
	for k := range opts {
		names = append(names, k)
	}
	sort.Strings(names)
	var options []map[string]any
	for _, k := range names {
		v := opts[k]
		var typ discordgo.ApplicationCommandOptionType
		switch v.(type) {
		case string:
			typ = discordgo.ApplicationCommandOptionString
		case int, int64:
			typ = discordgo.ApplicationCommandOptionInteger
		case float64:
			typ = discordgo.ApplicationCommandOptionNumber
		case bool:
			typ = discordgo.ApplicationCommandOptionBoolean
		default:
			return Interaction{}, fmt.Errorf("discordfake: option %q: unsupported value type %T", k, v)
		}
		options = append(options, map[string]any{"name": k, "type": typ, "value": v})
	}
	subOpt := map[string]any{"name": sub, "type": discordgo.ApplicationCommandOptionSubCommand}
	if len(options) > 0 {
		subOpt["options"] = options
	}
	cmdID := "1100000000000000100"
	for _, c := range append(f.Commands(u.GuildID), f.Commands("")...) {
		if c.Name == "access" {
			cmdID = c.ID
		}
	}
	data := map[string]any{"id": cmdID, "name": "access", "type": discordgo.ChatApplicationCommand, "options": []any{subOpt}}
	if u.GuildID != "" {
		data["guild_id"] = u.GuildID
	}
	return f.userInteraction(u, discordgo.InteractionApplicationCommand, data, nil), nil
}

// ButtonInteraction builds a click on customID of msg, without checking
// that msg has the button (to play a forged click).
func (f *Fake) ButtonInteraction(u User, msg Message, customID string) (Interaction, error) {
	f.mu.Lock()
	var wire map[string]any
	if m, ok := f.messages[msg.ID]; ok {
		wire = m.wire(false)
	} else {
		for _, in := range f.interactions {
			if in.original != nil && in.original.ID == msg.ID {
				wire = in.original.wire(false)
			}
		}
	}
	f.mu.Unlock()
	if wire == nil {
		// A message the fake does not hold: send what the caller gave.
		stored := &message{Message: msg}
		wire = stored.wire(false)
	}
	data := map[string]any{"custom_id": customID, "component_type": discordgo.ButtonComponent}
	return f.userInteraction(u, discordgo.InteractionMessageComponent, data, wire), nil
}

// ModalSubmitInteraction builds a modal submission, without checking that
// the modal was shown (to play a forged submission).
func (f *Fake) ModalSubmitInteraction(u User, customID string, values map[string]string) (Interaction, error) {
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var rows []any
	for _, k := range keys {
		rows = append(rows, map[string]any{"type": discordgo.ActionsRowComponent, "components": []any{
			map[string]any{"type": discordgo.TextInputComponent, "custom_id": k, "value": values[k]},
		}})
	}
	data := map[string]any{"custom_id": customID, "components": rows}
	return f.userInteraction(u, discordgo.InteractionModalSubmit, data, nil), nil
}

func (f *Fake) newInteractionIDs() (id, token string) {
	f.mu.Lock()
	id = f.nextID()
	f.mu.Unlock()
	b := make([]byte, 48)
	_, _ = rand.Read(b)
	return id, "aW50ZXJhY3Rpb246" + base64.RawURLEncoding.EncodeToString(b)
}

// userInteraction builds the JSON of an interaction by u: member and
// guild_id in a guild, user in a DM.
func (f *Fake) userInteraction(u User, typ discordgo.InteractionType, data map[string]any, msg map[string]any) Interaction {
	id, token := f.newInteractionIDs()
	user := map[string]any{"id": u.ID, "username": u.Name, "global_name": u.Name, "discriminator": "0", "avatar": nil, "public_flags": 0}
	body := map[string]any{
		"id": id, "application_id": f.ApplicationID, "type": typ, "data": data, "token": token, "version": 1,
		"app_permissions": "2248473465835073", "locale": "en-US", "entitlements": []any{},
	}
	if u.GuildID != "" {
		channelID := f.guildChannelID(u.GuildID)
		if msg != nil {
			channelID, _ = msg["channel_id"].(string)
		}
		body["guild_id"] = u.GuildID
		body["guild_locale"] = "en-US"
		body["channel_id"] = channelID
		body["channel"] = map[string]any{"id": channelID, "type": 0, "guild_id": u.GuildID}
		body["member"] = map[string]any{"user": user, "roles": []string{}, "joined_at": "2024-01-02T03:04:05.000000+00:00",
			"permissions": "2248473465835073", "deaf": false, "mute": false, "flags": 0, "nick": nil}
		body["context"] = discordgo.InteractionContextGuild
		body["authorizing_integration_owners"] = map[string]any{"0": u.GuildID}
	} else {
		f.mu.Lock()
		dm, ok := f.dmByUser[u.ID]
		if !ok {
			dm = f.nextID()
			f.channels[dm] = &channel{id: dm, dmUser: u.ID}
			f.dmByUser[u.ID] = dm
		}
		f.mu.Unlock()
		body["channel_id"] = dm
		body["channel"] = map[string]any{"id": dm, "type": 1}
		body["user"] = user
		body["context"] = discordgo.InteractionContextBotDM
		body["authorizing_integration_owners"] = map[string]any{}
	}
	if msg != nil {
		body["message"] = msg
	}
	return f.interactionJSON(id, token, typ, body)
}

func (f *Fake) guildChannelID(guild string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id, ok := f.guildChannel[guild]; ok {
		return id
	}
	for id, ch := range f.channels {
		if ch.guildID == guild {
			f.guildChannel[guild] = id
			return id
		}
	}
	id := f.nextID()
	f.channels[id] = &channel{id: id, guildID: guild}
	f.guildChannel[guild] = id
	return id
}

func (f *Fake) interactionJSON(id, token string, typ discordgo.InteractionType, body map[string]any) Interaction {
	b, err := json.Marshal(body)
	if err != nil {
		panic("discordfake: encoding interaction: " + err.Error()) // maps of strings and numbers always encode
	}
	return Interaction{ID: id, Token: token, Type: typ, JSON: b}
}

// Deliver posts in to hookURL signed as Discord signs, within Discord's
// 3-second deadline, and records the answer: a message (type 4) or a
// deferred one (type 5) becomes the interaction's original response; a
// modal (type 9) can then be submitted. A 200 answer that Discord would
// reject (a response type not allowed for the interaction, a message over
// the limits, a bad modal) is an error; other statuses are returned as
// they are.
func (f *Fake) Deliver(hookURL string, in Interaction, opts ...SignOption) (*Delivery, error) {
	s := signing{key: f.priv, at: time.Now()}
	for _, o := range opts {
		o(&s)
	}
	ts := strconv.FormatInt(s.at.Unix(), 10)
	sig := hex.EncodeToString(ed25519.Sign(s.key, append([]byte(ts), in.JSON...)))
	f.mu.Lock()
	if _, ok := f.interactions[in.Token]; !ok {
		f.interactions[in.Token] = &interaction{typ: in.Type, created: f.now()}
	}
	f.mu.Unlock()
	d := &Delivery{Interaction: in, url: hookURL, timestamp: ts, signature: sig}
	return d, f.send(d)
}

// Replay sends d again, byte for byte, with its original signature.
func (f *Fake) Replay(d *Delivery) (*Delivery, error) {
	again := &Delivery{Interaction: d.Interaction, url: d.url, timestamp: d.timestamp, signature: d.signature}
	return again, f.send(again)
}

func (f *Fake) send(d *Delivery) error {
	ctx, cancel := context.WithTimeout(context.Background(), InteractionDeadline)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url, bytes.NewReader(d.JSON))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Discord-Interactions/1.0 (+https://discord.com)")
	req.Header.Set("X-Signature-Ed25519", d.signature)
	req.Header.Set("X-Signature-Timestamp", d.timestamp)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("discordfake: the endpoint did not answer within Discord's %s deadline (Discord shows \"The application did not respond\"): %w", InteractionDeadline, err)
		}
		return fmt.Errorf("discordfake: delivering interaction: %w", err)
	}
	defer resp.Body.Close()
	d.Body, err = io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	d.Elapsed = time.Since(start)
	d.Status = resp.StatusCode
	f.mu.Lock()
	f.last = d
	f.mu.Unlock()
	if err != nil {
		return fmt.Errorf("discordfake: reading the endpoint's answer: %w", err)
	}
	if d.Status != http.StatusOK {
		return nil
	}
	return f.acknowledge(d)
}

// allowedResponses are the response types Discord accepts per interaction
// type.
var allowedResponses = map[discordgo.InteractionType][]discordgo.InteractionResponseType{
	discordgo.InteractionPing: {discordgo.InteractionResponsePong},
	discordgo.InteractionApplicationCommand: {discordgo.InteractionResponseChannelMessageWithSource,
		discordgo.InteractionResponseDeferredChannelMessageWithSource, discordgo.InteractionResponseModal},
	discordgo.InteractionMessageComponent: {discordgo.InteractionResponseChannelMessageWithSource,
		discordgo.InteractionResponseDeferredChannelMessageWithSource, discordgo.InteractionResponseDeferredMessageUpdate,
		discordgo.InteractionResponseUpdateMessage, discordgo.InteractionResponseModal},
	discordgo.InteractionModalSubmit: {discordgo.InteractionResponseChannelMessageWithSource,
		discordgo.InteractionResponseDeferredChannelMessageWithSource, discordgo.InteractionResponseDeferredMessageUpdate,
		discordgo.InteractionResponseUpdateMessage},
}

// acknowledge checks a 200 answer as Discord does and records it.
func (f *Fake) acknowledge(d *Delivery) error {
	var wire struct {
		Type discordgo.InteractionResponseType `json:"type"`
		Data *struct {
			messageBody
			CustomID string `json:"custom_id"`
			Title    string `json:"title"`
		} `json:"data"`
	}
	if err := json.Unmarshal(d.Body, &wire); err != nil {
		return fmt.Errorf("discordfake: the interaction answer is not JSON: %v: %q", err, d.Body)
	}
	if !slices.Contains(allowedResponses[d.Type], wire.Type) {
		return fmt.Errorf("discordfake: response type %d is not allowed for interaction type %d", wire.Type, d.Type)
	}
	var resp discordgo.InteractionResponse
	resp.Type = wire.Type
	if wire.Data != nil {
		resp.Data = &discordgo.InteractionResponseData{CustomID: wire.Data.CustomID, Title: wire.Data.Title,
			Content: deref(wire.Data.Content), Embeds: derefEmbeds(wire.Data.Embeds), Flags: discordgo.MessageFlags(wire.Data.Flags)}
	}
	d.Response = &resp
	var comps []wireComponent
	if wire.Data != nil {
		var err error
		if comps, err = decodeComponents(wire.Data.Components); err != nil {
			return fmt.Errorf("discordfake: interaction answer: %w", err)
		}
		allowedFlags := int(discordgo.MessageFlagsEphemeral | discordgo.MessageFlagsSuppressEmbeds | discordgo.MessageFlagsSuppressNotifications)
		if wire.Data.Flags&^allowedFlags != 0 {
			return fmt.Errorf("discordfake: interaction answer: flags %d not allowed", wire.Data.Flags)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	in := f.interactions[d.Token]
	if in.ackType != 0 {
		// Discord: 40060 Interaction has already been acknowledged.
		return fmt.Errorf("discordfake: interaction %s answered twice", d.ID)
	}
	switch wire.Type {
	case discordgo.InteractionResponseChannelMessageWithSource:
		if wire.Data == nil {
			return errors.New("discordfake: a type 4 answer needs data")
		}
		if err := checkMessage(deref(wire.Data.Content), derefEmbeds(wire.Data.Embeds), comps, true); err != nil {
			return fmt.Errorf("discordfake: interaction answer: %w", err)
		}
		m := &message{Message: Message{ID: f.nextID(), AuthorID: f.BotUserID, Created: f.now(),
			Ephemeral: wire.Data.Flags&int(discordgo.MessageFlagsEphemeral) != 0}}
		m.set(wire.Data.messageBody, comps)
		in.original = m
	case discordgo.InteractionResponseDeferredChannelMessageWithSource:
		eph := wire.Data != nil && wire.Data.Flags&int(discordgo.MessageFlagsEphemeral) != 0
		// The "is thinking..." placeholder that the application edits.
		in.original = &message{Message: Message{ID: f.nextID(), AuthorID: f.BotUserID, Created: f.now(), Ephemeral: eph}}
	case discordgo.InteractionResponseModal:
		if wire.Data == nil {
			return errors.New("discordfake: a modal answer needs data")
		}
		if err := checkModal(wire.Data.CustomID, wire.Data.Title, comps); err != nil {
			return fmt.Errorf("discordfake: modal: %w", err)
		}
		modal := *resp.Data
		modal.Components = nil
		for _, row := range comps {
			t := row.Components[0]
			ti := discordgo.TextInput{CustomID: t.CustomID, Label: t.Label, Style: discordgo.TextInputStyle(t.Style), Placeholder: t.Placeholder}
			if t.Required != nil {
				ti.Required = *t.Required
			} else {
				ti.Required = true // Discord's default
			}
			if t.MinLength != nil {
				ti.MinLength = *t.MinLength
			}
			if t.MaxLength != nil {
				ti.MaxLength = *t.MaxLength
			}
			modal.Components = append(modal.Components, discordgo.ActionsRow{Components: []discordgo.MessageComponent{ti}})
		}
		in.modal = &modal
		d.Response.Data = &modal
	}
	in.ackType = wire.Type
	return nil
}

// checkModalValues enforces what Discord's client enforces on a modal:
// only its inputs, required ones filled, lengths within bounds.
func checkModalValues(modal *discordgo.InteractionResponseData, values map[string]string) error {
	inputs := map[string]discordgo.TextInput{}
	for _, row := range modal.Components {
		for _, c := range row.(discordgo.ActionsRow).Components {
			ti := c.(discordgo.TextInput)
			inputs[ti.CustomID] = ti
		}
	}
	for k := range values {
		if _, ok := inputs[k]; !ok {
			return fmt.Errorf("discordfake: modal %q has no input %q", modal.CustomID, k)
		}
	}
	for id, ti := range inputs {
		v := values[id]
		if ti.Required && v == "" {
			return fmt.Errorf("discordfake: modal %q: input %q is required", modal.CustomID, id)
		}
		if v != "" && (runes(v) < ti.MinLength || (ti.MaxLength > 0 && runes(v) > ti.MaxLength)) {
			return fmt.Errorf("discordfake: modal %q: input %q must be %d-%d characters", modal.CustomID, id, ti.MinLength, ti.MaxLength)
		}
	}
	return nil
}

// checkRegistered refuses a slash command Discord would not send: when
// /access is registered for the guild (or globally), sub and every option
// must be in the registration, with allowed choices.
func (f *Fake) checkRegistered(guild, sub string, opts map[string]any) error {
	var cmd *discordgo.ApplicationCommand
	for _, scope := range []string{guild, ""} {
		for _, c := range f.Commands(scope) {
			if c.Name == "access" {
				cmd = &c
				break
			}
		}
		if cmd != nil {
			break
		}
	}
	if cmd == nil {
		return nil
	}
	var subOpt *discordgo.ApplicationCommandOption
	for _, o := range cmd.Options {
		if o.Name == sub && o.Type == discordgo.ApplicationCommandOptionSubCommand {
			subOpt = o
		}
	}
	if subOpt == nil {
		return fmt.Errorf("discordfake: /access has no subcommand %q", sub)
	}
	for name, v := range opts {
		var spec *discordgo.ApplicationCommandOption
		for _, o := range subOpt.Options {
			if o.Name == name {
				spec = o
			}
		}
		if spec == nil {
			return fmt.Errorf("discordfake: /access %s has no option %q", sub, name)
		}
		if s, ok := v.(string); ok {
			if spec.Type != discordgo.ApplicationCommandOptionString {
				return fmt.Errorf("discordfake: /access %s %s is not a string option", sub, name)
			}
			if spec.MaxLength > 0 && runes(s) > spec.MaxLength {
				return fmt.Errorf("discordfake: /access %s %s: %d characters, at most %d", sub, name, runes(s), spec.MaxLength)
			}
			if len(spec.Choices) > 0 && !slices.ContainsFunc(spec.Choices, func(c *discordgo.ApplicationCommandOptionChoice) bool { return c.Value == s }) {
				return fmt.Errorf("discordfake: /access %s %s: %q is not one of the choices", sub, name, s)
			}
		}
	}
	for _, o := range subOpt.Options {
		if _, ok := opts[o.Name]; o.Required && !ok {
			return fmt.Errorf("discordfake: /access %s: option %q is required", sub, o.Name)
		}
	}
	return nil
}
