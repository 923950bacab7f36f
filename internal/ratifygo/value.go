package ratifygo

import (
	"encoding/json"

	ratify "github.com/notaryproject/ratify-go"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/verification"
)

// Value is one image's answer in Ratify v2's Gatekeeper shape
// (internal/httpserver/response.go of Ratify v2), so a policy written for
// Ratify v2 reads it and ours reads Ratify v2's.
type Value struct {
	Succeeded       bool      `json:"succeeded"`
	ArtifactReports []*Report `json:"artifactReports"`
}

// Report is one referrer's results and its nested reports.
type Report struct {
	Subject         string    `json:"subject"`
	Artifact        string    `json:"artifact"`
	Results         []*Result `json:"results,omitempty"`
	ArtifactReports []*Report `json:"artifactReports,omitempty"`
}

// Result is one verifier's result; Detail is the verifier's detail
// JSON-encoded as a string (ours: verification.Report).
type Result struct {
	VerifierName string `json:"verifierName"`
	Description  string `json:"description,omitempty"`
	Detail       string `json:"detail,omitempty"`
	ErrorReason  string `json:"errorReason,omitempty"`
}

func render(src *ratify.ValidationResult) *Value {
	return &Value{Succeeded: src.Succeeded, ArtifactReports: renderReports(src.ArtifactReports)}
}

func renderReports(src []*ratify.ValidationReport) []*Report {
	if src == nil {
		return nil
	}
	out := make([]*Report, 0, len(src))
	for _, r := range src {
		if r == nil {
			continue
		}
		rep := &Report{Subject: r.Subject, Artifact: r.Artifact.Digest.String(), ArtifactReports: renderReports(r.ArtifactReports)}
		for _, res := range r.Results {
			if res == nil {
				continue
			}
			out := &Result{Description: res.Description}
			if res.Verifier != nil {
				out.VerifierName = res.Verifier.Name()
			}
			if res.Err != nil {
				out.ErrorReason = res.Err.Error()
			}
			if res.Detail != nil {
				if b, err := json.Marshal(res.Detail); err == nil {
					out.Detail = string(b)
				}
			}
			rep.Results = append(rep.Results, out)
		}
		out = append(out, rep)
	}
	return out
}

// Reports are our verifier's reports in v (each result's Detail decoded),
// in order, nested reports included; a detail that is not a report is
// left out.
func (v *Value) Reports() []verification.Report {
	var out []verification.Report
	var walk func([]*Report)
	walk = func(reports []*Report) {
		for _, r := range reports {
			for _, res := range r.Results {
				if res.Detail == "" {
					continue
				}
				var rep verification.Report
				if json.Unmarshal([]byte(res.Detail), &rep) == nil && rep.Verdict != "" {
					out = append(out, rep)
				}
			}
			walk(r.ArtifactReports)
		}
	}
	walk(v.ArtifactReports)
	return out
}
