// Command accessd is the Gatehouse server: HTTP API, request lifecycle,
// resource index and expiry sweeper, on embedded or external etcd. It wires
// the packages together and decides nothing itself.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/chatops"
	"github.com/gatehouse-dev/gatehouse/inventory"
	"github.com/gatehouse-dev/gatehouse/metrics"
	"github.com/gatehouse-dev/gatehouse/policies"
	"github.com/gatehouse-dev/gatehouse/server"
	"github.com/gatehouse-dev/gatehouse/service"
	"github.com/gatehouse-dev/gatehouse/store"
	"github.com/gatehouse-dev/gatehouse/store/embedded"
)

// sweepInterval is the longest the elected expiry sweeper sleeps between
// looks at its schedule of due requests.
const sweepInterval = time.Second

func main() {
	root := &cobra.Command{
		Use:           "accessd",
		Short:         "Gatehouse server: just-in-time access requests on etcd",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(startCmd(), adminIdentityCmd(), versionCmd(), kekGenerateCmd(), kekRotateCmd())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "accessd:", err)
		os.Exit(1)
	}
}

func versionCmd() *cobra.Command {
	return &cobra.Command{Use: "version", Short: "Print the version", Run: func(*cobra.Command, []string) { fmt.Println(server.Version) }}
}

type startFlags struct {
	config, listen, dataDir, demo, clusterName, kekFile string
	etcdEndpoints                                       []string
}

func startCmd() *cobra.Command {
	var f startFlags
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Serve the API (embedded etcd in --data-dir unless --etcd-endpoints)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(f.config)
			if err != nil {
				return err
			}
			fl := cmd.Flags()
			if fl.Changed("listen") {
				cfg.Listen = f.listen
			}
			if fl.Changed("data-dir") {
				cfg.DataDir = f.dataDir
			}
			if fl.Changed("etcd-endpoints") {
				cfg.Storage.Etcd.Endpoints = f.etcdEndpoints
			}
			if fl.Changed("cluster-name") {
				cfg.ClusterName = f.clusterName
			}
			if fl.Changed("kek-file") {
				cfg.CA.KEKFile = f.kekFile
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return run(ctx, cfg, f.demo)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "accessd.yaml")
	fl.StringVar(&f.listen, "listen", "127.0.0.1:3025", "HTTPS listen address")
	fl.StringVar(&f.dataDir, "data-dir", "/var/lib/gatehouse", "data directory (embedded etcd, admin identity)")
	fl.StringSliceVar(&f.etcdEndpoints, "etcd-endpoints", nil, "external etcd endpoints (default: embedded etcd)")
	fl.StringVar(&f.clusterName, "cluster-name", "", "cluster name used in resource IDs (default: host name)")
	fl.StringVar(&f.kekFile, "kek-file", "", "key-encryption key of the CA keys, outside the data dir (or GATEHOUSE_KEK)")
	fl.StringVar(&f.demo, "demo", "", "load demo roles, users and resources from this directory when missing")
	return cmd
}

func newLogger(cfg LogConfig) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// openStore connects to external etcd or starts the embedded member.
func openStore(ctx context.Context, cfg Config, log *slog.Logger) (*store.Store, func(), error) {
	scfg := store.Config{Prefix: cfg.Storage.Etcd.Prefix, Logger: log}
	if len(cfg.Storage.Etcd.Endpoints) > 0 {
		scfg.Endpoints = cfg.Storage.Etcd.Endpoints
		tc, err := etcdTLS(cfg.Storage.Etcd.TLS)
		if err != nil {
			return nil, nil, err
		}
		scfg.TLS = tc
		st, err := store.Dial(ctx, scfg)
		if err != nil {
			return nil, nil, err
		}
		return st, func() { _ = st.Close() }, nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create data dir: %w", err)
	}
	m, err := embedded.Start(ctx, embedded.Config{DataDir: cfg.DataDir, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	scfg.Endpoints = m.Endpoints()
	st, err := store.Dial(ctx, scfg)
	if err != nil {
		_ = m.Close()
		return nil, nil, err
	}
	return st, func() { _ = st.Close(); _ = m.Close() }, nil
}

func etcdTLS(c EtcdTLSConfig) (*tls.Config, error) {
	if c.CAFile == "" && c.CertFile == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		b, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("storage.etcd.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("storage.etcd.tls.ca_file %s: no PEM certificate", c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("storage.etcd.tls cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func serviceConfig(cfg Config) (service.Config, error) {
	pending, err := time.ParseDuration(cfg.Requests.PendingTTL)
	if err != nil || pending <= 0 {
		return service.Config{}, fmt.Errorf("requests.pending_ttl %q: want a positive duration", cfg.Requests.PendingTTL)
	}
	maxDur, err := time.ParseDuration(cfg.Requests.MaxDuration)
	if err != nil || maxDur <= 0 {
		return service.Config{}, fmt.Errorf("requests.max_duration %q: want a positive duration", cfg.Requests.MaxDuration)
	}
	if err := access.ValidName(cfg.ClusterName); err != nil {
		return service.Config{}, fmt.Errorf("cluster_name: %w", err)
	}
	crlBase, err := crlBaseURL(cfg)
	if err != nil {
		return service.Config{}, err
	}
	loginLimit, err := cfg.Identity.loginLimit() // chat.go
	if err != nil {
		return service.Config{}, err
	}
	return service.Config{
		ClusterName:       cfg.ClusterName,
		CRLBaseURL:        crlBase,
		PendingTTL:        pending,
		MaxDuration:       maxDur,
		FallbackReviewers: access.ReviewerSelector{Roles: cfg.Requests.FallbackReviewers.Roles, Users: cfg.Requests.FallbackReviewers.Users},
		Chat:              chatChannels(cfg),
		LoginLimit:        loginLimit,
	}, nil
}

// crlBaseURL is where Windows fetches the desktop CRLs: http://HOST:PORT
// of crl_listen. A wildcard host (0.0.0.0, ::, empty) is replaced by the
// host of public_url, else this machine's host name, since a certificate
// must name an address others can reach. Empty crl_listen: "".
func crlBaseURL(cfg Config) (string, error) {
	if cfg.CRLListen == "" {
		return "", nil
	}
	host, port, err := net.SplitHostPort(cfg.CRLListen)
	if err != nil || port == "" {
		return "", fmt.Errorf("crl_listen %q: want HOST:PORT", cfg.CRLListen)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return "", fmt.Errorf("crl_listen %q: want HOST:PORT with a port number in 1-65535", cfg.CRLListen)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = ""
		if u, err := url.Parse(cfg.PublicURL); err == nil && u.Hostname() != "" {
			host = u.Hostname()
		} else if h, _ := os.Hostname(); h != "" {
			host = h
		} else {
			return "", fmt.Errorf("crl_listen %q: name the host Windows reaches (a wildcard address cannot go into certificates)", cfg.CRLListen)
		}
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

// serveCRL serves the desktop CRLs over plain HTTP on ln until ctx ends.
func serveCRL(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) {
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(shut)
	}()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		log.Error("CRL listener stopped", "err", err)
	}
}

// serverURL is the URL clients use, for identity files and printed hints.
func serverURL(cfg Config) string {
	if cfg.PublicURL != "" {
		return strings.TrimRight(cfg.PublicURL, "/")
	}
	host, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return "https://" + cfg.Listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "https://" + net.JoinHostPort(host, port)
}

// certHosts are the names the server certificate covers.
func certHosts(cfg Config) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, _ := os.Hostname(); h != "" {
		hosts = append(hosts, h)
	}
	if host, _, err := net.SplitHostPort(cfg.Listen); err == nil && host != "" {
		if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
			hosts = append(hosts, host)
		}
	}
	if u, err := url.Parse(cfg.PublicURL); err == nil && u.Hostname() != "" {
		hosts = append(hosts, u.Hostname())
	}
	return hosts
}

func run(ctx context.Context, cfg Config, demoDir string) error {
	log := newLogger(cfg.Log)
	scfg, err := serviceConfig(cfg)
	if err != nil {
		return err
	}
	chatCfg, err := chatConfig(cfg)
	if err != nil {
		return err
	}
	// Listen first: a taken port is the most common start-up error and
	// should not wait for etcd.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	defer ln.Close()
	var crlLn net.Listener
	if cfg.CRLListen != "" {
		if crlLn, err = net.Listen("tcp", cfg.CRLListen); err != nil {
			return fmt.Errorf("crl_listen %s: %w", cfg.CRLListen, err)
		}
		defer crlLn.Close()
	}

	st, closeStore, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeStore()

	idx := inventory.New()
	pd, err := openPagerDuty(cfg)
	if err != nil {
		return err
	}
	policy, err := openPolicy(ctx, cfg, st, pd, log)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := metrics.New(reg)
	if pd != nil {
		go deliverPagerDuty(ctx, st, pd, m, log)
	}
	// The KEK comes before Bootstrap, which seals the cluster CA key with it.
	kek, kekSource, err := loadKEK(cfg)
	if err != nil {
		return err
	}
	authority, err := openAuthority(ctx, cfg, st, kek, kekSource, log)
	if err != nil {
		return err
	}
	opts := []service.Option{service.WithLogger(log), service.WithPolicy(policy, policies.CheckBundle), service.WithKEK(kek), service.WithMetrics(m)}
	if authority != nil {
		opts = append(opts, service.WithIssuer(authority))
	}
	svc := service.New(scfg, st, idx, opts...)
	createdAdmin, err := svc.Bootstrap(ctx)
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if demoDir != "" {
		if err := loadDemo(ctx, svc, demoDir, log); err != nil {
			return fmt.Errorf("load demo from %s: %w", demoDir, err)
		}
	}
	idFile := filepath.Join(cfg.DataDir, "admin.identity")
	if createdAdmin || demoDir != "" {
		if err := writeAdminIdentity(ctx, svc, serverURL(cfg), idFile); err != nil {
			return err
		}
		log.Info("wrote admin identity", "file", idFile, "valid", service.AdminIdentityTTL)
	}

	ca, err := svc.ClusterAuthority(ctx)
	if err != nil {
		return err
	}
	tc, err := server.TLSConfig(ca, certHosts(cfg), time.Now())
	if err != nil {
		return err
	}

	go func() {
		if err := idx.Run(ctx, st); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("resource index stopped", "err", err)
		}
	}()
	go func() {
		sweeper := svc.NewExpirySweeper(service.ExpiryMaxWait(sweepInterval))
		err := st.RunElected(ctx, "expiry", func(ctx context.Context) {
			log.Info("leading the expiry sweeper")
			if err := sweeper.Run(ctx); err != nil {
				log.Warn("expiry sweeper", "err", err) // RunElected campaigns again
			}
		})
		if err != nil && !errors.Is(err, context.Canceled) {
			log.Error("expiry sweeper stopped", "err", err)
		}
	}()
	if err := startAuditRetention(ctx, cfg.Audit, st, log); err != nil { // audit.go
		return err
	}

	if cfg.Policies.Dir != "" {
		go watchPolicyDir(ctx, cfg.Policies.Dir, st, svc, log)
	}

	api := server.New(svc, log, m, st.Ping, func(ctx context.Context) error {
		select {
		case <-idx.Ready():
			return nil
		default:
			return errors.New("resource index loading")
		}
	})
	chat, err := chatops.Start(ctx, chatCfg, svc, st, log)
	if err != nil {
		return err
	}
	api.Mount(chat.Routes)
	defer func() {
		// Replies acknowledged but not yet sent finish before exit.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := chat.Shutdown(sctx); err != nil {
			log.Warn("chat shutdown", "err", err)
		}
	}()
	if crlLn != nil {
		go serveCRL(ctx, crlLn, server.CRLHandler(svc), log)
		log.Info("serving desktop CRLs over plain HTTP", "listen", crlLn.Addr().String(), "url", scfg.CRLBaseURL+"/crl/desktop/DOMAIN/vN.crl")
	}
	log.Info("accessd serving", "url", serverURL(cfg), "cluster", cfg.ClusterName, "ca_pin", ca.Pin())
	if demoDir != "" {
		printDemoHelp(serverURL(cfg), idFile, ca.Pin())
	}
	return api.Serve(ctx, ln, tc)
}

func writeAdminIdentity(ctx context.Context, svc *service.Service, serverURL, path string) error {
	id, err := svc.MintIdentity(ctx, serverURL, service.AdminUser, service.AdminIdentityTTL)
	if err != nil {
		return fmt.Errorf("mint admin identity: %w", err)
	}
	b, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write admin identity: %w", err)
	}
	return os.Rename(tmp, path)
}

// hostConfig is the configuration of a host-side command (admin-identity,
// kek-rotate): the config file, with --data-dir overriding data_dir.
func hostConfig(cmd *cobra.Command, config, dataDir string) (Config, error) {
	cfg, err := loadConfig(config)
	if err != nil {
		return cfg, err
	}
	if cmd.Flags().Changed("data-dir") {
		cfg.DataDir = dataDir
	}
	return cfg, nil
}

func adminIdentityCmd() *cobra.Command {
	var dataDir, out, config, server, kekFile string
	cmd := &cobra.Command{
		Use:   "admin-identity",
		Short: "Mint a fresh 1-hour admin identity file on this host (needs the data dir)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := hostConfig(cmd, config, dataDir)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("kek-file") {
				cfg.CA.KEKFile = kekFile
			}
			kek, _, err := loadKEK(cfg) // as start: the cluster CA key may be sealed
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			log := newLogger(LogConfig{Level: "warn"})
			st, closeStore, err := openHostStore(ctx, cfg, log)
			if err != nil {
				return err
			}
			defer closeStore()
			scfg, err := serviceConfig(cfg)
			if err != nil {
				return err
			}
			svc := service.New(scfg, st, inventory.New(), service.WithLogger(log), service.WithKEK(kek))
			if out == "" {
				out = filepath.Join(cfg.DataDir, "admin.identity")
			}
			url := server
			if url == "" {
				url = serverURL(cfg)
			}
			if err := writeAdminIdentity(ctx, svc, url, out); err != nil {
				return err
			}
			fmt.Printf("wrote %s (valid %s)\n", out, service.AdminIdentityTTL)
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "/var/lib/gatehouse", "data directory of accessd")
	cmd.Flags().StringVar(&out, "out", "", "identity file (default DATA_DIR/admin.identity)")
	cmd.Flags().StringVar(&config, "config", "", "accessd.yaml")
	cmd.Flags().StringVar(&server, "server", "", "server URL written into the identity")
	cmd.Flags().StringVar(&kekFile, "kek-file", "", "key-encryption key, as for start (or GATEHOUSE_KEK); needed when the cluster CA key is sealed")
	return cmd
}

// openHostStore reaches the store from the host: over the running
// member's unix socket when accessd runs (the embedded data dir is locked
// then), else by starting the embedded member itself.
func openHostStore(ctx context.Context, cfg Config, log *slog.Logger) (*store.Store, func(), error) {
	if len(cfg.Storage.Etcd.Endpoints) == 0 {
		if sock := filepath.Join(cfg.DataDir, embedded.SocketName); fileExists(sock) {
			ep := "unix://" + sock
			dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			st, err := store.Dial(dctx, store.Config{Endpoints: []string{ep}, Prefix: cfg.Storage.Etcd.Prefix, Logger: log, DialTimeout: 2 * time.Second})
			cancel()
			if err == nil {
				return st, func() { _ = st.Close() }, nil
			}
		}
	}
	return openStore(ctx, cfg, log)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
