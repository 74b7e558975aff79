package payload

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tailor-metrics/tailor/columnar"
)

// JSON payload: one object per record,
//
//	{"org_id":1,"metric_id":18446744073709551615,"context_key":0,"tags":["env:prod"],
//	 "timestamps":[1763942400000,1763942410000],"values":[0.5,"NaN"]}
//
// org_id, metric_id, context_key, timestamps and values are required; tags (an array of
// strings, or null) and metadata (an object of strings, or null) are optional. Other
// keys are skipped after checking they hold valid JSON. A known key given twice is an
// error. Ids are unsigned decimal integers read exactly; timestamps are int64 integers;
// values are JSON numbers read as float64 (strconv.ParseFloat, correctly rounded) or one
// of the strings "NaN", "+Inf", "-Inf", "-0". See docs/payloads.md.

// maxJSONDepth bounds the nesting of skipped (unknown) values, so a record of a million
// '[' cannot exhaust the stack.
const maxJSONDepth = 64

// Bits of the known keys, to find missing and duplicate keys.
const (
	keyOrg = 1 << iota
	keyMetric
	keyContext
	keyTags
	keyTimestamps
	keyValues
	keyMetadata

	keysRequired = keyOrg | keyMetric | keyContext | keyTimestamps | keyValues
)

var requiredKeys = [...]struct {
	bit  int
	name string
}{
	{keyOrg, "org_id"},
	{keyMetric, "metric_id"},
	{keyContext, "context_key"},
	{keyTimestamps, "timestamps"},
	{keyValues, "values"},
}

func jsonErr(field string, off int, reason string) *DecodeError {
	return &DecodeError{Format: JSON, Field: field, Offset: off, Reason: reason}
}

func skipWS(b []byte, i int) int {
	for i < len(b) && isJSONSpace(b[i]) {
		i++
	}
	return i
}

// describe names the token at b[i] for an error message.
func describe(b []byte, i int) string {
	if i >= len(b) {
		return "end of input"
	}
	c := b[i]
	if c >= 0x20 && c < 0x7f {
		return "'" + string(rune(c)) + "'"
	}
	return "byte 0x" + strconv.FormatUint(uint64(c), 16)
}

// decodeJSON decodes one JSON payload object into p (already reset).
func (d *Decoder) decodeJSON(b []byte, p *columnar.Payload) error {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return jsonErr("", i, "expected '{', found "+describe(b, i))
	}
	i = skipWS(b, i+1)
	seen := 0
	valuesAt := 0
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for {
			if i >= len(b) || b[i] != '"' {
				return jsonErr("", i, "expected object key, found "+describe(b, i))
			}
			keyAt := i
			key, j, err := d.jsonString(b, i)
			if err != nil {
				return err
			}
			i = skipWS(b, j)
			if i >= len(b) || b[i] != ':' {
				return jsonErr("", i, "expected ':' after key, found "+describe(b, i))
			}
			i = skipWS(b, i+1)
			bit := 0
			var name string
			switch string(key) { // no allocation: switch on string(bytes) is special-cased
			case "org_id":
				bit, name = keyOrg, "org_id"
			case "metric_id":
				bit, name = keyMetric, "metric_id"
			case "context_key":
				bit, name = keyContext, "context_key"
			case "tags":
				bit, name = keyTags, "tags"
			case "timestamps":
				bit, name = keyTimestamps, "timestamps"
			case "values":
				bit, name = keyValues, "values"
			case "metadata":
				bit, name = keyMetadata, "metadata"
			}
			if bit != 0 && seen&bit != 0 {
				return jsonErr(name, keyAt, "duplicate key")
			}
			seen |= bit
			switch bit {
			case keyOrg:
				var v uint64
				v, i, err = jsonUint(b, i, name, math.MaxUint32, "uint32")
				p.Org = uint32(v)
			case keyMetric:
				p.Metric, i, err = jsonUint(b, i, name, math.MaxUint64, "uint64")
			case keyContext:
				p.Context, i, err = jsonUint(b, i, name, math.MaxUint64, "uint64")
			case keyTags:
				i, err = d.jsonTags(b, i, p)
			case keyTimestamps:
				p.Timestamps, i, err = jsonInts(b, i, p.Timestamps)
			case keyValues:
				valuesAt = i
				p.Values, i, err = jsonFloats(b, i, p.Values)
			case keyMetadata:
				i, err = d.jsonStringMap(b, i)
			default:
				i, err = d.jsonSkip(b, i, 0)
			}
			if err != nil {
				return err
			}
			var more bool
			if i, more, err = listNext(b, i, '}', ""); err != nil {
				return err
			}
			if !more {
				break
			}
		}
	}
	end := i - 1
	if i = skipWS(b, i); i != len(b) {
		return jsonErr("", i, "trailing data after object: "+describe(b, i))
	}
	if seen&keysRequired != keysRequired {
		for _, k := range requiredKeys {
			if seen&k.bit == 0 {
				return jsonErr(k.name, end, "missing required key")
			}
		}
	}
	if len(p.Timestamps) != len(p.Values) {
		return jsonErr("values", valuesAt, strconv.Itoa(len(p.Timestamps))+" timestamps but "+strconv.Itoa(len(p.Values))+" values")
	}
	return nil
}

// readDigits reads the decimal digits at b[i:] and reports whether their value
// overflows uint64.
func readDigits(b []byte, i int) (v uint64, end int, overflow bool) {
	start := i
	for i < len(b) && b[i]-'0' <= 9 {
		v = v*10 + uint64(b[i]-'0')
		i++
	}
	// Fast path: 19 digits are below 10^19 < 2^64 and cannot overflow, so the loop
	// above needs no check. Longer runs are rare and rechecked exactly.
	switch n := i - start; {
	case n <= 19:
		return v, i, false
	case n > 20:
		return 0, i, true
	}
	u, err := strconv.ParseUint(string(b[start:i]), 10, 64)
	return u, i, err != nil
}

// parseInteger reads a JSON integer at b[i:]: optional '-' (when signed), digits, no
// fraction or exponent. On failure it returns the offset to report and a reason.
func parseInteger(b []byte, i int, signed bool) (neg bool, v uint64, end, at int, reason string) {
	start := i
	if i < len(b) && b[i] == '-' {
		if !signed {
			return false, 0, i, i, "negative number not allowed"
		}
		neg = true
		i++
	}
	d0 := i
	v, i, overflow := readDigits(b, i)
	if i == d0 {
		switch {
		case i >= len(b):
			return false, 0, i, start, "expected integer, found end of input"
		case b[i] == '"' && !neg:
			return false, 0, i, start, "expected integer, found string"
		}
		return false, 0, i, start, "expected integer, found " + describe(b, i)
	}
	if b[d0] == '0' && i-d0 > 1 {
		return false, 0, i, start, "leading zero not allowed"
	}
	if i < len(b) {
		switch b[i] {
		case '.':
			return false, 0, i, start, "fraction not allowed in an integer"
		case 'e', 'E':
			return false, 0, i, start, "exponent not allowed in an integer"
		}
	}
	if overflow {
		return false, 0, i, start, string(b[start:i]) + " overflows uint64"
	}
	return neg, v, i, start, ""
}

// jsonUint reads an unsigned decimal integer no larger than max. Everything else a JSON
// number can be (negative, fraction, exponent) is an error: ids must be exact.
func jsonUint(b []byte, i int, field string, max uint64, typ string) (uint64, int, error) {
	_, v, end, at, reason := parseInteger(b, i, false)
	if reason != "" {
		return 0, end, jsonErr(field, at, strings.Replace(reason, "integer", "unsigned integer", 1))
	}
	if v > max {
		return 0, end, jsonErr(field, at, string(b[at:end])+" overflows "+typ)
	}
	return v, end, nil
}

// parseInt64 reads a decimal int64 (a timestamp).
func parseInt64(b []byte, i int) (int64, int, int, string) {
	neg, v, end, at, reason := parseInteger(b, i, true)
	switch {
	case reason != "" && !strings.HasSuffix(reason, "overflows uint64"):
		return 0, end, at, reason
	case reason != "" || (neg && v > 1<<63) || (!neg && v > math.MaxInt64):
		return 0, end, at, string(b[at:end]) + " overflows int64"
	case neg:
		return int64(-v), end, at, "" //nolint:gosec // v <= 2^63: -v wraps to the right int64.
	}
	return int64(v), end, at, ""
}

// pow10 holds the powers of ten that float64 represents exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// parseNumber reads a JSON number, -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, at
// b[i:] as a float64 with strconv.ParseFloat's result.
//
// Fast path (Clinger): when the digits form an integer m <= 2^53 and the decimal
// exponent e is within [-22, 22], m and 10^|e| are exact float64s, so one IEEE
// multiplication or division gives the correctly rounded result, the same bits as
// ParseFloat (which takes the same path after parsing the digits again). Everything
// else goes to ParseFloat. BenchmarkDecode/json shows the gain; FuzzParseNumber checks
// the equivalence.
func parseNumber(b []byte, i int) (float64, int, string) {
	start := i
	neg := false
	if i < len(b) && b[i] == '-' {
		neg = true
		i++
	}
	var mant uint64
	nd := 0 // digits accumulated into mant
	exp := 0
	if i >= len(b) {
		return 0, start, "invalid number"
	}
	switch c := b[i]; {
	case c == '0':
		i++
	case c >= '1' && c <= '9':
		for ; i < len(b) && b[i]-'0' <= 9; i++ {
			mant = mant*10 + uint64(b[i]-'0')
			nd++
		}
	default:
		return 0, start, "invalid number"
	}
	if i < len(b) && b[i] == '.' {
		i++
		f0 := i
		for ; i < len(b) && b[i]-'0' <= 9; i++ {
			mant = mant*10 + uint64(b[i]-'0')
			nd++
			exp--
		}
		if i == f0 {
			return 0, start, "invalid number"
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		esign := 1
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			if b[i] == '-' {
				esign = -1
			}
			i++
		}
		e0 := i
		e := 0
		for ; i < len(b) && b[i]-'0' <= 9; i++ {
			if e < 100000 { // beyond any float64 exponent; ParseFloat decides
				e = e*10 + int(b[i]-'0')
			}
		}
		if i == e0 {
			return 0, start, "invalid number"
		}
		exp += esign * e
	}
	// nd <= 19 keeps mant from having wrapped.
	if nd <= 19 && mant <= 1<<53 && exp >= -22 && exp <= 22 {
		f := float64(mant)
		if neg {
			f = -f
		}
		if exp >= 0 {
			return f * pow10[exp], i, ""
		}
		return f / pow10[-exp], i, ""
	}
	// Slow path. string(b[start:i]) does not allocate for numbers up to 32 bytes
	// (ParseFloat does not keep its argument, so the compiler uses a stack buffer).
	v, err := strconv.ParseFloat(string(b[start:i]), 64)
	if err != nil {
		return 0, start, "number out of float64 range"
	}
	return v, i, ""
}

// parseValue reads a value: a JSON number or one of "NaN", "+Inf", "-Inf", "-0".
func parseValue(b []byte, i int) (float64, int, string) {
	if i < len(b) && b[i] == '"' {
		// The special strings are short and have no escapes: compare raw bytes.
		end := i + 1
		for end < len(b) && end-i <= 6 && b[end] != '"' {
			end++
		}
		if end < len(b) && b[end] == '"' {
			switch string(b[i+1 : end]) {
			case "NaN":
				return math.NaN(), end + 1, ""
			case "+Inf":
				return math.Inf(1), end + 1, ""
			case "-Inf":
				return math.Inf(-1), end + 1, ""
			case "-0":
				return math.Copysign(0, -1), end + 1, ""
			}
		}
		return 0, i, `invalid value string, want a number or "NaN", "+Inf", "-Inf", "-0"`
	}
	return parseNumber(b, i)
}

// withField names the field of a *DecodeError raised by a helper that did not know it.
func withField(err error, field string) error {
	if de, ok := err.(*DecodeError); ok {
		de.Field = field
	}
	return err
}

func elemField(name string, k int) string {
	return name + "[" + strconv.Itoa(k) + "]"
}

// listNext reads what follows an element of an array (closer ']') or a member of an
// object (closer '}'): ',' (more), the closer (done) or an error.
func listNext(b []byte, i int, closer byte, field string) (next int, more bool, err error) {
	// Fast path: the comma right after the element, as encoders write it.
	if i < len(b) && b[i] == ',' {
		return skipWS(b, i+1), true, nil
	}
	i = skipWS(b, i)
	if i < len(b) {
		switch b[i] {
		case ',':
			return skipWS(b, i+1), true, nil
		case closer:
			return i + 1, false, nil
		}
	}
	in := "array"
	if closer == '}' {
		in = "object"
	}
	return i, false, jsonErr(field, i, "expected ',' or '"+string(closer)+"' in "+in+", found "+describe(b, i))
}

// arrayStart reads the '[' of an array; empty reports "[]".
func arrayStart(b []byte, i int, field string) (next int, empty bool, err error) {
	if i >= len(b) || b[i] != '[' {
		return i, false, jsonErr(field, i, "expected array, found "+describe(b, i))
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, true, nil
	}
	return i, false, nil
}

func jsonInts(b []byte, i int, dst []int64) ([]int64, int, error) {
	i, empty, err := arrayStart(b, i, "timestamps")
	if err != nil || empty {
		return dst, i, err
	}
	for k := 0; ; k++ {
		v, j, at, reason := parseInt64(b, i)
		if reason != "" {
			return dst, j, jsonErr(elemField("timestamps", k), at, reason)
		}
		dst = append(dst, v)
		var more bool
		if i, more, err = listNext(b, j, ']', "timestamps"); !more {
			return dst, i, err
		}
	}
}

func jsonFloats(b []byte, i int, dst []float64) ([]float64, int, error) {
	i, empty, err := arrayStart(b, i, "values")
	if err != nil || empty {
		return dst, i, err
	}
	for k := 0; ; k++ {
		v, j, reason := parseValue(b, i)
		if reason != "" {
			return dst, j, jsonErr(elemField("values", k), j, reason)
		}
		dst = append(dst, v)
		var more bool
		if i, more, err = listNext(b, j, ']', "values"); !more {
			return dst, i, err
		}
	}
}

func isNull(b []byte, i int) bool {
	return len(b)-i >= 4 && string(b[i:i+4]) == "null"
}

func (d *Decoder) jsonTags(b []byte, i int, p *columnar.Payload) (int, error) {
	if isNull(b, i) {
		return i + 4, nil
	}
	i, empty, err := arrayStart(b, i, "tags")
	if err != nil || empty {
		return i, err
	}
	for k := 0; ; k++ {
		if i >= len(b) || b[i] != '"' {
			return i, jsonErr(elemField("tags", k), i, "expected string, found "+describe(b, i))
		}
		s, j, err := d.jsonString(b, i)
		if err != nil {
			return j, withField(err, elemField("tags", k))
		}
		p.Tags = append(p.Tags, d.internTag(s))
		var more bool
		if i, more, err = listNext(b, j, ']', "tags"); !more {
			return i, err
		}
	}
}

// jsonStringMap checks that metadata is null or an object of strings.
func (d *Decoder) jsonStringMap(b []byte, i int) (int, error) {
	if isNull(b, i) {
		return i + 4, nil
	}
	if i >= len(b) || b[i] != '{' {
		return i, jsonErr("metadata", i, "expected object, found "+describe(b, i))
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return i, jsonErr("metadata", i, "expected key, found "+describe(b, i))
		}
		_, j, err := d.jsonString(b, i)
		if err != nil {
			return j, withField(err, "metadata")
		}
		i = skipWS(b, j)
		if i >= len(b) || b[i] != ':' {
			return i, jsonErr("metadata", i, "expected ':' after key, found "+describe(b, i))
		}
		i = skipWS(b, i+1)
		if i >= len(b) || b[i] != '"' {
			return i, jsonErr("metadata", i, "expected string value, found "+describe(b, i))
		}
		if _, i, err = d.jsonString(b, i); err != nil {
			return i, withField(err, "metadata")
		}
		var more bool
		if i, more, err = listNext(b, i, '}', "metadata"); !more {
			return i, err
		}
	}
}

// jsonSkip skips one JSON value of an unknown key, checking its syntax.
func (d *Decoder) jsonSkip(b []byte, i, depth int) (int, error) {
	if depth >= maxJSONDepth {
		return i, jsonErr("", i, "nesting deeper than "+strconv.Itoa(maxJSONDepth))
	}
	if i >= len(b) {
		return i, jsonErr("", i, "expected value, found end of input")
	}
	switch c := b[i]; {
	case c == '"':
		_, j, err := d.jsonString(b, i)
		return j, err
	case c == '{':
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, nil
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return i, jsonErr("", i, "expected object key, found "+describe(b, i))
			}
			_, j, err := d.jsonString(b, i)
			if err != nil {
				return j, err
			}
			i = skipWS(b, j)
			if i >= len(b) || b[i] != ':' {
				return i, jsonErr("", i, "expected ':' after key, found "+describe(b, i))
			}
			if i, err = d.jsonSkip(b, skipWS(b, i+1), depth+1); err != nil {
				return i, err
			}
			var more bool
			if i, more, err = listNext(b, i, '}', ""); !more {
				return i, err
			}
		}
	case c == '[':
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, nil
		}
		for {
			var err error
			if i, err = d.jsonSkip(b, i, depth+1); err != nil {
				return i, err
			}
			var more bool
			if i, more, err = listNext(b, i, ']', ""); !more {
				return i, err
			}
		}
	case c == 't' && len(b)-i >= 4 && string(b[i:i+4]) == "true":
		return i + 4, nil
	case c == 'f' && len(b)-i >= 5 && string(b[i:i+5]) == "false":
		return i + 5, nil
	case c == 'n' && isNull(b, i):
		return i + 4, nil
	case c == '-' || (c >= '0' && c <= '9'):
		if j := scanNumber(b, i); j >= 0 {
			return j, nil
		}
		return i, jsonErr("", i, "invalid number")
	}
	return i, jsonErr("", i, "expected value, found "+describe(b, i))
}

// jsonString reads the string whose opening quote is at b[i] and returns its content:
// a subslice of b when it has no escapes (the fast path), or the unescaped bytes in
// d.scratch, valid until the next call. Raw control characters, invalid UTF-8 and lone
// surrogate escapes are errors: a tag must survive re-encoding in every format.
func (d *Decoder) jsonString(b []byte, i int) ([]byte, int, error) {
	const field = "" // callers that know the field set it with withField
	open := i
	i++
	start := i
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			return b[start:i], i + 1, nil
		case c == '\\':
			return d.jsonStringSlow(b, open, start, i)
		case c < 0x20:
			return nil, i, jsonErr(field, i, "control character in string")
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return nil, i, jsonErr(field, i, "invalid UTF-8 in string")
			}
			i += size
		}
	}
	return nil, i, jsonErr(field, open, "unterminated string")
}

// jsonStringSlow continues jsonString at the first backslash, b[i].
func (d *Decoder) jsonStringSlow(b []byte, open, start, i int) ([]byte, int, error) {
	const field = ""
	out := append(d.scratch[:0], b[start:i]...)
	defer func() { d.scratch = out[:0] }()
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			return out, i + 1, nil
		case c == '\\':
			if i+1 >= len(b) {
				return nil, i, jsonErr(field, open, "unterminated string")
			}
			esc := b[i+1]
			switch esc {
			case '"', '\\', '/':
				out = append(out, esc)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := hex4(b, i+2)
				if !ok {
					return nil, i, jsonErr(field, i, `invalid \u escape`)
				}
				n := 6
				if r >= 0xd800 && r < 0xe000 {
					// A surrogate: valid only as a high one followed by \u and a low one.
					r2, ok := rune(0), false
					if r < 0xdc00 && len(b)-i >= 12 && b[i+6] == '\\' && b[i+7] == 'u' {
						r2, ok = hex4(b, i+8)
					}
					if !ok || r2 < 0xdc00 || r2 >= 0xe000 {
						return nil, i, jsonErr(field, i, "unpaired surrogate in \\u escape")
					}
					r = 0x10000 + (r-0xd800)<<10 + (r2 - 0xdc00)
					n = 12
				}
				out = utf8.AppendRune(out, r)
				i += n
				continue
			default:
				return nil, i, jsonErr(field, i, "invalid escape "+describe(b, i+1))
			}
			i += 2
		case c < 0x20:
			return nil, i, jsonErr(field, i, "control character in string")
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return nil, i, jsonErr(field, i, "invalid UTF-8 in string")
			}
			out = append(out, b[i:i+size]...)
			i += size
		}
	}
	return nil, i, jsonErr(field, open, "unterminated string")
}

func hex4(b []byte, i int) (rune, bool) {
	if len(b)-i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// AppendJSON appends p as one JSON object in the documented layout (keys in the order
// org_id, metric_id, context_key, tags, timestamps, values; no whitespace) and returns
// the extended slice.
//
// Values are written in shortest round-trip form, so decoding gives back the same bits,
// except for NaN: JSON has one "NaN", which decodes to the canonical NaN
// (0x7ff8000000000001, math.NaN()), so NaN payload bits such as Prometheus' stale
// marker do not survive JSON; use Proto or RemoteWrite for those. -0 is written as "-0"
// because many JSON readers drop the sign of a -0 number. Invalid UTF-8 in a tag is
// written as U+FFFD (decoded payloads never contain any).
func AppendJSON(dst []byte, p *columnar.Payload) []byte {
	dst = append(dst, `{"org_id":`...)
	dst = strconv.AppendUint(dst, uint64(p.Org), 10)
	dst = append(dst, `,"metric_id":`...)
	dst = strconv.AppendUint(dst, p.Metric, 10)
	dst = append(dst, `,"context_key":`...)
	dst = strconv.AppendUint(dst, p.Context, 10)
	dst = append(dst, `,"tags":[`...)
	for k, t := range p.Tags {
		if k > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, t)
	}
	dst = append(dst, `],"timestamps":[`...)
	for k, t := range p.Timestamps {
		if k > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendInt(dst, t, 10)
	}
	dst = append(dst, `],"values":[`...)
	for k, v := range p.Values {
		if k > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONFloat(dst, v)
	}
	return append(dst, "]}"...)
}

func appendJSONFloat(dst []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(dst, `"NaN"`...)
	case math.IsInf(v, 1):
		return append(dst, `"+Inf"`...)
	case math.IsInf(v, -1):
		return append(dst, `"-Inf"`...)
	case v == 0 && math.Signbit(v):
		return append(dst, `"-0"`...)
	}
	return strconv.AppendFloat(dst, v, 'g', -1, 64)
}

const hexDigits = "0123456789abcdef"

func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// scanNumber checks the JSON number grammar at b[i:] without converting (for skipped
// values, where any valid JSON number is fine) and returns its end, or -1.
func scanNumber(b []byte, i int) int {
	if i < len(b) && b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return -1
	}
	switch {
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		for i++; i < len(b) && b[i]-'0' <= 9; i++ {
		}
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for ; i < len(b) && b[i]-'0' <= 9; i++ {
		}
		if i == d {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for ; i < len(b) && b[i]-'0' <= 9; i++ {
		}
		if i == d {
			return -1
		}
	}
	return i
}
