package payload

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// TenantLabel is the label that carries a series' org in a remote-write record written
// by the gateway: the first of the decoder's default Options.OrgLabels, so a sink with
// default options files the series under that org and drops the label from its tags.
const TenantLabel = "__tenant__"

// ErrUnknownTenant is returned for a tenant name that is neither a decimal org id nor
// listed in the tenant map.
var ErrUnknownTenant = errors.New("unknown tenant")

// Tenants maps tenant names to org ids. Mimir and Thanos name tenants with strings
// (X-Scope-OrgID, a tenant label, a bucket's tenant directory); Tailor's orgs are
// uint32. A tenant that is a decimal uint32 is that org; any other name must be listed.
// The zero value knows only decimal tenants. A Tenants is safe for concurrent use once
// built.
type Tenants struct {
	names map[string]uint32
}

// tenantsFile is the YAML form of a tenant map:
//
//	tenants:
//	  team-a: 17
//	  team-b: 18
type tenantsFile struct {
	Tenants map[string]uint32 `yaml:"tenants"`
}

// ParseTenants reads a tenant map in YAML. A listed tenant that is itself a decimal
// number is an error: that name always means its own org.
func ParseTenants(b []byte) (*Tenants, error) {
	var f tenantsFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("parse tenants: %w", err)
	}
	names := make([]string, 0, len(f.Tenants))
	for n := range f.Tenants {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if n == "" {
			return nil, errors.New("parse tenants: empty tenant name")
		}
		if _, err := strconv.ParseUint(n, 10, 32); err == nil {
			return nil, fmt.Errorf("parse tenants: tenant %q is a number, which always maps to org %s; list only names", n, n)
		}
	}
	return &Tenants{names: f.Tenants}, nil
}

// LoadTenants reads the tenant map file at path (see ParseTenants).
func LoadTenants(path string) (*Tenants, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load tenants: %w", err)
	}
	t, err := ParseTenants(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Org returns the org of tenant: the number itself for a decimal uint32, the listed org
// for a name in the map, else an error wrapping ErrUnknownTenant.
func (t *Tenants) Org(tenant string) (uint32, error) {
	if n, err := strconv.ParseUint(tenant, 10, 32); err == nil {
		return uint32(n), nil
	}
	if t != nil {
		if org, ok := t.names[tenant]; ok {
			return org, nil
		}
	}
	return 0, fmt.Errorf("%w %q (not a decimal org id and not in the tenant map)", ErrUnknownTenant, tenant)
}

// Tenancy decides the org of each series of a remote-write request or of a TSDB
// block, the one rule the gateway and the blocks reader share (docs/payloads.md,
// Tenancy):
//
//  1. A series that has Label (when set) belongs to the tenant its value names, and
//     loses that label.
//  2. Otherwise it belongs to the request's tenant (the X-Scope-OrgID header, a
//     bucket's tenant directory, a flag).
//  3. With neither, the series is left as it is, and the sink's remote-write rule
//     applies (an org label such as org_id, else the default org).
type Tenancy struct {
	// Label, when not empty, is a series label whose value names the series' tenant.
	Label string
	// Tenants maps tenant names to orgs; nil knows only decimal tenants.
	Tenants *Tenants
}

// Resolve applies the rule to one series' labels ls and the request's tenant ("" for
// none). It returns the labels without Label, and the org with ok set when rules 1 or
// 2 gave one. The returned slice reuses dst's memory. A series that already carries
// TenantLabel (reserved: the gateway writes it) or names an unknown tenant is an
// error.
func (t Tenancy) Resolve(dst, ls []Label, tenant string) (rest []Label, org uint32, ok bool, err error) {
	rest = dst[:0]
	for _, l := range ls {
		switch {
		case t.Label != "" && l.Name == t.Label:
			if l.Value != "" { // an empty value is no label, as in Prometheus
				tenant = l.Value
			}
			continue
		case l.Name == TenantLabel:
			return rest, 0, false, fmt.Errorf("label %s is reserved for the org the gateway assigns", TenantLabel)
		}
		rest = append(rest, l)
	}
	if tenant == "" {
		return rest, 0, false, nil
	}
	org, err = t.Tenants.Org(tenant)
	if err != nil {
		return rest, 0, false, err
	}
	return rest, org, true, nil
}
