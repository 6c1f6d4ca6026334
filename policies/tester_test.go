package policies

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestRegoBundles runs the Rego tests of the default bundle and of every
// example, so `go test ./...` runs them.
func TestRegoBundles(t *testing.T) {
	dirs, err := filepath.Glob("examples/*")
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range append([]string{"bundle"}, dirs...) {
		t.Run(dir, func(t *testing.T) {
			var out bytes.Buffer
			passed, failed, err := RunTests(context.Background(), []string{dir}, TestOptions{}, &out)
			if err != nil || failed > 0 || passed == 0 {
				t.Fatalf("passed %d, failed %d, err %v\n%s", passed, failed, err, out.String())
			}
		})
	}
}

func TestRunTestsReportsFailures(t *testing.T) {
	var out bytes.Buffer
	passed, failed, err := RunTests(context.Background(), []string{"testdata/failing"}, TestOptions{Verbose: true}, &out)
	if err != nil || passed != 1 || failed != 2 {
		t.Fatalf("passed %d, failed %d, err %v\n%s", passed, failed, err, out.String())
	}
	for _, want := range []string{"test_fails: FAIL", "test_passes: PASS", "test_unmocked_pagerduty"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}

	out.Reset()
	passed, failed, err = RunTests(context.Background(), []string{"testdata/failing"}, TestOptions{Run: "passes$", Coverage: true}, &out)
	if err != nil || passed != 1 || failed != 0 || !strings.Contains(out.String(), "coverage:") {
		t.Fatalf("--run: passed %d, failed %d, err %v\n%s", passed, failed, err, out.String())
	}

	if _, _, err := RunTests(context.Background(), []string{"testdata/nonexistent"}, TestOptions{}, &out); err == nil {
		t.Error("no error for a missing directory")
	}
}
