package payload

import "testing"

func TestFormatNames(t *testing.T) {
	for _, tc := range []struct {
		f    Format
		name string
	}{{Auto, "auto"}, {Proto, "proto"}, {JSON, "json"}, {RemoteWrite, "remote-write"}} {
		if !tc.f.IsValid() || tc.f.String() != tc.name {
			t.Errorf("Format %d: IsValid %v, String %q, want valid %q", tc.f, tc.f.IsValid(), tc.f.String(), tc.name)
		}
		got, err := ParseFormat(tc.name)
		if err != nil || got != tc.f {
			t.Errorf("ParseFormat(%q) = %v, %v", tc.name, got, err)
		}
		var u Format
		txt, err := tc.f.MarshalText()
		if err != nil || u.UnmarshalText(txt) != nil || u != tc.f {
			t.Errorf("text round trip of %v: %q, %v -> %v", tc.f, txt, err, u)
		}
	}
	for _, s := range []string{"", "Proto", "remote_write", "protobuf"} {
		if _, err := ParseFormat(s); err == nil {
			t.Errorf("ParseFormat(%q) succeeded", s)
		}
	}
	if Format(4).IsValid() || Format(4).String() != "Format(4)" {
		t.Errorf("Format(4): IsValid %v, String %q", Format(4).IsValid(), Format(4).String())
	}
	if _, err := Format(200).MarshalText(); err == nil {
		t.Error("MarshalText of an invalid format succeeded")
	}
}

func TestDetect(t *testing.T) {
	f := func(in string, want Format) {
		t.Helper()
		if got := detect([]byte(in)); got != want {
			t.Errorf("detect(%q) = %v, want %v", in, got, want)
		}
	}
	f(`{"org_id":1}`, JSON)
	f(" \t\r\n{", JSON)
	f("\x08\x01", Proto)
	f("", Proto)
	f("   ", Proto)
	f("[1]", Proto)
}

// TestNoProtoLooksLikeJSON checks the claim behind Auto: no record that starts with '{'
// or JSON whitespace decodes as a Tailor protobuf payload, because each of those bytes
// is a tag of a known field with the wrong wire type or of a group.
func TestNoProtoLooksLikeJSON(t *testing.T) {
	var d Decoder
	for _, c := range []byte{'{', ' ', '\t', '\n', '\r'} {
		for _, rest := range [][]byte{nil, {0}, {1, 0}, {0x7f}, make([]byte, 20), {8, 1, 8, 1}} {
			rec := append([]byte{c}, rest...)
			if _, err := d.Decode(Proto, rec, nil); err == nil {
				t.Errorf("proto record %q decoded", rec)
			}
		}
	}
}
