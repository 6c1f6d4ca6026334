package command

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
)

const id = "2f1c6c0e-6a51-4c1e-9d9e-0b6a1b7c9e42"

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want Command
	}{
		// request: natural forms
		{"request dba for 2h because ticket #123", Command{Kind: KindRequest, Roles: []string{"dba"}, Duration: 2 * time.Hour, Reason: "ticket #123"}},
		{"  request   dba   ", Command{Kind: KindRequest, Roles: []string{"dba"}}},
		{"REQUEST dba", Command{Kind: KindRequest, Roles: []string{"dba"}}},
		{"request dba, dba-readonly because migrating orders", Command{Kind: KindRequest, Roles: []string{"dba", "dba-readonly"}, Reason: "migrating orders"}},
		{"request dba,dba-readonly,dba", Command{Kind: KindRequest, Roles: []string{"dba", "dba-readonly"}}},
		{"request dba and auditor", Command{Kind: KindRequest, Roles: []string{"dba", "auditor"}}},
		{"request dba for 2 hours", Command{Kind: KindRequest, Roles: []string{"dba"}, Duration: 2 * time.Hour}},
		{"request dba for 90 minutes because x", Command{Kind: KindRequest, Roles: []string{"dba"}, Duration: 90 * time.Minute, Reason: "x"}},
		{"request dba for 1 day", Command{Kind: KindRequest, Roles: []string{"dba"}, Duration: 24 * time.Hour}},
		{"request dba for 1d", Command{Kind: KindRequest, Roles: []string{"dba"}, Duration: 24 * time.Hour}},
		{"request dba for an hour", Command{Kind: KindRequest, Roles: []string{"dba"}, Duration: time.Hour}},
		{"request dba for 1h30m", Command{Kind: KindRequest, Roles: []string{"dba"}, Duration: 90 * time.Minute}},
		{"request dba for 1.5h", Command{Kind: KindRequest, Roles: []string{"dba"}, Duration: 90 * time.Minute}},
		{"request dba for 1 hour 30 minutes", Command{Kind: KindRequest, Roles: []string{"dba"}, Duration: 90 * time.Minute}},
		{"request dba for 1 hour and 30 minutes because x", Command{Kind: KindRequest, Roles: []string{"dba"}, Duration: 90 * time.Minute, Reason: "x"}},
		{"request dba for 2hours", Command{Kind: KindRequest, Roles: []string{"dba"}, Duration: 2 * time.Hour}},
		{"request dba for 2 HRS", Command{Kind: KindRequest, Roles: []string{"dba"}, Duration: 2 * time.Hour}},
		{`request dba for "2 hours" because x`, Command{Kind: KindRequest, Roles: []string{"dba"}, Duration: 2 * time.Hour, Reason: "x"}},
		{"request dba for 2h, because x", Command{Kind: KindRequest, Roles: []string{"dba"}, Duration: 2 * time.Hour, Reason: "x"}},
		{"request dba because I don't have it, \"really\" --reason x", Command{Kind: KindRequest, Roles: []string{"dba"}, Reason: `I don't have it, "really" --reason x`}},
		{"request dba because   line one\nline two  ", Command{Kind: KindRequest, Roles: []string{"dba"}, Reason: "line one\nline two"}},
		{`request dba because "quoted whole"`, Command{Kind: KindRequest, Roles: []string{"dba"}, Reason: "quoted whole"}},
		{"request dba BECAUSE x", Command{Kind: KindRequest, Roles: []string{"dba"}, Reason: "x"}},
		{"request /prod/node/db-1 for 1h because x", Command{Kind: KindRequest, Resources: []string{"/prod/node/db-1"}, Duration: time.Hour, Reason: "x"}},
		{"request dba /prod/db/orders", Command{Kind: KindRequest, Roles: []string{"dba"}, Resources: []string{"/prod/db/orders"}}},
		// request: flags
		{`request --resource /prod/node/db-1 --reason "restore backup"`, Command{Kind: KindRequest, Resources: []string{"/prod/node/db-1"}, Reason: "restore backup"}},
		{`request --resource /prod/node/db-1 --resource /prod/pod/main/default/nginx-* --resource /prod/node/db-1`, Command{Kind: KindRequest, Resources: []string{"/prod/node/db-1", "/prod/pod/main/default/nginx-*"}}},
		{`request --resource "/prod/node/^db-\d+$"`, Command{Kind: KindRequest, Resources: []string{`/prod/node/^db-\d+$`}}},
		{`request --resource /prod/node/^db-\d+$`, Command{Kind: KindRequest, Resources: []string{`/prod/node/^db-\d+$`}}},
		{"request --roles dba,auditor --duration 30m --reviewers alice,bob", Command{Kind: KindRequest, Roles: []string{"dba", "auditor"}, Duration: 30 * time.Minute, Reviewers: []string{"alice", "bob"}}},
		{"request --role dba --role auditor --reviewer alice --reviewer alice", Command{Kind: KindRequest, Roles: []string{"dba", "auditor"}, Reviewers: []string{"alice"}}},
		{"request dba --for 2h", Command{Kind: KindRequest, Roles: []string{"dba"}, Duration: 2 * time.Hour}},
		{`request dba --duration "1 hour 30 minutes"`, Command{Kind: KindRequest, Roles: []string{"dba"}, Duration: 90 * time.Minute}},
		{`request dba --duration=2h --reason="a b"`, Command{Kind: KindRequest, Roles: []string{"dba"}, Duration: 2 * time.Hour, Reason: "a b"}},
		{`request dba --reason='a b'`, Command{Kind: KindRequest, Roles: []string{"dba"}, Reason: "a b"}},
		{`request dba --REASON x`, Command{Kind: KindRequest, Roles: []string{"dba"}, Reason: "x"}},
		{"request dba —reason x", Command{Kind: KindRequest, Roles: []string{"dba"}, Reason: "x"}},
		{"request dba --reason “smart quoted reason”", Command{Kind: KindRequest, Roles: []string{"dba"}, Reason: "smart quoted reason"}},
		{"request dba --reason ‘single smart’", Command{Kind: KindRequest, Roles: []string{"dba"}, Reason: "single smart"}},
		{"request dba --reason 'it's fine'", Command{Kind: KindRequest, Roles: []string{"dba"}, Reason: "it's fine"}},
		{`request dba --reason "say \"hi\" \\ \d"`, Command{Kind: KindRequest, Roles: []string{"dba"}, Reason: `say "hi" \ \d`}},
		{"request dba --reason `code`", Command{Kind: KindRequest, Roles: []string{"dba"}, Reason: "code"}},
		{`request "for"`, Command{Kind: KindRequest, Roles: []string{"for"}}},
		{"request dba for 2h --reason x", Command{Kind: KindRequest, Roles: []string{"dba"}, Duration: 2 * time.Hour, Reason: "x"}},
		{"request --help", Command{Kind: KindHelp, HelpTopic: "request"}},
		{"request help", Command{Kind: KindHelp, HelpTopic: "request"}},
		// ls
		{"ls", Command{Kind: KindList}},
		{"list", Command{Kind: KindList}},
		{"ls pending", Command{Kind: KindList, State: "pending"}},
		{"ls PENDING", Command{Kind: KindList, State: "pending"}},
		{"ls canceled", Command{Kind: KindList, State: "cancelled"}},
		{"ls --state approved", Command{Kind: KindList, State: "approved"}},
		{"ls --state=revoked", Command{Kind: KindList, State: "revoked"}},
		{"ls -h", Command{Kind: KindHelp, HelpTopic: "ls"}},
		// show
		{"show " + id, Command{Kind: KindShow, RequestID: id}},
		{"show " + strings.ToUpper(id), Command{Kind: KindShow, RequestID: id}},
		{"show `" + id + "`", Command{Kind: KindShow, RequestID: id}},
		// approve / deny
		{"approve " + id, Command{Kind: KindApprove, RequestID: id}},
		{"approve " + id + " looks good, don't forget", Command{Kind: KindApprove, RequestID: id, Reason: "looks good, don't forget"}},
		{"approve " + id + " because checked", Command{Kind: KindApprove, RequestID: id, Reason: "checked"}},
		{"approve " + id + ` "quoted reason"`, Command{Kind: KindApprove, RequestID: id, Reason: "quoted reason"}},
		{"approve " + id + ` --reason "ok then"`, Command{Kind: KindApprove, RequestID: id, Reason: "ok then"}},
		{"approve --reason ok " + id, Command{Kind: KindApprove, RequestID: id, Reason: "ok"}},
		{"deny " + id + " use the read-only role", Command{Kind: KindDeny, RequestID: id, Reason: "use the read-only role"}},
		{"reject " + id + " no", Command{Kind: KindDeny, RequestID: id, Reason: "no"}},
		{"deny " + id + " --reason no", Command{Kind: KindDeny, RequestID: id, Reason: "no"}},
		// search
		{"search", Command{Kind: KindSearch}},
		{"search db env=prod", Command{Kind: KindSearch, SearchKind: "db", Labels: map[string]string{"env": "prod"}}},
		{"search databases env=prod team=data orders main", Command{Kind: KindSearch, SearchKind: "db", Labels: map[string]string{"env": "prod", "team": "data"}, SearchWords: []string{"orders", "main"}}},
		{"search nodes web", Command{Kind: KindSearch, SearchKind: "node", SearchWords: []string{"web"}}},
		{"search kube-clusters", Command{Kind: KindSearch, SearchKind: "kube_cluster"}},
		{"search windows_desktop", Command{Kind: KindSearch, SearchKind: "windows_desktop"}},
		{"search web db", Command{Kind: KindSearch, SearchWords: []string{"web", "db"}}},
		{`search "db"`, Command{Kind: KindSearch, SearchWords: []string{"db"}}},
		{`search --kind app 'team=a b'`, Command{Kind: KindSearch, SearchKind: "app", SearchWords: []string{"team=a b"}}},
		{`search team="a b"`, Command{Kind: KindSearch, Labels: map[string]string{"team": "a b"}}},
		// login
		{"login ABCD-1234", Command{Kind: KindLogin, Code: "ABCD-1234"}},
		// help
		{"", Command{Kind: KindHelp}},
		{"   ", Command{Kind: KindHelp}},
		{"help", Command{Kind: KindHelp}},
		{"--help", Command{Kind: KindHelp}},
		{"help approve", Command{Kind: KindHelp, HelpTopic: "approve"}},
		{"help list", Command{Kind: KindHelp, HelpTopic: "ls"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Parse(%q)\n got  %+v\n want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	long := strings.Repeat("x", MaxReasonLen+1)
	tests := []struct {
		in, want string // want: a substring of the error
	}{
		{"aprove " + id, "did you mean approve?"},
		{"reqest dba", "did you mean request?"},
		{"lst", "did you mean"},
		{"dba for 2h", `unknown command "dba"`},
		{"request", "needs a role or a resource"},
		{"request for 2h because x", "needs a role or a resource"},
		{"request because x", "needs a role or a resource"},
		{"request --role", "--role needs a value"},
		{"request --roles ,", "--roles needs a role name"},
		{"request --resource", "--resource needs a value"},
		{"request --resource --reason x", "--resource needs a value, got --reason"},
		{`request --resource ""`, "--resource needs a resource ID"},
		{"request --resource prod/node/db-1", `must start with "/"`},
		{"request --resource /prod/nope/db-1", `unknown kind "nope"`},
		{"request /prod/node", "want /CLUSTER/KIND/NAME"},
		{"request --resource /*/node/db-1", "wildcards and regular expressions are only allowed"},
		{"request dba for", `"for" needs a duration`},
		{"request dba for ever because x", `bad duration "ever"`},
		{"request dba for 2 because x", `bad duration "2"`},
		{"request dba for 0s", "longer than zero"},
		{"request dba --duration -1h", "negative"},
		{"request dba --duration 0", "longer than zero"},
		{"request dba --duration soon", `bad duration "soon"`},
		{"request dba for 400 days", "longer than 365 days"},
		{"request dba for 99999999999999999999h", "longer than 365 days"},
		{`request dba --duration "99999999999999999999 hours"`, "longer than 365 days"},
		{"request dba for 2h for 3h", "duration is given twice"},
		{"request dba --reason x because y", "reason is given twice"},
		{"request dba because", `nothing after "because"`},
		{`request dba because ""`, `nothing after "because"`},
		{"request dba 2h", `"2h" looks like a duration`},
		{"request dba ticket #123", `role "#123" is not a role name`},
		{"request dba for 2h ticket 123", `unexpected "ticket"`},
		{"request dba --reason ticket 123", `unexpected "123"`},
		{"request dba --durtion 2h", "did you mean --duration?"},
		{"request dba --frobnicate 2h", "unknown flag --frobnicate for request: known flags are"},
		{`request dba --reason "unterminated`, "unterminated quote"},
		{"request dba --reason “smart unterminated", "unterminated quote"},
		{"request dba --reason 'open", "unterminated quote"},
		{"request dba --reviewers '#x'", `reviewer "#x" is not a user name`},
		{"request dba --reason " + long, "reason is 1025 bytes, at most 1024"},
		{"request dba because " + long, "reason is 1025 bytes, at most 1024"},
		{"request " + strings.Repeat("a", MaxTextLen), "at most 4000"},
		{"request \xff", "not valid UTF-8"},
		{"ls pendng", "did you mean pending?"},
		{"ls whatever", "unknown state"},
		{"ls pending approved", "ls takes one state"},
		{"ls --state", "--state needs a value"},
		{"ls --foo x", "known flags are --state"},
		{"show", "show needs a request ID"},
		{"show 123", `"123" is not a request ID`},
		{"show " + id + " " + id, "show takes one request ID"},
		{"show --x " + id, "show takes no flags"},
		{"approve", "approve needs a request ID"},
		{"approve not-a-uuid looks good", `"not-a-uuid" is not a request ID`},
		{"approve " + id[:35] + "g", "is not a request ID"},
		{"approve " + id + " --reason", "--reason needs a value"},
		{"approve " + id + " --reason a b", `unexpected "b"`},
		{"approve --reason a " + id + " more", "reason is given twice"},
		{"approve " + id + " " + long, "reason is 1025 bytes"},
		{"deny " + id, "deny needs a reason"},
		{"deny " + id + "   ", "deny needs a reason"},
		{"deny " + id + ` ""`, "deny needs a reason"},
		{"deny " + id + " because", "deny needs a reason"},
		{"deny", "deny needs a request ID"},
		{"search --kind things", `unknown kind "things"`},
		{"search db =prod", "has no key"},
		{"search db env=", "has no value"},
		{"search env=prod env=dev", "given twice"},
		{"login", "login needs the code"},
		{"login a b", "login takes one code"},
		{"login ab$cd", "is not a login code"},
		{"help nope", `no help on "nope"`},
		{"help aprove", "did you mean approve?"},
		{"help request extra", "help takes one topic"},
	}
	for _, tt := range tests {
		name := tt.in
		if len(name) > 80 {
			name = name[:80]
		}
		t.Run(name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want error containing %q", tt.in, got, tt.want)
			}
			if !errors.Is(err, access.ErrInvalid) {
				t.Errorf("Parse(%q): %v does not wrap access.ErrInvalid", tt.in, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse(%q): %v\nwant it to contain %q", tt.in, err, tt.want)
			}
			if !reflect.DeepEqual(got, Command{}) {
				t.Errorf("Parse(%q) returned %+v with an error", tt.in, got)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	all := Help("")
	for _, k := range kinds {
		if !strings.Contains(all, "/access "+string(k)) {
			t.Errorf("Help(\"\") does not mention %s", k)
		}
	}
	if !strings.Contains(all, "/access request dba for 2h because ticket #123") {
		t.Errorf("Help(\"\") has no request example:\n%s", all)
	}
	for _, topic := range []string{"request", "ls", "list", "show", "approve", "deny", "reject", "search", "login", "help"} {
		h := Help(topic)
		if h == "" || !strings.Contains(h, "/access") {
			t.Errorf("Help(%q) = %q", topic, h)
		}
	}
	if h := Help("deny"); !strings.Contains(h, "reason") {
		t.Errorf("Help(deny) does not mention the reason: %q", h)
	}
	if h := Help("bogus"); !strings.HasPrefix(h, `No help on "bogus".`) {
		t.Errorf("Help(bogus) = %q", h)
	}
	// Every example in the help texts parses.
	for _, k := range kinds {
		for _, line := range strings.Split(Help(string(k)), "\n") {
			line = strings.TrimSpace(line)
			if !strings.HasPrefix(line, "/access ") || strings.ContainsAny(line, "[]|") || strings.Contains(line, "ID ") || strings.HasSuffix(line, " ID") || strings.Contains(line, "CODE") || strings.Contains(line, "ROLE") {
				continue
			}
			if _, err := Parse(strings.TrimPrefix(line, "/access ")); err != nil {
				t.Errorf("help example %q does not parse: %v", line, err)
			}
		}
	}
}

func TestKindValid(t *testing.T) {
	for _, k := range kinds {
		if !k.Valid() {
			t.Errorf("%s not valid", k)
		}
	}
	if Kind("list").Valid() || Kind("").Valid() {
		t.Error("alias or empty kind is valid")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"request dba for 2h because ticket #123",
		`request --resource /prod/node/db-1 --reason "x y"`,
		"request dba, dba-readonly because it's “fine”",
		"request dba for 1 hour and 30 minutes",
		"request --roles a,b --duration=2h --reviewers x",
		"request /prod/pod/main/default/nginx-* for 1d",
		"ls --state pending", "ls approved",
		"show " + id, "approve " + id + " ok", "deny " + id + " no way",
		"search db env=prod web", "login ABCD-1234", "help request", "",
		`request dba --reason "a \" b`, "request dba --reason 'a", "aprove",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cmd, err := Parse(s)
		if err != nil {
			if !errors.Is(err, access.ErrInvalid) {
				t.Fatalf("Parse(%q): error %v does not wrap ErrInvalid", s, err)
			}
			return
		}
		if !cmd.Kind.Valid() {
			t.Fatalf("Parse(%q): invalid kind %q", s, cmd.Kind)
		}
		if len(cmd.Reason) > MaxReasonLen {
			t.Fatalf("Parse(%q): reason of %d bytes", s, len(cmd.Reason))
		}
		if cmd.Duration < 0 || cmd.Duration > MaxDuration {
			t.Fatalf("Parse(%q): duration %v", s, cmd.Duration)
		}
		switch cmd.Kind {
		case KindRequest:
			if len(cmd.Roles)+len(cmd.Resources) == 0 {
				t.Fatalf("Parse(%q): request without roles or resources", s)
			}
			for _, r := range cmd.Roles {
				if access.ValidName(r) != nil {
					t.Fatalf("Parse(%q): bad role %q", s, r)
				}
			}
			for _, r := range cmd.Resources {
				id, err := access.ParseResourceID(r)
				if err != nil || id.String() != r {
					t.Fatalf("Parse(%q): resource %q not canonical (%v)", s, r, err)
				}
			}
		case KindShow, KindApprove, KindDeny:
			if !isUUID(cmd.RequestID) || strings.ToLower(cmd.RequestID) != cmd.RequestID {
				t.Fatalf("Parse(%q): request id %q", s, cmd.RequestID)
			}
			if cmd.Kind == KindDeny && cmd.Reason == "" {
				t.Fatalf("Parse(%q): deny without reason", s)
			}
		case KindLogin:
			if cmd.Code == "" {
				t.Fatalf("Parse(%q): login without code", s)
			}
		case KindHelp:
			if cmd.HelpTopic != "" && !Kind(cmd.HelpTopic).Valid() {
				t.Fatalf("Parse(%q): help topic %q", s, cmd.HelpTopic)
			}
		}
	})
}
