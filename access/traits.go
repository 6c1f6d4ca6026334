package access

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// templateRe matches one trait template: {{internal.NAME}} or
// {{external.NAME}}, with optional spaces inside the braces.
var templateRe = regexp.MustCompile(`\{\{\s*(internal|external)\.([A-Za-z0-9_][A-Za-z0-9_.\-]*)\s*\}\}`)

// maxExpansions caps how many strings one templated value may become, so a
// value with several templates over long trait lists stays small.
const maxExpansions = 1024

// checkTemplates refuses "{{" syntax that ExpandTraits would not understand;
// at expansion such a value is dropped, and an author should hear about it
// when saving the role rather than wonder why it never matches.
func checkTemplates(path, v string) error {
	if !strings.Contains(v, "{{") && !strings.Contains(v, "}}") {
		return nil
	}
	rest := templateRe.ReplaceAllString(v, "")
	if strings.Contains(rest, "{{") || strings.Contains(rest, "}}") {
		return fmt.Errorf("%w: %s: unknown template in %q: want {{internal.NAME}} or {{external.NAME}}", ErrInvalid, path, v)
	}
	return nil
}

// expandValue expands the templates of one value. A value without templates
// is returned as is; a template whose trait is missing or empty, or any
// syntax we do not understand, expands to nothing: passing "{{foo}}"
// through literally could match a resource or login by accident.
func expandValue(v string, traits map[string][]string) []string {
	if !strings.Contains(v, "{{") && !strings.Contains(v, "}}") {
		return []string{v}
	}
	locs := templateRe.FindAllStringSubmatchIndex(v, -1)
	if len(locs) == 0 {
		return nil
	}
	// Literal text between templates must itself be free of braces.
	prev := 0
	for _, loc := range locs {
		lit := v[prev:loc[0]]
		if strings.Contains(lit, "{{") || strings.Contains(lit, "}}") {
			return nil
		}
		prev = loc[1]
	}
	if tail := v[prev:]; strings.Contains(tail, "{{") || strings.Contains(tail, "}}") {
		return nil
	}

	out := []string{""}
	prev = 0
	for _, loc := range locs {
		lit := v[prev:loc[0]]
		name := v[loc[4]:loc[5]]
		vals := traits[name]
		if len(vals) == 0 {
			return nil
		}
		next := make([]string, 0, len(out)*len(vals))
		for _, o := range out {
			for _, tv := range vals {
				if len(next) == maxExpansions {
					break
				}
				next = append(next, o+lit+tv)
			}
		}
		out = next
		prev = loc[1]
	}
	for i := range out {
		out[i] += v[prev:]
	}
	return out
}

// expandList expands every value of a list, dropping duplicates while
// keeping the first occurrence's order.
func expandList(in []string, traits map[string][]string) []string {
	if in == nil {
		return nil
	}
	out := make([]string, 0, len(in))
	seen := make(map[string]bool, len(in))
	for _, v := range in {
		for _, e := range expandValue(v, traits) {
			if !seen[e] {
				seen[e] = true
				out = append(out, e)
			}
		}
	}
	return out
}

func expandLabels(l Labels, traits map[string][]string) Labels {
	if l == nil {
		return nil
	}
	out := make(Labels, len(l))
	for k, vals := range l {
		// A key whose values all expanded to nothing stays with no values,
		// so an allow selector with a missing trait matches nothing.
		out[k] = Strings(expandList(vals, traits))
		if out[k] == nil {
			out[k] = Strings{}
		}
	}
	return out
}

// ExpandTraits returns a deep copy of the role with the trait templates of
// logins, db_users, db_names, kubernetes_groups, windows_desktop_logins,
// label values and request.suggested_reviewers expanded from traits. A
// template whose trait has no values, and any unknown template syntax, is
// dropped rather than passed through literally.
func (r Role) ExpandTraits(traits map[string][]string) Role {
	out := r.clone()
	expandConditions(&out.Spec.Allow, traits)
	expandConditions(&out.Spec.Deny, traits)
	return out
}

func expandConditions(c *RoleConditions, traits map[string][]string) {
	c.Logins = expandList(c.Logins, traits)
	c.DBUsers = expandList(c.DBUsers, traits)
	c.DBNames = expandList(c.DBNames, traits)
	c.KubernetesGroups = expandList(c.KubernetesGroups, traits)
	c.WindowsDesktopLogins = expandList(c.WindowsDesktopLogins, traits)
	c.NodeLabels = expandLabels(c.NodeLabels, traits)
	c.DBLabels = expandLabels(c.DBLabels, traits)
	c.AppLabels = expandLabels(c.AppLabels, traits)
	c.KubernetesLabels = expandLabels(c.KubernetesLabels, traits)
	c.WindowsDesktopLabels = expandLabels(c.WindowsDesktopLabels, traits)
	if c.Request != nil {
		c.Request.SuggestedReviewers = expandList(c.Request.SuggestedReviewers, traits)
	}
}

// clone returns a deep copy, so that expanding or editing it never reaches
// the caller's role (roles are shared by cached role sets).
func (r Role) clone() Role {
	out := r
	out.Metadata.Labels = maps.Clone(r.Metadata.Labels)
	out.Spec.Allow = r.Spec.Allow.clone()
	out.Spec.Deny = r.Spec.Deny.clone()
	out.Spec.Options = r.Spec.Options.clone()
	return out
}

func (c RoleConditions) clone() RoleConditions {
	out := c
	out.Logins = slices.Clone(c.Logins)
	out.NodeLabels = c.NodeLabels.clone()
	out.DBLabels = c.DBLabels.clone()
	out.DBUsers = slices.Clone(c.DBUsers)
	out.DBNames = slices.Clone(c.DBNames)
	out.AppLabels = c.AppLabels.clone()
	out.KubernetesLabels = c.KubernetesLabels.clone()
	out.KubernetesGroups = slices.Clone(c.KubernetesGroups)
	out.KubernetesResources = slices.Clone(c.KubernetesResources)
	out.WindowsDesktopLabels = c.WindowsDesktopLabels.clone()
	out.WindowsDesktopLogins = slices.Clone(c.WindowsDesktopLogins)
	if c.Request != nil {
		rq := *c.Request
		rq.Roles = slices.Clone(c.Request.Roles)
		rq.SearchAsRoles = slices.Clone(c.Request.SearchAsRoles)
		rq.SuggestedReviewers = slices.Clone(c.Request.SuggestedReviewers)
		if c.Request.Annotations != nil {
			rq.Annotations = make(map[string][]string, len(c.Request.Annotations))
			for k, v := range c.Request.Annotations {
				rq.Annotations[k] = slices.Clone(v)
			}
		}
		out.Request = &rq
	}
	if c.ReviewRequests != nil {
		rr := ReviewConditions{Roles: slices.Clone(c.ReviewRequests.Roles)}
		out.ReviewRequests = &rr
	}
	if c.Rules != nil {
		out.Rules = make([]Rule, len(c.Rules))
		for i, rule := range c.Rules {
			out.Rules[i] = Rule{Resources: slices.Clone(rule.Resources), Verbs: slices.Clone(rule.Verbs)}
		}
	}
	return out
}

func (l Labels) clone() Labels {
	if l == nil {
		return nil
	}
	out := make(Labels, len(l))
	for k, v := range l {
		out[k] = slices.Clone(v)
	}
	return out
}

func (o RoleOptions) clone() RoleOptions {
	out := o
	out.PermitPTY = cloneBool(o.PermitPTY)
	out.ForwardAgent = cloneBool(o.ForwardAgent)
	out.PortForwarding = cloneBool(o.PortForwarding)
	return out
}

func cloneBool(b *bool) *bool {
	if b == nil {
		return nil
	}
	v := *b
	return &v
}
