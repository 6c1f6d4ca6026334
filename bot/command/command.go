// Package command parses the `/access` chat grammar shared by every chat
// platform (DESIGN.md, Chat):
//
//	/access request dba for 2h because ticket #123
//	/access request --resource /prod/node/db-1 --reason "..."
//	/access ls [pending|approved|...]
//	/access show ID
//	/access approve ID [reason]
//	/access deny ID reason
//	/access search db env=prod words
//	/access login CODE
//	/access help [topic]
//
// Parse receives what follows "/access " (the platform strips the command)
// and never touches the network or the store: validation here is syntactic
// (names, resource IDs, request IDs, durations, sizes); the services decide
// everything else. Every error wraps access.ErrInvalid and says what is wrong
// and how to write it instead.
package command

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gatehouse-dev/gatehouse/access"
)

// Limits.
const (
	// MaxTextLen is the longest command text accepted, in bytes.
	MaxTextLen = 4000
	// MaxReasonLen is the longest reason accepted, in bytes (the service's
	// limit too).
	MaxReasonLen = 1024
	// MaxDuration bounds a requested duration; the server's caps are
	// usually far lower, this only catches typos and overflow.
	MaxDuration = 365 * 24 * time.Hour
	// maxCodeLen bounds a login code.
	maxCodeLen = 64
)

// Kind is a subcommand.
type Kind string

// Subcommands.
const (
	KindRequest Kind = "request"
	KindList    Kind = "ls"
	KindShow    Kind = "show"
	KindApprove Kind = "approve"
	KindDeny    Kind = "deny"
	KindSearch  Kind = "search"
	KindLogin   Kind = "login"
	KindHelp    Kind = "help"
)

// kinds in help order.
var kinds = []Kind{KindRequest, KindList, KindShow, KindApprove, KindDeny, KindSearch, KindLogin, KindHelp}

// Valid reports whether k is one of the subcommands.
func (k Kind) Valid() bool {
	for _, x := range kinds {
		if k == x {
			return true
		}
	}
	return false
}

// kindAliases maps what people type to subcommands.
var kindAliases = map[string]Kind{
	"request": KindRequest,
	"ls":      KindList, "list": KindList,
	"show":    KindShow,
	"approve": KindApprove,
	"deny":    KindDeny, "reject": KindDeny,
	"search": KindSearch,
	"login":  KindLogin,
	"help":   KindHelp, "--help": KindHelp, "-h": KindHelp, "?": KindHelp,
}

// Command is one parsed `/access` command.
type Command struct {
	Kind      Kind
	Roles     []string      // request
	Resources []string      // request: canonical resource IDs
	Reason    string        // request, approve, deny
	Duration  time.Duration // request: 0 = server default
	Reviewers []string      // request: --reviewers a,b
	RequestID string        // show, approve, deny: lower-case UUID
	// SearchKind is node, db, app, kube_cluster or windows_desktop; empty
	// searches every kind.
	SearchKind  string
	SearchWords []string
	Labels      map[string]string // search: k=v
	// State filters ls: pending, approved, denied, expired, cancelled,
	// dropped or revoked (lower case, as `access request ls --state`).
	State     string
	Code      string // login
	HelpTopic string // help: a subcommand, or empty
}

// States accepted by ls.
var states = []string{"pending", "approved", "denied", "expired", "cancelled", "dropped", "revoked"}

// searchKinds maps the accepted spellings to inventory kinds.
var searchKinds = map[string]string{
	access.KindNode: access.KindNode, "nodes": access.KindNode,
	access.KindDB: access.KindDB, "dbs": access.KindDB, "database": access.KindDB, "databases": access.KindDB,
	access.KindApp: access.KindApp, "apps": access.KindApp,
	access.KindKubeCluster: access.KindKubeCluster, "kube_clusters": access.KindKubeCluster,
	access.KindWindowsDesktop: access.KindWindowsDesktop, "windows_desktops": access.KindWindowsDesktop,
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{access.ErrInvalid}, args...)...)
}

// Parse parses the text after "/access ". Empty text asks for help.
func Parse(text string) (Command, error) {
	if len(text) > MaxTextLen {
		return Command{}, invalid("command is %d bytes, at most %d", len(text), MaxTextLen)
	}
	if !utf8.ValidString(text) {
		return Command{}, invalid("command is not valid UTF-8")
	}
	p := &parser{lx: lexer{s: text}}
	tok, ok, err := p.lx.next()
	if err != nil {
		return Command{}, err
	}
	if !ok {
		return Command{Kind: KindHelp}, nil
	}
	name := strings.ToLower(tok.val)
	kind, known := kindAliases[name]
	if !known {
		return Command{}, unknownCommand(tok.val)
	}
	p.kind = kind
	var cmd Command
	switch kind {
	case KindRequest:
		cmd, err = p.request()
	case KindList:
		cmd, err = p.list()
	case KindShow:
		cmd, err = p.show()
	case KindApprove, KindDeny:
		cmd, err = p.review()
	case KindSearch:
		cmd, err = p.search()
	case KindLogin:
		cmd, err = p.login()
	case KindHelp:
		cmd, err = p.help()
	}
	if err != nil {
		return Command{}, err
	}
	if len(cmd.Reason) > MaxReasonLen {
		return Command{}, invalid("reason is %d bytes, at most %d", len(cmd.Reason), MaxReasonLen)
	}
	return cmd, nil
}

func unknownCommand(word string) error {
	names := make([]string, 0, len(kindAliases))
	for n := range kindAliases {
		if !strings.HasPrefix(n, "-") && n != "?" {
			names = append(names, n)
		}
	}
	if s := nearest(strings.ToLower(word), names); s != "" {
		return invalid("unknown command %q: did you mean %s?", clip(word), s)
	}
	return invalid("unknown command %q: want one of request, ls, show, approve, deny, search, login, help (for example /access request dba for 2h because ticket #123)", clip(word))
}

// parser holds the lexer and the subcommand being parsed.
type parser struct {
	lx   lexer
	kind Kind
}

// flagName reports whether tok is a flag and returns its name (lower case,
// without dashes) and an inline value after "=".
func flagName(tok token) (name, value string, inline, isFlag bool) {
	if tok.lead {
		return "", "", false, false
	}
	v := tok.val
	switch {
	case strings.HasPrefix(v, "--"):
		v = v[2:]
	case strings.HasPrefix(v, "—"), strings.HasPrefix(v, "–"): // "--" turned into a dash by smart punctuation
		_, size := utf8.DecodeRuneInString(v)
		v = v[size:]
	case strings.HasPrefix(v, "-"):
		v = v[1:]
	default:
		return "", "", false, false
	}
	if v == "" || !(v[0] >= 'a' && v[0] <= 'z' || v[0] >= 'A' && v[0] <= 'Z') {
		return "", "", false, false
	}
	if i := strings.IndexByte(v, '='); i >= 0 {
		return strings.ToLower(v[:i]), v[i+1:], true, true
	}
	return strings.ToLower(v), "", false, true
}

// flag reads one flag whose token is tok: canonical name and value, or
// help=true for --help/-h. known maps accepted spellings to canonical names.
func (p *parser) flag(tok token, known map[string]string) (name, value string, help bool, err error) {
	n, v, inline, _ := flagName(tok)
	if n == "help" || n == "h" {
		return "", "", true, nil
	}
	canon, ok := known[n]
	if !ok {
		return "", "", false, p.unknownFlag(n, known)
	}
	if inline {
		return canon, v, false, nil
	}
	next, ok, err := p.lx.next()
	if err != nil {
		return "", "", false, err
	}
	if !ok {
		return "", "", false, invalid("--%s needs a value: %s", n, flagUsage[canon])
	}
	if _, _, _, isFlag := flagName(next); isFlag {
		return "", "", false, invalid("--%s needs a value, got %s: %s", n, clip(next.val), flagUsage[canon])
	}
	return canon, next.val, false, nil
}

func (p *parser) unknownFlag(n string, known map[string]string) error {
	names := make([]string, 0, len(known))
	for k := range known {
		names = append(names, k)
	}
	sortStrings(names)
	if s := nearest(n, names); s != "" {
		return invalid("unknown flag --%s for %s: did you mean --%s?", clip(n), p.kind, s)
	}
	if len(names) == 0 {
		return invalid("%s takes no flags (see /access help %s)", p.kind, p.kind)
	}
	return invalid("unknown flag --%s for %s: known flags are --%s", clip(n), p.kind, strings.Join(names, ", --"))
}

var flagUsage = map[string]string{
	"roles":     "--roles dba,dba-readonly",
	"resource":  "--resource /prod/node/db-1",
	"reason":    `--reason "ticket #123"`,
	"duration":  "--duration 2h",
	"reviewers": "--reviewers alice,bob",
	"state":     "--state pending",
	"kind":      "--kind db",
}

var requestFlags = map[string]string{
	"roles": "roles", "role": "roles",
	"resource": "resource", "resources": "resource",
	"reason":   "reason",
	"duration": "duration", "for": "duration",
	"reviewers": "reviewers", "reviewer": "reviewers",
}

// request: request [ROLE[,ROLE]...] [/RESOURCE...] [for DURATION] [flags] [because REASON...]
func (p *parser) request() (Command, error) {
	cmd := Command{Kind: KindRequest}
	rolesOpen := true // leading positional words are roles
	reasonSet, durationSet := false, false
	seenRole, seenRes, seenRev := map[string]bool{}, map[string]bool{}, map[string]bool{}
	addRole := func(r string) error {
		if err := access.ValidName(r); err != nil {
			return invalid("role %q is not a role name (want letters, digits, '.', '_', '@' or '-'); put the reason after \"because\"", clip(r))
		}
		if !seenRole[r] {
			seenRole[r] = true
			cmd.Roles = append(cmd.Roles, r)
		}
		return nil
	}
	addResource := func(s string) error {
		id, err := access.ParseResourceID(s)
		if err != nil {
			return err
		}
		c := id.String()
		if !seenRes[c] {
			seenRes[c] = true
			cmd.Resources = append(cmd.Resources, c)
		}
		return nil
	}
	setDuration := func(d time.Duration) error {
		if durationSet {
			return invalid("the duration is given twice")
		}
		durationSet = true
		cmd.Duration = d
		return nil
	}
	setReason := func(r string) error {
		if reasonSet {
			return invalid("the reason is given twice")
		}
		reasonSet = true
		cmd.Reason = r
		return nil
	}
	for {
		tok, ok, err := p.lx.next()
		if err != nil {
			return Command{}, err
		}
		if !ok {
			break
		}
		if _, _, _, isFlag := flagName(tok); isFlag {
			rolesOpen = false
			name, v, help, err := p.flag(tok, requestFlags)
			if err != nil {
				return Command{}, err
			}
			if help {
				return Command{Kind: KindHelp, HelpTopic: string(KindRequest)}, nil
			}
			switch name {
			case "roles":
				n := 0
				for _, r := range splitList(v) {
					if err := addRole(r); err != nil {
						return Command{}, err
					}
					n++
				}
				if n == 0 {
					return Command{}, invalid("--roles needs a role name: --roles dba,dba-readonly")
				}
			case "resource":
				if strings.TrimSpace(v) == "" {
					return Command{}, invalid("--resource needs a resource ID: --resource /prod/node/db-1")
				}
				if err := addResource(strings.TrimSpace(v)); err != nil {
					return Command{}, err
				}
			case "reason":
				v = strings.TrimSpace(v)
				if v == "" {
					return Command{}, invalid(`--reason is empty: --reason "ticket #123"`)
				}
				if err := setReason(v); err != nil {
					return Command{}, err
				}
			case "duration":
				d, err := parseDurationText(v)
				if err != nil {
					return Command{}, err
				}
				if err := setDuration(d); err != nil {
					return Command{}, err
				}
			case "reviewers":
				n := 0
				for _, r := range splitList(v) {
					if err := access.ValidName(r); err != nil {
						return Command{}, invalid("reviewer %q is not a user name", clip(r))
					}
					if !seenRev[r] {
						seenRev[r] = true
						cmd.Reviewers = append(cmd.Reviewers, r)
					}
					n++
				}
				if n == 0 {
					return Command{}, invalid("--reviewers needs user names: --reviewers alice,bob")
				}
			}
			continue
		}
		word := strings.ToLower(tok.val)
		if !tok.quoted && word == "because" {
			reason := reasonText(p.lx.rest())
			if reason == "" {
				return Command{}, invalid(`nothing after "because": /access request dba for 2h because ticket #123`)
			}
			if err := setReason(reason); err != nil {
				return Command{}, err
			}
			break
		}
		if !tok.quoted && word == "for" {
			rolesOpen = false
			d, err := p.naturalDuration()
			if err != nil {
				return Command{}, err
			}
			if err := setDuration(d); err != nil {
				return Command{}, err
			}
			continue
		}
		if rolesOpen && len(cmd.Roles)+len(cmd.Resources) == 0 && isHelpWord(tok) && p.lx.atEnd() {
			return Command{Kind: KindHelp, HelpTopic: string(KindRequest)}, nil
		}
		if !rolesOpen {
			return Command{}, invalid("unexpected %q: roles go right after \"request\" (or in --roles), the reason after \"because\" (or in --reason \"...\")", clip(tok.val))
		}
		if !tok.quoted && (word == "and" || word == "&") && len(cmd.Roles)+len(cmd.Resources) > 0 {
			continue
		}
		for _, w := range splitList(tok.val) {
			if strings.HasPrefix(w, "/") {
				if err := addResource(w); err != nil {
					return Command{}, err
				}
				continue
			}
			if !tok.quoted {
				if _, err := parseDurationText(w); err == nil && looksLikeDuration(w) {
					return Command{}, invalid("%q looks like a duration: write \"for %s\" (or --roles %s if it is a role)", clip(w), w, w)
				}
			}
			if err := addRole(w); err != nil {
				return Command{}, err
			}
		}
	}
	if len(cmd.Roles) == 0 && len(cmd.Resources) == 0 {
		return Command{}, invalid(`request needs a role or a resource: /access request dba for 2h because ticket #123, or /access request --resource /prod/node/db-1 --reason "..."`)
	}
	return cmd, nil
}

// looksLikeDuration: a word starting with a digit that parses as a
// duration ("2h", "1d"); role names like "db2" do not parse.
func looksLikeDuration(w string) bool {
	return w != "" && w[0] >= '0' && w[0] <= '9'
}

// naturalDuration reads "2h", "2 hours", "1 hour 30 minutes", "an hour",
// for "2 hours" after "for".
func (p *parser) naturalDuration() (time.Duration, error) {
	var total float64
	n := 0
	for {
		peek := p.lx.peek(3)
		skip := 0
		if n > 0 && len(peek) > 0 && !peek[0].quoted && strings.EqualFold(peek[0].val, "and") {
			skip = 1
		}
		if len(peek) <= skip {
			break
		}
		var v float64
		used, ok := 0, false
		if peek[skip].lead {
			// A quoted phrase: for "2 hours".
			if d, err := parseDurationText(peek[skip].val); err == nil {
				v, used, ok = float64(d), 1, true
			}
		} else {
			var words []string
			for _, t := range peek[skip:] {
				if t.quoted {
					break
				}
				words = append(words, strings.TrimRight(t.val, ","))
			}
			v, used, ok = durationComponent(words)
		}
		if !ok {
			break
		}
		for range skip + used {
			_, _, _ = p.lx.next()
		}
		total += v
		n++
		if total > float64(MaxDuration) {
			return 0, invalid("duration is longer than %d days", int(MaxDuration/(24*time.Hour)))
		}
	}
	if n == 0 {
		next := p.lx.peek(1)
		if len(next) == 0 {
			return 0, invalid(`"for" needs a duration: for 2h, for 90m, for 2 hours, for 1 day`)
		}
		return 0, invalid("bad duration %q after \"for\": try 2h, 90m, 2 hours, 90 minutes or 1 day", clip(next[0].val))
	}
	if total <= 0 {
		return 0, invalid("duration must be longer than zero")
	}
	return time.Duration(total), nil
}

var unitRe = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?|\.[0-9]+)\s*([a-zA-Z]+)$`)

var units = map[string]time.Duration{
	"s": time.Second, "sec": time.Second, "secs": time.Second, "second": time.Second, "seconds": time.Second,
	"m": time.Minute, "min": time.Minute, "mins": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"h": time.Hour, "hr": time.Hour, "hrs": time.Hour, "hour": time.Hour, "hours": time.Hour,
	"d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour,
	"w": 7 * 24 * time.Hour, "wk": 7 * 24 * time.Hour, "week": 7 * 24 * time.Hour, "weeks": 7 * 24 * time.Hour,
}

// durationComponent reads one component from the start of words: a Go
// duration ("1h30m"), NUMBER+UNIT ("2hours", "1d") or NUMBER UNIT ("2
// hours", "an hour"). It returns nanoseconds and the words used.
func durationComponent(words []string) (float64, int, bool) {
	if len(words) == 0 {
		return 0, 0, false
	}
	w := words[0]
	if d, err := time.ParseDuration(w); err == nil {
		if d < 0 {
			return 0, 0, false
		}
		return float64(d), 1, true
	}
	if m := unitRe.FindStringSubmatch(w); m != nil {
		u, ok := units[strings.ToLower(m[2])]
		if !ok {
			return 0, 0, false
		}
		f, err := strconv.ParseFloat(m[1], 64)
		if err != nil || math.IsInf(f, 0) {
			return 0, 0, false
		}
		return f * float64(u), 1, true
	}
	if len(words) < 2 {
		return 0, 0, false
	}
	var f float64
	switch lw := strings.ToLower(w); lw {
	case "a", "an", "one":
		f = 1
	default:
		if lw == "" || !(lw[0] >= '0' && lw[0] <= '9' || lw[0] == '.') {
			return 0, 0, false
		}
		var err error
		f, err = strconv.ParseFloat(lw, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return 0, 0, false
		}
	}
	u, ok := units[strings.ToLower(words[1])]
	if !ok {
		return 0, 0, false
	}
	return f * float64(u), 2, true
}

// parseDurationText parses a whole duration: "2h", "2 hours", "1 hour 30
// minutes", "1h and 30m".
func parseDurationText(s string) (time.Duration, error) {
	words := strings.Fields(s)
	if len(words) == 0 {
		return 0, invalid(`the duration is empty: try 2h, 90m, "2 hours" or "1 day"`)
	}
	if len(words) == 1 {
		if d, err := time.ParseDuration(words[0]); err == nil && d < 0 {
			return 0, invalid("duration %q is negative", clip(s))
		}
	}
	var total float64
	for i := 0; i < len(words); {
		if i > 0 && strings.EqualFold(words[i], "and") {
			i++
		}
		v, used, ok := durationComponent(words[i:])
		if !ok {
			return 0, invalid("bad duration %q: try 2h, 90m, 2 hours, 90 minutes or 1 day", clip(s))
		}
		total += v
		i += used
		if total > float64(MaxDuration) {
			return 0, invalid("duration %q is longer than %d days", clip(s), int(MaxDuration/(24*time.Hour)))
		}
	}
	if total <= 0 {
		return 0, invalid("duration %q must be longer than zero", clip(s))
	}
	return time.Duration(total), nil
}

// reasonText returns a verbatim reason: the raw text, without the quotes
// if the whole of it is one quoted string.
func reasonText(raw string) string {
	raw = strings.TrimSpace(raw)
	lx := lexer{s: raw}
	tok, ok, err := lx.next()
	if err != nil || !ok || !tok.lead || tok.end != len(raw) {
		return raw
	}
	return strings.TrimSpace(tok.val)
}

// list: ls [STATE] [--state STATE]
func (p *parser) list() (Command, error) {
	cmd := Command{Kind: KindList}
	for {
		tok, ok, err := p.lx.next()
		if err != nil {
			return Command{}, err
		}
		if !ok {
			return cmd, nil
		}
		v := tok.val
		if _, _, _, isFlag := flagName(tok); isFlag {
			_, fv, help, err := p.flag(tok, map[string]string{"state": "state"})
			if err != nil {
				return Command{}, err
			}
			if help {
				return Command{Kind: KindHelp, HelpTopic: string(KindList)}, nil
			}
			v = fv
		} else if isHelpWord(tok) && cmd.State == "" && p.lx.atEnd() {
			return Command{Kind: KindHelp, HelpTopic: string(KindList)}, nil
		}
		if cmd.State != "" {
			return Command{}, invalid("ls takes one state, got %q after %q", clip(v), cmd.State)
		}
		st, err := parseState(v)
		if err != nil {
			return Command{}, err
		}
		cmd.State = st
	}
}

func parseState(v string) (string, error) {
	s := strings.ToLower(strings.TrimSpace(v))
	if s == "canceled" {
		s = "cancelled"
	}
	for _, x := range states {
		if s == x {
			return s, nil
		}
	}
	if n := nearest(s, states); n != "" {
		return "", invalid("unknown state %q: did you mean %s?", clip(v), n)
	}
	return "", invalid("unknown state %q: want one of %s", clip(v), strings.Join(states, ", "))
}

// show: show ID
func (p *parser) show() (Command, error) {
	id, help, err := p.single(KindShow, "request ID", parseRequestID)
	if help != nil || err != nil {
		return orHelp(help, err)
	}
	if id == "" {
		return Command{}, invalid("show needs a request ID: /access show ID")
	}
	return Command{Kind: KindShow, RequestID: id}, nil
}

// single reads the one positional argument of a subcommand (show ID,
// login CODE) through parse. It answers a help request (--help, or "help"
// alone) with the subcommand's help, refuses other flags and a second
// argument, and returns "" when the argument is missing.
func (p *parser) single(kind Kind, what string, parse func(string) (string, error)) (string, *Command, error) {
	var arg string
	for {
		tok, ok, err := p.lx.next()
		if err != nil {
			return "", nil, err
		}
		if !ok {
			return arg, nil, nil
		}
		if _, _, _, isFlag := flagName(tok); isFlag {
			if _, _, help, err := p.flag(tok, nil); err != nil || help {
				if help {
					return "", &Command{Kind: KindHelp, HelpTopic: string(kind)}, nil
				}
				return "", nil, err
			}
		}
		if arg != "" {
			return "", nil, invalid("%s takes one %s, got also %q", kind, what, clip(tok.val))
		}
		if isHelpWord(tok) && p.lx.atEnd() {
			return "", &Command{Kind: KindHelp, HelpTopic: string(kind)}, nil
		}
		if arg, err = parse(tok.val); err != nil {
			return "", nil, err
		}
	}
}

// orHelp returns the help command or the error single produced.
func orHelp(help *Command, err error) (Command, error) {
	if err != nil {
		return Command{}, err
	}
	return *help, nil
}

// review: approve ID [reason...] | deny ID reason...
func (p *parser) review() (Command, error) {
	cmd := Command{Kind: p.kind}
	reasonSet := false
	usage := "/access approve ID [reason]"
	if p.kind == KindDeny {
		usage = "/access deny ID reason"
	}
	for {
		tok, ok, err := p.lx.next()
		if err != nil {
			return Command{}, err
		}
		if !ok {
			break
		}
		if _, _, _, isFlag := flagName(tok); isFlag {
			_, v, help, err := p.flag(tok, map[string]string{"reason": "reason"})
			if err != nil {
				return Command{}, err
			}
			if help {
				return Command{Kind: KindHelp, HelpTopic: string(p.kind)}, nil
			}
			if reasonSet {
				return Command{}, invalid("the reason is given twice")
			}
			reasonSet = true
			cmd.Reason = strings.TrimSpace(v)
			continue
		}
		if cmd.RequestID != "" {
			return Command{}, invalid("unexpected %q: quote a reason given with --reason: --reason \"...\"", clip(tok.val))
		}
		if isHelpWord(tok) && p.lx.atEnd() {
			return Command{Kind: KindHelp, HelpTopic: string(p.kind)}, nil
		}
		id, err := parseRequestID(tok.val)
		if err != nil {
			return Command{}, fmt.Errorf("%w (%s)", err, usage)
		}
		cmd.RequestID = id
		// The rest is the reason, verbatim, unless it starts with a flag.
		next := p.lx.peek(1)
		if len(next) == 0 {
			break
		}
		if _, _, _, isFlag := flagName(next[0]); isFlag {
			continue
		}
		if reasonSet {
			return Command{}, invalid("the reason is given twice")
		}
		rest := p.lx.rest()
		if len(rest) >= len("because") && strings.EqualFold(rest[:len("because")], "because") &&
			(len(rest) == len("because") || unicode.IsSpace(rune(rest[len("because")]))) {
			rest = rest[len("because"):]
		}
		cmd.Reason = reasonText(rest)
		reasonSet = true
		break
	}
	if cmd.RequestID == "" {
		return Command{}, invalid("%s needs a request ID: %s", p.kind, usage)
	}
	if p.kind == KindDeny && cmd.Reason == "" {
		return Command{}, invalid("deny needs a reason: %s", usage)
	}
	return cmd, nil
}

// search: search [KIND] [k=v...] [words...] [--kind KIND]
func (p *parser) search() (Command, error) {
	cmd := Command{Kind: KindSearch}
	first := true
	for {
		tok, ok, err := p.lx.next()
		if err != nil {
			return Command{}, err
		}
		if !ok {
			return cmd, nil
		}
		wasFirst := first
		first = false
		if _, _, _, isFlag := flagName(tok); isFlag {
			_, v, help, err := p.flag(tok, map[string]string{"kind": "kind"})
			if err != nil {
				return Command{}, err
			}
			if help {
				return Command{Kind: KindHelp, HelpTopic: string(KindSearch)}, nil
			}
			k, ok := searchKinds[strings.ToLower(strings.ReplaceAll(strings.TrimSpace(v), "-", "_"))]
			if !ok {
				return Command{}, invalid("unknown kind %q: want node, db, app, kube_cluster or windows_desktop", clip(v))
			}
			if cmd.SearchKind != "" && cmd.SearchKind != k {
				return Command{}, invalid("search takes one kind, got %s and %s", cmd.SearchKind, k)
			}
			cmd.SearchKind = k
			continue
		}
		if wasFirst && !tok.lead {
			if k, ok := searchKinds[strings.ToLower(strings.ReplaceAll(tok.val, "-", "_"))]; ok {
				cmd.SearchKind = k
				continue
			}
			if isHelpWord(tok) && p.lx.atEnd() {
				return Command{Kind: KindHelp, HelpTopic: string(KindSearch)}, nil
			}
		}
		if i := strings.IndexByte(tok.val, '='); i >= 0 && !tok.lead {
			k, v := strings.TrimSpace(tok.val[:i]), strings.TrimSpace(tok.val[i+1:])
			if k == "" {
				return Command{}, invalid("label %q has no key: write key=value, e.g. env=prod", clip(tok.val))
			}
			if v == "" {
				return Command{}, invalid("label %q has no value: write key=value, e.g. env=prod", clip(tok.val))
			}
			if cmd.Labels == nil {
				cmd.Labels = map[string]string{}
			}
			if old, dup := cmd.Labels[k]; dup && old != v {
				return Command{}, invalid("label %q is given twice (%q and %q)", clip(k), clip(old), clip(v))
			}
			cmd.Labels[k] = v
			continue
		}
		if w := strings.TrimSpace(tok.val); w != "" {
			cmd.SearchWords = append(cmd.SearchWords, w)
		}
	}
}

var codeRe = regexp.MustCompile(`^[A-Za-z0-9-]+$`)

// login: login CODE
func (p *parser) login() (Command, error) {
	code, help, err := p.single(KindLogin, "code", func(v string) (string, error) {
		if len(v) > maxCodeLen || !codeRe.MatchString(v) {
			return "", invalid("%q is not a login code: copy the code that `access login --user NAME` printed", clip(v))
		}
		return v, nil
	})
	if help != nil || err != nil {
		return orHelp(help, err)
	}
	if code == "" {
		return Command{}, invalid("login needs the code that `access login --user NAME` printed: /access login CODE")
	}
	return Command{Kind: KindLogin, Code: code}, nil
}

// help: help [TOPIC]
func (p *parser) help() (Command, error) {
	cmd := Command{Kind: KindHelp}
	tok, ok, err := p.lx.next()
	if err != nil || !ok {
		return cmd, err
	}
	k, known := kindAliases[strings.ToLower(tok.val)]
	if !known {
		if s := nearest(strings.ToLower(tok.val), helpTopics); s != "" {
			return Command{}, invalid("no help on %q: did you mean %s?", clip(tok.val), s)
		}
		return Command{}, invalid("no help on %q: topics are %s", clip(tok.val), strings.Join(helpTopics, ", "))
	}
	if !p.lx.atEnd() {
		return Command{}, invalid("help takes one topic: /access help request")
	}
	if k != KindHelp {
		cmd.HelpTopic = string(k)
	}
	return cmd, nil
}

var helpTopics = []string{"request", "ls", "show", "approve", "deny", "search", "login"}

func isHelpWord(tok token) bool {
	return !tok.lead && strings.EqualFold(tok.val, "help")
}

// parseRequestID accepts a UUID in any case and returns it in lower case.
func parseRequestID(s string) (string, error) {
	if !isUUID(s) {
		return "", invalid("%q is not a request ID: want a UUID like 2f1c6c0e-6a51-4c1e-9d9e-0b6a1b7c9e42 (see /access ls)", clip(s))
	}
	return strings.ToLower(s), nil
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// splitList splits "a,b, c" into names, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// clip shortens user text quoted back in an error.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// nearest returns the candidate closest to word (edit distance at most 2,
// or word is a prefix of exactly one), or "".
func nearest(word string, candidates []string) string {
	if word == "" || len(word) > 64 {
		return ""
	}
	best, bestD := "", 3
	var prefix []string
	for _, c := range candidates {
		if len(word) >= 2 && strings.HasPrefix(c, word) {
			prefix = append(prefix, c)
		}
		d := levenshtein(word, c)
		if d < bestD || d == bestD && best != "" && c < best {
			best, bestD = c, d
		}
	}
	if best != "" && bestD < len([]rune(word)) {
		return best
	}
	if len(prefix) == 1 {
		return prefix[0]
	}
	return ""
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

func sortStrings(xs []string) {
	for i := 1; i < len(xs); i++ {
		for j := i; j > 0 && xs[j] < xs[j-1]; j-- {
			xs[j], xs[j-1] = xs[j-1], xs[j]
		}
	}
}

// token is one shell-like word.
type token struct {
	val        string
	start, end int  // byte offsets in the lexer's text
	quoted     bool // some part was quoted
	lead       bool // the word began with a quote
}

// lexer splits text into words lazily, so that a verbatim tail (the reason
// after "because") is never tokenised: apostrophes in "don't" stay apostrophes.
//
// Rules: white space separates words. Double quotes (", “ ”, „) group and
// allow backslash escapes of quotes and backslashes; elsewhere a backslash is
// kept (resource regexes use them). Single quotes (', ‘ ’) and backticks
// group too, but only at the start of a word or after "=", and a single
// quote closes only before white space, ",", or the end, so "it's" is a word.
type lexer struct {
	s   string
	pos int
}

func isDoubleQuote(r rune) bool {
	switch r {
	case '"', '\u201c', '\u201d', '\u201e', '\u201f':
		return true
	}
	return false
}

func isSingleQuote(r rune) bool {
	switch r {
	case '\'', '\u2018', '\u2019', '\u201a', '\u201b':
		return true
	}
	return false
}

func (l *lexer) skipSpace() {
	for l.pos < len(l.s) {
		r, size := utf8.DecodeRuneInString(l.s[l.pos:])
		if !unicode.IsSpace(r) {
			return
		}
		l.pos += size
	}
}

func (l *lexer) atEnd() bool {
	save := l.pos
	l.skipSpace()
	end := l.pos >= len(l.s)
	l.pos = save
	return end
}

// rest returns the untokenised remainder and consumes it.
func (l *lexer) rest() string {
	r := strings.TrimSpace(l.s[l.pos:])
	l.pos = len(l.s)
	return r
}

// peek returns up to n next tokens without consuming them; it stops at the
// first error.
func (l *lexer) peek(n int) []token {
	cp := *l
	var out []token
	for range n {
		t, ok, err := cp.next()
		if err != nil || !ok {
			break
		}
		out = append(out, t)
	}
	return out
}

func (l *lexer) next() (token, bool, error) {
	l.skipSpace()
	if l.pos >= len(l.s) {
		return token{}, false, nil
	}
	start := l.pos
	tok := token{start: start}
	var b strings.Builder
word:
	for l.pos < len(l.s) {
		r, size := utf8.DecodeRuneInString(l.s[l.pos:])
		if unicode.IsSpace(r) {
			break
		}
		groupStart := l.pos == start || l.s[l.pos-1] == '='
		switch {
		case isDoubleQuote(r):
			if l.pos == start {
				tok.lead = true
			}
			tok.quoted = true
			open := l.pos
			l.pos += size
			for l.pos < len(l.s) {
				r2, sz := utf8.DecodeRuneInString(l.s[l.pos:])
				if r2 == '\\' && l.pos+1 < len(l.s) {
					r3, sz3 := utf8.DecodeRuneInString(l.s[l.pos+1:])
					if isDoubleQuote(r3) || r3 == '\\' {
						b.WriteRune(r3)
						l.pos += 1 + sz3
						continue
					}
					b.WriteByte('\\')
					l.pos++
					continue
				}
				l.pos += sz
				if isDoubleQuote(r2) {
					continue word
				}
				b.WriteRune(r2)
			}
			return token{}, false, unterminated(l.s, open)
		case groupStart && (isSingleQuote(r) || r == '`'):
			if l.pos == start {
				tok.lead = true
			}
			tok.quoted = true
			open := l.pos
			l.pos += size
			for l.pos < len(l.s) {
				r2, sz := utf8.DecodeRuneInString(l.s[l.pos:])
				l.pos += sz
				if r == '`' && r2 == '`' {
					continue word
				}
				if r != '`' && isSingleQuote(r2) {
					if l.pos >= len(l.s) || l.s[l.pos] == ',' {
						continue word
					}
					if r3, _ := utf8.DecodeRuneInString(l.s[l.pos:]); unicode.IsSpace(r3) {
						continue word
					}
				}
				b.WriteRune(r2)
			}
			return token{}, false, unterminated(l.s, open)
		default:
			b.WriteRune(r)
			l.pos += size
		}
	}
	tok.end = l.pos
	tok.val = b.String()
	return tok, true, nil
}

func unterminated(s string, open int) error {
	r, _ := utf8.DecodeRuneInString(s[open:])
	return invalid("unterminated quote: the %c before %q is never closed", r, clip(s[open+utf8.RuneLen(r):]))
}

// Help returns concise usage for topic (a subcommand, or "" for all).
func Help(topic string) string {
	k, ok := kindAliases[strings.ToLower(strings.TrimSpace(topic))]
	if !ok || k == KindHelp {
		var b strings.Builder
		if t := strings.TrimSpace(topic); t != "" && !ok {
			fmt.Fprintf(&b, "No help on %q.\n\n", clip(t))
		}
		b.WriteString("Gatehouse: ask for temporary access, review requests.\n\n")
		for _, k := range kinds {
			fmt.Fprintf(&b, "  %s\n", helpTexts[k].usage)
		}
		b.WriteString("\nExamples:\n")
		b.WriteString("  /access request dba for 2h because ticket #123\n")
		b.WriteString("  /access request --resource /prod/node/db-1 --reason \"restore backup\"\n")
		b.WriteString("  /access approve 2f1c6c0e-6a51-4c1e-9d9e-0b6a1b7c9e42 looks good\n")
		b.WriteString("\nMore: /access help request (or ls, show, approve, deny, search, login)")
		return b.String()
	}
	h := helpTexts[k]
	return h.usage + "\n\n" + h.body
}

var helpTexts = map[Kind]struct{ usage, body string }{
	KindRequest: {
		"/access request ROLE[,ROLE...] [for DURATION] [because REASON...]",
		`Ask for roles or resources for a while.
  roles come right after "request"; a word starting with "/" is a resource ID
  "for" takes 2h, 90m, 1h30m, "2 hours", "90 minutes", "1 day"
  everything after "because" is the reason, word for word
Flags: --roles a,b  --resource /CLUSTER/KIND/NAME (repeatable)  --reason "..."
       --duration 2h (or --for)  --reviewers alice,bob
Examples:
  /access request dba for 2h because ticket #123
  /access request dba, dba-readonly because migrating orders
  /access request --resource /prod/node/db-1 --resource /prod/db/orders --reason "incident 42"`,
	},
	KindList: {
		"/access ls [pending|approved|denied|expired|cancelled|dropped|revoked]",
		`List access requests, optionally in one state.
Examples:
  /access ls
  /access ls pending
  /access ls --state approved`,
	},
	KindShow: {
		"/access show ID",
		`Show one request: who, what, why, state and review progress.
Example:
  /access show 2f1c6c0e-6a51-4c1e-9d9e-0b6a1b7c9e42`,
	},
	KindApprove: {
		"/access approve ID [reason...]",
		`Approve a request; the rest of the line is the reason.
Example:
  /access approve 2f1c6c0e-6a51-4c1e-9d9e-0b6a1b7c9e42 checked the ticket`,
	},
	KindDeny: {
		"/access deny ID reason...",
		`Deny a request; a reason is required.
Example:
  /access deny 2f1c6c0e-6a51-4c1e-9d9e-0b6a1b7c9e42 use the read-only role`,
	},
	KindSearch: {
		"/access search [node|db|app|kube_cluster|windows_desktop] [key=value...] [words...]",
		`Find resources you can request.
Examples:
  /access search db env=prod
  /access search nodes team=payments web`,
	},
	KindLogin: {
		"/access login CODE",
		"Confirm a device login started with `access login --user NAME`.\nExample:\n  /access login ABCD-1234",
	},
	KindHelp: {
		"/access help [command]",
		"Show this help, or help on one command.",
	},
}
