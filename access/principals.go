package access

import (
	"fmt"
	"sort"
	"strings"
	"unicode"
)

// MaxSSHPrincipals bounds the principals of one SSH certificate. A grant
// that would need more must be narrowed: certificates travel in every
// handshake, and sshd compares each principal against its file.
const MaxSSHPrincipals = 256

// SSHPrincipals returns the certificate principals for a grant:
// LOGIN@HOST for each login and each granted host (host = the node's
// hostname), plus the bare LOGIN for each login when wildcard is true (a
// role whose node_labels is the '*': '*' wildcard). The result is sorted
// and free of duplicates; it is empty when there are no logins, or no hosts
// and no wildcard.
//
// A bare LOGIN is what sshd matches without an AuthorizedPrincipalsFile, so
// it opens every host that trusts the CA; LOGIN@HOST opens only a host whose
// AuthorizedPrincipalsFile lists it (see AuthorizedPrincipals).
//
// Logins and hosts must be non-empty and contain no '@', ',', white space
// or control characters, and not start with '#', so that LOGIN@HOST is
// unambiguous and survives a principals file line and ssh-keygen's comma
// lists. More than MaxSSHPrincipals principals is ErrInvalid.
func SSHPrincipals(logins, hosts []string, wildcard bool) ([]string, error) {
	ls, err := uniquePrincipalParts("login", logins)
	if err != nil {
		return nil, err
	}
	hs, err := uniquePrincipalParts("host", hosts)
	if err != nil {
		return nil, err
	}
	// Neither part holds '@', so LOGIN@HOST pairs are distinct from each
	// other and from bare logins: the count is exact before building.
	n := len(ls) * len(hs)
	if wildcard {
		n += len(ls)
	}
	if n > MaxSSHPrincipals {
		return nil, fmt.Errorf("%w: the grant needs %d SSH principals (%d logins on %d hosts), more than %d: narrow the grant to fewer hosts or logins",
			ErrInvalid, n, len(ls), len(hs), MaxSSHPrincipals)
	}
	out := make([]string, 0, n)
	for _, l := range ls {
		if wildcard {
			out = append(out, l)
		}
		for _, h := range hs {
			out = append(out, l+"@"+h)
		}
	}
	sort.Strings(out)
	return out, nil
}

// AuthorizedPrincipals returns the AuthorizedPrincipalsFile content a host
// needs for a local user: the line "LOGIN@HOST" (sshd compares the
// certificate's principals to these lines), newline-terminated.
func AuthorizedPrincipals(host, login string) string {
	return login + "@" + host + "\n"
}

// uniquePrincipalParts validates logins or hosts and returns them sorted
// without duplicates.
func uniquePrincipalParts(what string, vals []string) ([]string, error) {
	seen := make(map[string]struct{}, len(vals))
	out := make([]string, 0, len(vals))
	for _, v := range vals {
		if err := checkPrincipalPart(what, v); err != nil {
			return nil, err
		}
		if _, dup := seen[v]; dup {
			continue
		}
		seen[v] = struct{}{}
		out = append(out, v)
	}
	sort.Strings(out)
	return out, nil
}

func checkPrincipalPart(what, v string) error {
	if v == "" {
		return fmt.Errorf("%w: SSH %s is empty", ErrInvalid, what)
	}
	if len(v) > 255 {
		return fmt.Errorf("%w: SSH %s %.32q...: longer than 255 bytes", ErrInvalid, what, v)
	}
	if strings.HasPrefix(v, "#") {
		return fmt.Errorf("%w: SSH %s %q: must not start with '#'", ErrInvalid, what, v)
	}
	for _, r := range v {
		if r == '@' || r == ',' || unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar {
			return fmt.Errorf("%w: SSH %s %q: must not contain '@', ',', white space or control characters", ErrInvalid, what, v)
		}
	}
	return nil
}
