package storage

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// redactedValue replaces every credential Redact removes.
const redactedValue = "xxxxx"

// safeParams are the URL parameters whose values are shown in messages: the ones the S3
// store knows, none of which is a credential. Every other parameter's value is masked,
// so a mistyped or unknown parameter (aws_secret_access_key=…) never reaches a log.
var safeParams = map[string]bool{paramEndpoint: true, paramPathStyle: true, paramRegion: true}

// Redact returns rawURL fit for messages and logs: the password of the URL and of an
// endpoint parameter, the value of every parameter other than endpoint, path_style and
// region, and the fragment are masked. It works on text that does not parse as a URL
// too, so an error about a malformed URL can still name it. Plain paths are returned
// unchanged.
//
// Every message that shows a store URL given by a user goes through Redact; URL() of an
// open store is already credential-free.
func Redact(rawURL string) string {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return rawURL
	}
	rest, frag, hasFrag := strings.Cut(rest, "#")
	rest, query, hasQuery := strings.Cut(rest, "?")
	var b strings.Builder
	b.WriteString(scheme)
	b.WriteString("://")
	b.WriteString(redactAuthority(rest))
	if hasQuery {
		b.WriteByte('?')
		for i, pair := range strings.FieldsFunc(query, func(r rune) bool { return r == '&' || r == ';' }) {
			if i > 0 {
				b.WriteByte('&')
			}
			k, v, hasV := strings.Cut(pair, "=")
			b.WriteString(k)
			if !hasV {
				continue
			}
			b.WriteByte('=')
			name, err := url.QueryUnescape(k)
			switch {
			case err != nil || !safeParams[name]:
				if v != "" {
					b.WriteString(redactedValue)
				}
			case name == paramEndpoint:
				b.WriteString(redactEscaped(v))
			default:
				b.WriteString(v)
			}
		}
	}
	if hasFrag {
		b.WriteByte('#')
		if frag != "" {
			b.WriteString(redactedValue)
		}
	}
	return b.String()
}

// redactAuthority masks the password of "user:password@host/path".
func redactAuthority(s string) string {
	end := strings.IndexByte(s, '/')
	if end < 0 {
		end = len(s)
	}
	at := strings.LastIndexByte(s[:end], '@')
	if at < 0 {
		return s
	}
	user, _, hasPass := strings.Cut(s[:at], ":")
	if !hasPass {
		return s
	}
	return user + ":" + redactedValue + s[at:]
}

// redactEscaped redacts a URL that is itself query-escaped (an endpoint parameter): a
// password in it may be written as %3A…%40.
func redactEscaped(v string) string {
	un, err := url.QueryUnescape(v)
	if err != nil {
		// A malformed escape: the value cannot be read, so none of it is shown.
		return redactedValue
	}
	switch r := Redact(un); {
	case r == un:
		return v
	case un == v:
		return r // written unescaped: keep it readable
	default:
		return url.QueryEscape(r)
	}
}

// s3Query parses the parameters of an s3:// URL strictly: a malformed query, an unknown
// or repeated parameter, or an empty value is an error, never dropped (url.URL.Query
// drops what it cannot parse, and a dropped endpoint sends requests to AWS with the
// ambient credentials).
func s3Query(raw string) (map[string]string, error) {
	if raw == "" {
		return map[string]string{}, nil
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		var ee url.EscapeError
		if errors.As(err, &ee) {
			// The escape text may be part of a secret: say what is wrong, not where.
			return nil, errors.New("malformed query: invalid %-escape")
		}
		return nil, fmt.Errorf("malformed query: %w", err)
	}
	out := make(map[string]string, len(q))
	for k, vs := range q {
		if !safeParams[k] {
			return nil, fmt.Errorf("unknown parameter %q (known: endpoint, path_style, region)", k)
		}
		if len(vs) > 1 {
			return nil, fmt.Errorf("parameter %q given %d times", k, len(vs))
		}
		if vs[0] == "" {
			return nil, fmt.Errorf("parameter %q is empty", k)
		}
		out[k] = vs[0]
	}
	return out, nil
}

// validBucket checks an S3 bucket name against the rules of general purpose buckets
// (AWS S3, MinIO and versitygw share them): 3 to 63 lowercase letters, digits, dots and
// hyphens, starting and ending with a letter or digit, no "..", not an IP address. The
// usual slip it catches is a port in the bucket (s3://host:9000/…), which belongs in
// ?endpoint=.
func validBucket(b string) error {
	if strings.Contains(b, ":") {
		return fmt.Errorf("bucket %q is not a bucket name: an endpoint's host and port go in ?endpoint=http://host:port", b)
	}
	if len(b) < 3 || len(b) > 63 {
		return fmt.Errorf("bucket %q: a bucket name has 3 to 63 characters", b)
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '.' || c == '-':
			if i == 0 || i == len(b)-1 {
				return fmt.Errorf("bucket %q: a bucket name starts and ends with a lowercase letter or digit", b)
			}
		default:
			return fmt.Errorf("bucket %q: a bucket name has only lowercase letters, digits, dots and hyphens", b)
		}
	}
	if strings.Contains(b, "..") {
		return fmt.Errorf("bucket %q: a bucket name has no two adjacent dots", b)
	}
	if net.ParseIP(b) != nil {
		return fmt.Errorf("bucket %q: a bucket name is not an IP address; an endpoint goes in ?endpoint=http://host:port", b)
	}
	return nil
}
