package manifest

import (
	"errors"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/access"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		kinds   []string
		wantErr string
	}{
		{
			name: "role and resource in one file",
			yaml: `# two documents
kind: role
version: v1
metadata: {name: dba}
spec:
  allow:
    db_labels: {env: [dev, stage]}
---
kind: node
version: v1
metadata: {name: iot, labels: {env: staging}}
spec: {hostname: iot}
`,
			kinds: []string{"role", "node"},
		},
		{name: "unknown field is named", yaml: "kind: role\nversion: v1\nmetadata: {name: x}\nspec: {allow: {nodelabels: {a: b}}}\n", wantErr: `unknown field "nodelabels"`},
		{name: "wrong type names the field", yaml: "kind: user\nversion: v1\nmetadata: {name: x}\nspec: {roles: dba}\n", wantErr: "spec.roles"},
		{name: "unknown kind", yaml: "kind: robot\n", wantErr: `kind "robot"`},
		{name: "missing kind", yaml: "metadata: {name: x}\n", wantErr: "kind is missing"},
		{name: "empty", yaml: "# nothing\n", wantErr: "no documents"},
		{name: "second document is bad", yaml: "kind: role\nmetadata: {name: a}\n---\nkind: role\nspec: 3\n", wantErr: "document 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := Decode([]byte(tt.yaml))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				if !errors.Is(err, access.ErrInvalid) {
					t.Fatalf("err = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for _, o := range objs {
				kinds = append(kinds, o.Kind)
			}
			if strings.Join(kinds, ",") != strings.Join(tt.kinds, ",") {
				t.Fatalf("kinds = %v, want %v", kinds, tt.kinds)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte("kind: role\nversion: v1\nmetadata: {name: dba}\n"))
	f.Add([]byte("---\n---\nkind: node\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = Decode(data) // must not panic
	})
}
