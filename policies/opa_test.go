package policies

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestStockOPA runs the shipped Rego tests under stock `opa test` with the
// capabilities file we publish, so policy authors can use OPA's own tools.
// `make test` builds opa from the module in go.mod and sets
// GATEHOUSE_OPA_BIN.
func TestStockOPA(t *testing.T) {
	bin := os.Getenv("GATEHOUSE_OPA_BIN")
	if bin == "" {
		t.Skip("GATEHOUSE_OPA_BIN not set (make test sets it)")
	}
	dirs, err := filepath.Glob("examples/*")
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range append([]string{"bundle"}, dirs...) {
		out, err := exec.Command(bin, "test", "--capabilities", "capabilities.json", dir).CombinedOutput()
		if err != nil {
			t.Errorf("opa test %s: %v\n%s", dir, err, out)
		}
	}
}
