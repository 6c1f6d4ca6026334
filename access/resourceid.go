package access

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxResourceIDLen bounds resource IDs so that a hostile request cannot make
// the parser, the regexp compiler or the audit log chew on megabytes.
const MaxResourceIDLen = 512

// ResourceID names one resource, or a pattern of Kubernetes objects inside a
// cluster, in an access request.
//
//	/CLUSTER/KIND/NAME                                 node, db, app, kube_cluster, windows_desktop
//	/CLUSTER/KIND/KUBE_CLUSTER/NAMESPACE/NAME          namespaced Kubernetes kinds (pod, secret, ...)
//	/CLUSTER/KIND/KUBE_CLUSTER/NAME                    cluster-wide Kubernetes kinds (namespace, ...)
//
// NAME and NAMESPACE may contain `*` wildcards or be a `^regex$`. Segments are
// split on "/", so a regular expression cannot contain a slash.
type ResourceID struct {
	Cluster     string
	Kind        string
	KubeCluster string
	Namespace   string
	Name        string
}

// Kubernetes object kinds that live inside a namespace.
var kubeNamespacedKinds = []string{
	"pod", "secret", "configmap", "service", "serviceaccount",
	"persistentvolumeclaim", "deployment", "replicaset", "statefulset",
	"daemonset", "kube_role", "rolebinding", "cronjob", "job", "ingress",
}

// Kubernetes object kinds that are cluster-wide.
var kubeClusterWideKinds = []string{
	"namespace", "kube_node", "clusterrole", "clusterrolebinding",
	"persistentvolume", "certificatesigningrequest",
}

// resourceKinds are the kinds of inventory resources, in display order.
var resourceKinds = []string{KindNode, KindDB, KindApp, KindKubeCluster, KindWindowsDesktop}

var (
	kubeNamespacedSet  = toSet(kubeNamespacedKinds)
	kubeClusterWideSet = toSet(kubeClusterWideKinds)
	resourceKindSet    = toSet(resourceKinds)
)

func toSet(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

// IsResourceKind reports whether kind is one of the five inventory kinds.
func IsResourceKind(kind string) bool { return resourceKindSet[kind] }

// IsKubernetesNamespacedKind reports whether kind is a Kubernetes object kind
// addressed as /CLUSTER/KIND/KUBE_CLUSTER/NAMESPACE/NAME.
func IsKubernetesNamespacedKind(kind string) bool { return kubeNamespacedSet[kind] }

// IsKubernetesClusterWideKind reports whether kind is a Kubernetes object
// kind addressed as /CLUSTER/KIND/KUBE_CLUSTER/NAME.
func IsKubernetesClusterWideKind(kind string) bool { return kubeClusterWideSet[kind] }

// IsKubernetesSubresource reports whether id names objects inside a
// Kubernetes cluster rather than an inventory resource.
func (id ResourceID) IsKubernetesSubresource() bool {
	return IsKubernetesNamespacedKind(id.Kind) || IsKubernetesClusterWideKind(id.Kind)
}

// String returns the canonical form, which ParseResourceID reads back.
func (id ResourceID) String() string {
	switch {
	case IsKubernetesNamespacedKind(id.Kind):
		return "/" + id.Cluster + "/" + id.Kind + "/" + id.KubeCluster + "/" + id.Namespace + "/" + id.Name
	case IsKubernetesClusterWideKind(id.Kind):
		return "/" + id.Cluster + "/" + id.Kind + "/" + id.KubeCluster + "/" + id.Name
	}
	return "/" + id.Cluster + "/" + id.Kind + "/" + id.Name
}

// ParseResourceID parses and validates a resource ID. Errors wrap ErrInvalid
// and say what is wrong with which part.
func ParseResourceID(s string) (ResourceID, error) {
	if len(s) > MaxResourceIDLen {
		return ResourceID{}, fmt.Errorf("%w: resource ID %q...: %d bytes, at most %d", ErrInvalid, s[:32], len(s), MaxResourceIDLen)
	}
	if s == "" {
		return ResourceID{}, fmt.Errorf("%w: resource ID is empty: want /CLUSTER/KIND/NAME", ErrInvalid)
	}
	if !utf8.ValidString(s) {
		return ResourceID{}, fmt.Errorf("%w: resource ID %q: not valid UTF-8", ErrInvalid, s)
	}
	if i := strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }); i >= 0 {
		return ResourceID{}, fmt.Errorf("%w: resource ID %q: whitespace or control character at byte %d", ErrInvalid, s, i)
	}
	if s[0] != '/' {
		return ResourceID{}, fmt.Errorf("%w: resource ID %q: must start with \"/\": want /CLUSTER/KIND/NAME", ErrInvalid, s)
	}
	parts := strings.Split(s[1:], "/")
	if len(parts) < 3 {
		return ResourceID{}, fmt.Errorf("%w: resource ID %q: want /CLUSTER/KIND/NAME", ErrInvalid, s)
	}
	kind := parts[1]
	var id ResourceID
	switch {
	case IsResourceKind(kind):
		if len(parts) != 3 {
			return ResourceID{}, fmt.Errorf("%w: resource ID %q: want /CLUSTER/%s/NAME", ErrInvalid, s, kind)
		}
		id = ResourceID{Cluster: parts[0], Kind: kind, Name: parts[2]}
	case IsKubernetesNamespacedKind(kind):
		if len(parts) != 5 {
			return ResourceID{}, fmt.Errorf("%w: resource ID %q: want /CLUSTER/%s/KUBE_CLUSTER/NAMESPACE/NAME", ErrInvalid, s, kind)
		}
		id = ResourceID{Cluster: parts[0], Kind: kind, KubeCluster: parts[2], Namespace: parts[3], Name: parts[4]}
	case IsKubernetesClusterWideKind(kind):
		if len(parts) != 4 {
			return ResourceID{}, fmt.Errorf("%w: resource ID %q: want /CLUSTER/%s/KUBE_CLUSTER/NAME", ErrInvalid, s, kind)
		}
		id = ResourceID{Cluster: parts[0], Kind: kind, KubeCluster: parts[2], Name: parts[3]}
	case kind == "":
		return ResourceID{}, fmt.Errorf("%w: resource ID %q: empty KIND: want /CLUSTER/KIND/NAME", ErrInvalid, s)
	default:
		return ResourceID{}, fmt.Errorf("%w: resource ID %q: unknown kind %q", ErrInvalid, s, kind)
	}

	if err := checkLiteralSegment(s, "CLUSTER", id.Cluster); err != nil {
		return ResourceID{}, err
	}
	if id.IsKubernetesSubresource() {
		if err := checkLiteralSegment(s, "KUBE_CLUSTER", id.KubeCluster); err != nil {
			return ResourceID{}, err
		}
	}
	if IsKubernetesNamespacedKind(kind) {
		if err := checkPatternSegment(s, "NAMESPACE", id.Namespace); err != nil {
			return ResourceID{}, err
		}
	}
	if err := checkPatternSegment(s, "NAME", id.Name); err != nil {
		return ResourceID{}, err
	}
	return id, nil
}

// checkLiteralSegment refuses patterns where the ID must name one thing: a
// wildcard cluster would let one request reach every cluster.
func checkLiteralSegment(id, what, v string) error {
	if v == "" {
		return fmt.Errorf("%w: resource ID %q: empty %s", ErrInvalid, id, what)
	}
	if strings.ContainsAny(v, "*^$") {
		return fmt.Errorf("%w: resource ID %q: %s %q: wildcards and regular expressions are only allowed in NAME and NAMESPACE", ErrInvalid, id, what, v)
	}
	return nil
}

// checkPatternSegment accepts a literal, a `*` glob or a `^regex$` that
// compiles.
func checkPatternSegment(id, what, v string) error {
	if v == "" {
		return fmt.Errorf("%w: resource ID %q: empty %s", ErrInvalid, id, what)
	}
	if isRegexPattern(v) {
		if _, err := compileCached(v); err != nil {
			return fmt.Errorf("%w: resource ID %q: %s: invalid regular expression %q: %v", ErrInvalid, id, what, v, err)
		}
		return nil
	}
	// A lone ^ or $ is almost certainly a broken regular expression; taking
	// it literally would silently match nothing.
	if strings.ContainsAny(v, "^$") {
		return fmt.Errorf("%w: resource ID %q: %s %q: a regular expression must start with ^ and end with $", ErrInvalid, id, what, v)
	}
	return nil
}
