package main

import (
	"fmt"
	"os"
	"strings"

	"sigs.k8s.io/yaml"
)

// Config is accessd.yaml. Every key has a default; unknown keys are an
// error naming the key; flags override it.
type Config struct {
	ClusterName string            `json:"cluster_name"`
	Listen      string            `json:"listen"`
	PublicURL   string            `json:"public_url"`
	CRLListen   string            `json:"crl_listen"` // plain-HTTP HOST:PORT for desktop CRLs; empty: none, and no desktop credentials
	DataDir     string            `json:"data_dir"`
	Storage     StorageConfig     `json:"storage"`
	Requests    RequestConfig     `json:"requests"`
	Policies    PoliciesConfig    `json:"policies"`
	CA          CAConfig          `json:"ca"`
	PagerDuty   *PagerDutyConfig  `json:"pagerduty"`
	Identity    IdentityConfig    `json:"identity"`
	Slack       *SlackConfig      `json:"slack"`
	Discord     *DiscordConfig    `json:"discord"`
	Mattermost  *MattermostConfig `json:"mattermost"`
	Log         LogConfig         `json:"log"`
	Audit       AuditConfig       `json:"audit"` // retention and export: audit.go
}

// CAConfig is ca.
type CAConfig struct {
	// KEKFile holds the key-encryption key of the CA keys; it must live
	// outside data_dir. GATEHOUSE_KEK overrides it. Neither: no credentials.
	KEKFile string `json:"kek_file"`
	// PreviousKEKFile holds the key-encryption key being replaced, during a
	// KEK rotation only: keys sealed under it still open, new ones are
	// sealed under kek_file. GATEHOUSE_PREVIOUS_KEK overrides it.
	PreviousKEKFile string `json:"previous_kek_file"`
	// SSHAlgorithm of a new SSH CA: ed25519 (default), ecdsa-p256 or rsa-3072.
	SSHAlgorithm string `json:"ssh_algorithm"`
	// ForbiddenKubeGroups are never put into a Kubernetes certificate,
	// besides system:masters, which never is.
	ForbiddenKubeGroups []string `json:"forbidden_kube_groups"`
}

// PoliciesConfig is policies.
type PoliciesConfig struct {
	// Dir: empty means the bundle in etcd, or the one built into the binary.
	Dir string `json:"dir"`
	// Timeout bounds one evaluation.
	Timeout string `json:"timeout"`
}

// PagerDutyConfig is pagerduty; absent disables the integration (and the
// pagerduty built-ins then fail, so on-call policies wait for humans).
type PagerDutyConfig struct {
	APIKey     string `json:"api_key"`
	APIKeyFile string `json:"api_key_file"`
	APIURL     string `json:"api_url"`
	FromEmail  string `json:"from_email"`
	CacheTTL   string `json:"cache_ttl"`
}

// apiKey resolves the secret: inline, _file, or PAGERDUTY_API_KEY.
func (p PagerDutyConfig) apiKey() (string, error) {
	switch {
	case p.APIKey != "":
		return p.APIKey, nil
	case p.APIKeyFile != "":
		b, err := os.ReadFile(p.APIKeyFile)
		if err != nil {
			return "", fmt.Errorf("pagerduty.api_key_file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	case os.Getenv("PAGERDUTY_API_KEY") != "":
		return os.Getenv("PAGERDUTY_API_KEY"), nil
	}
	return "", fmt.Errorf("pagerduty: set api_key, api_key_file or PAGERDUTY_API_KEY")
}

// StorageConfig selects embedded or external etcd.
type StorageConfig struct {
	Etcd EtcdConfig `json:"etcd"`
}

// EtcdConfig is storage.etcd.
type EtcdConfig struct {
	Endpoints []string      `json:"endpoints"`
	Prefix    string        `json:"prefix"`
	TLS       EtcdTLSConfig `json:"tls"`
}

// EtcdTLSConfig holds client certificates for an external cluster.
type EtcdTLSConfig struct {
	CAFile   string `json:"ca_file"`
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
}

// RequestConfig is requests.
type RequestConfig struct {
	PendingTTL        string          `json:"pending_ttl"`
	MaxDuration       string          `json:"max_duration"`
	FallbackReviewers ReviewersConfig `json:"fallback_reviewers"`
}

// ReviewersConfig names reviewers by role or user.
type ReviewersConfig struct {
	Roles []string `json:"roles"`
	Users []string `json:"users"`
}

// LogConfig is log.
type LogConfig struct {
	Level  string `json:"level"`  // debug | info | warn | error
	Format string `json:"format"` // text | json
}

func defaultConfig() Config {
	host, _ := os.Hostname()
	if host == "" {
		host = "gatehouse"
	}
	return Config{
		ClusterName: host,
		Listen:      "127.0.0.1:3025",
		DataDir:     "/var/lib/gatehouse",
		Storage:     StorageConfig{Etcd: EtcdConfig{Prefix: "/gatehouse/"}},
		Requests:    RequestConfig{PendingTTL: "1h", MaxDuration: "12h"},
		Policies:    PoliciesConfig{Timeout: "500ms"},
		Log:         LogConfig{Level: "info", Format: "text"},
	}
}

// loadConfig reads path over the defaults.
func loadConfig(path string) (Config, error) {
	cfg := defaultConfig()
	if path == "" {
		return cfg, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	if err := yaml.UnmarshalStrict(b, &cfg); err != nil {
		return cfg, fmt.Errorf("config %s: %s", path, strings.TrimPrefix(err.Error(), "error unmarshaling JSON: while decoding JSON: json: "))
	}
	return cfg, nil
}
