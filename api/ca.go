package api

import (
	"context"
	"net/http"
	"net/url"

	"github.com/gatehouse-dev/gatehouse/access"
)

// RotateCARequest is the body of POST /v1/ca/{type}/rotate.
type RotateCARequest struct {
	Resource string `json:"resource,omitempty"`
	Phase    string `json:"phase"` // publish | switch | retire
}

// CAKeySet is a CA's keys (public parts and states only).
type CAKeySet = access.CAKeySet

// RotateCA runs one rotation phase of a CA (rule ca:update).
func (c *Client) RotateCA(ctx context.Context, typ, resource, phase string) (CAKeySet, error) {
	var out CAKeySet
	return out, c.do(ctx, http.MethodPost, "/v1/ca/"+url.PathEscape(typ)+"/rotate", RotateCARequest{Resource: resource, Phase: phase}, &out)
}
