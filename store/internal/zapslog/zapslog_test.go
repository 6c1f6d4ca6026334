package zapslog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func TestBridge(t *testing.T) {
	var buf bytes.Buffer
	lg := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	z := NewAdjusted(lg, zapcore.WarnLevel, func(e zapcore.Entry) zapcore.Level {
		if e.Message == "noise" {
			return zapcore.DebugLevel
		}
		return e.Level
	}).Named("etcd").With(zap.String("member", "m1"))

	z.Info("dropped: below min")
	z.Warn("noise")
	z.Warn("disk slow", zap.Duration("took", 1500000000), zap.Int("n", 3))
	z.Error("failed", zap.Error(errTest("boom")))

	out := buf.String()
	for _, want := range []string{
		`level=WARN msg="disk slow" member=m1 logger=etcd n=3 took=1.5s`,
		`level=ERROR msg=failed member=m1 logger=etcd error=boom`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "dropped") || strings.Contains(out, "noise") {
		t.Errorf("filtered entries logged:\n%s", out)
	}
}

type errTest string

func (e errTest) Error() string { return string(e) }
