package ca

import (
	"context"

	"github.com/gatehouse-dev/gatehouse/access"
)

var _ access.CARotator = (*Authority)(nil)

// RotateCA runs one rotation phase on a CA and returns the key set without
// its sealed private keys.
func (a *Authority) RotateCA(ctx context.Context, typ, resource, phase string) (access.CAKeySet, error) {
	if _, err := a.keys.Ensure(ctx, typ, resource); err != nil {
		return access.CAKeySet{}, err
	}
	set, err := a.keys.Rotate(ctx, typ, resource, phase)
	if err != nil {
		return access.CAKeySet{}, err
	}
	return Redact(set), nil
}
