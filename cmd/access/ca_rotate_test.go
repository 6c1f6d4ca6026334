package main_test

import (
	"strings"
	"testing"
)

// TestCARotationKeepsTargetsTrusting walks the rotation with the real CLI:
// the export grows to two keys at publish and both stay through switch
// (retire's refusal while old certificates live is proven in ca/).
func TestCARotationKeepsTargetsTrusting(t *testing.T) {
	_, admin, identity := setup(t)
	ctl := func(args ...string) string {
		return admin.ok("", accessctlBin, append([]string{"--identity", identity}, args...)...)
	}
	before := ctl("ca", "export", "--type", "ssh")
	if n := strings.Count(before, "\n"); n != 1 {
		t.Fatalf("export before rotation has %d keys:\n%s", n, before)
	}
	out := ctl("ca", "rotate", "--type", "ssh", "--phase", "publish")
	if !strings.Contains(out, "v1  active") || !strings.Contains(out, "v2  published") {
		t.Fatalf("after publish:\n%s", out)
	}
	published := ctl("ca", "export", "--type", "ssh")
	if strings.Count(published, "\n") != 2 || !strings.Contains(published, strings.TrimSpace(before)) {
		t.Fatalf("export after publish must hold the old and the new key:\n%s", published)
	}
	out = ctl("ca", "rotate", "--type", "ssh", "--phase", "switch")
	if !strings.Contains(out, "v1  retiring") || !strings.Contains(out, "v2  active") {
		t.Fatalf("after switch:\n%s", out)
	}
	_, errOut, code := admin.run("", accessctlBin, "--identity", identity, "ca", "rotate", "--type", "nope", "--phase", "publish")
	if code != 1 || !strings.Contains(errOut, "nope") {
		t.Fatalf("unknown CA type: exit %d %q", code, errOut)
	}
}
