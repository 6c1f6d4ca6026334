package access_test

import (
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
)

func TestAccessWindow(t *testing.T) {
	global := access.DurationCap{Name: "requests.max_duration", Max: 12 * time.Hour}
	contractor := access.DurationCap{Name: "role contractor max_duration", Max: 8 * time.Hour}
	policy := access.DurationCap{Name: "policy max_ttl", Max: 30 * time.Minute}
	none := access.DurationCap{Name: "role dev max_duration"} // 0: no cap

	tests := []struct {
		name     string
		asked    time.Duration
		def      time.Duration
		caps     []access.DurationCap
		want     time.Duration
		errParts []string
	}{
		{"asked within every cap", 2 * time.Hour, time.Hour, []access.DurationCap{global, contractor}, 2 * time.Hour, nil},
		{"asked exactly the cap", 8 * time.Hour, time.Hour, []access.DurationCap{global, contractor}, 8 * time.Hour, nil},
		{"nothing asked: the default", 0, time.Hour, []access.DurationCap{global, contractor}, time.Hour, nil},
		{"nothing asked, default above a cap: the cap", 0, 24 * time.Hour, []access.DurationCap{global, contractor}, 8 * time.Hour, nil},
		{"nothing asked, no default: the smallest cap", 0, 0, []access.DurationCap{global, none, contractor}, 8 * time.Hour, nil},
		{"the policy's max_ttl caps too", 0, time.Hour, []access.DurationCap{global, policy}, 30 * time.Minute, nil},
		{"zero caps are no caps", 48 * time.Hour, 0, []access.DurationCap{none}, 48 * time.Hour, nil},
		{"asked above a role's cap names the role", 24 * time.Hour, time.Hour, []access.DurationCap{global, contractor},
			0, []string{"duration 24h exceeds requests.max_duration (12h)"}},
		{"asked above only the role's cap", 9*time.Hour + 30*time.Minute, time.Hour, []access.DurationCap{global, contractor},
			0, []string{"duration 9h30m exceeds role contractor max_duration (8h)"}},
		{"negative", -time.Minute, time.Hour, nil, 0, []string{"duration -1m", "must not be negative"}},
		{"nothing asked and nothing to go by", 0, 0, []access.DurationCap{none}, 0, []string{"no duration asked"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := access.AccessWindow(tt.asked, tt.def, tt.caps...)
			if tt.errParts != nil {
				wantErr(t, err, access.ErrInvalid, tt.errParts...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("AccessWindow = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCredentialTTL(t *testing.T) {
	now := t0
	ends := now.Add(2 * time.Hour)
	tests := []struct {
		name     string
		asked    time.Duration
		expires  time.Time
		sessions []time.Duration
		want     time.Duration
		sentinel error
	}{
		{"nothing asked: the rest of the window", 0, ends, nil, 2 * time.Hour, nil},
		{"asked less than the window", 30 * time.Minute, ends, nil, 30 * time.Minute, nil},
		{"asked more than the window: the window", 8 * time.Hour, ends, nil, 2 * time.Hour, nil},
		{"a role's max_session_ttl caps it", 0, ends, []time.Duration{time.Hour, 0, 90 * time.Minute}, time.Hour, nil},
		{"the smallest of all", 45 * time.Minute, ends, []time.Duration{time.Hour}, 45 * time.Minute, nil},
		{"near the end of the window", time.Hour, now.Add(5 * time.Minute), []time.Duration{time.Hour}, 5 * time.Minute, nil},
		{"at the end of the window nothing is minted", 0, now, nil, 0, access.ErrExpired},
		{"after the window nothing is minted", 0, now.Add(-time.Second), nil, 0, access.ErrExpired},
		{"negative", -time.Minute, ends, nil, 0, access.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ttl, nb, err := access.CredentialTTL(tt.asked, tt.expires, now, tt.sessions...)
			if tt.sentinel != nil {
				wantErr(t, err, tt.sentinel)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ttl != tt.want {
				t.Errorf("ttl %v, want %v", ttl, tt.want)
			}
			if !nb.Equal(now.Add(-time.Minute)) {
				t.Errorf("not before %v, want one minute before now", nb)
			}
			if now.Add(ttl).After(tt.expires) {
				t.Errorf("the credential outlives its grant: %v > %v", now.Add(ttl), tt.expires)
			}
		})
	}
}

func TestMaxSessionTTL(t *testing.T) {
	withTTL := func(d time.Duration) access.Role {
		return access.Role{Spec: access.RoleSpec{Options: access.RoleOptions{MaxSessionTTL: access.Duration(d)}}}
	}
	tests := []struct {
		name  string
		roles []access.Role
		want  time.Duration
	}{
		{"no roles", nil, 0},
		{"no role sets one", []access.Role{withTTL(0), withTTL(0)}, 0},
		{"the smallest non-zero", []access.Role{withTTL(8 * time.Hour), withTTL(0), withTTL(time.Hour)}, time.Hour},
	}
	for _, tt := range tests {
		if got := access.MaxSessionTTL(tt.roles); got != tt.want {
			t.Errorf("%s: MaxSessionTTL = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		8 * time.Hour:                   "8h",
		90 * time.Minute:                "1h30m",
		time.Hour + time.Second:         "1h0m1s",
		45 * time.Minute:                "45m",
		90 * time.Second:                "1m30s",
		0:                               "0s",
		1500 * time.Millisecond:         "1.5s",
		24*time.Hour + 30*time.Minute:   "24h30m",
		-time.Minute:                    "-1m",
		10*time.Minute + 10*time.Second: "10m10s",
	} {
		if got := access.FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
