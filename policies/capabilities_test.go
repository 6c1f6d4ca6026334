package policies

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

//go:generate go test . -run TestCapabilitiesFile -update

var update = flag.Bool("update", false, "rewrite policies/capabilities.json")

const capabilitiesFile = "capabilities.json"

func capabilitiesJSON(t *testing.T) []byte {
	t.Helper()
	b, err := json.MarshalIndent(Capabilities(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// TestCapabilitiesFile fails when policies/capabilities.json is not what
// Capabilities() says; `go generate ./policies` (or go test -update)
// refreshes it.
func TestCapabilitiesFile(t *testing.T) {
	want := capabilitiesJSON(t)
	if *update {
		if err := os.WriteFile(capabilitiesFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(capabilitiesFile)
	if err != nil {
		t.Fatalf("%v (run `go generate ./policies`)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale: run `go generate ./policies`", capabilitiesFile)
	}
	// The published file declares our built-ins for stock `opa test`.
	c, err := ast.LoadCapabilitiesJSON(bytes.NewReader(got))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{BuiltinOnCalls, BuiltinOnCall, "http.send"} {
		if !c.ContainsBuiltin(name) {
			t.Errorf("capabilities.json lacks %s", name)
		}
	}
}
