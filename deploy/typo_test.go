package deploy_test

import (
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	"sigs.k8s.io/yaml"
)

// TestStrictDecodingCatchesTypos: the decoding TestManifestsParse relies on rejects a
// misspelled field, so a typo in a manifest cannot pass.
func TestStrictDecodingCatchesTypos(t *testing.T) {
	bad := []byte("apiVersion: batch/v1\nkind: Job\nspec:\n  completionMod: Indexed\n")
	if err := yaml.UnmarshalStrict(bad, &batchv1.Job{}); err == nil {
		t.Fatal("a misspelled field decoded without error")
	}
}
