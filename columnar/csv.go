package columnar

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
)

// CSVHeader is the header line of point CSV files (import, cat, legacy CSV).
const CSVHeader = "org_id,metric_id,context_key,ts,value"

// AppendCSVPoint appends one CSV line (with its newline) for a point.
func AppendCSVPoint(dst []byte, k SeriesKey, ts int64, v float64) []byte {
	dst = strconv.AppendUint(dst, uint64(k.Org), 10)
	dst = append(dst, ',')
	dst = strconv.AppendUint(dst, k.Metric, 10)
	dst = append(dst, ',')
	dst = strconv.AppendUint(dst, k.Context, 10)
	dst = append(dst, ',')
	dst = strconv.AppendInt(dst, ts, 10)
	dst = append(dst, ',')
	dst = AppendValue(dst, v)
	return append(dst, '\n')
}

// ParseCSVPoint parses "org_id,metric_id,context_key,ts,value", naming the bad field.
func ParseCSVPoint(line []byte) (SeriesKey, int64, float64, error) {
	var f [5][]byte
	n := 0
	for len(line) > 0 || n < 5 {
		i := bytes.IndexByte(line, ',')
		if n == 4 {
			if i >= 0 {
				return SeriesKey{}, 0, 0, fmt.Errorf("%d fields, want 5", 5+bytes.Count(line, []byte{','}))
			}
			f[4] = line
			break
		}
		if i < 0 {
			return SeriesKey{}, 0, 0, fmt.Errorf("%d fields, want 5", n+1)
		}
		f[n], line = line[:i], line[i+1:]
		n++
	}
	var k SeriesKey
	org, err := strconv.ParseUint(string(f[0]), 10, 32)
	if err != nil {
		return k, 0, 0, fmt.Errorf("org_id %q: want an integer in [0, 4294967295]", f[0])
	}
	k.Org = uint32(org)
	if k.Metric, err = strconv.ParseUint(string(f[1]), 10, 64); err != nil {
		return k, 0, 0, fmt.Errorf("metric_id %q: want an integer in [0, 18446744073709551615]", f[1])
	}
	if k.Context, err = strconv.ParseUint(string(f[2]), 10, 64); err != nil {
		return k, 0, 0, fmt.Errorf("context_key %q: want an integer in [0, 18446744073709551615]", f[2])
	}
	ts, err := strconv.ParseInt(string(f[3]), 10, 64)
	if err != nil {
		return k, 0, 0, fmt.Errorf("ts %q: want Unix milliseconds as an integer", f[3])
	}
	v, err := parseValue(string(f[4]))
	if err != nil {
		return k, 0, 0, fmt.Errorf("value %q: %w", f[4], err)
	}
	return k, ts, v, nil
}

// parseValue parses a value as AppendValue prints it: a decimal float, NaN, +Inf,
// -Inf or -0.
func parseValue(s string) (float64, error) {
	switch s {
	case "NaN", "+Inf", "-Inf", "Inf":
	default:
		// strconv accepts "inf", "infinity" and hex floats too; insist on plain numbers
		// besides the four spellings above so a typo is not silently a special value.
		for i := 0; i < len(s); i++ {
			c := s[i]
			if !(c >= '0' && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') {
				return 0, fmt.Errorf("want a number, NaN, +Inf or -Inf")
			}
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("want a number, NaN, +Inf or -Inf")
	}
	return v, nil
}

// AppendValue appends v so that ParseValue gives back the same float64 bits (for every
// value but NaNs with a non-canonical payload): the shortest round-trip decimal, NaN,
// +Inf, -Inf, and -0 for negative zero.
func AppendValue(dst []byte, v float64) []byte {
	switch {
	case v != v:
		return append(dst, "NaN"...)
	case math.IsInf(v, 1):
		return append(dst, "+Inf"...)
	case math.IsInf(v, -1):
		return append(dst, "-Inf"...)
	case v == 0 && math.Signbit(v):
		return append(dst, "-0"...)
	}
	return strconv.AppendFloat(dst, v, 'g', -1, 64)
}
