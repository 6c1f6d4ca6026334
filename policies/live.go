package policies

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/gatehouse-dev/gatehouse/access"
)

// Live is an engine kept in step with the bundle in force in the store, so
// every replica evaluates the same revision. When the stored bundle cannot
// be loaded (say it no longer compiles after an upgrade) every decision
// fails closed until a good one is pushed; it never falls back to another
// bundle silently.
type Live struct {
	engine *Engine
	broken atomic.Pointer[error]
	log    *slog.Logger
}

var _ access.PolicyEngine = (*Live)(nil)

// Follow loads the bundle in force from st into e (keeping e's bundle, the
// built-in default, when none was ever pushed) and applies every bundle
// pushed later until ctx ends.
func Follow(ctx context.Context, st access.PolicyStore, e *Engine, log *slog.Logger) (*Live, error) {
	l := &Live{engine: e, log: log}
	// Watch first, then read: a bundle pushed between the two arrives on
	// the watch, where reading first could miss it for good.
	wctx, cancel := context.WithCancel(ctx)
	watch := st.WatchPolicyBundle(wctx, 0)
	stored, err := st.GetPolicyBundle(ctx)
	var loaded int64
	switch {
	case errors.Is(err, access.ErrNotFound):
		log.Info("no policy bundle pushed; the built-in bundle is in force")
	case err != nil:
		cancel()
		return nil, fmt.Errorf("read policy bundle: %w", err)
	default:
		l.load(stored)
		loaded = stored.Revision
	}
	go func() {
		defer cancel()
		for b := range watch {
			if b.Revision > loaded {
				l.load(b)
			}
		}
	}()
	return l, nil
}

func (l *Live) load(b access.PolicyBundle) {
	if err := l.engine.Load(FromStored(b)); err != nil {
		l.broken.Store(&err)
		l.log.Error("policy bundle refused; decisions fail closed until a good bundle is pushed", "revision", b.Revision, "err", err)
		return
	}
	l.broken.Store(nil)
	l.log.Info("policy bundle in force", "revision", b.Revision)
}

func (l *Live) check() error {
	if e := l.broken.Load(); e != nil {
		return fmt.Errorf("%w: the policy bundle in force could not be loaded: %v", access.ErrPolicy, *e)
	}
	return nil
}

// Decide implements access.PolicyEngine.
func (l *Live) Decide(ctx context.Context, in access.PolicyInput) (access.PolicyDecision, error) {
	if err := l.check(); err != nil {
		return access.PolicyDecision{}, err
	}
	return l.engine.Decide(ctx, in)
}

// DenyReview implements access.PolicyEngine.
func (l *Live) DenyReview(ctx context.Context, in access.PolicyInput) ([]string, error) {
	if err := l.check(); err != nil {
		return nil, err
	}
	return l.engine.DenyReview(ctx, in)
}

// Revision is the revision of the bundle in force.
func (l *Live) Revision() int64 { return l.engine.Revision() }

// FromStored converts a stored bundle.
func FromStored(b access.PolicyBundle) Bundle {
	files := make(map[string][]byte, len(b.Files))
	for n, src := range b.Files {
		files[n] = []byte(src)
	}
	return Bundle{Files: files, Revision: b.Revision}
}

// CheckBundle is what a pushed bundle must pass: it compiles, strictly,
// with our built-ins.
func CheckBundle(b access.PolicyBundle) error {
	_, err := New(FromStored(b))
	return err
}
