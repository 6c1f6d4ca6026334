//go:build !unix

package embedded

// lockDir is a no-op where flock does not exist; etcd's own file locks
// still refuse a second member, only later.
func lockDir(string) (func(), error) { return func() {}, nil }
