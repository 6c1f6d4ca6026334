package access

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestSSHPrincipals(t *testing.T) {
	tests := []struct {
		name     string
		logins   []string
		hosts    []string
		wildcard bool
		want     []string
	}{
		{"host scoped", []string{"root", "admin"}, []string{"hostb", "hosta"}, false,
			[]string{"admin@hosta", "admin@hostb", "root@hosta", "root@hostb"}},
		{"wildcard adds bare logins", []string{"root"}, []string{"hosta"}, true,
			[]string{"root", "root@hosta"}},
		{"wildcard without hosts", []string{"ubuntu", "root"}, nil, true,
			[]string{"root", "ubuntu"}},
		{"duplicates removed", []string{"root", "root"}, []string{"a", "a", "b"}, true,
			[]string{"root", "root@a", "root@b"}},
		{"no hosts no wildcard", []string{"root"}, nil, false, []string{}},
		{"no logins", nil, []string{"a"}, true, []string{}},
		{"fqdn host", []string{"deploy"}, []string{"db-1.prod.example.com"}, false,
			[]string{"deploy@db-1.prod.example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SSHPrincipals(tt.logins, tt.hosts, tt.wildcard)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSSHPrincipalsDoesNotModifyInput(t *testing.T) {
	logins := []string{"b", "a", "b"}
	hosts := []string{"y", "x"}
	if _, err := SSHPrincipals(logins, hosts, true); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(logins, []string{"b", "a", "b"}) || !reflect.DeepEqual(hosts, []string{"y", "x"}) {
		t.Fatalf("inputs changed: %q %q", logins, hosts)
	}
}

func TestSSHPrincipalsLimit(t *testing.T) {
	hosts := func(n int) []string {
		var hs []string
		for i := range n {
			hs = append(hs, fmt.Sprintf("node-%03d", i))
		}
		return hs
	}
	// Exactly at the limit: 2 logins x 127 hosts + 2 bare logins = 256.
	got, err := SSHPrincipals([]string{"root", "admin"}, hosts(127), true)
	if err != nil {
		t.Fatalf("256 principals: %v", err)
	}
	if len(got) != MaxSSHPrincipals {
		t.Fatalf("len = %d, want %d", len(got), MaxSSHPrincipals)
	}
	// Duplicated hosts do not count twice.
	if _, err := SSHPrincipals([]string{"root"}, append(hosts(256), hosts(256)...), false); err != nil {
		t.Fatalf("256 distinct hosts listed twice: %v", err)
	}
	// One over.
	_, err = SSHPrincipals([]string{"root"}, hosts(257), false)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "narrow the grant") {
		t.Fatalf("257 principals: err = %v, want ErrInvalid saying narrow the grant", err)
	}
	_, err = SSHPrincipals([]string{"root", "admin"}, hosts(128), true)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("258 principals: err = %v, want ErrInvalid", err)
	}
}

func TestSSHPrincipalsRefusesBadParts(t *testing.T) {
	for _, tt := range []struct {
		logins, hosts []string
	}{
		{[]string{""}, []string{"a"}},
		{[]string{"root"}, []string{""}},
		{[]string{"root@evil"}, []string{"a"}},
		{[]string{"root"}, []string{"a@b"}},
		{[]string{"ro ot"}, []string{"a"}},
		{[]string{"root"}, []string{"a,b"}},
		{[]string{"root\n"}, []string{"a"}},
		{[]string{"#root"}, []string{"a"}},
		{[]string{"root"}, []string{strings.Repeat("h", 256)}},
	} {
		_, err := SSHPrincipals(tt.logins, tt.hosts, true)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("SSHPrincipals(%q, %q): err = %v, want ErrInvalid", tt.logins, tt.hosts, err)
		}
	}
}

func TestAuthorizedPrincipals(t *testing.T) {
	got := AuthorizedPrincipals("hostb", "root")
	if got != "root@hostb\n" {
		t.Fatalf("got %q", got)
	}
	// The file line is exactly the principal SSHPrincipals puts in a cert
	// for that host.
	ps, err := SSHPrincipals([]string{"root"}, []string{"hostb"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSuffix(got, "\n") != ps[0] {
		t.Fatalf("file line %q does not match principal %q", got, ps[0])
	}
}
