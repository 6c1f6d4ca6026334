package main_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/ca"
	"github.com/gatehouse-dev/gatehouse/profile"
)

// TestKEKRotateCommand runs the README's procedure against the binary:
// accessd on the old KEK; restarted with kek_file NEW and previous_kek_file
// OLD; accessd kek-rotate from the host while it serves (a wrong old KEK
// first: refused, naming the KEKs, nothing written); a second run does
// nothing; restarted on NEW alone it serves the same CAs, and the old KEK
// no longer starts it.
func TestKEKRotateCommand(t *testing.T) {
	dataDir := tempDataDir(t)
	keys := t.TempDir()
	kek := map[string]string{}
	ids := map[string]string{}
	for _, name := range []string{"old", "new", "wrong"} {
		kek[name] = filepath.Join(keys, name+".kek")
		if out, err := exec.Command(accessdBin, "kek-generate", kek[name]).CombinedOutput(); err != nil {
			t.Fatalf("kek-generate: %v %s", err, out)
		}
		k, err := ca.LoadKEK(kek[name])
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = k.ID()
	}
	addr := freeAddr(t)
	ctx := context.Background()
	exports := func(p profile.Profile) string {
		t.Helper()
		c, _ := p.Client("")
		var all string
		for _, typ := range []string{"ssh", "app"} {
			s, err := c.ExportCA(ctx, typ, "")
			if err != nil {
				t.Fatalf("export %s CA: %v", typ, err)
			}
			all += s
		}
		tls, err := c.ClusterCA(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return all + tls.Pin
	}

	d := startDaemon(t, dataDir, addr, "--kek-file", kek["old"])
	before := exports(waitReady(t, dataDir)) // creates the ssh and app CAs
	d.stop(t)

	cfg := filepath.Join(keys, "accessd.yaml")
	if err := os.WriteFile(cfg, []byte("ca:\n  kek_file: "+kek["new"]+"\n  previous_kek_file: "+kek["old"]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d = startDaemon(t, dataDir, addr, "--config", cfg)
	p := waitReady(t, dataDir)

	// Host tools read both keys from the config, as start does.
	minted := filepath.Join(dataDir, "minted.identity")
	if out, err := exec.Command(accessdBin, "admin-identity", "--config", cfg, "--data-dir", dataDir, "--out", minted, "--server", "https://"+addr).CombinedOutput(); err != nil {
		t.Fatalf("admin-identity with kek_file and previous_kek_file: %v\n%s", err, out)
	}
	for _, bad := range []struct{ yaml, want string }{
		{"ca:\n  kek_file: " + kek["new"] + "\n  previous_kek_file: " + kek["new"] + "\n", "is the current one"},
		{"ca:\n  previous_kek_file: " + kek["old"] + "\n", "without ca.kek_file"},
	} {
		badCfg := filepath.Join(keys, "bad.yaml")
		if err := os.WriteFile(badCfg, []byte(bad.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(accessdBin, "admin-identity", "--config", badCfg, "--data-dir", dataDir, "--out", minted).CombinedOutput()
		if err == nil || !strings.Contains(string(out), bad.want) {
			t.Fatalf("config %q: %v\n%s", bad.yaml, err, out)
		}
	}

	rotate := func(old string) (string, error) {
		out, err := exec.Command(accessdBin, "kek-rotate", "--data-dir", dataDir, "--old-kek-file", kek[old], "--new-kek-file", kek["new"]).CombinedOutput()
		return string(out), err
	}
	out, err := rotate("wrong")
	if err == nil || !strings.Contains(out, "sealed under KEK "+ids["old"]) || !strings.Contains(out, "but neither the old KEK "+ids["wrong"]) || !strings.Contains(out, "nothing was changed") {
		t.Fatalf("kek-rotate with a wrong old KEK: %v\n%s", err, out)
	}
	out, err = rotate("old")
	if err != nil || !strings.Contains(out, "re-sealed 3 private keys from KEK "+ids["old"]+" to KEK "+ids["new"]) {
		t.Fatalf("kek-rotate (ssh, app and cluster CA keys): %v\n%s", err, out)
	}
	out, err = rotate("old")
	if err != nil || !strings.Contains(out, "nothing to re-seal: 3 private keys under KEK "+ids["new"]) {
		t.Fatalf("kek-rotate again: %v\n%s", err, out)
	}
	if during := exports(p); during != before {
		t.Fatalf("the CAs changed during the rotation:\n%s\n%s", before, during)
	}
	d.stop(t)
	if log := d.stderr.String(); !strings.Contains(log, "KEK rotation under way") || !strings.Contains(log, "previous_kek_id="+ids["old"]) {
		t.Fatalf("accessd did not say a rotation is under way:\n%s", log)
	}

	d = startDaemon(t, dataDir, addr, "--kek-file", kek["new"])
	if after := exports(waitReady(t, dataDir)); after != before {
		t.Fatalf("the CAs changed after the rotation:\n%s\n%s", before, after)
	}
	d.stop(t)
	start := exec.Command(accessdBin, "start", "--data-dir", dataDir, "--listen", addr, "--cluster-name", "test.local", "--kek-file", kek["old"])
	if out, err := start.CombinedOutput(); err == nil || !strings.Contains(string(out), "sealed under KEK "+ids["new"]) {
		t.Fatalf("start with the old KEK after the rotation: %v\n%s", err, out)
	}
}
