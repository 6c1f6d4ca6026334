// Package kubetest is a stand-in for kube-apiserver's front door: a TLS
// server on loopback that authenticates client certificates with the x509
// authenticator from k8s.io/apiserver, as kube-apiserver's
// --client-ca-file does (CN is the user, O the groups, and every
// authenticated request gains system:authenticated), and answers
// `kubectl auth whoami` with who the request arrived as.
package kubetest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/group"
	x509request "k8s.io/apiserver/pkg/authentication/request/x509"
)

// Server is one fake API server. Its URL and CAPEM go into a
// kube_cluster resource's spec.server and spec.ca_pem.
type Server struct {
	URL   string
	CAPEM []byte

	clientCA atomic.Pointer[x509.VerifyOptions]
	auth     authenticator.Request

	mu       sync.Mutex
	requests []string
}

// Start starts a server that authenticates nobody until TrustClientCA.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{}
	s.auth = group.NewAuthenticatedGroupAdder(x509request.NewDynamic(func() (x509.VerifyOptions, bool) {
		o := s.clientCA.Load()
		if o == nil {
			return x509.VerifyOptions{}, false
		}
		return *o, true
	}, x509request.CommonNameUserConversion))
	hs := httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	hs.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	hs.StartTLS()
	t.Cleanup(hs.Close)
	s.URL = hs.URL
	s.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs.Certificate().Raw})
	return s
}

// TrustClientCA sets the client CA bundle (PEM), like --client-ca-file.
func (s *Server) TrustClientCA(t testing.TB, bundle []byte) {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		t.Fatalf("kubetest: no certificates in the client CA bundle %q", bundle)
	}
	o := x509request.DefaultVerifyOptions()
	o.Roots = pool
	s.clientCA.Store(&o)
}

// Requests returns "METHOD PATH" of every request so far.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.Method+" "+r.URL.Path)
	s.mu.Unlock()

	resp, ok, err := s.auth.AuthenticateRequest(r)
	if err != nil || !ok {
		status(w, http.StatusUnauthorized, "Unauthorized", "Unauthorized")
		return
	}
	// kubectl auth whoami needs no discovery: it posts a
	// SelfSubjectReview (and falls back to v1beta1 and v1alpha1 on 404).
	u := resp.User
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/apis/authentication.k8s.io/v1/selfsubjectreviews":
		reply(w, map[string]any{"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
			"metadata": map[string]any{"creationTimestamp": nil},
			"status": map[string]any{"userInfo": map[string]any{"username": u.GetName(), "uid": u.GetUID(),
				"groups": u.GetGroups(), "extra": u.GetExtra()}}})
	default:
		status(w, http.StatusNotFound, "NotFound", "the server could not find the requested resource")
	}
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func status(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "apiVersion": "v1", "metadata": map[string]any{},
		"status": "Failure", "message": msg, "reason": reason, "code": code})
}

// Kubectl returns the path of kubectl, or skips the test when it is
// missing (fails instead under GATEHOUSE_REQUIRE_SERVERS=1).
func Kubectl(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("kubectl")
	msg := "kubectl not found in PATH: run scripts/test-deps.sh (Debian package kubernetes-client)"
	if err == nil {
		// auth whoami came with kubectl 1.26 (Debian 12's
		// kubernetes-client is 1.20).
		if out, herr := exec.Command(p, "auth", "--help").CombinedOutput(); herr != nil || !strings.Contains(string(out), "whoami") {
			err, msg = fmt.Errorf("no auth whoami"), fmt.Sprintf("%s has no `auth whoami` (needs kubectl >= 1.26): %v: %s", p, herr, out)
		}
	}
	if err != nil {
		if os.Getenv("GATEHOUSE_REQUIRE_SERVERS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}
