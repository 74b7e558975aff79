package validate

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// mdCode puts s in a Markdown code span that s cannot close, so that a store URL or a
// path such as "x`<img src=x onerror=alert(1)>" shows as text instead of injecting raw
// HTML into the rendered page. In CommonMark (and GitHub's Markdown) a code span ends at
// the next run of exactly as many backticks as opened it, so the fence is one backtick
// longer than the longest run in s; a renderer strips one space from each side, so s is
// padded when it starts or ends with a backtick or a space. Nothing inside a code span
// is Markdown or HTML, and a backslash is a plain character there. A code span cannot
// hold a line break (a blank line ends the list item and what follows would render), so
// control characters, line and paragraph separators and invalid UTF-8 are shown as Go
// escapes (\n, \x00, \u2028).
func mdCode(s string) string {
	if s == "" {
		return "(none)"
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029':
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
		i += size
	}
	body := b.String()
	longest, run := 0, 0
	for i := 0; i < len(body); i++ {
		if body[i] == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", longest+1)
	if strings.HasPrefix(body, "`") || strings.HasSuffix(body, "`") || strings.HasPrefix(body, " ") || strings.HasSuffix(body, " ") {
		body = " " + body + " "
	}
	return fence + body + fence
}
