package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tailor-metrics/tailor/blocks"
	"github.com/tailor-metrics/tailor/ingest/payload"
)

// blocksFlags configure a --legacy source of Prometheus TSDB blocks (docs/prometheus.md):
// the same tenancy flags as the gateway, and Thanos' replica labels.
type blocksFlags struct {
	tenant, tenantLabel, tenants string
	replicaLabels                []string
}

func (f *blocksFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.tenant, "legacy-tenant", "", "Prometheus blocks: tenant of blocks whose layout names none (default: the org_id label, else org 0)")
	fl.StringVar(&f.tenantLabel, "legacy-tenant-label", "", "Prometheus blocks: series label naming the tenant, as the gateway's --tenant-label")
	fl.StringVar(&f.tenants, "legacy-tenants", "", "Prometheus blocks: YAML tenant map, as the gateway's --tenants")
	fl.StringArrayVar(&f.replicaLabels, "legacy-replica-label", nil, "Prometheus blocks: label telling replicas apart, de-duplicated as Thanos does (repeatable)")
}

func (f *blocksFlags) options() (blocks.ReadOptions, error) {
	o := blocks.ReadOptions{Tenant: f.tenant, ReplicaLabels: f.replicaLabels, Tenancy: payload.Tenancy{Label: f.tenantLabel}}
	if f.tenants != "" {
		t, err := payload.LoadTenants(f.tenants)
		if err != nil {
			return o, fmt.Errorf("--legacy-tenants: %w", err)
		}
		o.Tenancy.Tenants = t
	}
	return o, nil
}
