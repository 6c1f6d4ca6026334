package server

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/service"
)

// CRLHandler serves the CRLs desktop certificates point to, for a plain
// HTTP listener (crl_listen): Windows fetches CRLs over http:// or
// ldap:// only, never https://. It answers only
// GET /crl/desktop/{domain}.crl, with the DER CRL of that Windows domain's
// CA (application/pkix-crl, RFC 5280 section 4.2.1.13); nothing else is
// reachable on that listener.
func CRLHandler(svc *service.Service) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /crl/desktop/{file}", func(w http.ResponseWriter, r *http.Request) {
		domain, ok := strings.CutSuffix(r.PathValue("file"), ".crl")
		if !ok || domain == "" {
			writeError(w, fmt.Errorf("%w: want /crl/desktop/DOMAIN.crl", access.ErrNotFound))
			return
		}
		der, err := svc.CRL(r.Context(), access.CATypeDesktop, domain)
		if err != nil {
			writeError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/pkix-crl")
		w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(time.Hour/time.Second)))
		_, _ = w.Write(der)
	})
	return mux
}
