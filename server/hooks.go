package server

import "net/http"

// Mount adds routes that authenticate themselves, such as the chat
// platforms' webhooks (/v1/hooks/...), which verify the platform's
// signature or token instead of a client certificate. They are
// instrumented like every other route.
func (s *Server) Mount(routes map[string]http.Handler) {
	for pattern, h := range routes {
		s.mux.Handle(pattern, s.instrument(pattern, h))
	}
}
