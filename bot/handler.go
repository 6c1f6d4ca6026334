package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/bot/command"
	"github.com/gatehouse-dev/gatehouse/service"
)

// Limits of chat answers, to stay inside every platform's message size.
const (
	maxListed   = 10
	maxSearched = 20
)

// Config is the core's view of accessd.yaml's chat settings.
type Config struct {
	// PublicURL makes the links on cards.
	PublicURL string
	// Workspaces holds, per platform, the Slack team ids, Discord guild
	// ids or Mattermost team ids whose users may map to Gatehouse users. A
	// platform without any maps nobody.
	Workspaces map[string][]string
	// EmailMapping maps a chat user by e-mail when no user carries the
	// platform id (identity.chat_email_mapping); off by default because
	// chat e-mail addresses are often not verified.
	EmailMapping bool
}

// Bot implements Handler over the same services the CLI uses: the same
// rules, the same audit events, with the platform as the source.
type Bot struct {
	svc *service.Service
	cfg Config
	log *slog.Logger
}

// New returns the bot core.
func New(svc *service.Service, cfg Config, log *slog.Logger) *Bot {
	if log == nil {
		log = slog.Default()
	}
	return &Bot{svc: svc, cfg: cfg, log: log}
}

var _ Handler = (*Bot)(nil)

// ErrUnmapped: the chat user maps to no Gatehouse user.
var ErrUnmapped = errors.New("chat user is not linked to a Gatehouse user")

// caller maps the chat user to a Gatehouse user and loads it as for the
// CLI (locks and role changes apply at once). Only users of configured
// workspaces map to anyone.
func (b *Bot) caller(ctx context.Context, u ChatUser) (service.Caller, error) {
	if u.ID == "" || !slices.Contains(b.cfg.Workspaces[u.Platform], u.Workspace) {
		return service.Caller{}, fmt.Errorf("%w: %s workspace %q is not connected to Gatehouse", ErrUnmapped, u.Platform, u.Workspace)
	}
	name, err := b.svc.Store().ChatUser(ctx, u.Platform, u.ID)
	if errors.Is(err, access.ErrNotFound) && b.cfg.EmailMapping && u.Email != "" {
		name, err = b.byEmail(ctx, u.Email)
	}
	if errors.Is(err, access.ErrNotFound) {
		return service.Caller{}, fmt.Errorf("%w: ask a Gatehouse admin to set the trait %s: %s on your user", ErrUnmapped, TraitKey(u.Platform), u.ID)
	}
	if err != nil {
		return service.Caller{}, err
	}
	return b.svc.Caller(ctx, name, u.Platform)
}

// byEmail finds the one user whose email trait is email.
func (b *Bot) byEmail(ctx context.Context, email string) (string, error) {
	users, err := b.svc.Store().ListUsers(ctx)
	if err != nil {
		return "", err
	}
	var found []string
	for _, u := range users {
		for _, e := range u.Spec.Traits["email"] {
			if strings.EqualFold(e, email) {
				found = append(found, u.Metadata.Name)
			}
		}
	}
	if len(found) != 1 {
		return "", access.ErrNotFound // none, or ambiguous: map nobody
	}
	return found[0], nil
}

// Command implements Handler.
func (b *Bot) Command(ctx context.Context, u ChatUser, text string) Reply {
	cmd, err := command.Parse(text)
	if err != nil {
		return errorReply(err)
	}
	if cmd.Kind == command.KindHelp {
		return Reply{Text: command.Help(cmd.HelpTopic)}
	}
	c, err := b.caller(ctx, u)
	if err != nil {
		return b.refuse(u, "command", err)
	}
	switch cmd.Kind {
	case command.KindRequest:
		return b.request(ctx, c, cmd)
	case command.KindList:
		return b.list(ctx, c, cmd)
	case command.KindShow:
		r, err := b.svc.GetRequest(ctx, c, cmd.RequestID)
		if err != nil {
			return errorReply(err)
		}
		card := CardFor(r, b.cfg.PublicURL)
		return Reply{Card: &card}
	case command.KindApprove:
		return b.review(ctx, c, cmd.RequestID, access.VerdictApprove, cmd.Reason)
	case command.KindDeny:
		return b.review(ctx, c, cmd.RequestID, access.VerdictDeny, cmd.Reason)
	case command.KindSearch:
		return b.search(ctx, c, cmd)
	case command.KindLogin:
		d, err := b.svc.DeviceLoginPrompt(ctx, c, cmd.Code)
		if err != nil {
			return errorReply(err)
		}
		return Reply{Text: "Confirm only if you started this login yourself, just now.", Login: &LoginPrompt{
			Code: d.Code, User: d.User, Address: d.Address, KeyHash: d.KeyHash, Expires: d.Expires}}
	}
	return errorReply(fmt.Errorf("%w: unknown command %q", access.ErrInvalid, cmd.Kind))
}

func (b *Bot) request(ctx context.Context, c service.Caller, cmd command.Command) Reply {
	r, err := b.svc.CreateRequest(ctx, c, service.CreateRequestInput{
		Roles: cmd.Roles, Resources: cmd.Resources, Reason: cmd.Reason, Reviewers: cmd.Reviewers, Duration: cmd.Duration,
	})
	if err != nil {
		return errorReply(err)
	}
	card := CardFor(r, b.cfg.PublicURL)
	text := fmt.Sprintf("Request `%s` created: %s.", r.ID, r.State)
	switch r.State {
	case access.StatePending:
		text = fmt.Sprintf("Request `%s` created; waiting for approvals (%s). You will get a direct message when it is decided.", r.ID, r.ProgressSummary())
	case access.StateApproved:
		text = fmt.Sprintf("Request `%s` approved by policy. Use it: `access login --request-id %s`", r.ID, r.ID)
	case access.StateDenied:
		text = fmt.Sprintf("Request `%s` denied by policy: %s", r.ID, r.StateReason)
	}
	return Reply{Text: text, Card: &card}
}

func (b *Bot) list(ctx context.Context, c service.Caller, cmd command.Command) Reply {
	f := service.RequestFilter{State: access.State(strings.ToUpper(cmd.State))}
	rs, err := b.svc.ListRequests(ctx, c, f)
	if err != nil {
		return errorReply(err)
	}
	if len(rs) == 0 {
		return Reply{Text: "No requests."}
	}
	// Newest first; the CLI has the full list.
	slices.Reverse(rs)
	var lines []string
	var cards []Card
	for i, r := range rs {
		if i == maxListed {
			lines = append(lines, fmt.Sprintf("… and %d more: `access request ls`", len(rs)-maxListed))
			break
		}
		card := CardFor(r, b.cfg.PublicURL)
		cards = append(cards, card)
		lines = append(lines, fmt.Sprintf("`%s` %s %s — %s", r.ID, r.User, card.What(), r.State))
	}
	return Reply{Text: strings.Join(lines, "\n"), Cards: cards}
}

func (b *Bot) search(ctx context.Context, c service.Caller, cmd command.Command) Reply {
	kinds := []string{access.KindNode, access.KindDB, access.KindApp, access.KindKubeCluster, access.KindWindowsDesktop}
	if cmd.SearchKind != "" {
		kinds = []string{cmd.SearchKind}
	}
	var lines []string
	total := 0
	for _, k := range kinds {
		res, err := b.svc.Search(ctx, c, service.SearchInput{Kind: k, Query: strings.Join(cmd.SearchWords, " "), Labels: cmd.Labels, Limit: maxSearched + 1})
		if err != nil {
			return errorReply(err)
		}
		for _, r := range res {
			total++
			if total <= maxSearched {
				lines = append(lines, fmt.Sprintf("`%s` %s", r.ID, labelText(r.Labels)))
			}
		}
	}
	if total == 0 {
		return Reply{Text: "Nothing found that you could request."}
	}
	if total > maxSearched {
		lines = append(lines, "… more: narrow the search, or `access request search`")
	}
	lines = append(lines, "Request one: `/access request --resource ID --reason \"...\"`")
	return Reply{Text: strings.Join(lines, "\n")}
}

func labelText(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+l[k])
	}
	return strings.Join(parts, " ")
}

// Review implements Handler: a click is a review by exactly the one
// Gatehouse user the clicker maps to, checked as for the CLI.
func (b *Bot) Review(ctx context.Context, u ChatUser, requestID string, verdict access.Verdict, reason string) Reply {
	c, err := b.caller(ctx, u)
	if err != nil {
		return b.refuse(u, "review", err)
	}
	return b.review(ctx, c, requestID, verdict, reason)
}

func (b *Bot) review(ctx context.Context, c service.Caller, id string, verdict access.Verdict, reason string) Reply {
	if verdict == access.VerdictDeny && strings.TrimSpace(reason) == "" {
		return errorReply(fmt.Errorf("%w: a denial needs a reason", access.ErrInvalid))
	}
	r, err := b.svc.Review(ctx, c, strings.ToLower(strings.TrimSpace(id)), service.ReviewInput{Verdict: verdict, Reason: reason})
	if err != nil {
		return errorReply(err)
	}
	card := CardFor(r, b.cfg.PublicURL)
	text := fmt.Sprintf("%s `%s`. Now %s", ReviewVerb(verdict), r.ID, r.State)
	if p := r.ProgressSummary(); r.State == access.StatePending && p != "" {
		text += " (" + p + ")"
	}
	return Reply{Text: text + ".", Card: &card}
}

// ConfirmLogin implements Handler.
func (b *Bot) ConfirmLogin(ctx context.Context, u ChatUser, code string) Reply {
	c, err := b.caller(ctx, u)
	if err != nil {
		return b.refuse(u, "login", err)
	}
	d, err := b.svc.ConfirmDeviceLogin(ctx, c, code, u.Platform+":"+u.ID)
	if err != nil {
		return errorReply(err)
	}
	return Reply{Text: fmt.Sprintf("Confirmed. The device at %s is now logged in as %s.", d.Address, d.User)}
}

// refuse answers an unmapped or refused chat user privately and logs it.
func (b *Bot) refuse(u ChatUser, what string, err error) Reply {
	b.log.Info("chat interaction refused", "platform", u.Platform, "workspace", u.Workspace, "user_id", u.ID, "user", u.Name, "what", what, "err", err)
	if errors.Is(err, ErrUnmapped) {
		return Reply{Error: true, Text: "Your " + u.Platform + " account is not linked to a Gatehouse user, so nothing was done. " + strings.TrimPrefix(err.Error(), ErrUnmapped.Error()+": ")}
	}
	return errorReply(err)
}

// errorReply words an error for the chat user. The sentinel prefixes the
// CLI shows ("forbidden: ...") are kept: they say what kind of refusal it is.
func errorReply(err error) Reply {
	msg := err.Error()
	if errors.Is(err, access.ErrUnavailable) {
		msg = "Gatehouse cannot reach its storage right now; nothing was done. Try again in a minute."
	}
	return Reply{Error: true, Text: msg}
}
