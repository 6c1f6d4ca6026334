package server

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/service"
)

// crlMaxAge is how long HTTP caches may keep a CRL; it is signed for a day
// (ca.CRLLifetime).
const crlMaxAge = time.Hour

// CRLHandler serves the CRLs desktop certificates point to, for a plain
// HTTP listener (crl_listen): Windows fetches CRLs over http:// or
// ldap:// only, never https://. It answers only, with a DER CRL
// (application/pkix-crl, RFC 5280 section 4.2.1.13):
//   - GET /crl/desktop/{domain}/v{N}.crl: the CRL of that Windows
//     domain's CA signed by its key version N, what a certificate signed by
//     that key names (service.CRLVersionPath), for every key in the CA's
//     set: published, active, and retiring until it is retired;
//   - GET /crl/desktop/{domain}.crl: the one signed by the active key,
//     which certificates issued before CRLs were per key version name.
//
// Nothing else is reachable on that listener.
func CRLHandler(svc *service.Service) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /crl/desktop/{file}", func(w http.ResponseWriter, r *http.Request) {
		domain, ok := strings.CutSuffix(r.PathValue("file"), ".crl")
		if !ok || domain == "" {
			writeError(w, fmt.Errorf("%w: want /crl/desktop/DOMAIN.crl or /crl/desktop/DOMAIN/vN.crl", access.ErrNotFound))
			return
		}
		serveCRL(w, r, svc, domain, 0)
	})
	mux.HandleFunc("GET /crl/desktop/{domain}/{file}", func(w http.ResponseWriter, r *http.Request) {
		version, ok := crlFileVersion(r.PathValue("file"))
		if !ok {
			writeError(w, fmt.Errorf("%w: want /crl/desktop/DOMAIN/vN.crl, N a key version", access.ErrNotFound))
			return
		}
		serveCRL(w, r, svc, r.PathValue("domain"), version)
	})
	return mux
}

// crlFileVersion reads N out of "vN.crl", N a key version (1 or more,
// written without leading zeros or sign, so each CRL has one URL).
func crlFileVersion(file string) (int, bool) {
	s, ok := strings.CutPrefix(file, "v")
	if !ok {
		return 0, false
	}
	if s, ok = strings.CutSuffix(s, ".crl"); !ok {
		return 0, false
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 || strconv.Itoa(v) != s {
		return 0, false
	}
	return v, true
}

func serveCRL(w http.ResponseWriter, r *http.Request, svc *service.Service, domain string, version int) {
	der, err := svc.CRL(r.Context(), access.CATypeDesktop, domain, version)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/pkix-crl")
	w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(crlMaxAge/time.Second)))
	_, _ = w.Write(der)
}
