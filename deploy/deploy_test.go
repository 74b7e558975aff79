// Package deploy_test parses the Kubernetes manifests into the Kubernetes API types,
// strictly, so that a typo in a field name fails CI rather than a rollout. The flags in
// the containers' args are checked against the CLI by cmd/tailor-batch's deploy test.
package deploy_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// docs splits every manifest into its YAML documents.
func docs(t *testing.T) map[string][][]byte {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	out := map[string][][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range bytes.Split(b, []byte("\n---\n")) {
			if len(bytes.TrimSpace(d)) > 0 {
				out[f] = append(out[f], d)
			}
		}
	}
	return out
}

// decode parses every document strictly into its kind's type.
func decode(t *testing.T) map[string][]any {
	t.Helper()
	out := map[string][]any{}
	for f, ds := range docs(t) {
		for i, d := range ds {
			var tm typeMeta
			if err := yaml.Unmarshal(d, &tm); err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			var obj any
			switch tm.APIVersion + " " + tm.Kind {
			case "apps/v1 Deployment":
				obj = &appsv1.Deployment{}
			case "batch/v1 Job":
				obj = &batchv1.Job{}
			case "batch/v1 CronJob":
				obj = &batchv1.CronJob{}
			case "v1 ServiceAccount":
				obj = &corev1.ServiceAccount{}
			case "v1 ConfigMap":
				obj = &corev1.ConfigMap{}
			default:
				t.Fatalf("%s document %d: unexpected %s %s", f, i, tm.APIVersion, tm.Kind)
			}
			if err := yaml.UnmarshalStrict(d, obj); err != nil {
				t.Fatalf("%s document %d (%s): %v", f, i, tm.Kind, err)
			}
			out[tm.Kind] = append(out[tm.Kind], obj)
		}
	}
	return out
}

func TestManifestsParse(t *testing.T) {
	objs := decode(t)
	for _, kind := range []string{"Deployment", "Job", "CronJob", "ServiceAccount"} {
		if len(objs[kind]) == 0 {
			t.Errorf("no %s in deploy/", kind)
		}
	}
	for _, o := range objs["Deployment"] {
		d := o.(*appsv1.Deployment)
		c := d.Spec.Template.Spec.Containers[0]
		if c.Args[0] != "sink" || !slices.Contains(c.Args, "--instance-id=$(POD_NAME)") {
			t.Errorf("deployment %s: want the sink with a static member id per pod, got %q", d.Name, c.Args)
		}
		if !labelsMatch(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
			t.Errorf("deployment %s: selector %v does not match the pod labels %v", d.Name, d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
		}
	}
	var jobs []batchv1.JobSpec
	for _, o := range objs["Job"] {
		jobs = append(jobs, o.(*batchv1.Job).Spec)
	}
	life := map[string]bool{}
	for _, o := range objs["CronJob"] {
		cj := o.(*batchv1.CronJob)
		if f := strings.Fields(cj.Spec.Schedule); len(f) != 5 {
			t.Errorf("cronjob %s: schedule %q is not 5 fields", cj.Name, cj.Spec.Schedule)
		}
		spec := cj.Spec.JobTemplate.Spec
		switch cmd := spec.Template.Spec.Containers[0].Args[0]; cmd {
		case "compact", "retain", "gc":
			checkLifeCronJob(t, objs, cj, cmd)
			life[cmd] = true
		default:
			jobs = append(jobs, spec)
		}
	}
	for _, cmd := range []string{"compact", "retain", "gc"} {
		if !life[cmd] {
			t.Errorf("no CronJob runs %s (docs/lifecycle.md)", cmd)
		}
	}
	for _, j := range jobs {
		if j.CompletionMode == nil || *j.CompletionMode != batchv1.IndexedCompletion {
			t.Errorf("run job: want completionMode Indexed")
		}
		if j.Completions == nil || *j.Completions != 64 {
			t.Errorf("run job: want 64 completions, one per org-mod shard")
		}
		if j.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
			t.Errorf("run job: restartPolicy %q: want Never so a failed index is retried by backoffLimitPerIndex", j.Template.Spec.RestartPolicy)
		}
		c := j.Template.Spec.Containers[0]
		if c.Args[0] != "run" || !slices.Contains(c.Args, "--shard-from-env=JOB_COMPLETION_INDEX") {
			t.Errorf("run job: want run --shard-from-env=JOB_COMPLETION_INDEX, got %q", c.Args)
		}
		if lim := c.Resources.Limits.Memory(); lim == nil || lim.IsZero() {
			t.Errorf("run job: want a memory limit (the default --memory-limit is 60%% of it)")
		}
	}
}

// checkLifeCronJob checks a CronJob of the history's life (compact, retain, gc): one at
// a time, a pod that is not restarted in place (the Job retries it), a memory limit, and
// for retain a policy mounted from a ConfigMap in deploy/.
func checkLifeCronJob(t *testing.T, objs map[string][]any, cj *batchv1.CronJob, cmd string) {
	t.Helper()
	if cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("cronjob %s: concurrencyPolicy %q: want Forbid", cj.Name, cj.Spec.ConcurrencyPolicy)
	}
	pod := cj.Spec.JobTemplate.Spec.Template.Spec
	if pod.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("cronjob %s: restartPolicy %q: want Never", cj.Name, pod.RestartPolicy)
	}
	c := pod.Containers[0]
	if lim := c.Resources.Limits.Memory(); lim == nil || lim.IsZero() {
		t.Errorf("cronjob %s: want a memory limit", cj.Name)
	}
	if cmd != "retain" {
		return
	}
	var policy string
	for _, a := range c.Args {
		if p, ok := strings.CutPrefix(a, "--policy="); ok {
			policy = p
		}
	}
	found := false
	for _, m := range c.VolumeMounts {
		if !strings.HasPrefix(policy, m.MountPath+"/") {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name != m.Name || v.ConfigMap == nil {
				continue
			}
			for _, o := range objs["ConfigMap"] {
				cm := o.(*corev1.ConfigMap)
				if _, ok := cm.Data[strings.TrimPrefix(policy, m.MountPath+"/")]; ok && cm.Name == v.ConfigMap.Name {
					found = true
				}
			}
		}
	}
	if !found {
		t.Errorf("cronjob %s: --policy=%s is not a file of a ConfigMap in deploy/", cj.Name, policy)
	}
}

func labelsMatch(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return len(sel) > 0
}
