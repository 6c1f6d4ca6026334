package server

import (
	"net/http"

	"github.com/gatehouse-dev/gatehouse/api"
	"github.com/gatehouse-dev/gatehouse/service"
)

func (s *Server) handleRotateCA(w http.ResponseWriter, r *http.Request, c service.Caller) {
	var in api.RotateCARequest
	if err := decode(r, &in); err != nil {
		writeError(w, err)
		return
	}
	set, err := s.svc.RotateCA(r.Context(), c, r.PathValue("type"), in.Resource, in.Phase)
	answer(w, set, err)
}
