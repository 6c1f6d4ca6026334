package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"

	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/manifest"
	"github.com/gatehouse-dev/gatehouse/service"
)

// loadDemo creates the demo roles, resources and users of dir that do not
// exist yet (so a restart changes nothing), and sets the demo passwords of
// users that have none.
func loadDemo(ctx context.Context, svc *service.Service, dir string, log *slog.Logger) error {
	admin, err := svc.Caller(ctx, service.AdminUser, "demo")
	if err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return err
	}
	sort.Strings(files)
	var objs []manifest.Object
	for _, f := range files {
		if filepath.Base(f) == "passwords.yaml" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		o, err := manifest.Decode(b)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		objs = append(objs, o...)
	}
	// Roles first: users refer to them.
	sort.SliceStable(objs, func(i, j int) bool { return objs[i].Role != nil && objs[j].Role == nil })
	st := svc.Store()
	created := 0
	for _, o := range objs {
		switch {
		case o.Role != nil:
			if _, err := st.GetRole(ctx, o.Name); errors.Is(err, access.ErrNotFound) {
				if _, err := svc.PutRole(ctx, admin, *o.Role); err != nil {
					return fmt.Errorf("role %s: %w", o.Name, err)
				}
				created++
			}
		case o.Resource != nil:
			if _, err := st.GetResource(ctx, o.Resource.Kind, o.Name); errors.Is(err, access.ErrNotFound) {
				if _, err := svc.PutResource(ctx, admin, *o.Resource); err != nil {
					return fmt.Errorf("%s %s: %w", o.Kind, o.Name, err)
				}
				created++
			}
		case o.User != nil:
			if _, err := st.GetUser(ctx, o.Name); errors.Is(err, access.ErrNotFound) {
				if _, err := svc.PutUser(ctx, admin, *o.User); err != nil {
					return fmt.Errorf("user %s: %w", o.Name, err)
				}
				created++
			}
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "passwords.yaml"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var pw map[string]string
	if err := yaml.UnmarshalStrict(b, &pw); err != nil {
		return fmt.Errorf("passwords.yaml: %w", err)
	}
	for user, p := range pw {
		if err := svc.SeedPassword(ctx, user, p); err != nil {
			return fmt.Errorf("password of %s: %w", user, err)
		}
	}
	log.Info("demo loaded", "dir", dir, "created", created)
	return nil
}

func printDemoHelp(server, idFile, pin string) {
	fmt.Fprintf(os.Stderr, `
Gatehouse demo is running at %[1]s  (CA pin %[3]s)

In another terminal (make build puts the CLIs in ./bin):

  export GATEHOUSE_SERVER=%[1]s
  # alice (requester) logs in and asks for the dba role; the CLI waits for a review
  echo alice-password | GATEHOUSE_HOME=/tmp/gh-alice ./bin/access login --user alice --ca-pin %[3]s --password-stdin
  GATEHOUSE_HOME=/tmp/gh-alice ./bin/access request create --roles dba --reason "ticket #123: migrate orders" --duration 1h

  # bob (reviewer) logs in, lists and approves it
  echo bob-password | GATEHOUSE_HOME=/tmp/gh-bob ./bin/access login --user bob --ca-pin %[3]s --password-stdin
  GATEHOUSE_HOME=/tmp/gh-bob ./bin/access request ls
  GATEHOUSE_HOME=/tmp/gh-bob ./bin/access request review --approve --reason "go ahead" ID

  # search resources as alice; admins use accessctl with the admin identity
  GATEHOUSE_HOME=/tmp/gh-alice ./bin/access request search --kind node
  ./bin/accessctl --identity %[2]s audit ls

`, server, idFile, pin)
}
