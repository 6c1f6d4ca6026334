package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/service"
)

// TestLoginLimitConfig: identity.login_attempts and identity.login_lockout
// reach the service; absent keys take the defaults; a bad value is an
// error naming its key.
func TestLoginLimitConfig(t *testing.T) {
	def := access.LoginLimit{Attempts: 5, Window: 15 * time.Minute, Lockout: 15 * time.Minute}
	for _, tc := range []struct {
		yaml    string
		want    access.LoginLimit
		wantErr string
	}{
		{yaml: "", want: def},
		{yaml: "identity:\n  login_attempts: 3\n  login_lockout: 1h\n", want: access.LoginLimit{Attempts: 3, Window: 15 * time.Minute, Lockout: time.Hour}},
		{yaml: "identity:\n  login_attempts: 0\n", wantErr: "identity.login_attempts 0"},
		{yaml: "identity:\n  login_attempts: 1000\n", wantErr: "identity.login_attempts 1000"},
		{yaml: "identity:\n  login_lockout: 15\n", wantErr: `identity.login_lockout "15"`},
		{yaml: "identity:\n  login_lockout: 10s\n", wantErr: "identity.login_lockout 10s"},
		{yaml: "identity:\n  login_lockout: 48h\n", wantErr: "identity.login_lockout 48h"},
		{yaml: "identity:\n  login_atempts: 5\n", wantErr: "login_atempts"},
	} {
		path := filepath.Join(t.TempDir(), "accessd.yaml")
		if err := os.WriteFile(path, []byte("cluster_name: test.local\nlisten: 127.0.0.1:0\n"+tc.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := loadConfig(path)
		var got access.LoginLimit
		if err == nil {
			var sc service.Config
			sc, err = serviceConfig(cfg)
			got = sc.LoginLimit
		}
		switch {
		case tc.wantErr == "" && (err != nil || got != tc.want):
			t.Errorf("%q: %+v, %v; want %+v", tc.yaml, got, err, tc.want)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%q: %v; want an error naming %s", tc.yaml, err, tc.wantErr)
		}
	}
	// The example configuration shows the defaults.
	cfg, err := loadConfig("../../deploy/accessd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if l, err := cfg.Identity.loginLimit(); err != nil || l != def || cfg.Identity.LoginAttempts == nil || cfg.Identity.LoginLockout != "15m" {
		t.Errorf("deploy/accessd.yaml: identity %+v → %+v, %v; want the defaults spelled out", cfg.Identity, l, err)
	}
}
