package pointdiff

import "testing"

func TestKindString(t *testing.T) {
	f := func(k Kind, want string, valid bool) {
		t.Helper()
		if got := k.String(); got != want || k.IsValid() != valid {
			t.Fatalf("Kind(%d): %q valid %v, want %q valid %v", uint8(k), got, k.IsValid(), want, valid)
		}
	}
	f(Equal, "equal", true)
	f(MissingInNew, "missing_in_new", true)
	f(MissingInLegacy, "missing_in_legacy", true)
	f(ValueDiffers, "value_differs", true)
	f(DuplicateInLegacy, "duplicate_in_legacy", true)
	// Codes come from SQL results: an unknown one prints as such, never panics.
	f(Kind(5), "kind(5)", false)
	f(Kind(255), "kind(255)", false)
}

func TestDifferencesAreEveryKindButEqual(t *testing.T) {
	seen := map[Kind]bool{}
	for _, k := range Differences {
		if !k.IsValid() || k == Equal || seen[k] {
			t.Fatalf("Differences has %v", k)
		}
		seen[k] = true
	}
	if len(seen) != len(names)-1 {
		t.Fatalf("Differences has %d kinds, want %d", len(seen), len(names)-1)
	}
}

func TestKindText(t *testing.T) {
	for k := Equal; k.IsValid(); k++ {
		b, err := k.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Kind
		if err := back.UnmarshalText(b); err != nil || back != k {
			t.Fatalf("%s read back as %v, %v", b, back, err)
		}
	}
	var k Kind
	if err := k.UnmarshalText([]byte("kind(9)")); err == nil {
		t.Fatal("an unknown name must not parse")
	}
}
