package payload

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tailor-metrics/tailor/columnar"
)

func TestTenantsOrg(t *testing.T) {
	ts, err := ParseTenants([]byte("tenants:\n  team-a: 17\n  \"team b\": 4294967295\n"))
	if err != nil {
		t.Fatal(err)
	}
	f := func(tenant string, want uint32, wantErr bool) {
		t.Helper()
		got, err := ts.Org(tenant)
		if wantErr {
			if !errors.Is(err, ErrUnknownTenant) {
				t.Errorf("Org(%q) = %d, %v; want ErrUnknownTenant", tenant, got, err)
			}
			return
		}
		if err != nil || got != want {
			t.Errorf("Org(%q) = %d, %v; want %d", tenant, got, err, want)
		}
	}
	f("0", 0, false)
	f("42", 42, false)
	f("4294967295", 4294967295, false)
	f("team-a", 17, false)
	f("team b", 4294967295, false)
	f("4294967296", 0, true) // overflows uint32: a name, and not listed
	f("-1", 0, true)
	f("team-c", 0, true)
	f("", 0, true)
	f("a|b", 0, true) // Mimir's federated read tenants are not one tenant

	var zero *Tenants // knows decimal tenants only
	if org, err := zero.Org("7"); err != nil || org != 7 {
		t.Errorf("nil Tenants: Org(7) = %d, %v", org, err)
	}
}

func TestParseTenantsErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"number listed", "tenants:\n  \"5\": 6\n", `tenant "5" is a number`},
		{"not yaml", "tenants: [", "parse tenants"},
		{"org too large", "tenants:\n  a: 4294967296\n", "parse tenants"},
		{"negative org", "tenants:\n  a: -1\n", "parse tenants"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTenants([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestTenancyResolve(t *testing.T) {
	ts, err := ParseTenants([]byte("tenants:\n  team-a: 17\n"))
	if err != nil {
		t.Fatal(err)
	}
	ls := func(kv ...string) []Label {
		var out []Label
		for i := 0; i < len(kv); i += 2 {
			out = append(out, Label{kv[i], kv[i+1]})
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		tenancy Tenancy
		labels  []Label
		tenant  string
		rest    []Label
		org     uint32
		ok      bool
		err     string
	}{
		{"header", Tenancy{Tenants: ts}, ls("__name__", "up", "job", "a"), "team-a", ls("__name__", "up", "job", "a"), 17, true, ""},
		{"decimal header", Tenancy{}, ls("__name__", "up"), "9", ls("__name__", "up"), 9, true, ""},
		{"no tenant at all", Tenancy{Label: "team"}, ls("__name__", "up", "org_id", "3"), "", ls("__name__", "up", "org_id", "3"), 0, false, ""},
		{"label wins over header", Tenancy{Label: "team", Tenants: ts}, ls("__name__", "up", "team", "team-a"), "5", ls("__name__", "up"), 17, true, ""},
		{"label absent: header", Tenancy{Label: "team", Tenants: ts}, ls("__name__", "up", "x", "y"), "5", ls("__name__", "up", "x", "y"), 5, true, ""},
		{"empty label value is no label", Tenancy{Label: "team"}, ls("__name__", "up", "team", ""), "5", ls("__name__", "up"), 5, true, ""},
		{"tenant label may be __tenant__", Tenancy{Label: TenantLabel}, ls("__name__", "up", "__tenant__", "8"), "", ls("__name__", "up"), 8, true, ""},
		{"reserved label", Tenancy{}, ls("__name__", "up", "__tenant__", "8"), "5", nil, 0, false, "reserved"},
		{"unknown tenant", Tenancy{Tenants: ts}, ls("__name__", "up"), "team-z", nil, 0, false, "unknown tenant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rest, org, ok, err := tc.tenancy.Resolve(nil, tc.labels, tc.tenant)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if org != tc.org || ok != tc.ok || !slices.Equal(rest, tc.rest) {
				t.Errorf("got %v %d %v, want %v %d %v", rest, org, ok, tc.rest, tc.org, tc.ok)
			}
		})
	}
}

// TestMapLabelsMatchesDecode checks that MapLabels gives every label set the key and
// tags that Decode gives the same labels in a remote-write record, on random label
// sets (unsorted, empty values, org labels) and on the invalid ones.
func TestMapLabelsMatchesDecode(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	names := []string{"__name__", "job", "instance", "org_id", "__tenant__", "le", "Z", "a:b", "é"}
	var d1, d2 Decoder
	var p columnar.Payload
	for i := 0; i < 5000; i++ {
		var ls []Label
		for _, n := range names {
			if rng.IntN(3) == 0 {
				continue
			}
			v := strconv.Itoa(rng.IntN(4))
			if rng.IntN(5) == 0 {
				v = ""
			}
			if n == "__name__" && rng.IntN(2) == 0 {
				v = "metric_" + v
			}
			ls = append(ls, Label{n, v})
		}
		if rng.IntN(20) == 0 && len(ls) > 0 { // a duplicate name
			ls = append(ls, ls[0])
		}
		rng.Shuffle(len(ls), func(a, b int) { ls[a], ls[b] = ls[b], ls[a] })
		got, derr := d1.Decode(RemoteWrite, AppendRemoteWrite(nil, []TimeSeries{{Labels: ls}}), nil)
		merr := d2.MapLabels(ls, &p)
		if (derr == nil) != (merr == nil) {
			t.Fatalf("labels %v: Decode error %v, MapLabels error %v", ls, derr, merr)
		}
		if derr != nil {
			var de *DecodeError
			if !errors.As(merr, &de) || de.Field != "labels" {
				t.Fatalf("labels %v: MapLabels error %v is not a labels DecodeError", ls, merr)
			}
			continue
		}
		if got[0].SeriesKey != p.SeriesKey || !slices.Equal(got[0].Tags, p.Tags) || len(p.Timestamps) != 0 {
			t.Fatalf("labels %v: Decode %+v, MapLabels %+v", ls, got[0], p)
		}
	}
	if err := d2.MapLabels([]Label{{"__name__", "a\xffb"}}, &p); err == nil {
		t.Error("invalid UTF-8 accepted")
	}
}
