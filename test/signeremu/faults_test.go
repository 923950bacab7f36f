package signeremu

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/signer"
	"github.com/aws/aws-sdk-go-v2/service/signer/types"
)

func TestFaults(t *testing.T) {
	tests := []struct {
		name      string
		op        string
		fault     Fault
		wantCode  string
		wantMsg   string
		wantCount int // GetRevocationStatus requests for one call with 3 attempts
		check     func(t *testing.T, err error)
	}{
		{
			name: "throttled", op: OpGetRevocationStatus,
			fault:    Fault{Status: http.StatusTooManyRequests, Code: CodeTooManyRequests, Message: "Rate exceeded"},
			wantCode: CodeTooManyRequests, wantMsg: "Rate exceeded", wantCount: 3,
			check: func(t *testing.T, err error) {
				var x *types.TooManyRequestsException
				if !errors.As(err, &x) {
					t.Errorf("%v is not a *types.TooManyRequestsException", err)
				}
			},
		},
		{
			name: "throttled_once", op: OpGetRevocationStatus,
			fault:     Fault{Status: http.StatusTooManyRequests, Times: 1},
			wantCount: 2,
		},
		{
			name: "access_denied_empty_message", op: OpGetRevocationStatus,
			fault:    Fault{Status: http.StatusForbidden, Code: CodeAccessDenied},
			wantCode: CodeAccessDenied, wantMsg: "", wantCount: 1,
			check: func(t *testing.T, err error) {
				var x *types.AccessDeniedException
				if !errors.As(err, &x) {
					t.Fatalf("%v is not a *types.AccessDeniedException", err)
				}
				if x.ErrorMessage() != "" {
					t.Errorf("message = %q, want empty", x.ErrorMessage())
				}
			},
		},
		{
			name: "internal_error_code_from_status", op: OpGetRevocationStatus,
			fault:    Fault{Status: http.StatusInternalServerError, Message: "boom"},
			wantCode: CodeInternalServiceError, wantMsg: "boom", wantCount: 3,
			check: func(t *testing.T, err error) {
				var x *types.InternalServiceErrorException
				if !errors.As(err, &x) {
					t.Errorf("%v is not a *types.InternalServiceErrorException", err)
				}
			},
		},
		{
			name: "status_from_code", op: AllOps,
			fault:    Fault{Code: CodeResourceNotFound, Message: "gone"},
			wantCode: CodeResourceNotFound, wantMsg: "gone", wantCount: 1,
		},
		{
			name: "fault_on_other_operation", op: OpSignPayload,
			fault:     Fault{Status: http.StatusInternalServerError},
			wantCount: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startEmu(t, Options{})
			c := sdkClient(t, e, "us-west-2", 3)
			putProfile(t, c, "faulty", nil)
			s := signVia(t, c, "faulty", tt.name)
			e.SetFault(tt.op, tt.fault)
			_, err := c.GetRevocationStatus(context.Background(), revocationInput(s))
			if got := errorCode(t, err); got != tt.wantCode {
				t.Fatalf("error %v: code %q, want %q", err, got, tt.wantCode)
			}
			if err != nil {
				var ae interface{ ErrorMessage() string }
				if errors.As(err, &ae); ae == nil || ae.ErrorMessage() != tt.wantMsg {
					t.Errorf("message of %v, want %q", err, tt.wantMsg)
				}
			}
			if tt.check != nil {
				tt.check(t, err)
			}
			if got := e.Count(OpGetRevocationStatus); got != tt.wantCount {
				t.Errorf("GetRevocationStatus requests = %d, want %d", got, tt.wantCount)
			}
			e.ClearFaults()
			if _, err := c.GetRevocationStatus(context.Background(), revocationInput(s)); err != nil {
				t.Errorf("after ClearFaults: %v", err)
			}
		})
	}
}

func TestFaultTimesAndCounters(t *testing.T) {
	e := startEmu(t, Options{})
	c := sdkClient(t, e, "us-west-2", 1)
	putProfile(t, c, "counted", nil)
	e.SetFault(OpGetSigningProfile, Fault{Status: http.StatusInternalServerError, Times: 2})
	e.SetFault(AllOps, Fault{Status: http.StatusForbidden})
	if f := e.Faults(); len(f) != 2 || f[OpGetSigningProfile].Times != 2 {
		t.Fatalf("Faults() = %+v", f)
	}
	get := func() string {
		_, err := c.GetSigningProfile(context.Background(), &signer.GetSigningProfileInput{ProfileName: aws.String("counted")})
		return errorCode(t, err)
	}
	// The operation's own fault wins over the wildcard until used up; then
	// the wildcard applies.
	for i, want := range []string{CodeInternalServiceError, CodeInternalServiceError, CodeAccessDenied} {
		if got := get(); got != want {
			t.Errorf("call %d: code %q, want %q", i, got, want)
		}
	}
	if _, ok := e.Faults()[OpGetSigningProfile]; ok {
		t.Errorf("a used-up fault is still installed")
	}
	e.ClearFault(AllOps)
	if got := get(); got != "" {
		t.Errorf("after ClearFault: %q", got)
	}
	want := map[string]int{OpPutSigningProfile: 1, OpGetSigningProfile: 4}
	if got := e.Counts(); len(got) != len(want) || got[OpPutSigningProfile] != 1 || got[OpGetSigningProfile] != 4 {
		t.Errorf("Counts() = %v, want %v", got, want)
	}
	e.ResetCounts()
	if got := e.Counts(); len(got) != 0 || e.Count(OpGetSigningProfile) != 0 {
		t.Errorf("after ResetCounts: %v", got)
	}
}

func TestLatency(t *testing.T) {
	e := startEmu(t, Options{})
	c := sdkClient(t, e, "us-west-2", 1)
	putProfile(t, c, "slow", nil)
	const delay = 300 * time.Millisecond
	e.SetFault(OpGetSigningProfile, Fault{Latency: delay, Times: 1})
	start := time.Now()
	out, err := c.GetSigningProfile(context.Background(), &signer.GetSigningProfileInput{ProfileName: aws.String("slow")})
	elapsed := time.Since(start)
	if err != nil || aws.ToString(out.ProfileName) != "slow" {
		t.Fatalf("delayed call: %v, %v", out, err)
	}
	if elapsed < delay {
		t.Errorf("call took %v, want at least %v", elapsed, delay)
	}
	// A latency fault that the client outwaits fails on the client's
	// deadline, not the server's.
	e.SetFault(OpGetSigningProfile, Fault{Latency: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = c.GetSigningProfile(ctx, &signer.GetSigningProfileInput{ProfileName: aws.String("slow")})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %v, want deadline exceeded", err)
	}
	waitFor(t, "the delayed handler to return", func() bool { return e.active.Load() == 0 })
}

func TestHangUntilClientGivesUp(t *testing.T) {
	e := startEmu(t, Options{})
	c := sdkClient(t, e, "us-west-2", 1)
	putProfile(t, c, "hang", nil)
	s := signVia(t, c, "hang", "x")
	e.SetFault(OpGetRevocationStatus, Fault{Hang: true})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.GetRevocationStatus(ctx, revocationInput(s))
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("call returned after %v", elapsed)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %v, want deadline exceeded", err)
	}
	if n := e.Count(OpGetRevocationStatus); n != 1 {
		t.Errorf("emulator saw %d requests, want 1", n)
	}
	waitFor(t, "the hanging handler to notice the client left", func() bool { return e.active.Load() == 0 })
}

func TestCloseReleasesHangingRequest(t *testing.T) {
	e, err := Start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	c := sdkClient(t, e, "us-west-2", 1)
	e.SetFault(AllOps, Fault{Hang: true})
	done := make(chan error, 1)
	go func() {
		_, err := c.GetSigningProfile(context.Background(), &signer.GetSigningProfileInput{ProfileName: aws.String("any")})
		done <- err
	}()
	waitFor(t, "the request to arrive", func() bool { return e.Count(OpGetSigningProfile) == 1 })
	start := time.Now()
	if err := e.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("Close took %v", elapsed)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("the hanging request succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the hanging request did not return after Close")
	}
	if n := e.active.Load(); n != 0 {
		t.Errorf("%d handlers still running after Close", n)
	}
	if err := e.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestCloseReleasesHangInHandlerOnlyMode(t *testing.T) {
	e, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.SetFault(OpGetSigningProfile, Fault{Hang: true})
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/signing-profiles/x", nil))
		close(done)
	}()
	waitFor(t, "the request to arrive", func() bool { return e.Count(OpGetSigningProfile) == 1 })
	_ = e.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("ServeHTTP still hanging after Close")
	}
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("released request answered %d, want 503", rec.Code)
	}
}
