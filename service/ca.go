package service

import (
	"context"
	"fmt"

	"github.com/gatehouse-dev/gatehouse/access"
)

// RotateCA runs one rotation phase (rule ca:update): publish, switch or
// retire. Audited with the key versions and states that result.
func (s *Service) RotateCA(ctx context.Context, c Caller, typ, resource, phase string) (access.CAKeySet, error) {
	if err := require(c, access.RuleCA, access.VerbUpdate); err != nil {
		return access.CAKeySet{}, err
	}
	rot, ok := s.issuer.(access.CARotator)
	if !ok {
		return access.CAKeySet{}, fmt.Errorf("%w: this server has no certificate authority configured", access.ErrInvalid)
	}
	set, err := rot.RotateCA(ctx, typ, resource, phase)
	outcome, fields := OutcomeSuccess, map[string]any{"type": typ, "resource": resource, "phase": phase}
	if err != nil {
		outcome, fields["error"] = OutcomeFailure, err.Error()
	} else {
		var keys []string
		for _, k := range set.Keys {
			keys = append(keys, fmt.Sprintf("v%d:%s", k.Version, k.State))
		}
		fields["keys"] = keys
	}
	if aerr := s.store.AppendAudit(ctx, s.audit(c, "ca.rotate", "", outcome, "", fields)); aerr != nil && err == nil {
		return set, aerr
	}
	return set, err
}
