package awsplugin

import (
	"context"
	"time"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/revocation"
)

// Record is what the plugin saw and decided during one verification, for
// the caller to report (notation-go keeps only pass/fail and a reason).
type Record struct {
	// Invoked tells that notation reached the plugin.
	Invoked bool
	// PluginError is the request error returned to notation, if any.
	PluginError error

	ProfileVersionARN string
	JobARN            string

	Identity struct {
		Checked bool
		Matched string
	}
	Revocation struct {
		Checked  bool
		Answer   revocation.Answer
		Err      error
		Duration time.Duration
	}
}

type recordKey struct{}

// WithRecord returns a context whose verification the plugin records in rec.
func WithRecord(ctx context.Context, rec *Record) context.Context {
	return context.WithValue(ctx, recordKey{}, rec)
}

func recordFrom(ctx context.Context) *Record {
	if rec, ok := ctx.Value(recordKey{}).(*Record); ok && rec != nil {
		return rec
	}
	return &Record{}
}
