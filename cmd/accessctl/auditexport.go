package main

import (
	"bufio"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/api"
	"github.com/gatehouse-dev/gatehouse/cmd/internal/cliui"
)

// auditExportCmd is `accessctl audit export`: the audit log as JSON
// lines on stdout, streamed page by page, so exporting a year of it takes
// no more memory than a minute of it.
func auditExportCmd(g *globals) *cobra.Command {
	var since, until string
	cmd := &cobra.Command{
		Use:   "export [--since 7d] [--until TIME]",
		Short: "Write audit events as JSON lines to stdout, oldest first",
		Long: `Export writes every audit event of the window to stdout, one JSON object per
line, oldest first, in the form accessd's audit.export_dir files have. --since
is inclusive, --until exclusive; each takes a duration back from now (7d, 36h)
or an RFC 3339 time; without them the whole log is written. A stream broken
half-way is an error (exit status 1), never a silently short file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := time.Now()
			var q api.AuditExportQuery
			for _, f := range []struct {
				flag, v string
				dst     *time.Time
			}{{"--since", since, &q.Since}, {"--until", until, &q.Until}} {
				if f.v == "" {
					continue
				}
				t, err := parseWindow(f.v, now)
				if err != nil {
					return cliui.UsageError("%s %q: %v", f.flag, f.v, err)
				}
				*f.dst = t
			}
			if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
				return cliui.UsageError("--since %s is not before --until %s", q.Since.Format(time.RFC3339), q.Until.Format(time.RFC3339))
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			s, err := c.ExportAudit(cmd.Context(), q)
			if err != nil {
				return err
			}
			defer s.Close()
			w := bufio.NewWriterSize(cmd.OutOrStdout(), 64<<10)
			n := 0
			for s.Next() {
				_, _ = w.Write(s.Line())
				if err := w.WriteByte('\n'); err != nil {
					return fmt.Errorf("write export: %w", err)
				}
				n++
			}
			flushErr := w.Flush()
			if err := s.Err(); err != nil {
				return fmt.Errorf("export incomplete after %d events: %w", n, err)
			}
			if flushErr != nil {
				return fmt.Errorf("write export: %w", flushErr)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&since, "since", "", "only events since a duration ago (7d, 36h) or an RFC 3339 time")
	f.StringVar(&until, "until", "", "only events before a duration ago (1d) or an RFC 3339 time")
	return cmd
}
