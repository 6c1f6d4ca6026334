// Package zapslog bridges the zap logs of the etcd client and server into
// log/slog, so Gatehouse has one log stream with one format.
package zapslog

import (
	"context"
	"log/slog"
	"sort"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns a zap logger that writes entries at min or above to lg.
// etcd is chatty at info level; callers pass zapcore.WarnLevel.
func New(lg *slog.Logger, min zapcore.Level) *zap.Logger {
	return NewAdjusted(lg, min, nil)
}

// NewAdjusted is New with a hook that may lower (or raise) an entry's level
// before the min check, to quiet known-benign messages.
func NewAdjusted(lg *slog.Logger, min zapcore.Level, adjust func(zapcore.Entry) zapcore.Level) *zap.Logger {
	if lg == nil {
		lg = slog.Default()
	}
	return zap.New(&core{h: lg.Handler(), min: min, adjust: adjust})
}

type core struct {
	h      slog.Handler
	min    zapcore.Level
	adjust func(zapcore.Entry) zapcore.Level
}

func level(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return slog.LevelDebug
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

func (c *core) Enabled(l zapcore.Level) bool {
	return l >= c.min && c.h.Enabled(context.Background(), level(l))
}

func (c *core) With(fields []zapcore.Field) zapcore.Core {
	return &core{h: c.h.WithAttrs(attrs(fields)), min: c.min, adjust: c.adjust}
}

func (c *core) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.adjust != nil && e.Level < zapcore.DPanicLevel {
		// Panic and fatal keep their level: zap acts on it after writing.
		e.Level = min(c.adjust(e), zapcore.ErrorLevel)
	}
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *core) Write(e zapcore.Entry, fields []zapcore.Field) error {
	r := slog.NewRecord(e.Time, level(e.Level), e.Message, 0)
	if e.LoggerName != "" {
		r.AddAttrs(slog.String("logger", e.LoggerName))
	}
	r.AddAttrs(attrs(fields)...)
	return c.h.Handle(context.Background(), r)
}

func (c *core) Sync() error { return nil }

// attrs encodes zap fields through zap's own map encoder, which knows every
// field type, and sorts them so output is stable.
func attrs(fields []zapcore.Field) []slog.Attr {
	if len(fields) == 0 {
		return nil
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	keys := make([]string, 0, len(enc.Fields))
	for k := range enc.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]slog.Attr, 0, len(keys))
	for _, k := range keys {
		out = append(out, slog.Any(k, enc.Fields[k]))
	}
	return out
}
