package validate

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"text/template"
)

// reportHTML is the self-contained page: the report's JSON inline and a small script
// that draws the tables and SVG charts from it. No network, no library, so it opens
// offline and from a CI artefact. text/template, not html/template: the only dynamic
// parts are PASS/FAIL and JSON from encoding/json, which escapes <, > and & so nothing
// can close the script element; the script puts every string in with textContent.
//
//go:embed report.html
var reportHTML string

var reportTmpl = template.Must(template.New("report").Parse(reportHTML))

// WriteHTML writes the report as one self-contained HTML page.
func (r *Report) WriteHTML(w io.Writer) error {
	var js bytes.Buffer
	if err := json.NewEncoder(&js).Encode(r); err != nil {
		return fmt.Errorf("BUG: encode report: %w", err)
	}
	return reportTmpl.Execute(w, struct {
		Verdict string
		JSON    string
	}{passWord(r.Pass), js.String()})
}
