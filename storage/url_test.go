package storage_test

import (
	"context"
	"strings"
	"testing"

	"github.com/tailor-metrics/tailor/storage"
	"github.com/tailor-metrics/tailor/storage/s3test"
)

// secret stands for every credential the tests put into URLs; it must never come back
// in a message.
const secret = "S3CR3T-do-not-print"

func TestRedact(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := storage.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	f("/data/tailor", "/data/tailor")
	f("file:///data/tailor", "file:///data/tailor")
	f("s3://b/p", "s3://b/p")
	f("s3://b/p?endpoint=http://127.0.0.1:9000&region=eu-west-1&path_style=true", "s3://b/p?endpoint=http://127.0.0.1:9000&region=eu-west-1&path_style=true")
	f("s3://AKIA:"+secret+"@b/p", "s3://AKIA:xxxxx@b/p")
	f("s3://b/p?aws_secret_access_key="+secret+"&region=x", "s3://b/p?aws_secret_access_key=xxxxx&region=x")
	f("s3://b/p?Endpoint="+secret, "s3://b/p?Endpoint=xxxxx")
	f("s3://b/p?endpoint=http://u:"+secret+"@h:1", "s3://b/p?endpoint=http://u:xxxxx@h:1")
	f("s3://b/p?endpoint=http%3A%2F%2Fu%3A"+secret+"%40h%3A1", "s3://b/p?endpoint=http%3A%2F%2Fu%3Axxxxx%40h%3A1")
	f("s3://b/p?endpoint=%zz"+secret, "s3://b/p?endpoint=xxxxx")
	f("s3://b/p?token;sig="+secret, "s3://b/p?token&sig=xxxxx")
	f("s3://b/p#"+secret, "s3://b/p#xxxxx")
	f("s3://u:"+secret+"@b%zz/p?x=1", "s3://u:xxxxx@b%zz/p?x=xxxxx")
	f("s3://u@b/p", "s3://u@b/p")
}

// TestOpenRefusesMalformedURLs: nothing in a store URL is silently dropped or
// guessed, and no error shows a credential.
func TestOpenRefusesMalformedURLs(t *testing.T) {
	s3test.Setenv(t) // credentials in the chain, so only the URL can be wrong
	ctx := context.Background()
	for _, tc := range []struct{ url, want string }{
		{"s3://bkt/p?endpoint=%zz", "malformed query: invalid %-escape"},
		{"s3://bkt/p?endpoint=%zz" + secret, "malformed query"},
		{"s3://bkt/p?region=eu-west-1;path_style=true", "malformed query"},
		{"s3://bkt/p?endpoint=http://h:1&endpoint=http://h:2", `parameter "endpoint" given 2 times`},
		{"s3://bkt/p?region=a&region=a", `parameter "region" given 2 times`},
		{"s3://bkt/p?Endpoint=http://h:1", `unknown parameter "Endpoint"`},
		{"s3://bkt/p?endpoint=", `parameter "endpoint" is empty`},
		{"s3://bkt/p?path_style=", `parameter "path_style" is empty`},
		{"s3://bkt/p?aws_secret_access_key=" + secret, `unknown parameter "aws_secret_access_key"`},
		{"s3://bkt/p?aws_secret_access_key=" + secret + "&endpoint=http://u:" + secret + "@h:1", "unknown parameter"},
		{"s3://bkt/p?endpoint=http://u:" + secret + "@127.0.0.1:1", "credentials in the endpoint"},
		{"s3://bkt/p?endpoint=http%3A%2F%2Fu%3A" + secret + "%40127.0.0.1%3A1", "credentials in the endpoint"},
		{"s3://bkt/p?endpoint=ftp://h:1", "not an http(s) URL"},
		{"s3://bkt/p?endpoint=http://h:1/path", "has a path or parameters"},
		{"s3://bkt/p?endpoint=http://h:1?x=" + secret, "has a path or parameters"},
		{"s3://bkt/p?endpoint=http://h:", "empty port"},
		{"s3://bkt/p?path_style=maybe", "want true or false"},
		{"s3://AKIA:" + secret + "@bkt/p", "credentials in the URL"},
		{"s3://u:" + secret + "@bkt%zz/p", "malformed URL"},
		{"s3://u:" + secret + "@b k/p", "malformed URL"},
		{"s3://bkt:9000/p", "?endpoint=http://host:port"},
		{"s3://Bucket/p", "only lowercase letters"},
		{"s3://ab/p", "3 to 63 characters"},
		{"s3://-bkt/p", "starts and ends"},
		{"s3://bkt-/p", "starts and ends"},
		{"s3://bk..t/p", "two adjacent dots"},
		{"s3://b_kt/p", "only lowercase letters"},
		{"s3://192.168.1.1/p", "not an IP address"},
		{"s3://bkt/p#" + secret, "malformed URL"},
		{"s3:/bkt/p", "malformed URL: want s3://"},
		{"s3:bkt", "malformed URL: want s3://"},
		{"s3://", "no bucket"},
		{"s3://bkt/a//b", "prefix"},
		{"file:///tmp/x?y=" + secret, "takes no user, parameters or fragment"},
		{"file://u:" + secret + "@localhost/x", "takes no user, parameters or fragment"},
		{"ftp://u:" + secret + "@x/y", `unknown scheme "ftp"`},
	} {
		st, err := storage.Open(ctx, tc.url)
		if err == nil {
			st.Close()
			t.Errorf("open %q: no error", tc.url)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("open %q: %v; want it to say %q", tc.url, err, tc.want)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("open %q: the error shows the secret: %v", tc.url, err)
		}
	}
	// A malformed endpoint in the environment is refused the same way.
	t.Setenv("AWS_ENDPOINT_URL_S3", "http://u:"+secret+"@h:1")
	if _, err := storage.Open(ctx, "s3://bkt/p"); err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("endpoint with credentials from the environment: %v", err)
	}
}
